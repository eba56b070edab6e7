/**
 * The append-only, hash-chained audit log. Entry n stores
 *   hash_n = SHA-256( prev_hash ‖ canonical JSON {seq, at, event, hostId, detail} )
 * with prev_hash of the first entry = 64 zeros. Appends hold a cluster-wide lock so two nodes
 * cannot fork the chain. `verifyAuditChain` recomputes every link: an edited, inserted or removed
 * entry breaks it. What it does not detect: removal of the newest entries (the tail) unless the
 * caller compares with a head hash it kept (`expectHead`); export heads regularly for that.
 */
import { createHash } from "node:crypto";
import type { Finding, Verdict } from "../core/verdict.js";
import { hgsError } from "../attest/errors.js";
import { canonicalJson } from "../attest/json.js";
import type { HgsRepo, NonceRow, RepoTx, Tables } from "./store/repo.js";

export const GENESIS = "0".repeat(64);

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
  | "tpm-root.added";

export interface AuditEntry {
  readonly seq: number;
  readonly at: number;
  readonly event: string;
  readonly hostId: string | null;
  readonly detail: Readonly<Record<string, unknown>>;
  readonly prevHash: string;
  readonly hash: string;
}

export function entryHash(prevHash: string, e: Omit<AuditEntry, "prevHash" | "hash">): string {
  return createHash("sha256")
    .update(prevHash, "utf8")
    .update(
      canonicalJson({ seq: e.seq, at: e.at, event: e.event, hostId: e.hostId, detail: e.detail }),
      "utf8",
    )
    .digest("hex");
}

/** Appends one entry inside the caller's transaction. */
export async function appendAudit(
  tx: RepoTx,
  event: AuditEvent,
  hostId: string | null,
  detail: Record<string, unknown>,
): Promise<AuditEntry> {
  await tx.lockAudit();
  const last = await tx.lastAudit();
  const prevHash = last?.hash ?? GENESIS;
  const seq = (last?.seq ?? 0) + 1;
  const at = Date.now();
  const clean = JSON.parse(canonicalJson(detail)) as Record<string, unknown>;
  const hash = entryHash(prevHash, { seq, at, event, hostId, detail: clean });
  await tx.insertAudit({ seq, at, event, hostId, detail: canonicalJson(clean), prevHash, hash });
  return { seq, at, event, hostId, detail: clean, prevHash, hash };
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
    | "audit.head-mismatch";
  readonly expected: string;
  readonly got: string;
}

export interface AuditVerdict extends Verdict<AuditFinding> {
  readonly entries: number;
  readonly head: string;
}

function broken(
  seq: number,
  id: AuditFinding["id"],
  expected: string,
  got: string,
  message: string,
): AuditFinding {
  return { seq, id, severity: "error", expected, got, message };
}

/** Recomputes the whole chain, page by page, and reports every broken link. */
export async function verifyAuditChain(repo: Tables, expectHead?: string): Promise<AuditVerdict> {
  const findings: AuditFinding[] = [];
  let prev = GENESIS;
  let expectSeq = 1;
  let count = 0;
  for (;;) {
    const rows = await repo.auditAfter(expectSeq - 1, 1000);
    if (rows.length === 0) break;
    for (const r of rows) {
      const e: AuditEntry = { ...r, detail: parseDetail(r.detail) };
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
      if (canonicalJson(e.detail) !== r.detail) {
        findings.push(
          broken(
            e.seq,
            "audit.detail-not-canonical",
            canonicalJson(e.detail),
            r.detail,
            "the entry's detail is not as written",
          ),
        );
      }
      const h = entryHash(e.prevHash, e);
      if (h !== e.hash)
        findings.push(
          broken(e.seq, "audit.hash-mismatch", h, e.hash, "the entry was edited after it was written"),
        );
      prev = e.hash;
      expectSeq = e.seq + 1;
      count++;
    }
  }
  const passed = findings.length === 0 ? ["audit.chain"] : [];
  if (expectHead !== undefined) {
    if (expectHead !== prev)
      findings.push(
        broken(
          expectSeq - 1,
          "audit.head-mismatch",
          expectHead,
          prev,
          "the newest entries are not the ones expected",
        ),
      );
    else passed.push("audit.head");
  }
  return { ok: findings.length === 0, entries: count, head: prev, findings, passed };
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
}

interface Pending {
  readonly event: AuditEvent;
  readonly hostId: string | null;
  readonly detail: Record<string, unknown>;
  readonly claim: AuditClaim | undefined;
  resolve(e: AuditEntry): void;
  reject(e: unknown): void;
}

/**
 * Group commit for the hot path (attestations, key releases): entries queued while a
 * transaction commits are appended together in the next one, in queue order, so one commit
 * (and one hold of the cluster-wide audit lock) covers many requests. Each caller's promise
 * resolves only after its entry is committed: nothing is answered before it is audited. An
 * append may carry a claim (see {@link AuditClaim}) committed atomically with its entry.
 */
export class AuditWriter {
  private queue: Pending[] = [];
  private flushing = false;

  constructor(private readonly repo: HgsRepo) {}

  append(
    event: AuditEvent,
    hostId: string | null,
    detail: Record<string, unknown>,
    claim?: AuditClaim,
  ): Promise<AuditEntry> {
    return new Promise((resolve, reject) => {
      this.queue.push({ event, hostId, detail, claim, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  /** Resolves when every queued entry is committed (or failed). */
  async drain(): Promise<void> {
    while (this.flushing || this.queue.length > 0) await new Promise((r) => setTimeout(r, 5));
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, 512);
        try {
          const outcomes = await this.repo.transaction(async (tx) => {
            // The audit lock first: a claim's row lock taken before it could deadlock with
            // another node's batch that holds the audit lock and inserts the same claim.
            await tx.lockAudit();
            const out: (AuditEntry | Error)[] = [];
            for (const p of batch) {
              if (p.claim && !(await tx.claimNonce(p.claim.nonce))) {
                out.push(p.claim.taken());
                continue;
              }
              out.push(await appendAudit(tx, p.event, p.hostId, p.detail));
            }
            return out;
          });
          batch.forEach((p, i) => {
            const o = outcomes[i] as AuditEntry | Error;
            if (o instanceof Error) p.reject(o);
            else p.resolve(o);
          });
        } catch (e) {
          for (const p of batch) p.reject(e);
        }
      }
    } finally {
      this.flushing = false;
    }
  }
}
