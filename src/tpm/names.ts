/**
 * TPM entity Names (TCG TPM 2.0 Library Part 1, section 16): for objects and NV indices,
 * nameAlg (2 octets) || H_nameAlg(public area as received); for PCRs, permanent handles
 * and sessions, the handle itself (4 octets). Names bind command authorizations (cpHash)
 * and credentials (MakeCredential) to one exact key.
 */
import { hash, TPM_ALG } from "./alg.js";
import { tpmError } from "./errors.js";
import type { PublicArea } from "./structures.js";

export function u16(n: number): Uint8Array {
  return Uint8Array.of((n >>> 8) & 0xff, n & 0xff);
}
export function u32(n: number): Uint8Array {
  return Uint8Array.of((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** Name of an object: nameAlg || H(TPMT_PUBLIC) over the received bytes (Part 1, 16.2). */
export function objectName(pub: PublicArea): Uint8Array {
  return nameOf(pub.value.nameAlg, pub.raw);
}

/** Name of an NV index: nameAlg || H(TPMS_NV_PUBLIC) (Part 1, section 16.3). */
export function nvName(nameAlg: number, nvPublicRaw: Uint8Array): Uint8Array {
  return nameOf(nameAlg, nvPublicRaw);
}

function nameOf(nameAlg: number, raw: Uint8Array): Uint8Array {
  if (nameAlg === TPM_ALG.NULL) return new Uint8Array(0);
  const d = hash(nameAlg, raw);
  const out = new Uint8Array(2 + d.length);
  out.set(u16(nameAlg));
  out.set(d, 2);
  return out;
}

/** Name of a PCR, permanent handle or session: the handle in big-endian (Part 1, 16.4). */
export function handleName(handle: number): Uint8Array {
  const top = handle >>> 24;
  if (top === 0x80 || top === 0x81 || top === 0x01) {
    throw tpmError(
      "TPM_ERR_INVALID_ARGUMENT",
      `handle 0x${handle.toString(16)} needs its public area to be named`,
    );
  }
  return u32(handle);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Parses hex (optionally 0x-prefixed, whitespace ignored); a typed error on bad input. */
export function fromHex(s: string): Uint8Array {
  const h = s.trim().replace(/^0x/i, "").replace(/\s+/g, "");
  if (h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h)) {
    throw tpmError("TPM_ERR_INVALID_ARGUMENT", "not a hex string");
  }
  return new Uint8Array(Buffer.from(h, "hex"));
}
