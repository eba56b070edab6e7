/**
 * What a signed shim trusts on its own: the `.vendor_cert` section (rhboot/shim cert.S,
 * `struct { UINT32 vendor_authorized_size; UINT32 vendor_deauthorized_size;
 * UINT32 vendor_authorized_offset; UINT32 vendor_deauthorized_offset; }` followed by the data;
 * offsets count from the section start). vendor_authorized is one DER certificate (or, in
 * VENDOR_DB builds, a signature database); vendor_deauthorized is shim's built-in dbx, a signature
 * database. shim verifies the next stage (grub) and, through the shim lock protocol, the kernel
 * against db + vendor_authorized (+ MOK), and refuses what dbx + vendor_deauthorized (+ MOKX) lists.
 */
import { X509Certificate } from "node:crypto";
import { Reader } from "../core/codec.js";
import { isBulwarkError } from "../core/errors.js";
import { uefiError, isUefiError } from "./errors.js";
import { parsePe, sectionData } from "./pe.js";
import { decodeSignatureDatabase, x509List, type EfiSignatureList } from "./siglist.js";
import { BULWARK_OWNER_GUID } from "./guid.js";

export interface ShimVendorKeys {
  /** vendor_authorized as signature lists (a bare DER certificate becomes one X.509 list). */
  readonly authorized: readonly EfiSignatureList[];
  /** vendor_deauthorized: shim's built-in dbx. */
  readonly deauthorized: readonly EfiSignatureList[];
}

function slice(section: Uint8Array, offset: number, size: number, what: string): Uint8Array {
  if (offset > section.length || size > section.length - offset) {
    throw uefiError(
      "UEFI_ERR_TEMPLATE_INVALID",
      `.vendor_cert ${what} (offset ${offset}, size ${size}) outside the section`,
      {
        offset,
      },
    );
  }
  return section.subarray(offset, offset + size);
}

/** Decodes the .vendor_cert section bytes. Total: lists or UEFI_ERR_TEMPLATE_INVALID. */
export function shimVendorKeysFromSection(section: Uint8Array): ShimVendorKeys {
  try {
    const r = new Reader(section);
    const authSize = r.u32(true);
    const deauthSize = r.u32(true);
    const authOffset = r.u32(true);
    const deauthOffset = r.u32(true);
    const auth = slice(section, authOffset, authSize, "vendor_authorized");
    const deauth = slice(section, deauthOffset, deauthSize, "vendor_deauthorized");
    let authorized: EfiSignatureList[] = [];
    if (auth.length > 0) {
      let isCert = false;
      try {
        new X509Certificate(auth);
        isCert = true;
      } catch {
        isCert = false;
      }
      authorized = isCert
        ? [x509List(Uint8Array.from(auth), BULWARK_OWNER_GUID)]
        : decodeSignatureDatabase(auth);
    }
    return { authorized, deauthorized: decodeSignatureDatabase(deauth) };
  } catch (e) {
    if (isBulwarkError(e) && !(isUefiError(e) && e.code === "UEFI_ERR_TEMPLATE_INVALID")) {
      throw uefiError("UEFI_ERR_TEMPLATE_INVALID", `.vendor_cert: ${e.message}`, e.details, { cause: e });
    }
    throw e;
  }
}

/** The vendor keys of a shim binary. */
export function shimVendorKeys(shim: Uint8Array): ShimVendorKeys {
  const section = sectionData(parsePe(shim), ".vendor_cert");
  if (!section)
    throw uefiError("UEFI_ERR_TEMPLATE_INVALID", "the image has no .vendor_cert section (not a shim)");
  return shimVendorKeysFromSection(section);
}
