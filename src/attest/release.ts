/**
 * Key release (Hyper-V Key Protection Service): a host with a valid health certificate posts a
 * VM's key protector; HGS unwraps its own wrapping, rolls the transport key (the guardian set
 * and the owner's signature stay byte-identical) and returns the old and new transport keys
 * encrypted to the key-release key named in the health certificate.
 *
 * Request proof: the request is signed by the key-release key over
 *   "BULWARK-HGS-RELEASE-V1\0" ‖ requestId (16 bytes) ‖ timestamp (u64 BE, ms) ‖ SHA-256(key protector) ‖ jti (ASCII)
 * so a copied health certificate is useless without the key, and each requestId is accepted
 * once (replays are refused). EC keys sign with ECDSA (P-256/SHA-256, P-384/SHA-384, DER), RSA
 * keys with RSASSA-PKCS1-v1_5/SHA-256.
 *
 * Response keys: `wrapSecret(krk, oldKey ‖ newKey, context)` from the protector library
 * (HPKE base mode for EC, RSA-OAEP for RSA) with
 *   context = "BULWARK-HGS-KEYS-V1\0" ‖ protectorId ‖ oldGeneration (u32 BE) ‖ newGeneration (u32 BE) ‖ SHA-256(new key protector)
 * so the keys cannot be paired with another key protector.
 */
import { createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import {
  wrapSecret,
  unwrapSecret,
  type PublicPoints,
  type Wrapped,
  type WrapSchemeName,
} from "../protector/keys.js";
import { sha256 } from "./host-key.js";

export const RELEASE_LABEL = Buffer.from("BULWARK-HGS-RELEASE-V1\0", "ascii");
export const KEYS_LABEL = Buffer.from("BULWARK-HGS-KEYS-V1\0", "ascii");
export const RELEASE_WINDOW_MS = 5 * 60_000;

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

export function releaseMessage(
  requestId: Uint8Array,
  timestamp: number,
  keyProtector: Uint8Array,
  jti: string,
): Buffer {
  return Buffer.concat([
    RELEASE_LABEL,
    requestId,
    u64(timestamp),
    sha256(keyProtector),
    Buffer.from(jti, "ascii"),
  ]);
}

function hashFor(key: KeyObject): string {
  return key.asymmetricKeyDetails?.namedCurve === "secp384r1" ? "sha384" : "sha256";
}

export function signRelease(krkPrivate: KeyObject, message: Uint8Array): Buffer {
  return sign(hashFor(createPublicKey(krkPrivate)), message, krkPrivate);
}

export function verifyRelease(krk: KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify(hashFor(krk), message, krk, signature);
  } catch {
    return false;
  }
}

export function keysContext(
  protectorId: Uint8Array,
  oldGeneration: number,
  newGeneration: number,
  newKeyProtector: Uint8Array,
): Buffer {
  return Buffer.concat([
    KEYS_LABEL,
    protectorId,
    u32(oldGeneration),
    u32(newGeneration),
    sha256(newKeyProtector),
  ]);
}

export interface WrappedKeysJson {
  readonly scheme: WrapSchemeName;
  readonly enc: string;
  readonly ciphertext: string;
}

export function wrapKeys(
  krk: KeyObject,
  oldKey: Uint8Array,
  newKey: Uint8Array,
  context: Uint8Array,
  /** The key service's memo of public points (hosts send the same key-release key every time). */
  points?: PublicPoints,
): WrappedKeysJson {
  const plain = Buffer.concat([oldKey, newKey]);
  try {
    const w = wrapSecret(krk, plain, context, points);
    return {
      scheme: w.scheme,
      enc: Buffer.from(w.enc).toString("base64"),
      ciphertext: Buffer.from(w.ciphertext).toString("base64"),
    };
  } finally {
    plain.fill(0);
  }
}

/** Host side: opens the wrapped keys with the key-release private key. The caller zeroizes both. */
export function unwrapKeys(
  krkPrivate: KeyObject,
  w: WrappedKeysJson,
  context: Uint8Array,
): { oldKey: Buffer; newKey: Buffer } {
  const wrapped: Wrapped = {
    scheme: w.scheme,
    enc: Buffer.from(w.enc, "base64"),
    ciphertext: Buffer.from(w.ciphertext, "base64"),
  };
  const plain = unwrapSecret(krkPrivate, wrapped, context);
  try {
    return { oldKey: Buffer.from(plain.subarray(0, 32)), newKey: Buffer.from(plain.subarray(32, 64)) };
  } finally {
    plain.fill(0);
  }
}
