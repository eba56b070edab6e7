/**
 * EFI_GUID (UEFI Specification 2.10, Appendix A "GUID and Time Formats"): 16 bytes, the first
 * three fields (UINT32, UINT16, UINT16) little-endian, the last eight bytes in order. Bulwark
 * represents a GUID as its canonical lowercase registry string
 * `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`; every 16-byte value maps to exactly one string, so
 * decode→encode is byte-identical.
 */
import type { Codec } from "../core/codec.js";
import { uefiError } from "./errors.js";

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export type Guid = string;

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Bytes from..to-1 as hex, last byte first when `reverse` (event logs decode many GUIDs). */
function hex(b: Uint8Array, from: number, to: number, reverse: boolean): string {
  let out = "";
  if (reverse) for (let i = to - 1; i >= from; i--) out += HEX[b[i]!]!;
  else for (let i = from; i < to; i++) out += HEX[b[i]!]!;
  return out;
}

/** The canonical string of 16 EFI_GUID bytes. */
export function guidFromBytes(b: Uint8Array): Guid {
  if (b.length !== 16) throw new RangeError(`EFI_GUID: expected 16 bytes, got ${b.length}`);
  return `${hex(b, 0, 4, true)}-${hex(b, 4, 6, true)}-${hex(b, 6, 8, true)}-${hex(b, 8, 10, false)}-${hex(b, 10, 16, false)}`;
}

export function isGuid(s: string): boolean {
  return GUID_RE.test(s.toLowerCase());
}

/** Parses a registry-format GUID (any case); a malformed one is UEFI_ERR_VARIABLE_INVALID. */
export function parseGuid(s: string): Guid {
  const g = s
    .trim()
    .toLowerCase()
    .replace(/^\{|\}$/g, "");
  if (!GUID_RE.test(g)) throw uefiError("UEFI_ERR_VARIABLE_INVALID", `not a GUID: '${s.slice(0, 64)}'`);
  return g;
}

/** The 16 EFI_GUID bytes of a canonical GUID string. */
export function guidToBytes(g: Guid): Uint8Array {
  const s = parseGuid(g).replace(/-/g, "");
  const b = Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

/** EFI_GUID as a codec. */
export const EFI_GUID: Codec<Guid> = {
  name: "EFI_GUID",
  decode: (r) => guidFromBytes(r.take(16)),
  encode: (w, v) => w.bytes(guidToBytes(v)),
};

/** Well-known GUIDs, by their specification names (greppable). */
export const Guids = {
  /** EFI_GLOBAL_VARIABLE, UEFI 2.10 section 3.3: PK, KEK, SecureBoot, SetupMode, ... */
  EFI_GLOBAL_VARIABLE: "8be4df61-93ca-11d2-aa0d-00e098032b8c",
  /** EFI_IMAGE_SECURITY_DATABASE_GUID, UEFI 2.10 section 32.6.1: db, dbx, dbt, dbr. */
  EFI_IMAGE_SECURITY_DATABASE_GUID: "d719b2cb-3d3a-4596-a3bc-dad00e67656f",
  // Signature types, UEFI 2.10 section 32.4.1 "Signature Database".
  EFI_CERT_SHA256_GUID: "c1c41626-504c-4092-aca9-41f936934328",
  EFI_CERT_RSA2048_GUID: "3c5766e8-269c-4e34-aa14-ed776e85b3b6",
  EFI_CERT_RSA2048_SHA256_GUID: "e2b36190-879b-4a3d-ad8d-f2e7bba32784",
  EFI_CERT_SHA1_GUID: "826ca512-cf10-4ac9-b187-be01496631bd",
  EFI_CERT_RSA2048_SHA1_GUID: "67f8444f-8743-48f1-a328-1eaab8736080",
  EFI_CERT_X509_GUID: "a5c059a1-94e4-4aa7-87b5-ab155c2bf072",
  EFI_CERT_SHA224_GUID: "0b6e5233-a65c-44c9-9407-d9ab83bfc8bd",
  EFI_CERT_SHA384_GUID: "ff3e5307-9fd0-48c9-85f1-8ad56c701e01",
  EFI_CERT_SHA512_GUID: "093e0fae-a6c4-4f50-9f1b-d41e2b89c19a",
  EFI_CERT_X509_SHA256_GUID: "3bd2a492-96c0-4079-b420-fcf98ef103ed",
  EFI_CERT_X509_SHA384_GUID: "7076876e-80c2-4ee6-aad2-28b349a6865b",
  EFI_CERT_X509_SHA512_GUID: "446dbf63-2502-4cda-bcfa-2465d2b0fe9d",
  /** EFI_CERT_TYPE_PKCS7_GUID, UEFI 2.10 section 32.2.4: WIN_CERTIFICATE_UEFI_GUID.CertType. */
  EFI_CERT_TYPE_PKCS7_GUID: "4aafd29d-68df-49ee-8aa9-347d375665a7",
  /** Microsoft's SignatureOwner on its Secure Boot entries (edk2 gMicrosoftVendorGuid). */
  MICROSOFT_VENDOR: "77fa9abd-0359-4d32-bd60-28f4e78f784b",
  /** edk2 EFI_SECURE_BOOT_ENABLE_DISABLE (SecurityPkg AuthenticatedVariableFormat.h). */
  EFI_SECURE_BOOT_ENABLE_DISABLE: "f0a30bc7-af08-4556-99c4-001009c93a44",
  /** edk2 EFI_CUSTOM_MODE_ENABLE_GUID: "CustomMode". */
  EFI_CUSTOM_MODE_ENABLE_GUID: "c076ec0c-7028-4399-a072-71ee5c448b9f",
  /** edk2 EFI_VENDOR_KEYS_NV_GUID: "VendorKeysNv". */
  EFI_VENDOR_KEYS_NV_GUID: "9073e4e0-60ec-4b6e-9903-4c223c260f3c",
  /** edk2 EFI_CERT_DB_GUID: "certdb", "certdbv". */
  EFI_CERT_DB_GUID: "d9c1b112-c6ed-4edb-8b6a-48e6e3e0d10b",
  /** EFI_SYSTEM_NV_DATA_FV_GUID (edk2 MdeModulePkg SystemNvDataGuid.h): FileSystemGuid of the NV volume. */
  EFI_SYSTEM_NV_DATA_FV_GUID: "fff12b8d-7696-4c8b-a985-2747075b4f50",
  /** EFI_AUTHENTICATED_VARIABLE_GUID (edk2 VariableFormat.h): VARIABLE_STORE_HEADER.Signature. */
  EFI_AUTHENTICATED_VARIABLE_GUID: "aaf32c78-947b-439a-a180-2e144ec37792",
  /** EFI_VARIABLE_GUID (edk2 VariableFormat.h): store of non-authenticated VARIABLE_HEADERs. */
  EFI_VARIABLE_GUID: "ddcf3616-3275-4164-98b6-fe85707ffe7d",
  /** EDKII_WORKING_BLOCK_SIGNATURE_GUID (edk2 FaultTolerantWrite.h). */
  EDKII_WORKING_BLOCK_SIGNATURE_GUID: "9e58292b-7c68-497d-a0ce-6500fd9f1b95",
  /** SHIM_LOCK_GUID (rhboot/shim): SbatLevel, MokList, ... */
  SHIM_LOCK_GUID: "605dab50-e046-4300-abb6-3dd810dd8b23",
} as const;

/**
 * SignatureOwner of the entries Bulwark adds (its own keys, imported certificates and hashes):
 * a fixed random GUID, so `vars show` tells Bulwark's entries from Microsoft's.
 */
export const BULWARK_OWNER_GUID: Guid = "8c53bba8-cd71-40ff-b56d-4dd28d642492";

const NAMES = new Map<string, string>(Object.entries(Guids).map(([k, v]) => [v, k]));

/** The specification name of a well-known GUID, or undefined. */
export function guidName(g: Guid): string | undefined {
  return NAMES.get(g);
}
