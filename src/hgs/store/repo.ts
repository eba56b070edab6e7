/**
 * The HGS repository: every statement the service runs, one method each, over typed rows. No SQL
 * leaves src/hgs/store/; the use cases (attestation, release, administration, audit) speak in
 * rows and values. Columns are snake_case in the database and camelCase here; byte strings are
 * Buffers, instants are milliseconds since the epoch, booleans are booleans (stored 0/1).
 *
 * Audit rows are written only inside a transaction ({@link RepoTx}) that holds the cluster-wide
 * audit lock, so two nodes cannot fork the hash chain (audit.ts computes the chain).
 */
import type { AttestationMode } from "../../attest/health.js";
import { withDefaults, type HgsSettings } from "../settings.js";
import type { Driver, Queryable, Tx } from "./driver.js";
import { BASELINES_REVISION_KEY, migrate } from "./migrations.js";

/** Serialises audit appends across every node (pg advisory lock key "HGS\x02"). */
export const AUDIT_LOCK = 0x48475302;

export interface HostRow {
  readonly id: string;
  readonly name: string;
  readonly kind: AttestationMode;
  readonly publicKey: Buffer | null;
  readonly ekPublic: Buffer | null;
  readonly ekCertificate: Buffer | null;
  readonly akPublic: Buffer | null;
  readonly revokedAt: number | null;
  /** Health certificates issued before this instant are refused (set by restore; null = none). */
  readonly certificatesNotBefore: number | null;
  readonly createdAt: number;
}

export interface NonceRow {
  readonly nonce: string;
  /** Where the challenge came from (request-scope.ts `sourceOf`); null outside an HTTP request. */
  readonly source?: string | null;
  readonly hostId: string;
  readonly purpose: string;
  readonly payload: Buffer | null;
  readonly expiresAt: number;
  readonly usedAt: number | null;
}

export interface BaselineRow {
  readonly id: string;
  readonly kind: string;
  readonly name: string;
  /** The baseline's canonical JSON. */
  readonly body: string;
  readonly createdAt: number;
}

export interface PolicyRow {
  readonly id: string;
  readonly enabled: boolean;
  readonly locked: boolean;
}

export interface TpmRootRow {
  readonly fingerprint: string;
  readonly certificate: Buffer;
  readonly createdAt: number;
}

export interface AuditRow {
  readonly seq: number;
  readonly at: number;
  readonly event: string;
  readonly hostId: string | null;
  /** Canonical JSON, exactly as hashed. */
  readonly detail: string;
  readonly prevHash: string;
  readonly hash: string;
}

interface HostColumns {
  id: string;
  name: string;
  kind: string;
  public_key: Buffer | null;
  ek_public: Buffer | null;
  ek_certificate: Buffer | null;
  ak_public: Buffer | null;
  revoked_at: number | null;
  certificates_not_before: number | null;
  created_at: number;
}

interface NonceColumns {
  nonce: string;
  host_id: string;
  purpose: string;
  payload: Buffer | null;
  expires_at: number;
  used_at: number | null;
}

const num = (v: number | null): number | null => (v === null ? null : Number(v));

function hostOf(r: HostColumns): HostRow {
  return {
    id: r.id,
    name: r.name,
    kind: r.kind as AttestationMode,
    publicKey: r.public_key,
    ekPublic: r.ek_public,
    ekCertificate: r.ek_certificate,
    akPublic: r.ak_public,
    revokedAt: num(r.revoked_at),
    certificatesNotBefore: num(r.certificates_not_before),
    createdAt: Number(r.created_at),
  };
}

/** Statements valid in and out of a transaction. */
export class Tables {
  constructor(protected readonly q: Queryable) {}

  // key-protector generations (release.ts: rollback) -----------------------------------------

  /** The newest generations recorded for a protector, when any. */
  async keyGenerations(protectorId: string): Promise<{ presented: number; released: number } | undefined> {
    const rows = await this.q.query<{ presented: number | string; released: number | string }>(
      `SELECT presented, released FROM key_protector_generations WHERE protector_id = ?`,
      [protectorId],
    );
    const r = rows[0];
    return r ? { presented: Number(r.presented), released: Number(r.released) } : undefined;
  }

  // config ---------------------------------------------------------------------------------

  async signerId(): Promise<string | undefined> {
    const rows = await this.q.query<{ value: string }>(`SELECT value FROM config WHERE key = 'signerId'`);
    return rows[0]?.value;
  }

  async insertSignerId(signerId: string): Promise<void> {
    await this.q.run(`INSERT INTO config (key, value) VALUES ('signerId', ?)`, [signerId]);
  }

  /** The stored settings; absent keys read as their defaults (settings.ts). */
  async settings(): Promise<HgsSettings> {
    const rows = await this.q.query<{ value: string }>(`SELECT value FROM config WHERE key = 'settings'`);
    return withDefaults(JSON.parse(rows[0]?.value ?? "{}") as Partial<HgsSettings>);
  }

  async insertSettings(s: HgsSettings): Promise<void> {
    await this.q.run(`INSERT INTO config (key, value) VALUES ('settings', ?)`, [JSON.stringify(s)]);
  }

  async updateSettings(s: HgsSettings): Promise<void> {
    await this.q.run(`UPDATE config SET value = ? WHERE key = 'settings'`, [JSON.stringify(s)]);
  }

  // admin credentials -----------------------------------------------------------------------

  async insertAdminCredential(id: string, hash: string, createdAt: number): Promise<void> {
    await this.q.run(`INSERT INTO admin_credentials (id, hash, created_at) VALUES (?, ?, ?)`, [
      id,
      hash,
      createdAt,
    ]);
  }

  async adminCredentialExists(hash: string): Promise<boolean> {
    return (await this.q.query(`SELECT id FROM admin_credentials WHERE hash = ?`, [hash])).length > 0;
  }

  // hosts -----------------------------------------------------------------------------------

  async host(id: string): Promise<HostRow | undefined> {
    const rows = await this.q.query<HostColumns>(`SELECT * FROM hosts WHERE id = ?`, [id]);
    return rows[0] ? hostOf(rows[0]) : undefined;
  }

  async hosts(): Promise<HostRow[]> {
    return (await this.q.query<HostColumns>(`SELECT * FROM hosts ORDER BY created_at, id`)).map(hostOf);
  }

  async hostExists(id: string): Promise<boolean> {
    return (await this.q.query(`SELECT id FROM hosts WHERE id = ?`, [id])).length > 0;
  }

  async insertHost(h: Omit<HostRow, "revokedAt" | "certificatesNotBefore">): Promise<void> {
    await this.q.run(
      `INSERT INTO hosts (id, name, kind, public_key, ek_public, ek_certificate, ak_public, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      [h.id, h.name, h.kind, h.publicKey, h.ekPublic, h.ekCertificate, h.akPublic, h.createdAt],
    );
  }

  /** Sets or clears `revoked_at`; resolves to false when no such host exists. */
  async setHostRevokedAt(id: string, revokedAt: number | null): Promise<boolean> {
    return (await this.q.run(`UPDATE hosts SET revoked_at = ? WHERE id = ?`, [revokedAt, id])) > 0;
  }

  /**
   * Clears `revoked_at` and moves `certificates_not_before` to `notBefore` (never back);
   * resolves to false when no such host exists.
   */
  async restoreHost(id: string, notBefore: number): Promise<boolean> {
    return (
      (await this.q.run(
        `UPDATE hosts SET revoked_at = NULL,
           certificates_not_before = CASE WHEN certificates_not_before IS NULL OR certificates_not_before < ? THEN ? ELSE certificates_not_before END
         WHERE id = ?`,
        [notBefore, notBefore, id],
      )) > 0
    );
  }

  async setHostAk(id: string, akPublic: Buffer): Promise<void> {
    await this.q.run(`UPDATE hosts SET ak_public = ? WHERE id = ?`, [akPublic, id]);
  }

  // nonces ----------------------------------------------------------------------------------

  async insertNonce(n: Omit<NonceRow, "usedAt">): Promise<void> {
    await this.q.run(
      `INSERT INTO nonces (nonce, host_id, purpose, payload, expires_at, source) VALUES (?, ?, ?, ?, ?, ?)`,
      [n.nonce, n.hostId, n.purpose, n.payload, n.expiresAt, n.source ?? null],
    );
  }

  /**
   * Unused, unexpired nonces (of one source, or all when `source` is null), counted up to
   * `limit` only: the count costs at most `limit` index entries however full the table is.
   */
  async outstandingNonces(source: string | null, now: number, limit: number): Promise<number> {
    const rows = await this.q.query<{ n: number }>(
      source === null
        ? `SELECT COUNT(*) AS n FROM (SELECT 1 FROM nonces WHERE expires_at > ? AND used_at IS NULL LIMIT ?) t`
        : `SELECT COUNT(*) AS n FROM (SELECT 1 FROM nonces WHERE source = ? AND expires_at > ? AND used_at IS NULL LIMIT ?) t`,
      source === null ? [now, limit] : [source, now, limit],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** When the soonest of the outstanding nonces (of one source, or all) expires; undefined when none. */
  async nextNonceExpiry(source: string | null, now: number): Promise<number | undefined> {
    const rows = await this.q.query<{ t: number | null }>(
      source === null
        ? `SELECT MIN(expires_at) AS t FROM nonces WHERE expires_at > ? AND used_at IS NULL`
        : `SELECT MIN(expires_at) AS t FROM nonces WHERE source = ? AND expires_at > ? AND used_at IS NULL`,
      source === null ? [now] : [source, now],
    );
    const t = rows[0]?.t;
    return t === null || t === undefined ? undefined : Number(t);
  }

  /**
   * Marks the nonce used when it is unused, unexpired and issued to this host for this purpose,
   * in one statement (atomic across nodes); resolves to true when this call used it.
   */
  async useNonce(nonce: string, hostId: string, purpose: string, now: number): Promise<boolean> {
    const n = await this.q.run(
      `UPDATE nonces SET used_at = ? WHERE nonce = ? AND used_at IS NULL AND host_id = ? AND purpose = ? AND expires_at > ?`,
      [now, nonce, hostId, purpose, now],
    );
    return n === 1;
  }

  async nonce(nonce: string): Promise<NonceRow | undefined> {
    const rows = await this.q.query<NonceColumns>(
      `SELECT nonce, host_id, purpose, payload, expires_at, used_at FROM nonces WHERE nonce = ?`,
      [nonce],
    );
    const r = rows[0];
    return r
      ? {
          nonce: r.nonce,
          hostId: r.host_id,
          purpose: r.purpose,
          payload: r.payload,
          expiresAt: Number(r.expires_at),
          usedAt: num(r.used_at),
        }
      : undefined;
  }

  async nonceExists(nonce: string): Promise<boolean> {
    return (await this.q.query(`SELECT 1 AS taken FROM nonces WHERE nonce = ?`, [nonce])).length > 0;
  }

  /** Deletes nonces that expired before `before`; resolves to how many. */
  deleteNoncesExpiredBefore(before: number): Promise<number> {
    return this.q.run(`DELETE FROM nonces WHERE expires_at < ?`, [before]);
  }

  // baselines -------------------------------------------------------------------------------

  async baselineExists(id: string): Promise<boolean> {
    return (await this.q.query(`SELECT id FROM baselines WHERE id = ?`, [id])).length > 0;
  }

  async insertBaseline(b: BaselineRow): Promise<void> {
    await this.q.run(`INSERT INTO baselines (id, kind, name, body, created_at) VALUES (?, ?, ?, ?, ?)`, [
      b.id,
      b.kind,
      b.name,
      b.body,
      b.createdAt,
    ]);
  }

  /**
   * The baselines table's revision (migrations.ts v6: the database bumps it on every change);
   * undefined only on a database that never had it.
   */
  async baselinesRevision(): Promise<string | undefined> {
    const rows = await this.q.query<{ value: string }>(`SELECT value FROM config WHERE key = ?`, [
      BASELINES_REVISION_KEY,
    ]);
    return rows[0]?.value;
  }

  async baselines(): Promise<{ id: string; body: string }[]> {
    return this.q.query<{ id: string; body: string }>(
      `SELECT id, body FROM baselines ORDER BY created_at, id`,
    );
  }

  /** Resolves to false when no such baseline exists. */
  async deleteBaseline(id: string): Promise<boolean> {
    return (await this.q.run(`DELETE FROM baselines WHERE id = ?`, [id])) > 0;
  }

  // policies --------------------------------------------------------------------------------

  async insertPolicy(p: PolicyRow): Promise<void> {
    await this.q.run(`INSERT INTO policies (id, enabled, locked) VALUES (?, ?, ?)`, [
      p.id,
      p.enabled ? 1 : 0,
      p.locked ? 1 : 0,
    ]);
  }

  async policies(): Promise<PolicyRow[]> {
    const rows = await this.q.query<{ id: string; enabled: number; locked: number }>(
      `SELECT id, enabled, locked FROM policies ORDER BY id`,
    );
    return rows.map((r) => ({ id: r.id, enabled: Number(r.enabled) === 1, locked: Number(r.locked) === 1 }));
  }

  async policy(id: string): Promise<PolicyRow | undefined> {
    const rows = await this.q.query<{ enabled: number; locked: number }>(
      `SELECT enabled, locked FROM policies WHERE id = ?`,
      [id],
    );
    const r = rows[0];
    return r ? { id, enabled: Number(r.enabled) === 1, locked: Number(r.locked) === 1 } : undefined;
  }

  async setPolicyEnabled(id: string, enabled: boolean): Promise<void> {
    await this.q.run(`UPDATE policies SET enabled = ? WHERE id = ?`, [enabled ? 1 : 0, id]);
  }

  async enabledPolicyIds(): Promise<Set<string>> {
    const rows = await this.q.query<{ id: string }>(`SELECT id FROM policies WHERE enabled = 1`);
    return new Set(rows.map((r) => r.id));
  }

  // TPM roots -------------------------------------------------------------------------------

  async tpmRootExists(fingerprint: string): Promise<boolean> {
    return (
      (await this.q.query(`SELECT fingerprint FROM tpm_roots WHERE fingerprint = ?`, [fingerprint])).length >
      0
    );
  }

  async insertTpmRoot(r: TpmRootRow): Promise<void> {
    await this.q.run(`INSERT INTO tpm_roots (fingerprint, certificate, created_at) VALUES (?, ?, ?)`, [
      r.fingerprint,
      r.certificate,
      r.createdAt,
    ]);
  }

  async tpmRootCertificates(): Promise<Buffer[]> {
    return (await this.q.query<{ certificate: Buffer }>(`SELECT certificate FROM tpm_roots`)).map(
      (r) => r.certificate,
    );
  }

  // audit (reads) ---------------------------------------------------------------------------

  /** The newest committed entry's seq and hash (undefined when the table is empty). */
  async auditHead(): Promise<{ seq: number; hash: string } | undefined> {
    const rows = await this.q.query<{ seq: number; hash: string }>(
      `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`,
    );
    const r = rows[0];
    return r ? { seq: Number(r.seq), hash: r.hash } : undefined;
  }

  /** Entries with seq > `after`, in order, at most `limit`. */
  async auditAfter(after: number, limit: number): Promise<AuditRow[]> {
    // Rows as arrays: verify and the checkpointer read the whole chain through here.
    const rows = await this.q.queryRows(
      `SELECT seq, at, event, host_id, detail, prev_hash, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`,
      [after, limit],
    );
    return rows.map((r) => ({
      seq: Number(r[0]),
      at: Number(r[1]),
      event: r[2] as string,
      hostId: r[3] as string | null,
      detail: r[4] as string,
      prevHash: r[5] as string,
      hash: r[6] as string,
    }));
  }
}

/** Statements that need a transaction: the audit chain and single-use claims made with it. */
export class RepoTx extends Tables {
  constructor(
    private readonly tx: Tx,
    private readonly kind: Driver["kind"],
  ) {
    super(tx);
  }

  /**
   * A set of rows as one statement parameter (a JSON array of arrays, in order), read back as a
   * table: one statement for a whole group commit, whatever its size — on PostgreSQL each
   * statement is a round trip made while the audit lock is held. `columns` are SQL types.
   */
  private rowsFrom(columns: readonly (readonly [name: string, type: "bigint" | "text"])[]): string {
    return this.kind === "sqlite"
      ? `SELECT ${columns.map(([n], i) => `json_extract(value, '$[${i}]') AS ${n}`).join(", ")}
         FROM json_each(?) WHERE true`
      : `SELECT ${columns.map(([n], i) => `(value->>${i})::${columns[i]![1]} AS ${n}`).join(", ")}
         FROM json_array_elements(?::json) WITH ORDINALITY AS r(value, ord) WHERE true`;
  }

  /** The key-generation records of these protectors (release.ts, rollback). */
  async keyGenerationsOf(
    ids: readonly string[],
  ): Promise<Map<string, { presented: number; released: number }>> {
    const rows = await this.tx.queryRows(
      `SELECT g.protector_id, g.presented, g.released FROM key_protector_generations g
       WHERE g.protector_id IN (SELECT id FROM (${this.rowsFrom([["id", "text"]])}) ids)`,
      [JSON.stringify(ids.map((id) => [id]))],
    );
    return new Map(rows.map((r) => [r[0] as string, { presented: Number(r[1]), released: Number(r[2]) }]));
  }

  /** Writes key-generation records as given (distinct protector ids), in one statement. */
  async putKeyGenerations(
    rows: readonly { protectorId: string; presented: number; released: number; updatedAt: number }[],
  ): Promise<void> {
    await this.tx.run(
      `INSERT INTO key_protector_generations (protector_id, presented, released, updated_at)
       SELECT protector_id, presented, released, updated_at FROM (${this.rowsFrom([
         ["protector_id", "text"],
         ["presented", "bigint"],
         ["released", "bigint"],
         ["updated_at", "bigint"],
       ])}) t WHERE true
       ON CONFLICT (protector_id) DO UPDATE SET
         presented = excluded.presented, released = excluded.released, updated_at = excluded.updated_at`,
      [JSON.stringify(rows.map((r) => [r.protectorId, r.presented, r.released, r.updatedAt]))],
    );
  }

  /**
   * Inserts used nonces (distinct values) unless taken, in one statement; resolves to the values
   * it inserted — the others were already in the table (single use across every node).
   */
  async claimNonces(
    ns: readonly (Omit<NonceRow, "payload"> & { readonly usedAt: number })[],
  ): Promise<Set<string>> {
    const rows = await this.tx.queryRows(
      `INSERT INTO nonces (nonce, host_id, purpose, expires_at, used_at)
       SELECT nonce, host_id, purpose, expires_at, used_at FROM (${this.rowsFrom([
         ["nonce", "text"],
         ["host_id", "text"],
         ["purpose", "text"],
         ["expires_at", "bigint"],
         ["used_at", "bigint"],
       ])}) t WHERE true
       ON CONFLICT (nonce) DO NOTHING RETURNING nonce`,
      [JSON.stringify(ns.map((n) => [n.nonce, n.hostId, n.purpose, n.expiresAt, n.usedAt]))],
    );
    return new Set(rows.map((r) => r[0] as string));
  }

  /** Appends entries at the head, in order, in one statement (the head trigger checks each). */
  async insertAudits(es: readonly AuditRow[]): Promise<void> {
    await this.tx.run(
      `INSERT INTO audit (seq, at, event, host_id, detail, prev_hash, hash)
       SELECT seq, at, event, host_id, detail, prev_hash, hash FROM (${this.rowsFrom([
         ["seq", "bigint"],
         ["at", "bigint"],
         ["event", "text"],
         ["host_id", "text"],
         ["detail", "text"],
         ["prev_hash", "text"],
         ["hash", "text"],
       ])}) t ORDER BY seq`,
      [JSON.stringify(es.map((e) => [e.seq, e.at, e.event, e.hostId, e.detail, e.prevHash, e.hash]))],
    );
  }

  /** Held until the transaction ends; on SQLite the transaction itself is exclusive. */
  lockAudit(): Promise<void> {
    return this.tx.lock(AUDIT_LOCK);
  }

  async lastAudit(): Promise<{ seq: number; hash: string } | undefined> {
    const rows = await this.tx.query<{ seq: number; hash: string }>(
      `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`,
    );
    const r = rows[0];
    return r ? { seq: Number(r.seq), hash: r.hash } : undefined;
  }

  async insertAudit(e: AuditRow): Promise<void> {
    await this.tx.run(
      `INSERT INTO audit (seq, at, event, host_id, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      [e.seq, e.at, e.event, e.hostId, e.detail, e.prevHash, e.hash],
    );
  }
}

export class HgsRepo extends Tables {
  constructor(readonly driver: Driver) {
    super(driver);
  }

  /** Brings the schema up to date (see migrations.ts); resolves to the versions applied now. */
  migrate(): Promise<number[]> {
    return migrate(this.driver);
  }

  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: RepoTx) => Promise<T>): Promise<T> {
    return this.driver.transaction((tx) => fn(new RepoTx(tx, this.driver.kind)));
  }

  close(): Promise<void> {
    return this.driver.close();
  }
}
