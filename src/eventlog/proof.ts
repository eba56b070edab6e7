/**
 * Which event data a digest proves.
 *
 * Replay binds a log's digests to the TPM's PCR values; it binds nothing else. Event data is
 * only as good as the digest that covers it: a fact read from event data is *proven* when, in
 * every bank this host can hash, the event's digest equals the hash of the very bytes the fact
 * was read from. Otherwise the data is a claim anybody could have edited without changing a
 * PCR (a boot application's device path, a firmware blob's address, a file name grub logged).
 *
 * What a digest covers differs by event type and by firmware, so every candidate is tried and
 * the one that matches is named in {@link Proof.covers}:
 *   - "event-data": the whole event data (PFP 1.05 section 10.4.4 for EV_SEPARATOR, EV_EFI_ACTION,
 *     EV_EFI_VARIABLE_DRIVER_CONFIG, EV_EFI_VARIABLE_AUTHORITY, EV_EFI_GPT_EVENT, ...);
 *   - "event-data-without-nul", "variable-data", "event-data-without-last-byte": named firmware
 *     and shim quirks (quirks.ts), tried only after the whole event data did not match, each use
 *     named in `Proof.quirk` and published on {@link quirkChannel};
 *   - "string-after-prefix": grub's `grub_cmd: `, `kernel_cmdline: `, `module_cmdline: ` strings,
 *     whose digest covers the text after the prefix without the NUL (grub-core/commands/tpm.c).
 */
import { channel } from "node:diagnostics_channel";
import { EventType } from "./event-types.js";
import type { TcgEvent } from "./parse.js";
import { nodeHashName } from "./replay.js";
import { digestEquals } from "../tpm/alg.js";
import { DIGEST_QUIRKS, type DigestQuirk } from "./quirks.js";

export type Coverage =
  | "event-data"
  | "event-data-without-nul"
  | "event-data-without-last-byte"
  | "variable-data"
  | "string-after-prefix";

export interface Proof {
  /** True when a digest in the log equals the hash of the bytes the fact was read from. */
  readonly proven: boolean;
  /** What the matching digest covers; null when nothing in the log matches it. */
  readonly covers: Coverage | null;
  /** Banks in which the digest was checked and equal (all the event's banks this host can hash). */
  readonly banks: readonly string[];
  /** Banks the event carries that this host cannot hash, or that the verifier left out (not checked). */
  readonly uncheckedBanks: readonly string[];
  /** Why the fact is, or is not, proven. */
  readonly note: string;
  /** The quirk (quirks.ts) through which the digest matched, when the strict reading did not. */
  readonly quirk?: string;
}

export const GRUB_PREFIXES = ["grub_cmd: ", "kernel_cmdline: ", "module_cmdline: "] as const;

/** A message on {@link quirkChannel}: which quirk proved which event. */
export interface QuirkMessage {
  /** The quirk's id (quirks.ts). */
  readonly quirk: string;
  readonly covers: Coverage;
  readonly event: number;
  readonly eventType: string;
  readonly pcr: number;
}

/**
 * `bulwark:eventlog:quirk` (node:diagnostics_channel): published when an event is proven only
 * through a firmware quirk, with a {@link QuirkMessage}. Event indices and names only, never event
 * data. Costs one property read when nobody subscribes.
 */
export const quirkChannel = channel("bulwark:eventlog:quirk");

/** What the digest of events whose data is not hashed covers, for the proof note. */
const NOT_IN_LOG: Partial<Record<number, string>> = {
  [EventType.EV_EFI_BOOT_SERVICES_APPLICATION]:
    "the digest is the image's PE/Authenticode hash; the image is not in the log and the device path is covered by no digest",
  [EventType.EV_EFI_BOOT_SERVICES_DRIVER]:
    "the digest is the driver image's hash; the device path is covered by no digest",
  [EventType.EV_EFI_RUNTIME_SERVICES_DRIVER]:
    "the digest is the driver image's hash; the device path is covered by no digest",
  [EventType.EV_EFI_PLATFORM_FIRMWARE_BLOB]:
    "the digest covers firmware memory; the blob address and length are covered by no digest",
  [EventType.EV_EFI_PLATFORM_FIRMWARE_BLOB2]:
    "the digest covers firmware memory; the blob description is covered by no digest",
  [EventType.EV_EFI_HANDOFF_TABLES]:
    "the digest covers the tables; the table pointers are covered by no digest",
  [EventType.EV_EFI_HANDOFF_TABLES2]:
    "the digest covers the tables; the table pointers are covered by no digest",
  [EventType.EV_IPL]:
    "the digest covers content not carried in the log (a file or a variable); the text is a label only",
  [EventType.EV_POST_CODE]: "the digest covers firmware code; the event data is a label only",
};

/**
 * The byte strings a digest may cover, strictest first. A generator: the whole event data
 * matches for nearly every event, and the quirks' readings (which decode structures) are then
 * never made.
 */
function* candidates(e: TcgEvent, firstApplication: number): Generator<[Coverage, Uint8Array, DigestQuirk?]> {
  yield ["event-data", e.data];
  for (const q of DIGEST_QUIRKS) {
    const bytes = q.bytes(e, firstApplication);
    if (bytes) yield [q.covers, bytes, q];
  }
  if (e.eventType === EventType.EV_IPL) {
    for (const p of GRUB_PREFIXES) {
      if (e.data.length <= p.length || !startsWithText(e.data, p)) continue;
      let end = e.data.length;
      while (end > p.length && e.data[end - 1] === 0) end--;
      yield ["string-after-prefix", e.data.subarray(p.length, end)];
    }
  }
}

/** True when `data` starts with the latin1 bytes of `text`. */
function startsWithText(data: Uint8Array, text: string): boolean {
  for (let i = 0; i < text.length; i++) if (data[i] !== text.charCodeAt(i)) return false;
  return true;
}

/**
 * The banks a proof checks, when not all: a verifier that trusts PCR values of some banks only
 * (a quote covers the banks it selects) learns nothing from a digest in any other bank — anybody
 * who can edit the log can write it — so it may prove event data in the trusted banks alone.
 * Without it (the default) a proof checks every bank this host can hash.
 */
export type ProofBanks = ReadonlySet<string>;

/**
 * Decides what, if anything, the event's digests prove about its data. Hashes the data on every
 * call; a verifier asking about the same events again keeps a FactMemo (facts.ts). `banks`:
 * see {@link ProofBanks}.
 * `firstApplication` is the index of the log's first EV_EFI_BOOT_SERVICES_APPLICATION
 * (`firstApplicationIndex`): quirks of loaded applications (shim) apply only after it; -1 (the
 * default) tries none of them.
 */
export function proveEvent(e: TcgEvent, firstApplication = -1, banks?: ProofBanks): Proof {
  if (e.eventType === EventType.EV_NO_ACTION) {
    return {
      proven: false,
      covers: null,
      banks: [],
      uncheckedBanks: [],
      note: "EV_NO_ACTION events are not extended into any PCR",
    };
  }
  const checkable: { nodeHash: string; bank: string; digest: Uint8Array }[] = [];
  const unchecked: string[] = [];
  for (const d of e.digests) {
    const nodeHash = nodeHashName(d.alg);
    if (nodeHash && (!banks || banks.has(d.bank)))
      checkable.push({ nodeHash, bank: d.bank, digest: d.digest });
    else unchecked.push(d.bank);
  }
  if (checkable.length === 0) {
    return {
      proven: false,
      covers: null,
      banks: [],
      uncheckedBanks: unchecked,
      note: banks
        ? `no digest in the banks checked (${[...banks].join(", ")})`
        : "no digest this host can compute",
    };
  }
  for (const [covers, bytes, quirk] of candidates(e, firstApplication)) {
    const ok = checkable.every((d) => digestEquals(d.nodeHash, bytes, d.digest));
    if (ok) {
      if (quirk && quirkChannel.hasSubscribers) {
        const message: QuirkMessage = {
          quirk: quirk.id,
          covers,
          event: e.index,
          eventType: e.typeName,
          pcr: e.pcrIndex,
        };
        quirkChannel.publish(message);
      }
      return {
        proven: true,
        covers,
        banks: checkable.map((d) => d.bank),
        uncheckedBanks: unchecked,
        note: `the ${checkable.map((d) => d.bank).join(", ")} digest${checkable.length > 1 ? "s equal" : " equals"} the hash of the ${covers}${quirk ? ` (quirk ${quirk.id})` : ""}`,
        ...(quirk ? { quirk: quirk.id } : {}),
      };
    }
  }
  return {
    proven: false,
    covers: null,
    banks: [],
    uncheckedBanks: unchecked,
    note: NOT_IN_LOG[e.eventType] ?? "no digest in the log equals the hash of this event's data",
  };
}
