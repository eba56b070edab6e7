/**
 * Per-source limits of one HGS server (one per server instance, nothing module-level).
 *
 * A token bucket per source (request-scope.ts `sourceOf`: an IPv4 address or an IPv6 /64) that
 * only FAILED requests drain: every answer of 400 or more takes a token, tokens come back at
 * `failuresPerSecond` up to `failureBurst`. While a source's bucket is empty, every request from it
 * is answered 429 HGS_ERR_RATE_LIMITED with Retry-After before any work is done (no body parsed,
 * no database touched). Successful traffic never drains the bucket, so a registered host
 * attesting and releasing keys at thousands per second is never throttled (bench/hgs-load runs
 * with the defaults), while garbage — failing by definition — is.
 * Buckets live in a bounded LRU map of `sources` entries: a source pushed out starts again full,
 * which bounds memory at the price of letting an attacker with more addresses than that retry
 * sooner. Behind a reverse proxy every request has the proxy's address: raise the limits there.
 */
import { BoundedMap } from "../../core/memo.js";

export interface SourceLimits {
  /** Failed requests a source may make per second, sustained. */
  readonly failuresPerSecond: number;
  /** Failed requests a source may make at once. */
  readonly failureBurst: number;
  /** Unused, unexpired challenges a source may hold (nonces.ts). */
  readonly noncesPerSource: number;
  /** Sources whose buckets are remembered. */
  readonly sources: number;
}

export const DEFAULT_SOURCE_LIMITS: SourceLimits = {
  failuresPerSecond: 10,
  failureBurst: 100,
  // A host holds one while it attests (two during AK enrollment); hosts behind one NAT or proxy
  // share a source. `hgs serve --nonces-per-source` raises it (bench/hgs-load holds 3000 at once).
  noncesPerSource: 256,
  sources: 65_536,
};

interface Bucket {
  tokens: number;
  at: number;
}

export class FailureLimiter {
  private readonly buckets: BoundedMap<string, Bucket>;

  constructor(private readonly limits: SourceLimits = DEFAULT_SOURCE_LIMITS) {
    this.buckets = new BoundedMap(limits.sources);
  }

  private refill(source: string, now: number): Bucket {
    const b = this.buckets.get(source) ?? { tokens: this.limits.failureBurst, at: now };
    b.tokens = Math.min(
      this.limits.failureBurst,
      b.tokens + ((now - b.at) / 1000) * this.limits.failuresPerSecond,
    );
    b.at = now;
    return b;
  }

  /** Undefined when the source may go on; else the seconds until it may. */
  refusal(source: string, now = Date.now()): number | undefined {
    const b = this.buckets.get(source);
    if (!b) return undefined;
    this.refill(source, now);
    if (b.tokens >= 1) return undefined;
    return Math.max(1, Math.ceil((1 - b.tokens) / this.limits.failuresPerSecond));
  }

  /** Takes one token for a failed request. */
  failed(source: string, now = Date.now()): void {
    const b = this.refill(source, now);
    b.tokens -= 1;
    this.buckets.set(source, b);
  }
}
