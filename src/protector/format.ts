/**
 * The key protector's binary layout, declared once (docs/formats/key-protector.md is the
 * prose description; keep the two in step). All integers are big-endian.
 *
 *   BULWARK_KEY_PROTECTOR  := header body mac
 *   header                 := magic "BWKP" (u32) | version u16 (1 or 2) | reserved u16 (= 0)
 *   body                   := u32 length | BULWARK_GUARDIAN_SET        (signed by the owner)
 *                             | BULWARK_OWNER_SIGNATURE | keyGeneration u32
 *                             | u16 count | BULWARK_WRAPPED_KEY[count]  (one per guardian, same order)
 *   mac                    := HMAC-SHA256 (RFC 2104) over header||body, 32 octets
 *
 * Versions differ only in the wrapping schemes they may hold: version 1 schemes 1..3, version 2
 * adds scheme 4 (HPKE DHKEM(X25519)). A writer uses the lowest version that can hold its wraps,
 * so a protector without X25519 guardians stays readable by a Bulwark that knows only version 1
 * (and one with them is refused there as PROTECTOR_ERR_VERSION, not as a damaged file).
 */
import {
  constant,
  fixedBytes,
  list,
  sized,
  sizedBytes,
  struct,
  u16be,
  u32be,
  withRaw,
  type Codec,
  type Infer,
} from "../core/codec.js";

export const KP_MAGIC = 0x42574b50; // "BWKP"
/** The newest format version this code reads and writes. */
export const KP_VERSION = 2;
export const KP_VERSIONS: readonly number[] = [1, 2];

/** The first format version that may hold each wrapping scheme id (keys.ts `WrapScheme`). */
export const KP_VERSION_OF_SCHEME: Readonly<Record<number, number>> = { 1: 1, 2: 1, 3: 1, 4: 2 };
export const MAX_GUARDIANS = 256;
export const MAX_CERTIFICATE_BYTES = 16 * 1024;
export const MAX_GUARDIAN_SET_BYTES = 16 * 1024 * 1024;
export const MAC_BYTES = 32;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** A u16-length-prefixed UTF-8 string; invalid UTF-8 is CORE_ERR_INVALID. */
export function utf8String(max: number, name = "utf8"): Codec<string> {
  const bytes = sizedBytes(u16be, max, name);
  return {
    name,
    decode: (r) => {
      const at = r.offset;
      const b = bytes.decode(r);
      try {
        return utf8.decode(b);
      } catch {
        return r.fail("CORE_ERR_INVALID", "invalid UTF-8", at);
      }
    },
    encode: (w, v) => bytes.encode(w, utf8Encoder.encode(v)),
  };
}

export const KpHeader = struct("BULWARK_KEY_PROTECTOR_HEADER", {
  magic: constant(u32be, KP_MAGIC),
  version: u16be,
});

/** One guardian: name, signing certificate DER, encryption certificate DER. */
export const GuardianEntry = struct("BULWARK_GUARDIAN", {
  name: utf8String(256, "name"),
  signingCertificate: sizedBytes(u16be, MAX_CERTIFICATE_BYTES, "signingCertificate"),
  encryptionCertificate: sizedBytes(u16be, MAX_CERTIFICATE_BYTES, "encryptionCertificate"),
});
export type GuardianEntry = Infer<typeof GuardianEntry>;

/** What the owner signs: everything about who may unwrap, nothing about the wrapped keys. */
export const GuardianSet = struct("BULWARK_GUARDIAN_SET", {
  protectorId: fixedBytes(16, "protectorId"),
  generation: u32be,
  owner: GuardianEntry,
  guardians: list(u16be, MAX_GUARDIANS, GuardianEntry),
});
export type GuardianSet = Infer<typeof GuardianSet>;

export const OwnerSignature = struct("BULWARK_OWNER_SIGNATURE", {
  algorithm: u16be,
  value: sizedBytes(u16be, 1024, "value"),
});

export const WrappedKey = struct("BULWARK_WRAPPED_KEY", {
  scheme: u16be,
  /** HPKE encapsulated key (uncompressed point, raw X25519 key); empty for RSA-OAEP. */
  enc: sizedBytes(u16be, 133, "enc"),
  ciphertext: sizedBytes(u16be, 1024, "ciphertext"),
});
export type WrappedKey = Infer<typeof WrappedKey>;

/** The body of every version (1, 2): the version field is checked by the reader, key-protector.ts. */
export const KeyProtectorBody = struct("BULWARK_KEY_PROTECTOR", {
  magic: constant(u32be, KP_MAGIC),
  version: u16be,
  reserved: constant(u16be, 0),
  guardianSet: sized(u32be, MAX_GUARDIAN_SET_BYTES, withRaw(GuardianSet)),
  signature: OwnerSignature,
  keyGeneration: u32be,
  wraps: list(u16be, MAX_GUARDIANS, WrappedKey),
});
export type KeyProtectorBody = Infer<typeof KeyProtectorBody>;

/** The whole file: the body (kept as received bytes, which the MAC covers) and the MAC. */
export const KeyProtectorFile = struct("BULWARK_KEY_PROTECTOR_FILE", {
  body: withRaw(KeyProtectorBody),
  mac: fixedBytes(MAC_BYTES, "mac"),
});
export type KeyProtectorFile = Infer<typeof KeyProtectorFile>;
