/**
 * TPM algorithm identifiers and hash facts, shared with src/eventlog.
 *
 * TCG TPM 2.0 Library Part 2 (Structures), section 6.3, Table 9 "TPM_ALG_ID" and
 * section 6.4, Table 10 "TPM_ECC_CURVE". Digest sizes from Part 2 section 5.x / the TCG
 * Algorithm Registry. Node hash names are what `node:crypto` calls each algorithm.
 */
import { createHash, createHmac, hash as oneShotHash } from "node:crypto";
import { tpmError } from "./errors.js";

/** TPM_ALG_ID (Part 2, Table 9). */
export const TPM_ALG = {
  ERROR: 0x0000,
  RSA: 0x0001,
  TDES: 0x0003,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  MGF1: 0x0007,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  SM3_256: 0x0012,
  SM4: 0x0013,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  SM2: 0x001b,
  ECSCHNORR: 0x001c,
  ECMQV: 0x001d,
  KDF1_SP800_56A: 0x0020,
  KDF2: 0x0021,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CAMELLIA: 0x0026,
  SHA3_256: 0x0027,
  SHA3_384: 0x0028,
  SHA3_512: 0x0029,
  CTR: 0x0040,
  OFB: 0x0041,
  CBC: 0x0042,
  CFB: 0x0043,
  ECB: 0x0044,
} as const;
export type TpmAlgId = number;

const algNames = new Map<number, string>(Object.entries(TPM_ALG).map(([k, v]) => [v, k]));

/** `TPM_ALG_SHA256` style name of an algorithm id, or its hex value when unknown. */
export function algName(alg: number): string {
  const n = algNames.get(alg);
  return n ? `TPM_ALG_${n}` : `0x${alg.toString(16).padStart(4, "0")}`;
}

/** TPM_ECC_CURVE (Part 2, Table 10). */
export const TPM_ECC = {
  NONE: 0x0000,
  NIST_P192: 0x0001,
  NIST_P224: 0x0002,
  NIST_P256: 0x0003,
  NIST_P384: 0x0004,
  NIST_P521: 0x0005,
  BN_P256: 0x0010,
  BN_P638: 0x0011,
  SM2_P256: 0x0020,
} as const;

export interface CurveInfo {
  readonly id: number;
  /** Name in node:crypto / JWK. */
  readonly jwk: "P-256" | "P-384" | "P-521";
  readonly node: "prime256v1" | "secp384r1" | "secp521r1";
  /** Coordinate size in bytes. */
  readonly size: number;
}

export const CURVES: ReadonlyMap<number, CurveInfo> = new Map([
  [TPM_ECC.NIST_P256, { id: TPM_ECC.NIST_P256, jwk: "P-256", node: "prime256v1", size: 32 }],
  [TPM_ECC.NIST_P384, { id: TPM_ECC.NIST_P384, jwk: "P-384", node: "secp384r1", size: 48 }],
  [TPM_ECC.NIST_P521, { id: TPM_ECC.NIST_P521, jwk: "P-521", node: "secp521r1", size: 66 }],
]);

export interface HashInfo {
  readonly alg: number;
  /** Short name as tpm2-tools and the event log spec print it (sha1, sha256, ...). */
  readonly name: string;
  /** Algorithm name in node:crypto. */
  readonly node: string;
  /** Digest size in bytes. */
  readonly size: number;
}

/** The hash algorithms a PCR bank or a TPMT_HA may use (TCG Algorithm Registry). */
export const HASHES: ReadonlyMap<number, HashInfo> = new Map(
  (
    [
      [TPM_ALG.SHA1, "sha1", "sha1", 20],
      [TPM_ALG.SHA256, "sha256", "sha256", 32],
      [TPM_ALG.SHA384, "sha384", "sha384", 48],
      [TPM_ALG.SHA512, "sha512", "sha512", 64],
      [TPM_ALG.SM3_256, "sm3_256", "sm3", 32],
      [TPM_ALG.SHA3_256, "sha3_256", "sha3-256", 32],
      [TPM_ALG.SHA3_384, "sha3_384", "sha3-384", 48],
      [TPM_ALG.SHA3_512, "sha3_512", "sha3-512", 64],
    ] as const
  ).map(([alg, name, node, size]) => [alg, { alg, name, node, size }]),
);

/** Largest digest any supported hash produces (sizeof(TPMU_HA)). */
export const MAX_DIGEST_SIZE = 64;

export function isHashAlg(alg: number): boolean {
  return HASHES.has(alg);
}

/** Hash facts for `alg`; a typed error when the id is not a hash we support. */
export function hashInfo(alg: number): HashInfo {
  const h = HASHES.get(alg);
  if (!h)
    throw tpmError("TPM_ERR_UNSUPPORTED_ALG", `${algName(alg)} is not a supported hash algorithm`, {
      alg,
    });
  return h;
}

/** Digest size in bytes, or undefined for an unknown algorithm. */
export function digestSize(alg: number): number | undefined {
  return HASHES.get(alg)?.size;
}

/** Parses `sha256`, `SHA256`, `TPM_ALG_SHA256` or `0x000b` into a hash algorithm id. */
export function hashByName(name: string): HashInfo {
  const n = name
    .trim()
    .toLowerCase()
    .replace(/^tpm_alg_/, "");
  if (/^0x[0-9a-f]+$/.test(n)) return hashInfo(Number.parseInt(n, 16));
  for (const h of HASHES.values()) {
    if (h.name === n || h.node === n || h.name.replace("_", "") === n.replace(/[-_]/g, "")) return h;
  }
  throw tpmError("TPM_ERR_UNSUPPORTED_ALG", `unknown hash algorithm '${name}'`);
}

export function hash(alg: number, ...parts: Uint8Array[]): Uint8Array {
  const h = createHash(hashInfo(alg).node);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/*
 * Hot-path digests. Node 20's one-shot `crypto.hash` is about three times cheaper than a Hash
 * object for short inputs, but only with a string output: asking it for a Buffer takes a slow
 * encoding check. Its latin1 output is the digest with one char per byte, so a digest is
 * compared or copied from that string. Verifiers that hash a few hundred event-log entries, or
 * a quote's attest bytes and PCR values, use these.
 */

/** The `nodeHash` (node:crypto name) digest of `data`, as latin1 (one char per byte). */
export function digestLatin1(nodeHash: string, data: Uint8Array): string {
  return oneShotHash(nodeHash, data, "binary");
}

/** The `nodeHash` digest of `data` (a fresh Uint8Array). */
export function digestBytes(nodeHash: string, data: Uint8Array): Uint8Array {
  const s = oneShotHash(nodeHash, data, "binary");
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** True when the `nodeHash` digest of `data` is `expected` (public data: not constant-time). */
export function digestEquals(nodeHash: string, data: Uint8Array, expected: Uint8Array): boolean {
  return latin1Equals(oneShotHash(nodeHash, data, "binary"), expected);
}

/** True when the latin1 string `s` holds exactly the bytes of `b` from `offset` to its end. */
export function latin1Equals(s: string, b: Uint8Array, offset = 0): boolean {
  if (offset + s.length !== b.length) return false;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) !== b[offset + i]) return false;
  return true;
}

export function hmac(alg: number, key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac(hashInfo(alg).node, key);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}
