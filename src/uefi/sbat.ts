/**
 * SBAT revocation levels (rhboot/shim SBAT.md, "UEFI SBAT Variable"): shim enforces the
 * `SbatLevel` variable (SHIM_LOCK_GUID 605dab50-..., attributes NV|BS so the OS cannot write it),
 * refusing any next-stage image whose .sbat generation for a component is below the level.
 *
 * A signed shim carries the levels it knows in its `.sbatlevel` section (shim include/sbat.h,
 * `struct sbat_var_payload_header { UINT32 version; UINT32 previous_offset; UINT32 latest_offset; }`
 * followed by two NUL-terminated CSV texts; offsets count from the end of `version`). By default
 * shim applies "previous"; pre-seeding the variable with "latest" enforces the newest revocations
 * from the first boot on, since shim never lowers a level that is newer than its own.
 */
import { Reader } from "../core/codec.js";
import { isBulwarkError } from "../core/errors.js";
import { parsePe, sectionData } from "./pe.js";
import { uefiError } from "./errors.js";

export interface SbatLevels {
  readonly previous: string;
  readonly latest: string;
}

const LEVEL_RE = /^sbat,1,\d{10}\n(?:[A-Za-z0-9._-]+,\d+\n)*$/;

function cString(bytes: Uint8Array, at: number): string {
  if (at < 0 || at >= bytes.length) {
    throw uefiError("UEFI_ERR_TEMPLATE_INVALID", `.sbatlevel offset ${at} outside the section`, {
      offset: at,
    });
  }
  const end = bytes.indexOf(0, at);
  if (end < 0)
    throw uefiError("UEFI_ERR_TEMPLATE_INVALID", ".sbatlevel text is not NUL-terminated", { offset: at });
  return Buffer.from(bytes.subarray(at, end)).toString("latin1");
}

/** The SBAT levels embedded in a shim binary; typed errors for anything else. */
export function sbatLevelsFromShim(shim: Uint8Array): SbatLevels {
  const section = sectionData(parsePe(shim), ".sbatlevel");
  if (!section)
    throw uefiError("UEFI_ERR_TEMPLATE_INVALID", "the image has no .sbatlevel section (not a shim >= 15.7)");
  return sbatLevelsFromSection(section);
}

/** Decodes the .sbatlevel section bytes (header and the two level texts). */
export function sbatLevelsFromSection(section: Uint8Array): SbatLevels {
  try {
    const r = new Reader(section);
    const version = r.u32(true);
    if (version !== 0) throw uefiError("UEFI_ERR_TEMPLATE_INVALID", `.sbatlevel version ${version} is not 0`);
    const previous = cString(section, 4 + r.u32(true));
    const latest = cString(section, 4 + r.u32(true));
    for (const level of [previous, latest]) {
      if (!LEVEL_RE.test(level))
        throw uefiError(
          "UEFI_ERR_TEMPLATE_INVALID",
          `.sbatlevel text is not an SBAT level: ${JSON.stringify(level.slice(0, 80))}`,
        );
    }
    return { previous, latest };
  } catch (e) {
    if (isBulwarkError(e) && e.code.startsWith("CORE_ERR_")) {
      throw uefiError("UEFI_ERR_TEMPLATE_INVALID", `.sbatlevel: ${e.message}`, e.details, { cause: e });
    }
    throw e;
  }
}

/** The `SbatLevel` variable data: the level text without a terminator, as shim writes it. */
export function sbatLevelVariableData(level: string): Uint8Array {
  if (!LEVEL_RE.test(level)) throw uefiError("UEFI_ERR_TEMPLATE_INVALID", "not an SBAT level text");
  return new TextEncoder().encode(level);
}
