/**
 * Firmware and shim quirks: the places where real firmware or shim logs something other than the
 * TCG PC Client Platform Firmware Profile (PFP 1.05) says, as named entries — id, the PCRs it
 * touches, how it is recognised and what is then assumed.
 *
 * Every quirk is tried only after the strict reading failed (proof.ts for digests, facts.ts and
 * describe.ts for event data, verdict.ts for separators), and every use is reported: in the
 * verdict (`quirks`, and a `quirk.<id>` finding), in `bulwark eventlog show|verify`, and for
 * digest quirks on the `bulwark:eventlog:quirk` diagnostics channel. Recognition is narrow on
 * purpose: a malformed event that is not exactly the quirk keeps its strict error.
 *
 * Severity of the `quirk.<id>` finding: "info" for the edk2 habits the proof model has always
 * named (the proof's `covers` already says what is unproven); "warning" for the ones that turn
 * what the strict reading calls an error into a pass, so that a policy (the Host Guardian
 * Service's) sees them and decides.
 */
import { decode, Reader } from "../core/codec.js";
import type { Severity } from "../core/verdict.js";
import { parseDevicePath } from "./devicepath.js";
import { EventType } from "./event-types.js";
import type { TcgEvent } from "./parse.js";
import {
  UEFI_IMAGE_LOAD_EVENT,
  UEFI_VARIABLE_DATA,
  type UEFI_IMAGE_LOAD_EVENT as ImageLoadEvent,
  type UEFI_VARIABLE_DATA as VariableData,
} from "./structures.js";

/** What every quirk states about itself (docs/eventlog.md and `eventlog show` print these). */
export interface QuirkInfo {
  /** Stable name, reported in verdicts, findings (`quirk.<id>`) and on the diagnostics channel. */
  readonly id: string;
  /** The PCRs (and event types) it is seen in. */
  readonly pcrs: string;
  /** How it is recognised. */
  readonly recognised: string;
  /** What is then assumed, and what is left unproven. */
  readonly assumes: string;
  readonly severity: Severity;
}

/** A quirk in what a digest covers (proof.ts tries `bytes` after the whole event data failed). */
export interface DigestQuirk extends QuirkInfo {
  /** What the matching digest then covers (Proof.covers). */
  readonly covers: "event-data-without-nul" | "variable-data" | "event-data-without-last-byte";
  /** The bytes whose hash must equal the digest, or undefined when the quirk cannot apply. */
  readonly bytes: (e: TcgEvent, firstApplication: number) => Uint8Array | undefined;
}

const VARIABLE_EVENTS = new Set<number>([
  EventType.EV_EFI_VARIABLE_DRIVER_CONFIG,
  EventType.EV_EFI_VARIABLE_BOOT,
  EventType.EV_EFI_VARIABLE_BOOT2,
  EventType.EV_EFI_VARIABLE_AUTHORITY,
]);

/**
 * shim's EFI_VARIABLE_DATA_TREE ends in `UnicodeName[1]; VariableData[1]` placeholders, so what
 * it builds may be followed by the struct's padding (zeros, fewer than 8): a UEFI_VARIABLE_DATA
 * followed by at most 7 zero bytes, or undefined.
 */
function shimVariableData(bytes: Uint8Array): VariableData | undefined {
  const r = new Reader(bytes);
  let v: VariableData;
  try {
    v = UEFI_VARIABLE_DATA.decode(r);
  } catch {
    return undefined;
  }
  const padding = bytes.subarray(r.offset);
  return padding.length < 8 && padding.every((b) => b === 0) ? v : undefined;
}

export const SHIM_AUTHORITY_EXTRA_BYTE = "shim-authority-extra-byte";
export const SHIM_IMAGE_LOAD_TRAILING_BYTES = "shim-image-load-trailing-bytes";
export const NO_SEPARATORS_PCR0_6 = "no-separators-pcr0-6";

/** In the order proof.ts tries them (shim's before the NUL one: its extra byte may be zero). */
export const DIGEST_QUIRKS: readonly DigestQuirk[] = [
  {
    id: SHIM_AUTHORITY_EXTRA_BYTE,
    covers: "event-data-without-last-byte",
    pcrs: "7 (EV_EFI_VARIABLE_AUTHORITY logged by shim before 15.3)",
    recognised:
      "an EV_EFI_VARIABLE_AUTHORITY in PCR 7, logged after the first EV_EFI_BOOT_SERVICES_APPLICATION (so by a loaded application, not the firmware), whose digest in every bank equals the hash of its data without the last byte, and that data is a whole UEFI_VARIABLE_DATA (plus at most 7 zero bytes of shim's struct padding)",
    assumes:
      "shim counted one byte past its structure in EFI_TCG2_EVENT.Size; that byte is not measured, but it lies outside the UEFI_VARIABLE_DATA, so the variable's name, GUID and data (the authority) are proven",
    severity: "warning",
    bytes: (e, firstApplication) => {
      if (e.eventType !== EventType.EV_EFI_VARIABLE_AUTHORITY || e.pcrIndex !== 7) return undefined;
      if (firstApplication < 0 || e.index < firstApplication || e.data.length < 2) return undefined;
      const measured = e.data.subarray(0, -1);
      return shimVariableData(measured) ? measured : undefined;
    },
  },
  {
    id: "string-hashed-without-nul",
    covers: "event-data-without-nul",
    pcrs: "any (EV_EFI_ACTION, EV_S_CRTM_VERSION, EV_IPL strings)",
    recognised: "the event data ends in a NUL and its digest equals the hash of the data without it",
    assumes: "a string logged with its terminating NUL but hashed without it; nothing is left unproven",
    severity: "info",
    bytes: (e) => (e.data.length > 0 && e.data[e.data.length - 1] === 0 ? e.data.subarray(0, -1) : undefined),
  },
  {
    id: "edk2-variable-data-only",
    covers: "variable-data",
    pcrs: "1 (EV_EFI_VARIABLE_BOOT, BootOrder and Boot####), 7 where firmware does the same",
    recognised: "a UEFI_VARIABLE_DATA event whose digest equals the hash of its VariableData alone",
    assumes: "edk2 hashes only UEFI_VARIABLE_DATA.VariableData; the variable's name and GUID are NOT proven",
    severity: "info",
    bytes: (e) => {
      if (!VARIABLE_EVENTS.has(e.eventType)) return undefined;
      try {
        return decode(UEFI_VARIABLE_DATA, e.data).VariableData;
      } catch {
        return undefined; // not a UEFI_VARIABLE_DATA: the quirk cannot apply
      }
    },
  },
];

/** shim's image loads: read when the strict UEFI_IMAGE_LOAD_EVENT reading failed. */
export const SHIM_IMAGE_LOAD_QUIRK: QuirkInfo = {
  id: SHIM_IMAGE_LOAD_TRAILING_BYTES,
  pcrs: "4 (EV_EFI_BOOT_SERVICES_APPLICATION logged by shim)",
  recognised:
    "an EV_EFI_BOOT_SERVICES_APPLICATION in PCR 4 whose UEFI_IMAGE_LOAD_EVENT, read up to its LengthOfDevicePath, is followed by exactly 8 or 9 bytes, and whose device path parses",
  assumes:
    "shim sized the event with sizeof() of a struct ending in a DevicePath[1] placeholder (plus one byte in EFI_TCG2_EVENT.Size); the trailing bytes are padding and ignored. Nothing in this event's data is covered by a digest anyway (the digest is the image's hash)",
  severity: "warning",
};

/** Firmware that never logs separators in PCRs 0–6: judged in verdict.ts. */
export const NO_SEPARATORS_QUIRK: QuirkInfo = {
  id: NO_SEPARATORS_PCR0_6,
  pcrs: "0–6 (seen on GCE Windows images)",
  recognised:
    "not one EV_SEPARATOR in any of PCRs 0–6, while PCR 7 has a normal separator proven by its digest (a log missing only some of them is not this quirk)",
  assumes:
    "the firmware ends its pre-OS phase without marking PCRs 0–6: events the OS extends there later cannot be told from the firmware's. PCR values and digests are still checked; nothing read from PCRs 0–6 becomes more trusted",
  severity: "warning",
};

/** Every quirk, for documentation and `eventlog show`. */
export const ALL_QUIRKS: readonly QuirkInfo[] = [
  ...DIGEST_QUIRKS,
  SHIM_IMAGE_LOAD_QUIRK,
  NO_SEPARATORS_QUIRK,
];

export function quirkById(id: string): QuirkInfo | undefined {
  return ALL_QUIRKS.find((q) => q.id === id);
}

/** Index of the log's first EV_EFI_BOOT_SERVICES_APPLICATION, or -1. */
export function firstApplicationIndex(events: readonly TcgEvent[]): number {
  return events.find((e) => e.eventType === EventType.EV_EFI_BOOT_SERVICES_APPLICATION)?.index ?? -1;
}

/**
 * The UEFI_VARIABLE_DATA of an event whose digest was matched through
 * {@link SHIM_AUTHORITY_EXTRA_BYTE} (the caller has the proof); undefined otherwise.
 */
export function readShimAuthority(e: TcgEvent): VariableData | undefined {
  return e.data.length > 1 ? shimVariableData(e.data.subarray(0, -1)) : undefined;
}

/**
 * A UEFI_IMAGE_LOAD_EVENT read strictly, or through {@link SHIM_IMAGE_LOAD_QUIRK}; throws the
 * strict reading's error when neither applies.
 */
export function readImageLoadEvent(e: TcgEvent): { value: ImageLoadEvent; quirk?: string } {
  try {
    return { value: decode(UEFI_IMAGE_LOAD_EVENT, e.data) };
  } catch (strict) {
    if (e.eventType !== EventType.EV_EFI_BOOT_SERVICES_APPLICATION || e.pcrIndex !== 4) throw strict;
    const r = new Reader(e.data);
    let value: ImageLoadEvent;
    try {
      value = UEFI_IMAGE_LOAD_EVENT.decode(r);
      parseDevicePath(value.DevicePath);
    } catch {
      throw strict;
    }
    if (r.remaining !== 8 && r.remaining !== 9) throw strict;
    return { value, quirk: SHIM_IMAGE_LOAD_TRAILING_BYTES };
  }
}

/** One quirk's uses in a log, as the verdict reports them. */
export interface QuirkUse {
  readonly id: string;
  readonly severity: Severity;
  readonly pcrs: readonly number[];
  /** Event indices it was applied to (empty for log-level quirks such as missing separators). */
  readonly events: readonly number[];
  readonly assumes: string;
}
