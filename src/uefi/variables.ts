/**
 * UEFI variable vocabulary: attributes (UEFI 2.10 section 8.2.1 "GetVariable()"), EFI_TIME
 * (UEFI 2.10 section 8.3.1 "GetTime()"), UCS-2 variable names, and the Secure Boot variables
 * (UEFI 2.10 section 3.3 "Globally Defined Variables", section 32.6 "Image Execution Verification").
 */
import { struct, u16le, u32le, u8, type Infer } from "../core/codec.js";
import { Guids, type Guid } from "./guid.js";
import { uefiError } from "./errors.js";

/** EFI_VARIABLE_* attribute bits, UEFI 2.10 section 8.2.1. */
export const Attr = {
  EFI_VARIABLE_NON_VOLATILE: 0x01,
  EFI_VARIABLE_BOOTSERVICE_ACCESS: 0x02,
  EFI_VARIABLE_RUNTIME_ACCESS: 0x04,
  EFI_VARIABLE_HARDWARE_ERROR_RECORD: 0x08,
  /** Deprecated by UEFI 2.8; never written by Bulwark. */
  EFI_VARIABLE_AUTHENTICATED_WRITE_ACCESS: 0x10,
  EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS: 0x20,
  EFI_VARIABLE_APPEND_WRITE: 0x40,
  EFI_VARIABLE_ENHANCED_AUTHENTICATED_ACCESS: 0x80,
} as const;

/** NV | BS | RT | TIME_BASED_AUTH: the attributes of PK, KEK, db and dbx (0x27). */
export const SECURE_BOOT_DB_ATTRS =
  Attr.EFI_VARIABLE_NON_VOLATILE |
  Attr.EFI_VARIABLE_BOOTSERVICE_ACCESS |
  Attr.EFI_VARIABLE_RUNTIME_ACCESS |
  Attr.EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS;

/** NV | BS: edk2's SecureBootEnable and shim's SbatLevel (not visible to the OS). */
export const NV_BS_ATTRS = Attr.EFI_VARIABLE_NON_VOLATILE | Attr.EFI_VARIABLE_BOOTSERVICE_ACCESS;

const ATTR_SHORT: readonly [number, string][] = [
  [Attr.EFI_VARIABLE_NON_VOLATILE, "NV"],
  [Attr.EFI_VARIABLE_BOOTSERVICE_ACCESS, "BS"],
  [Attr.EFI_VARIABLE_RUNTIME_ACCESS, "RT"],
  [Attr.EFI_VARIABLE_HARDWARE_ERROR_RECORD, "HR"],
  [Attr.EFI_VARIABLE_AUTHENTICATED_WRITE_ACCESS, "AW"],
  [Attr.EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS, "AT"],
  [Attr.EFI_VARIABLE_APPEND_WRITE, "AP"],
  [Attr.EFI_VARIABLE_ENHANCED_AUTHENTICATED_ACCESS, "EA"],
];

/** "NV|BS|RT|AT" style text of an attribute set (unknown bits as hex). */
export function attrText(attrs: number): string {
  const parts = ATTR_SHORT.filter(([bit]) => (attrs & bit) !== 0).map(([, n]) => n);
  const known = ATTR_SHORT.reduce((m, [bit]) => m | bit, 0);
  const unknown = (attrs & ~known) >>> 0;
  if (unknown) parts.push(`0x${unknown.toString(16)}`);
  return parts.join("|") || "0";
}

/**
 * EFI_TIME, UEFI 2.10 section 8.3.1. TimeZone is an INT16 kept as its raw UINT16 so that every
 * received value re-encodes identically; {@link timeZoneMinutes} gives the signed value.
 */
export const EFI_TIME = struct("EFI_TIME", {
  Year: u16le,
  Month: u8,
  Day: u8,
  Hour: u8,
  Minute: u8,
  Second: u8,
  Pad1: u8,
  Nanosecond: u32le,
  TimeZone: u16le,
  Daylight: u8,
  Pad2: u8,
});
export type EfiTime = Infer<typeof EFI_TIME>;

export function timeZoneMinutes(t: EfiTime): number {
  return t.TimeZone >= 0x8000 ? t.TimeZone - 0x10000 : t.TimeZone;
}

/** The all-zero EFI_TIME that edk2 stores for variables without a timestamp. */
export function zeroTime(): EfiTime {
  return {
    Year: 0,
    Month: 0,
    Day: 0,
    Hour: 0,
    Minute: 0,
    Second: 0,
    Pad1: 0,
    Nanosecond: 0,
    TimeZone: 0,
    Daylight: 0,
    Pad2: 0,
  };
}

/**
 * The EFI_TIME of an authenticated write (UEFI 2.10 section 8.2.6: Pad1, Nanosecond, TimeZone,
 * Daylight and Pad2 shall be zero), from a JavaScript date in UTC.
 */
export function efiTimeFromDate(d: Date): EfiTime {
  const ms = d.getTime();
  if (!Number.isFinite(ms)) throw uefiError("UEFI_ERR_VARIABLE_INVALID", "invalid date for EFI_TIME");
  const year = d.getUTCFullYear();
  if (year < 1900 || year > 9999) {
    throw uefiError("UEFI_ERR_VARIABLE_INVALID", `EFI_TIME year ${year} outside 1900..9999`);
  }
  return {
    ...zeroTime(),
    Year: year,
    Month: d.getUTCMonth() + 1,
    Day: d.getUTCDate(),
    Hour: d.getUTCHours(),
    Minute: d.getUTCMinutes(),
    Second: d.getUTCSeconds(),
  };
}

/** ISO-8601 text of an EFI_TIME for display ("unset" when all zero). */
export function efiTimeText(t: EfiTime): string {
  if (t.Year === 0 && t.Month === 0 && t.Day === 0) return "unset";
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${p(t.Year, 4)}-${p(t.Month)}-${p(t.Day)}T${p(t.Hour)}:${p(t.Minute)}:${p(t.Second)}Z`;
}

/** Compares two EFI_TIMEs by calendar fields (for "newer than" checks of authenticated writes). */
export function compareEfiTime(a: EfiTime, b: EfiTime): number {
  const keys = ["Year", "Month", "Day", "Hour", "Minute", "Second", "Nanosecond"] as const;
  for (const k of keys) if (a[k] !== b[k]) return a[k] - b[k];
  return 0;
}

/** A variable name as UCS-2LE with its NUL terminator (the form stored in edk2 variable headers). */
export function encodeVariableName(name: string): Uint8Array {
  if (name.length === 0 || name.length > 1024) {
    throw uefiError("UEFI_ERR_VARIABLE_INVALID", `variable name length ${name.length} outside 1..1024`);
  }
  const out = new Uint8Array((name.length + 1) * 2);
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 0 || (c >= 0xd800 && c <= 0xdfff)) {
      throw uefiError("UEFI_ERR_VARIABLE_INVALID", "variable names are UCS-2 without NUL or surrogates");
    }
    out[i * 2] = c & 0xff;
    out[i * 2 + 1] = c >> 8;
  }
  return out;
}

/** The variable name without its terminator, for the signed payload of UEFI 2.10 section 8.2.6. */
export function variableNameBytesNoNul(name: string): Uint8Array {
  const b = encodeVariableName(name);
  return b.subarray(0, b.length - 2);
}

/**
 * Text of stored UCS-2LE name bytes: code units up to the first NUL. Lenient on purpose (deleted
 * records may hold garbage); callers keep the bytes themselves for re-encoding.
 */
export function decodeVariableName(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i + 1 < b.length; i += 2) {
    const c = b[i]! | (b[i + 1]! << 8);
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

/** The Secure Boot policy variables Bulwark writes, with their vendor GUIDs. */
export const SecureBootVars = {
  PK: Guids.EFI_GLOBAL_VARIABLE,
  KEK: Guids.EFI_GLOBAL_VARIABLE,
  db: Guids.EFI_IMAGE_SECURITY_DATABASE_GUID,
  dbx: Guids.EFI_IMAGE_SECURITY_DATABASE_GUID,
} as const satisfies Record<string, Guid>;
export type SecureBootVarName = keyof typeof SecureBootVars;
export const SECURE_BOOT_VAR_NAMES: readonly SecureBootVarName[] = ["PK", "KEK", "db", "dbx"];

/** The vendor GUID a Secure Boot variable name belongs to (UEFI 2.10 sections 3.3, 32.6.1). */
export function secureBootVarGuid(name: string): Guid | undefined {
  return (SecureBootVars as Record<string, Guid>)[name];
}
