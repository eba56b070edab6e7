/**
 * Refusals of unauthenticated callers, counted per source instead of audited one by one.
 *
 * Anyone can send garbage to the host API, and each refused attestation or key release used to
 * append its own permanent audit entry: an unauthenticated flood grew the audit log without
 * bound. Now, inside an HTTP request (see request-scope.ts), a refusal whose caller never proved
 * an identity ({@link isAnonymousRefusal}) is written in full only for the first
 * {@link DETAILED_PER_SOURCE} of its source in an interval of {@link REFUSAL_INTERVAL_MS}; the
 * rest are counted, and once the interval is over one `request.refused` entry per source records
 * how many there were, of which events and findings, for which claimed host ids (bounded lists),
 * and how many requests the rate limiter turned away. At most {@link MAX_SOURCES} sources are
 * tallied per interval; further sources share one tally named "other".
 *
 * What is lost: a counted refusal's own detail (its time within the interval, its message), and
 * — if the process dies before the interval ends — the counts of that interval. Refusals of a
 * caller that did prove its identity (a valid quote whose PCRs fail policy, a verified health
 * certificate for a revoked host, a replayed release) are always audited one by one.
 */

export const REFUSAL_INTERVAL_MS = 60_000;
export const DETAILED_PER_SOURCE = 32;
export const MAX_SOURCES = 4096;
const MAX_FINDINGS = 32;
const MAX_HOST_IDS = 16;
export const OTHER_SOURCES = "other";

/**
 * Finding ids that mean the caller did not prove it is the host it names: no fresh nonce issued
 * to it, no registered host in that mode, no valid signature by its host key or its AK.
 */
const UNPROVEN = new Set([
  "host.not-registered",
  "host.wrong-mode",
  "host.revoked",
  "host.ak-not-bound",
  "host.no-ek-certificate",
  "key-release-key.unsupported",
  "host-key.bad-signature",
  "quote.parse",
  "quote.signature",
  "quote.scheme",
  "quote.magic",
  "quote.type",
  "quote.nonce",
  "credential.secret-mismatch",
]);

/** Release refusals of a caller without a valid certificate of this HGS, or without its key. */
const UNPROVEN_RELEASE = new Set([
  "health-certificate.malformed",
  "health-certificate.unknown-issuer",
  "health-certificate.bad-signature",
  "request.bad-proof",
]);

const unproven = (id: unknown) => typeof id === "string" && (id.startsWith("nonce.") || UNPROVEN.has(id));

/** True for a refusal whose caller never proved an identity (see the module comment). */
export function isAnonymousRefusal(
  event: string,
  hostId: string | null,
  detail: Readonly<Record<string, unknown>>,
): boolean {
  if (event === "attestation.failed") {
    const ids = Array.isArray(detail.findings) ? detail.findings : [detail.finding];
    return ids.some(unproven);
  }
  if (event === "key.refused") return hostId === null || UNPROVEN_RELEASE.has(String(detail.finding));
  return false;
}

interface Tally {
  detailed: number;
  counted: number;
  rateLimited: number;
  readonly events: Map<string, number>;
  readonly findings: Map<string, number>;
  readonly hostIds: Set<string>;
  otherHostIds: number;
}

const bump = (m: Map<string, number>, k: string, cap: number) => {
  const key = m.has(k) || m.size < cap ? k : "other";
  m.set(key, (m.get(key) ?? 0) + 1);
};

/** One `request.refused` entry to write: the tally of one source over one interval. */
export interface RefusalSummary {
  readonly source: string;
  readonly from: string;
  readonly to: string;
  readonly counted: number;
  readonly rateLimited: number;
  readonly events: Record<string, number>;
  readonly findings: Record<string, number>;
  readonly hostIds: string[];
  readonly otherHostIds: number;
}

export class RefusalBook {
  private from: number;
  private tallies = new Map<string, Tally>();

  constructor(
    private readonly intervalMs = REFUSAL_INTERVAL_MS,
    private readonly detailedPerSource = DETAILED_PER_SOURCE,
    now = Date.now(),
  ) {
    this.from = now;
  }

  private tally(source: string): Tally {
    let t = this.tallies.get(source);
    if (!t) {
      const key = this.tallies.size < MAX_SOURCES ? source : OTHER_SOURCES;
      t = this.tallies.get(key);
      if (!t) {
        t = {
          detailed: 0,
          counted: 0,
          rateLimited: 0,
          events: new Map(),
          findings: new Map(),
          hostIds: new Set(),
          otherHostIds: 0,
        };
        this.tallies.set(key, t);
      }
    }
    return t;
  }

  /** Records an anonymous refusal; true when it is to be audited in full, false when counted. */
  note(
    source: string,
    event: string,
    hostId: string | null,
    detail: Readonly<Record<string, unknown>>,
  ): boolean {
    const t = this.tally(source);
    if (t.detailed < this.detailedPerSource) {
      t.detailed++;
      return true;
    }
    t.counted++;
    bump(t.events, event, MAX_FINDINGS);
    const ids = Array.isArray(detail.findings) ? detail.findings : [detail.finding];
    for (const id of ids) if (typeof id === "string") bump(t.findings, id, MAX_FINDINGS);
    if (hostId !== null) {
      if (t.hostIds.has(hostId) || t.hostIds.size < MAX_HOST_IDS) t.hostIds.add(hostId);
      else t.otherHostIds++;
    }
    return false;
  }

  /** Records a request the rate limiter turned away. */
  rateLimited(source: string): void {
    this.tally(source).rateLimited++;
  }

  /** True when something was counted (not written in full) in the current interval. */
  get pending(): boolean {
    for (const t of this.tallies.values()) if (t.counted > 0 || t.rateLimited > 0) return true;
    return false;
  }

  /** When the current interval ends. */
  get dueAt(): number {
    return this.from + this.intervalMs;
  }

  /** Ends the interval: the summaries to write (sources with counted or turned-away requests). */
  close(now = Date.now()): RefusalSummary[] {
    const from = new Date(this.from).toISOString();
    const to = new Date(now).toISOString();
    const out: RefusalSummary[] = [];
    for (const [source, t] of this.tallies) {
      if (t.counted === 0 && t.rateLimited === 0) continue;
      out.push({
        source,
        from,
        to,
        counted: t.counted,
        rateLimited: t.rateLimited,
        events: Object.fromEntries(t.events),
        findings: Object.fromEntries(t.findings),
        hostIds: [...t.hostIds].sort(),
        otherHostIds: t.otherHostIds,
      });
    }
    this.tallies = new Map();
    this.from = now;
    return out;
  }
}
