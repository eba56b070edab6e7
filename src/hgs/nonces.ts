/**
 * Nonces: random, single-use, short-lived, bound to a host and a purpose, kept in the shared
 * store so a nonce issued by one node is accepted by another, once.
 *
 * The table is bounded, because anyone may ask for a challenge:
 * - per source (inside an HTTP request, see request-scope.ts): at most `noncesPerSource` unused,
 *   unexpired nonces; one more is HGS_ERR_RATE_LIMITED (429, Retry-After = when the source's
 *   soonest nonce expires);
 * - in total: at most {@link MAX_OUTSTANDING_NONCES} unused, unexpired nonces over all nodes;
 *   one more is HGS_ERR_NONCES_FULL (503). The total is counted from the store at most once per
 *   {@link TOTAL_RECOUNT_MS} per node and counted up locally in between, so several nodes may
 *   overshoot it by what they issue in that time.
 * - expired nonces are swept deterministically: on the first issue after a node opens its store,
 *   then at most once per {@link SWEEP_INTERVAL_MS}, and whenever the total is reached, deleting
 *   those expired more than {@link EXPIRED_GRACE_MS} ago (the grace keeps "expired" distinct from
 *   "unknown" in findings for a while).
 * So the table holds at most the outstanding cap plus what was issued (or claimed by key
 * releases) during one nonce lifetime and the grace.
 */
import { randomBytes } from "node:crypto";
import { hgsError } from "../attest/errors.js";
import { error, type AttestFinding } from "../attest/verdict.js";
import type { RequestScope } from "./request-scope.js";
import type { HgsRepo } from "./store/repo.js";

export const NONCE_BYTES = 32;
export const SWEEP_INTERVAL_MS = 60_000;
export const EXPIRED_GRACE_MS = 600_000;
export const MAX_OUTSTANDING_NONCES = 100_000;
export const TOTAL_RECOUNT_MS = 1000;

const retryAfter = (expiry: number | undefined, now: number) =>
  Math.max(1, Math.ceil(((expiry ?? now + 1000) - now) / 1000));

export class NonceBook {
  private lastSweep = Number.NEGATIVE_INFINITY;
  private total = 0;
  private totalAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly repo: HgsRepo,
    private readonly scope?: RequestScope,
    private readonly maxOutstanding = MAX_OUTSTANDING_NONCES,
  ) {}

  async issue(
    hostId: string,
    purpose: string,
    ttlSeconds: number,
    payload: Buffer | null = null,
  ): Promise<{ nonce: string; expiresAt: string }> {
    const now = Date.now();
    if (now - this.lastSweep >= SWEEP_INTERVAL_MS) await this.sweep(now);
    const request = this.scope?.getStore();
    if (request) {
      const held = await this.repo.outstandingNonces(request.source, now, request.noncesPerSource);
      if (held >= request.noncesPerSource) {
        const seconds = retryAfter(await this.repo.nextNonceExpiry(request.source, now), now);
        throw hgsError(
          "HGS_ERR_RATE_LIMITED",
          `this source holds ${held} unused challenges (the limit); use or let them expire first`,
          { finding: "nonce.source-limit", limit: request.noncesPerSource, retryAfterSeconds: seconds },
        );
      }
    }
    if (now - this.totalAt >= TOTAL_RECOUNT_MS || this.total >= this.maxOutstanding) {
      // At the limit by the local estimate: clean up first, then count what is really there.
      if (this.total >= this.maxOutstanding) await this.sweep(now);
      this.total = await this.repo.outstandingNonces(null, now, this.maxOutstanding);
      this.totalAt = now;
      if (this.total >= this.maxOutstanding) {
        const seconds = retryAfter(await this.repo.nextNonceExpiry(null, now), now);
        throw hgsError(
          "HGS_ERR_NONCES_FULL",
          `${this.total} challenges are outstanding (the limit); try again later`,
          { finding: "nonce.table-full", limit: this.maxOutstanding, retryAfterSeconds: seconds },
        );
      }
    }
    const nonce = randomBytes(NONCE_BYTES).toString("hex");
    const expiresAt = now + ttlSeconds * 1000;
    await this.repo.insertNonce({
      nonce,
      hostId,
      purpose,
      payload,
      expiresAt,
      source: request?.source ?? null,
    });
    this.total++;
    return { nonce, expiresAt: new Date(expiresAt).toISOString() };
  }

  private async sweep(now: number): Promise<void> {
    this.lastSweep = now;
    await this.repo.deleteNoncesExpiredBefore(now - EXPIRED_GRACE_MS);
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
