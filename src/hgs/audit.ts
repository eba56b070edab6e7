/**
 * The append-only, hash-chained audit log. Entry n stores
 *   hash_n = SHA-256( prev_hash ‖ canonical JSON {seq, at, event, hostId, detail} )
 * with prev_hash of the first entry = 64 zeros. Appends hold a cluster-wide lock so two nodes
 * cannot fork the chain. `verifyAudit` recomputes every link: an edited, inserted or removed
 * entry breaks it. What it does not detect: removal of the newest entries (the tail) unless the
 * caller compares with a head hash it kept (`expectHead`); export heads regularly for that.
 */
import { createHash } from "node:crypto";
import { canonicalJson } from "../attest/json.js";
import type { Driver, Queryable, SqlValue, Tx } from "./store/driver.js";

export const AUDIT_LOCK = 0x48475302;
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
  tx: Tx,
  event: AuditEvent,
  hostId: string | null,
  detail: Record<string, unknown>,
): Promise<AuditEntry> {
  await tx.lock(AUDIT_LOCK);
  const last = await tx.query<{ seq: number; hash: string }>(
    `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`,
  );
  const prevHash = last[0]?.hash ?? GENESIS;
  const seq = (last[0]?.seq ?? 0) + 1;
  const at = Date.now();
  const clean = JSON.parse(canonicalJson(detail)) as Record<string, unknown>;
  const hash = entryHash(prevHash, { seq, at, event, hostId, detail: clean });
  await tx.run(
    `INSERT INTO audit (seq, at, event, host_id, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    [seq, at, event, hostId, canonicalJson(clean), prevHash, hash],
  );
  return { seq, at, event, hostId, detail: clean, prevHash, hash };
}

interface AuditRow {
  seq: number;
  at: number;
  event: string;
  host_id: string | null;
  detail: string;
  prev_hash: string;
  hash: string;
}

function toEntry(r: AuditRow): AuditEntry {
  let detail: Record<string, unknown>;
  try {
    detail = JSON.parse(r.detail) as Record<string, unknown>;
  } catch {
    detail = { unparsable: r.detail };
  }
  return {
    seq: Number(r.seq),
    at: Number(r.at),
    event: r.event,
    hostId: r.host_id,
    detail,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

export async function listAudit(
  db: Queryable,
  opts: { after?: number; limit?: number } = {},
): Promise<AuditEntry[]> {
  const rows = await db.query<AuditRow>(`SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`, [
    opts.after ?? 0,
    Math.min(opts.limit ?? 1000, 10_000),
  ]);
  return rows.map(toEntry);
}

export interface AuditFinding {
  readonly seq: number;
  readonly id:
    | "Audit_SequenceGap"
    | "Audit_PrevHashMismatch"
    | "Audit_HashMismatch"
    | "Audit_DetailNotCanonical"
    | "Audit_HeadMismatch";
  readonly expected: string;
  readonly got: string;
}

export interface AuditVerdict {
  readonly ok: boolean;
  readonly entries: number;
  readonly head: string;
  readonly findings: readonly AuditFinding[];
}

/** Recomputes the whole chain, page by page. */
export async function verifyAudit(db: Queryable, expectHead?: string): Promise<AuditVerdict> {
  const findings: AuditFinding[] = [];
  let prev = GENESIS;
  let expectSeq = 1;
  let count = 0;
  for (;;) {
    const rows = await db.query<AuditRow>(`SELECT * FROM audit WHERE seq >= ? ORDER BY seq LIMIT 1000`, [
      expectSeq,
    ]);
    if (rows.length === 0) break;
    for (const r of rows) {
      const e = toEntry(r);
      if (e.seq !== expectSeq)
        findings.push({
          seq: e.seq,
          id: "Audit_SequenceGap",
          expected: String(expectSeq),
          got: String(e.seq),
        });
      if (e.prevHash !== prev)
        findings.push({ seq: e.seq, id: "Audit_PrevHashMismatch", expected: prev, got: e.prevHash });
      if (canonicalJson(e.detail) !== r.detail) {
        findings.push({
          seq: e.seq,
          id: "Audit_DetailNotCanonical",
          expected: canonicalJson(e.detail),
          got: r.detail,
        });
      }
      const h = entryHash(e.prevHash, e);
      if (h !== e.hash) findings.push({ seq: e.seq, id: "Audit_HashMismatch", expected: h, got: e.hash });
      prev = e.hash;
      expectSeq = e.seq + 1;
      count++;
    }
  }
  if (expectHead !== undefined && expectHead !== prev) {
    findings.push({ seq: expectSeq - 1, id: "Audit_HeadMismatch", expected: expectHead, got: prev });
  }
  return { ok: findings.length === 0, entries: count, head: prev, findings };
}

/**
 * A single-use claim committed in the same transaction as an audit entry (a key-release request
 * id in the shared nonce table): `sql` inserts it and changes 0 rows when it is already taken.
 * When taken, the entry is not written and the append fails with `taken()`.
 */
export interface AuditClaim {
  readonly sql: string;
  readonly params: readonly SqlValue[];
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

  constructor(private readonly db: Driver) {}

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
          const outcomes = await this.db.transaction(async (tx) => {
            // The audit lock first: a claim's row lock taken before it could deadlock with
            // another node's batch that holds the audit lock and inserts the same claim.
            await tx.lock(AUDIT_LOCK);
            const out: (AuditEntry | Error)[] = [];
            for (const p of batch) {
              if (p.claim && (await tx.run(p.claim.sql, p.claim.params)) === 0) {
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
