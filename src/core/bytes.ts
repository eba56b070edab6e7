/**
 * Byte helpers used across the parts, written once. `Uint8Array` in, no copies: comparisons run
 * over views of the caller's bytes.
 */
import { timingSafeEqual } from "node:crypto";

const view = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** True when both hold the same bytes (not constant-time: for public data such as key ids). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  // Digests and nonces: a loop beats making two Buffer views for one native memcmp.
  if (a.byteLength <= 64) {
    for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  return view(a).equals(view(b));
}

/** Lexicographic order of two byte strings (-1, 0, 1), like `Buffer.compare`. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(view(a), view(b));
}

/** Constant-time equality for secrets (MACs, credentials); false on a length difference. */
export function secretsEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(view(a), view(b));
}

export function toHex(b: Uint8Array): string {
  return view(b).toString("hex");
}
