/**
 * Replaying an event log: for every bank, start each PCR at its reset value and extend it with
 * every event's digest for that bank, in log order: PCR := H(PCR || digest) (TPM 2.0 Library
 * Part 1, section 17.7 "PCR Extend"; PFP 1.05 section 10.2.2).
 *
 * Reset values (TCG PC Client Platform TPM Profile (PTP) 1.05, section 4.6, and PFP 10.4.5.3):
 * PCRs 0..16 and 23 start at zero, except PCR 0, whose last byte is the startup locality when a
 * TCG_EfiStartupLocalityEvent is logged; PCRs 17..22 start at all ones (their value until a
 * dynamic launch). EV_NO_ACTION events are never extended (PFP 10.4.1).
 *
 * Not handled: dynamic root of trust (DRTM) logs, which reset PCRs 17..22 to zero.
 */
import { createHash, getHashes } from "node:crypto";
import { digestBytes, HASHES } from "../tpm/alg.js";
import { EventType } from "./event-types.js";
import { startupLocality, type EventLog } from "./parse.js";

export const PCR_COUNT = 24;

export interface BankReplay {
  readonly alg: number;
  readonly bank: string;
  /** False when node:crypto cannot compute this hash; `pcrs` is then empty. */
  readonly supported: boolean;
  /** The replayed value of every PCR 0..23 (PCRs without events keep their reset value). */
  readonly pcrs: ReadonlyMap<number, Uint8Array>;
  /** PCRs that at least one event extends. */
  readonly extended: ReadonlySet<number>;
  /** Extended events that carry no digest for this bank: the bank's replay is not complete. */
  readonly missingDigests: readonly number[];
}

export interface Replay {
  readonly banks: readonly BankReplay[];
  /** The startup locality used for PCR 0's reset value (0 when the log records none). */
  readonly startupLocality: number;
}

const nodeHashes = new Set(getHashes());

/** The node:crypto name of a bank's hash, or undefined when this host cannot compute it. */
export function nodeHashName(alg: number): string | undefined {
  const info = HASHES.get(alg);
  return info && nodeHashes.has(info.node) ? info.node : undefined;
}

export function digestOf(alg: number, ...parts: Uint8Array[]): Uint8Array | undefined {
  const name = nodeHashName(alg);
  if (!name) return undefined;
  // One part: node's one-shot hash (tpm/alg.ts digestBytes), much cheaper than a Hash object.
  if (parts.length === 1) return digestBytes(name, parts[0]!);
  const h = createHash(name);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** The value a PCR holds after TPM2_Startup(CLEAR), before any extend. */
export function resetValue(pcr: number, size: number, locality = 0): Uint8Array {
  const v = new Uint8Array(size);
  if (pcr >= 17 && pcr <= 22) v.fill(0xff);
  if (pcr === 0) v[size - 1] = locality;
  return v;
}

/** What replaying one bank yields (the lazy part of a {@link BankReplay}). */
interface BankValues {
  readonly pcrs: ReadonlyMap<number, Uint8Array>;
  readonly extended: ReadonlySet<number>;
  readonly missingDigests: readonly number[];
}

function replayBank(
  log: EventLog,
  alg: number,
  name: string,
  digestSize: number,
  locality: number,
): BankValues {
  const pcrs = new Map<number, Uint8Array>();
  const extended = new Set<number>();
  const missingDigests: number[] = [];
  for (let i = 0; i < PCR_COUNT; i++) pcrs.set(i, resetValue(i, digestSize, locality));
  // PCR || digest is assembled in one scratch buffer and hashed in one call: a log has
  // hundreds of events, and a Hash object per extend cost more than the hashing.
  const scratch = Buffer.alloc(2 * digestSize);
  for (const e of log.events) {
    if (e.eventType === EventType.EV_NO_ACTION) continue;
    const d = e.digests.find((x) => x.alg === alg);
    if (!d) {
      missingDigests.push(e.index);
      continue;
    }
    const old = pcrs.get(e.pcrIndex) ?? resetValue(e.pcrIndex, digestSize, locality);
    // The parser sizes every digest by the bank's declared size; a PCR value has that size too.
    if (old.length !== digestSize || d.digest.length !== digestSize) {
      pcrs.set(e.pcrIndex, new Uint8Array(createHash(name).update(old).update(d.digest).digest()));
    } else {
      scratch.set(old, 0);
      scratch.set(d.digest, digestSize);
      pcrs.set(e.pcrIndex, digestBytes(name, scratch));
    }
    extended.add(e.pcrIndex);
  }
  return { pcrs, extended, missingDigests };
}

/**
 * One bank's replay, made when one of its values is first read: a verifier comparing only the
 * quoted bank (the Host Guardian Service quotes SHA-256) does not pay for the other banks a
 * log declares, while `bulwark eventlog` still shows them all. The values are own enumerable
 * properties (getters), so a deep comparison or JSON of a replay sees them like plain fields.
 */
function lazyBankReplay(
  alg: number,
  bank: string,
  supported: boolean,
  compute: () => BankValues,
): BankReplay {
  let values: BankValues | undefined;
  const replayed = (): BankValues => (values ??= compute());
  return Object.defineProperties(
    { alg, bank, supported },
    {
      pcrs: { enumerable: true, get: () => replayed().pcrs },
      extended: { enumerable: true, get: () => replayed().extended },
      missingDigests: { enumerable: true, get: () => replayed().missingDigests },
    },
  ) as BankReplay;
}

/** Replays every bank the log declares (each bank when first read, see {@link lazyBankReplay}). */
export function replayEventLog(log: EventLog): Replay {
  const locality = startupLocality(log)?.locality ?? 0;
  const banks: BankReplay[] = log.banks.map((b) => {
    const name = nodeHashName(b.alg);
    return name
      ? lazyBankReplay(b.alg, b.bank, true, () => replayBank(log, b.alg, name, b.digestSize, locality))
      : lazyBankReplay(b.alg, b.bank, false, () => ({
          pcrs: new Map(),
          extended: new Set(),
          missingDigests: [],
        }));
  });
  return { banks, startupLocality: locality };
}

/**
 * Replayed PCR values keyed by TPM_ALG_ID (the shape of src/tpm's `PcrValues`), optionally
 * restricted to a selection (bank name → PCR indices). Hand them to src/tpm's `verifyQuote` as
 * `pcrs`: when its `quote.pcrDigest` check passes, the TPM signed exactly these values, and
 * `byBankName(...)` of the same map is what `verifyEventLog` takes as `pcrs`.
 */
export function replayedPcrValues(
  replay: Replay,
  selection?: ReadonlyMap<string, readonly number[]>,
): Map<number, Map<number, Uint8Array>> {
  const out = new Map<number, Map<number, Uint8Array>>();
  for (const b of replay.banks) {
    if (!b.supported) continue;
    const want = selection ? selection.get(b.bank) : undefined;
    if (selection && !want) continue;
    const m = new Map<number, Uint8Array>();
    for (const [i, v] of b.pcrs) if (!want || want.includes(i)) m.set(i, v);
    out.set(b.alg, m);
  }
  return out;
}

/** An algorithm-keyed PCR map re-keyed by bank name (sha256, ...), as verifyEventLog takes it. */
export function byBankName(
  values: ReadonlyMap<number, ReadonlyMap<number, Uint8Array>>,
): Map<string, ReadonlyMap<number, Uint8Array>> {
  const out = new Map<string, ReadonlyMap<number, Uint8Array>>();
  for (const [alg, m] of values) {
    const name = HASHES.get(alg)?.name ?? `0x${alg.toString(16).padStart(4, "0")}`;
    out.set(name, m);
  }
  return out;
}
