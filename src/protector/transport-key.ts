/**
 * The transport key: what a key protector wraps to each guardian and what VM secrets are sealed
 * under. Its own module because both key-protector.ts (which makes and rolls it) and
 * vm-secrets.ts (which seals with it) need the shape, and neither should import the other for it.
 */

/** A transport key with what it belongs to. `key` is secret: zeroize it when done. */
export interface TransportKey {
  readonly key: Buffer;
  readonly protectorId: Uint8Array;
  readonly keyGeneration: number;
}
