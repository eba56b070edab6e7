/**
 * Nonces: random, single-use, short-lived, bound to a host and a purpose, kept in the shared
 * store so a nonce issued by one node is accepted by another, once. Expired nonces are swept
 * deterministically: on the first issue after a node opens its store and then at most once per
 * {@link SWEEP_INTERVAL_MS}, deleting those expired more than {@link EXPIRED_GRACE_MS} ago (the
 * grace keeps "expired" distinct from "unknown" in findings for a while).
 */
import { randomBytes } from "node:crypto";
import { error, type AttestFinding } from "../attest/verdict.js";
import type { HgsRepo } from "./store/repo.js";

export const NONCE_BYTES = 32;
export const SWEEP_INTERVAL_MS = 60_000;
export const EXPIRED_GRACE_MS = 3600_000;

export class NonceBook {
  private lastSweep = Number.NEGATIVE_INFINITY;

  constructor(private readonly repo: HgsRepo) {}

  async issue(
    hostId: string,
    purpose: string,
    ttlSeconds: number,
    payload: Buffer | null = null,
  ): Promise<{ nonce: string; expiresAt: string }> {
    const nonce = randomBytes(NONCE_BYTES).toString("hex");
    const now = Date.now();
    const expiresAt = now + ttlSeconds * 1000;
    await this.repo.insertNonce({ nonce, hostId, purpose, payload, expiresAt });
    if (now - this.lastSweep >= SWEEP_INTERVAL_MS) {
      this.lastSweep = now;
      await this.repo.deleteNoncesExpiredBefore(now - EXPIRED_GRACE_MS);
    }
    return { nonce, expiresAt: new Date(expiresAt).toISOString() };
  }

  /** Consumes a nonce atomically; the finding says precisely why one is refused. */
  async consume(
    nonce: string,
    hostId: string,
    purpose: string,
  ): Promise<{ payload: Buffer | null } | AttestFinding> {
    const now = Date.now();
    const used = await this.repo.useNonce(nonce, hostId, purpose, now);
    const r = await this.repo.nonce(nonce);
    if (used && r) return { payload: r.payload };
    if (!r) return error("nonce.unknown", "the nonce was not issued by this HGS", { got: nonce });
    if (r.hostId !== hostId)
      return error("nonce.other-host", "the nonce was issued to another host", {
        expected: r.hostId,
        got: hostId,
      });
    if (r.purpose !== purpose)
      return error("nonce.wrong-purpose", "the nonce was issued for another step", {
        expected: r.purpose,
        got: purpose,
      });
    if (r.usedAt !== null) return error("nonce.replayed", "the nonce was already used (replay)");
    return error("nonce.expired", "the nonce has expired", {
      expected: `before ${new Date(r.expiresAt).toISOString()}`,
      got: new Date(now).toISOString(),
    });
  }
}
