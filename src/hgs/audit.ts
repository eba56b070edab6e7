/**
 * The append-only, hash-chained audit log (the hash rule is in audit-chain.ts). Appends hold a
 * cluster-wide lock so two nodes cannot fork the chain, and the table itself refuses UPDATE,
 * DELETE, TRUNCATE and any insert that is not the next entry at the head (migrations.ts) — defence
 * in depth only, since whoever owns the database can drop triggers.
 *
 * `verifyAuditChain` recomputes every link (an edited, inserted or removed entry breaks it) and,
 * given the signed checkpoints kept outside the database (audit-checkpoints.ts), proves each is
 * in the chain at its seq with its hash: a removed tail (`audit.truncated`), an emptied table
 * (`audit.emptied`) and a rewritten, re-hashed chain (`audit.rewritten`) are detected up to the
 * newest checkpoint. A head hash the caller kept (`--head`) may be any earlier head: verify
 * reports where it is in the chain. Refusals of unauthenticated callers are counted per source
 * rather than written one by one (refusals.ts).
 */
import type { Finding, Verdict } from "../core/verdict.js";
import { hgsError } from "../attest/errors.js";
import { canonicalJson } from "../attest/json.js";
import { checkpointSignatureValid, type AuditAnchors, type AuditCheckpoint } from "./audit-checkpoints.js";
import { entryHashOfText, GENESIS, isCanonicalText } from "./audit-chain.js";
import { isAnonymousRefusal, RefusalBook, type RefusalSummary } from "./refusals.js";
import type { RequestScope } from "./request-scope.js";
import type { AuditRow, HgsRepo, NonceRow, RepoTx, Tables } from "./store/repo.js";

export type AuditEvent =
  | "key.released"
  | "key.refused"
  | "attestation.passed"
  | "attestation.failed"
  | "host.registered"
  | "host.revoked"
  | "host.restored"
  | "host.ak-bound"
  | "baseline.added"
  | "baseline.removed"
  | "policy.changed"
  | "mode.changed"
  | "config.changed"
  | "tpm-root.added"
  | "request.refused";

/** The refusals that may be counted instead of written (see refusals.ts). */
export type RefusalEvent = "attestation.failed" | "key.refused";

export interface AuditEntry {
  readonly seq: number;
  readonly at: number;
  readonly event: string;
  readonly hostId: string | null;
  readonly detail: Readonly<Record<string, unknown>>;
  readonly prevHash: string;
  readonly hash: string;
}

/** Appends one entry inside the caller's transaction. */
export async function appendAudit(
  tx: RepoTx,
  event: AuditEvent,
  hostId: string | null,
  detail: Record<string, unknown>,
): Promise<AuditEntry> {
  await tx.lockAudit();
  return appendAuditAfter(tx, await tx.lastAudit(), event, hostId, detail);
}

/**
 * Appends one entry after `head`, which the caller read under the audit lock in this same
 * transaction.
 */
async function appendAuditAfter(
  tx: RepoTx,
  head: { readonly seq: number; readonly hash: string } | undefined,
  event: AuditEvent,
  hostId: string | null,
  detail: Record<string, unknown>,
): Promise<AuditEntry> {
  const { row, entry } = auditEntryAfter(head, event, hostId, detail);
  await tx.insertAudit(row);
  return entry;
}

/** The entry that goes after `head`: the row to store and the entry handed back. */
function auditEntryAfter(
  head: { readonly seq: number; readonly hash: string } | undefined,
  event: AuditEvent,
  hostId: string | null,
  detail: Record<string, unknown>,
): { row: AuditRow; entry: AuditEntry } {
  const prevHash = head?.hash ?? GENESIS;
  const seq = (head?.seq ?? 0) + 1;
  const at = Date.now();
  // The stored text is the canonical JSON; the entry handed back holds what it parses to (what a
  // reader of the log gets), so both sides see exactly what was hashed.
  const text = canonicalJson(detail);
  const hash = entryHashOfText(prevHash, { seq, at, event, hostId }, text);
  return {
    row: { seq, at, event, hostId, detail: text, prevHash, hash },
    entry: { seq, at, event, hostId, detail: JSON.parse(text) as Record<string, unknown>, prevHash, hash },
  };
}

function parseDetail(text: string): Record<string, unknown> {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { unparsable: text };
  }
}

export async function listAudit(
  repo: Tables,
  opts: { after?: number; limit?: number } = {},
): Promise<AuditEntry[]> {
  const rows = await repo.auditAfter(opts.after ?? 0, Math.min(opts.limit ?? 1000, 10_000));
  return rows.map((r) => ({ ...r, detail: parseDetail(r.detail) }));
}

export interface AuditFinding extends Finding {
  readonly seq: number;
  readonly id:
    | "audit.sequence-gap"
    | "audit.prev-hash-mismatch"
    | "audit.hash-mismatch"
    | "audit.detail-not-canonical"
    | "audit.head-mismatch"
    | "audit.emptied"
    | "audit.truncated"
    | "audit.rewritten"
    | "audit.checkpoint-signature"
    | "audit.checkpoints-unreadable"
    | "audit.no-checkpoints";
  readonly expected: string;
  readonly got: string;
}

export interface AuditVerdict extends Verdict<AuditFinding> {
  readonly entries: number;
  readonly head: string;
  /** Checkpoints proven in the chain. */
  readonly checkpoints: number;
  /** The newest checkpoint proven in the chain (its seq), when any. */
  readonly anchoredAt?: number;
  /** Where the `--head` hash is in the chain (its seq), when it is. */
  readonly headAt?: number;
}

function broken(
  seq: number,
  id: AuditFinding["id"],
  expected: string,
  got: string,
  message: string,
  severity: AuditFinding["severity"] = "error",
): AuditFinding {
  return { seq, id, severity, expected, got, message };
}

/**
 * Recomputes the whole chain, page by page, and reports every broken link; with `anchors`,
 * proves every checkpoint is in the chain (see the module comment); with `expectHead`, finds
 * that hash in the chain (any earlier head will do: the chain must still contain it).
 */
/** Entries read per query while verifying (one page in memory at a time). */
const VERIFY_PAGE = 5000;

export async function verifyAuditChain(
  repo: Tables,
  expectHead?: string,
  anchors?: AuditAnchors,
): Promise<AuditVerdict> {
  const findings: AuditFinding[] = [];
  const passed: string[] = [];
  // Checkpoints whose signature holds, by seq; the others are findings and prove nothing.
  const bySeq = new Map<number, AuditCheckpoint[]>();
  for (const c of anchors?.checkpoints ?? []) {
    if (!checkpointSignatureValid(anchors!.signer, c)) {
      findings.push(
        broken(
          c.seq,
          "audit.checkpoint-signature",
          `a signature by ${anchors!.signer.id}`,
          c.signature.slice(0, 16),
          "a checkpoint is not signed by this HGS's attestation signer (forged or from another fabric)",
        ),
      );
      continue;
    }
    bySeq.set(c.seq, [...(bySeq.get(c.seq) ?? []), c]);
  }
  let prev = GENESIS;
  let expectSeq = 1;
  let count = 0;
  let headAt: number | undefined;
  let proven = 0;
  let anchoredAt: number | undefined;
  let lastGood = 0;
  for (;;) {
    const rows = await repo.auditAfter(expectSeq - 1, VERIFY_PAGE);
    if (rows.length === 0) break;
    for (const e of rows) {
      if (e.seq !== expectSeq)
        findings.push(
          broken(
            e.seq,
            "audit.sequence-gap",
            String(expectSeq),
            String(e.seq),
            "an entry is missing or inserted",
          ),
        );
      if (e.prevHash !== prev)
        findings.push(
          broken(
            e.seq,
            "audit.prev-hash-mismatch",
            prev,
            e.prevHash,
            "the entry does not link to the one before",
          ),
        );
      // One parse per entry, for the canonical-form check; the hash is over the stored text
      // when it is canonical (the usual case), else over the canonical form of its content —
      // a re-spelled detail is then one finding, not also a hash mismatch.
      const parsed = parseDetail(e.detail);
      let canonical = e.detail;
      if (!isCanonicalText(e.detail, parsed)) {
        canonical = canonicalJson(parsed);
        findings.push(
          broken(
            e.seq,
            "audit.detail-not-canonical",
            canonical,
            e.detail,
            "the entry's detail is not as written",
          ),
        );
      }
      const h = entryHashOfText(e.prevHash, e, canonical);
      if (h !== e.hash)
        findings.push(
          broken(e.seq, "audit.hash-mismatch", h, e.hash, "the entry was edited after it was written"),
        );
      if (expectHead !== undefined && e.hash === expectHead && headAt === undefined) headAt = e.seq;
      for (const c of bySeq.get(e.seq) ?? []) {
        if (c.hash === e.hash) {
          proven++;
          anchoredAt = e.seq;
          lastGood = e.seq;
        } else {
          findings.push(
            broken(
              e.seq,
              "audit.rewritten",
              c.hash,
              e.hash,
              `entry #${e.seq} is not the one checkpointed at ${new Date(c.at).toISOString()}: the chain was rewritten after #${lastGood}`,
            ),
          );
        }
      }
      bySeq.delete(e.seq);
      prev = e.hash;
      expectSeq = e.seq + 1;
      count++;
    }
  }
  // Checkpoints beyond the newest entry: the tail was removed, or everything was.
  // (Those at a seq missing in the middle are sequence gaps, reported above.)
  const last = count === 0 ? 0 : expectSeq - 1;
  const beyond = [...bySeq.values()]
    .flat()
    .filter((c) => c.seq > last)
    .sort((a, b) => b.seq - a.seq)[0];
  const initialised = (await repo.signerId()) !== undefined;
  if (count === 0 && (beyond !== undefined || initialised)) {
    findings.push(
      broken(
        0,
        "audit.emptied",
        beyond ? `entries up to #${beyond.seq} (checkpointed)` : "at least the entry of `hgs init`",
        "no entries",
        "the audit table was emptied",
      ),
    );
  } else if (beyond !== undefined) {
    findings.push(
      broken(
        beyond.seq,
        "audit.truncated",
        `entries up to #${beyond.seq} (checkpointed ${new Date(beyond.at).toISOString()})`,
        `the chain ends at #${last}`,
        "the newest entries were removed",
      ),
    );
  }
  if (anchors) {
    if (anchors.unreadable !== undefined)
      findings.push(
        broken(
          0,
          "audit.checkpoints-unreadable",
          "a readable checkpoint file",
          anchors.unreadable,
          "the checkpoint file cannot be read",
        ),
      );
    else if (anchors.checkpoints.length === 0)
      findings.push(
        broken(
          0,
          "audit.no-checkpoints",
          "signed checkpoints",
          "none",
          "no checkpoint anchors the chain: a removed tail or a rewritten chain cannot be detected",
          "warning",
        ),
      );
  }
  if (!findings.some((f) => f.severity === "error" && !f.id.startsWith("audit.head"))) {
    passed.push("audit.chain");
    if (proven > 0) passed.push("audit.checkpoints");
  }
  if (expectHead !== undefined) {
    if (headAt === undefined)
      findings.push(
        broken(
          count === 0 ? 0 : expectSeq - 1,
          "audit.head-mismatch",
          expectHead,
          prev,
          "the given head is not in the chain: entries up to it were removed or rewritten",
        ),
      );
    else passed.push("audit.head");
  }
  return {
    ok: !findings.some((f) => f.severity === "error"),
    entries: count,
    head: prev,
    findings,
    passed,
    checkpoints: proven,
    ...(anchoredAt !== undefined ? { anchoredAt } : {}),
    ...(headAt !== undefined ? { headAt } : {}),
  };
}

/** The verdict when the chain is intact; HGS_ERR_AUDIT_BROKEN (details = the verdict) when not. */
export function requireIntactAudit(v: AuditVerdict): AuditVerdict {
  if (v.ok) return v;
  const first = v.findings[0];
  throw hgsError(
    "HGS_ERR_AUDIT_BROKEN",
    `the audit log's hash chain does not verify (${v.findings.length} finding(s), first ${first?.id} at #${first?.seq})`,
    { ...v },
  );
}

/** A used nonce inserted with an audit entry: a key-release request id, single use across nodes. */
export type ClaimedNonce = Omit<NonceRow, "payload"> & { readonly usedAt: number };

/**
 * A single-use claim committed in the same transaction as an audit entry. When the nonce is
 * already taken, the entry is not written and the append fails with `taken()`.
 */
export interface AuditClaim {
  readonly nonce: ClaimedNonce;
  readonly taken: () => Error;
  /**
   * A key-protector generation a host presented (release.ts, rollback), recorded in the same
   * transaction before the nonce is claimed: when a newer generation was presented before,
   * nothing is recorded, claimed or written, and the append fails with `rolledBack(newest)`.
   */
  readonly generation?: KeyGenerationClaim;
}

export interface KeyGenerationClaim {
  readonly protectorId: string;
  readonly presented: number;
  readonly released: number;
  readonly rolledBack: (newest: { presented: number; released: number } | undefined) => Error;
}

interface Pending {
  readonly event: AuditEvent;
  readonly hostId: string | null;
  readonly detail: Record<string, unknown>;
  readonly claim: AuditClaim | undefined;
  resolve(e: AuditEntry): void;
  reject(e: unknown): void;
}

export interface AuditWriterOptions {
  /** The request in progress (its source), for counting anonymous refusals per source. */
  readonly scope?: RequestScope;
  /** Told how many entries each commit wrote (the checkpointer counts them). */
  readonly committed?: (entries: number) => void;
  readonly refusals?: RefusalBook;
}

/**
 * Group commit for the hot path (attestations, key releases): entries queued while a
 * transaction commits are appended together in the next one, in queue order, so one commit
 * (and one hold of the cluster-wide audit lock) covers many requests. Each caller's promise
 * resolves only after its entry is committed: nothing is answered before it is audited. An
 * append may carry a claim (see {@link AuditClaim}) committed atomically with its entry.
 *
 * The exception: inside an HTTP request, a refusal of a caller that proved no identity may be
 * counted instead of written (refusals.ts); its promise then resolves at once with `undefined`,
 * and the count is written as one `request.refused` entry per source when the interval ends (or
 * at {@link drain}).
 */
export class AuditWriter {
  private queue: Pending[] = [];
  private flushing = false;
  readonly refusals: RefusalBook;
  private summaryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly repo: HgsRepo,
    private readonly opts: AuditWriterOptions = {},
  ) {
    this.refusals = opts.refusals ?? new RefusalBook();
  }

  append(
    event: RefusalEvent,
    hostId: string | null,
    detail: Record<string, unknown>,
    claim?: AuditClaim,
  ): Promise<AuditEntry | undefined>;
  append(
    event: AuditEvent,
    hostId: string | null,
    detail: Record<string, unknown>,
    claim?: AuditClaim,
  ): Promise<AuditEntry>;
  append(
    event: AuditEvent,
    hostId: string | null,
    detail: Record<string, unknown>,
    claim?: AuditClaim,
  ): Promise<AuditEntry | undefined> {
    const source = this.opts.scope?.getStore()?.source;
    if (
      source !== undefined &&
      claim === undefined &&
      isAnonymousRefusal(event, hostId, detail) &&
      !this.refusals.note(source, event, hostId, detail)
    ) {
      this.summariseLater();
      return Promise.resolve(undefined);
    }
    return this.enqueue(event, hostId, detail, claim);
  }

  /** Counts a request the rate limiter turned away (written with its source's summary). */
  rateLimited(source: string): void {
    this.refusals.rateLimited(source);
    this.summariseLater();
  }

  private enqueue(
    event: AuditEvent,
    hostId: string | null,
    detail: Record<string, unknown>,
    claim?: AuditClaim,
  ): Promise<AuditEntry> {
    if (Date.now() >= this.refusals.dueAt) this.summarise();
    return new Promise((resolve, reject) => {
      this.queue.push({ event, hostId, detail, claim, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  /** Writes the summaries of the interval that ended (nothing when nothing was counted). */
  private summarise(now = Date.now()): Promise<unknown> {
    if (this.summaryTimer) clearTimeout(this.summaryTimer);
    this.summaryTimer = undefined;
    const rows: RefusalSummary[] = this.refusals.close(now);
    // A failed summary write must not fail the request that happened to trigger it.
    return Promise.all(
      rows.map((r) => this.enqueue("request.refused", null, { ...r }).catch(() => undefined)),
    );
  }

  /** Makes sure the current interval's counts are written when it ends, even if traffic stops. */
  private summariseLater(): void {
    if (this.summaryTimer || !this.refusals.pending) return;
    this.summaryTimer = setTimeout(
      () => void this.summarise(),
      Math.max(0, this.refusals.dueAt - Date.now()),
    );
    this.summaryTimer.unref();
  }

  /** Resolves when every queued entry is committed (or failed), pending summaries included. */
  async drain(): Promise<void> {
    if (this.refusals.pending) await this.summarise();
    while (this.flushing || this.queue.length > 0) await new Promise((r) => setTimeout(r, 5));
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, 512);
        try {
          const outcomes = await this.repo.transaction((tx) => commitBatch(tx, batch));
          let written = 0;
          batch.forEach((p, i) => {
            const o = outcomes[i] as AuditEntry | Error;
            if (o instanceof Error) p.reject(o);
            else {
              written++;
              p.resolve(o);
            }
          });
          if (written > 0) this.opts.committed?.(written);
        } catch (e) {
          for (const p of batch) p.reject(e);
        }
      }
    } finally {
      this.flushing = false;
    }
  }
}

/**
 * One group commit, in the caller's transaction: a few statements for the whole batch, whatever
 * its size (on PostgreSQL each statement is a round trip, and the audit lock is held meanwhile).
 * The outcome of each request is what appending them one by one, in queue order, would give:
 *   1. key-generation records (release.ts, rollback): the protectors' records are read once and
 *      each request is judged against the record as the requests before it left it (refused when
 *      older than the newest presented); the records that moved are written in one statement;
 *   2. single-use claims of the requests still standing, in one insert: a value already in the
 *      table, or claimed by an earlier request of the batch, is taken;
 *   3. the audit entries of the requests still standing, chained from the head read once under
 *      the lock, in one insert.
 */
async function commitBatch(tx: RepoTx, batch: readonly Pending[]): Promise<(AuditEntry | Error)[]> {
  // The audit lock first: a claim's row lock taken before it could deadlock with another node's
  // batch that holds the audit lock and inserts the same claim. Every writer of key-generation
  // records holds it too (only this commit writes them), so the records read below stay as read.
  await tx.lockAudit();
  const out: (AuditEntry | Error | undefined)[] = batch.map(() => undefined);

  const protectorIds = [...new Set(batch.flatMap((p) => p.claim?.generation?.protectorId ?? []))];
  if (protectorIds.length > 0) {
    const records = await tx.keyGenerationsOf(protectorIds);
    const moved = new Set<string>();
    batch.forEach((p, i) => {
      const g = p.claim?.generation;
      if (!g) return;
      const newest = records.get(g.protectorId);
      if (newest && g.presented < newest.presented) {
        out[i] = g.rolledBack(newest);
        return;
      }
      records.set(g.protectorId, {
        presented: g.presented,
        released: newest ? Math.max(newest.released, g.released) : g.released,
      });
      moved.add(g.protectorId);
    });
    const now = Date.now();
    if (moved.size > 0)
      await tx.putKeyGenerations(
        [...moved].map((id) => ({ protectorId: id, ...records.get(id)!, updatedAt: now })),
      );
  }

  const claims = new Map<string, ClaimedNonce>();
  batch.forEach((p, i) => {
    if (!p.claim || out[i]) return;
    if (claims.has(p.claim.nonce.nonce)) out[i] = p.claim.taken();
    else claims.set(p.claim.nonce.nonce, p.claim.nonce);
  });
  const claimed = claims.size > 0 ? await tx.claimNonces([...claims.values()]) : new Set<string>();
  batch.forEach((p, i) => {
    if (p.claim && !out[i] && !claimed.has(p.claim.nonce.nonce)) out[i] = p.claim.taken();
  });

  let head = await tx.lastAudit();
  const rows: AuditRow[] = [];
  batch.forEach((p, i) => {
    if (out[i]) return;
    const { row, entry } = auditEntryAfter(head, p.event, p.hostId, p.detail);
    rows.push(row);
    out[i] = entry;
    head = entry;
  });
  if (rows.length > 0) await tx.insertAudits(rows);
  return out as (AuditEntry | Error)[];
}
