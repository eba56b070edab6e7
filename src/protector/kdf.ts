/**
 * HKDF (RFC 5869) with the extract and expand steps exposed separately, as HPKE's labeled
 * KDF needs them (RFC 9180 §4). The one-shot form goes through node:crypto `hkdfSync`.
 */
import { createHmac, hkdfSync } from "node:crypto";
import { protectorError } from "./errors.js";

export type HashName = "sha256" | "sha384" | "sha512";
export const hashLength: Readonly<Record<HashName, number>> = { sha256: 32, sha384: 48, sha512: 64 };

/** RFC 5869 §2.2: PRK = HMAC-Hash(salt, IKM); an empty salt acts as HashLen zero octets. */
export function hkdfExtract(hash: HashName, salt: Uint8Array, ikm: Uint8Array): Buffer {
  const key = salt.length ? salt : Buffer.alloc(hashLength[hash]);
  return createHmac(hash, key).update(ikm).digest();
}

/** RFC 5869 §2.3: OKM = T(1) | T(2) | ... truncated to L octets, L <= 255 * HashLen. */
export function hkdfExpand(hash: HashName, prk: Uint8Array, info: Uint8Array, length: number): Buffer {
  const n = Math.ceil(length / hashLength[hash]);
  if (!Number.isInteger(length) || length < 0 || n > 255) {
    throw protectorError("PROTECTOR_ERR_INVALID_ARGUMENT", `HKDF-Expand length ${length} out of range`);
  }
  const out = Buffer.alloc(n * hashLength[hash]);
  let prev: Buffer = Buffer.alloc(0);
  for (let i = 1; i <= n; i++) {
    prev = createHmac(hash, prk).update(prev).update(info).update(Uint8Array.of(i)).digest();
    prev.copy(out, (i - 1) * hashLength[hash]);
  }
  prev.fill(0);
  const okm = Buffer.from(out.subarray(0, length));
  out.fill(0);
  return okm;
}

/** RFC 5869 HKDF (extract then expand) in one call. */
export function hkdf(
  hash: HashName,
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  length: number,
): Buffer {
  return Buffer.from(hkdfSync(hash, ikm, salt, info, length));
}

/** Overwrites secret bytes once they are no longer needed (best effort: JS may hold copies). */
export function zeroize(...buffers: (Uint8Array | undefined)[]): void {
  for (const b of buffers) b?.fill(0);
}
