/**
 * Bounded memo tables for pure verdicts (a certificate that checked out, a signature that
 * verified): a key service sees the same few guardians, protectors and certificates again and
 * again. Keys are content digests, so a hit is the same verdict; callers keep successes only.
 */
import { createHash } from "node:crypto";

/** A Map holding at most `max` entries; reading an entry renews it, the least recently used goes first. */
export class BoundedMap<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(readonly max: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: K): V | undefined {
    const v = this.entries.get(key);
    if (v !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, v);
    }
    return v;
  }

  has(key: K): boolean {
    return this.get(key) !== undefined;
  }

  set(key: K, value: V): void {
    this.entries.delete(key);
    if (this.entries.size >= this.max) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, value);
  }

  clear(): void {
    this.entries.clear();
  }
}

/** SHA-256 (base64) over length-prefixed parts: distinct part lists never share a key. */
export function contentKey(...parts: readonly (Uint8Array | string)[]): string {
  const h = createHash("sha256");
  const n = Buffer.alloc(4);
  for (const p of parts) {
    const b = typeof p === "string" ? Buffer.from(p, "utf8") : p;
    n.writeUInt32BE(b.length);
    h.update(n).update(b);
  }
  return h.digest("base64");
}
