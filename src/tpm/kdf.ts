/**
 * Key derivation functions of TPM 2.0 (TCG TPM 2.0 Library Part 1, section 11.4.10).
 * KDFa is NIST SP800-108 counter mode with HMAC (Part 1, 11.4.10.2); KDFe is NIST
 * SP800-56A concatenation KDF (Part 1, 11.4.10.3). Labels are ASCII and get their
 * terminating zero octet appended here, as the spec requires.
 */
import { hash, hashInfo, hmac } from "./alg.js";

const be32 = (n: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, false);
  return b;
};

function labelBytes(label: string): Uint8Array {
  const b = new TextEncoder().encode(label);
  if (b.length > 0 && b[b.length - 1] === 0) return b;
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

function concatUntil(bits: number, block: (i: number) => Uint8Array): Uint8Array {
  const bytes = (bits + 7) >>> 3;
  const out = new Uint8Array(bytes);
  let filled = 0;
  for (let i = 1; filled < bytes; i++) {
    const b = block(i);
    out.set(b.subarray(0, Math.min(b.length, bytes - filled)), filled);
    filled += b.length;
  }
  // A bit count that is not a multiple of 8 keeps the low-order bits of the first octet.
  if (bits % 8 !== 0) out[0] = (out[0] ?? 0) & ((1 << (bits % 8)) - 1);
  return out;
}

/** KDFa(hashAlg, key, label, contextU, contextV, bits) (Part 1, section 11.4.10.2). */
export function kdfa(
  hashAlg: number,
  key: Uint8Array,
  label: string,
  contextU: Uint8Array,
  contextV: Uint8Array,
  bits: number,
): Uint8Array {
  hashInfo(hashAlg);
  const l = labelBytes(label);
  return concatUntil(bits, (i) => hmac(hashAlg, key, be32(i), l, contextU, contextV, be32(bits)));
}

/** KDFe(hashAlg, Z, label, partyUInfo, partyVInfo, bits) (Part 1, section 11.4.10.3). */
export function kdfe(
  hashAlg: number,
  z: Uint8Array,
  label: string,
  partyUInfo: Uint8Array,
  partyVInfo: Uint8Array,
  bits: number,
): Uint8Array {
  hashInfo(hashAlg);
  const l = labelBytes(label);
  return concatUntil(bits, (i) => hash(hashAlg, be32(i), z, l, partyUInfo, partyVInfo));
}
