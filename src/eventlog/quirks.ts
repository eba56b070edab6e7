/**
 * Firmware quirks: the places where real firmware hashes less than the TCG PC Client Platform
 * Firmware Profile (PFP 1.05, section 10.4.4) says the digest covers, as named entries. proof.ts
 * tries the strict reading first (the digest covers the whole event data); a quirk is tried only
 * when that fails, and each proof it makes is published on `bulwark:eventlog:quirk` (proof.ts).
 */
import { decode } from "../core/codec.js";
import { EventType } from "./event-types.js";
import type { TcgEvent } from "./parse.js";
import { UEFI_VARIABLE_DATA } from "./structures.js";

export interface FirmwareQuirk {
  /** Stable name, reported on the diagnostics channel. */
  readonly id: string;
  /** What the matching digest then covers (Proof.covers). */
  readonly covers: "event-data-without-nul" | "variable-data";
  /** The PCRs it is seen in (documentation; the quirk is tried wherever its event type occurs). */
  readonly pcrs: string;
  /** How it is recognised: the bytes whose hash must equal the digest, or undefined when it cannot apply. */
  readonly bytes: (e: TcgEvent) => Uint8Array | undefined;
  /** What is then assumed, and what is left unproven. */
  readonly assumes: string;
}

const VARIABLE_EVENTS = new Set<number>([
  EventType.EV_EFI_VARIABLE_DRIVER_CONFIG,
  EventType.EV_EFI_VARIABLE_BOOT,
  EventType.EV_EFI_VARIABLE_BOOT2,
  EventType.EV_EFI_VARIABLE_AUTHORITY,
]);

/** In the order proof.ts tries them. */
export const FIRMWARE_QUIRKS: readonly FirmwareQuirk[] = [
  {
    id: "string-hashed-without-nul",
    covers: "event-data-without-nul",
    pcrs: "any (EV_EFI_ACTION, EV_S_CRTM_VERSION, EV_IPL strings)",
    bytes: (e) => (e.data.length > 0 && e.data[e.data.length - 1] === 0 ? e.data.subarray(0, -1) : undefined),
    assumes: "a string logged with its terminating NUL but hashed without it; nothing is left unproven",
  },
  {
    id: "edk2-variable-data-only",
    covers: "variable-data",
    pcrs: "1 (EV_EFI_VARIABLE_BOOT, BootOrder and Boot####), 7 where firmware does the same",
    bytes: (e) => {
      if (!VARIABLE_EVENTS.has(e.eventType)) return undefined;
      try {
        return decode(UEFI_VARIABLE_DATA, e.data).VariableData;
      } catch {
        return undefined; // not a UEFI_VARIABLE_DATA: the quirk cannot apply
      }
    },
    assumes: "edk2 hashes only UEFI_VARIABLE_DATA.VariableData; the variable's name and GUID are NOT proven",
  },
];
