/**
 * Versioned schema migrations. Each migration runs once, in order, inside one transaction that
 * holds a cluster-wide lock, so two HGS nodes starting together against one PostgreSQL database
 * do not race. A database whose schema is newer than this build is refused (HGS_ERR_MIGRATION).
 */
import { hgsError } from "../../attest/errors.js";
import type { Driver, Tx } from "./driver.js";

export const MIGRATION_LOCK = 0x48475301; // "HGS\x01"

interface Migration {
  readonly version: number;
  readonly name: string;
  sql(t: Driver["types"] & { readonly kind: Driver["kind"] }): readonly string[];
}

/**
 * v2: the audit table refuses UPDATE and DELETE. Defence in depth only: whoever can drop the
 * triggers can edit rows, and then the hash chain is what detects it.
 */
const appendOnlyAudit: Migration = {
  version: 2,
  name: "append-only audit",
  sql: (t) =>
    t.kind === "sqlite"
      ? [
          `CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END`,
          `CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END`,
        ]
      : [
          `CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$`,
          `CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_only()`,
        ],
};

/**
 * v3 (hardening item 3): the audit table grows only at its head, and cannot be truncated.
 * SQLite's INSERT OR REPLACE deletes the old row without firing DELETE triggers (unless the
 * connection set recursive_triggers, which an attacker's connection would not), so a BEFORE
 * INSERT trigger refuses any entry that is not the next one after the head and linked to it —
 * that also refuses a REPLACE of an existing seq. PostgreSQL's TRUNCATE skips row triggers, so a
 * statement-level BEFORE TRUNCATE trigger refuses it. Still defence in depth: the signed
 * checkpoints outside the database (audit-checkpoints.ts) are the anchor.
 * Nonces get the source of the challenge, so outstanding nonces can be capped per source.
 */
const auditHeadOnlyAndNonceSources: Migration = {
  version: 3,
  name: "audit grows at its head only; nonce sources",
  sql: (t) => [
    ...(t.kind === "sqlite"
      ? [
          `CREATE TRIGGER audit_append_at_head BEFORE INSERT ON audit
           WHEN NEW.seq <> COALESCE((SELECT MAX(seq) FROM audit), 0) + 1
             OR NEW.prev_hash <> COALESCE((SELECT hash FROM audit ORDER BY seq DESC LIMIT 1), '${"0".repeat(64)}')
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: an entry goes after the head'); END`,
        ]
      : [
          `CREATE FUNCTION audit_append_at_head() RETURNS trigger LANGUAGE plpgsql AS $$
           DECLARE last_seq BIGINT; last_hash TEXT;
           BEGIN
             SELECT seq, hash INTO last_seq, last_hash FROM audit ORDER BY seq DESC LIMIT 1;
             IF NEW.seq <> COALESCE(last_seq, 0) + 1 OR NEW.prev_hash <> COALESCE(last_hash, repeat('0', 64)) THEN
               RAISE EXCEPTION 'the audit log is append-only: an entry goes after the head';
             END IF;
             RETURN NEW;
           END $$`,
          `CREATE TRIGGER audit_append_at_head BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_at_head()`,
          `CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()`,
        ]),
    `ALTER TABLE nonces ADD COLUMN source TEXT`,
    `CREATE INDEX nonces_source ON nonces (source, expires_at)`,
  ],
};

/**
 * v4: a host's health certificates issued before this instant (ms) are refused; `host restore`
 * sets it, so lifting a revocation does not bring back certificates from before it.
 */
const hostCertificatesNotBefore: Migration = {
  version: 4,
  name: "host certificates not before",
  sql: (t) => [`ALTER TABLE hosts ADD COLUMN certificates_not_before ${t.bigint}`],
};

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: "initial schema",
    sql: (t) => [
      `CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
      `CREATE TABLE admin_credentials (id TEXT PRIMARY KEY, hash TEXT NOT NULL, created_at ${t.bigint} NOT NULL)`,
      `CREATE TABLE hosts (
         id TEXT PRIMARY KEY,
         name TEXT NOT NULL,
         kind TEXT NOT NULL,
         public_key ${t.blob},
         ek_public ${t.blob},
         ek_certificate ${t.blob},
         ak_public ${t.blob},
         revoked_at ${t.bigint},
         created_at ${t.bigint} NOT NULL)`,
      `CREATE TABLE nonces (
         nonce TEXT PRIMARY KEY,
         host_id TEXT NOT NULL,
         purpose TEXT NOT NULL,
         payload ${t.blob},
         expires_at ${t.bigint} NOT NULL,
         used_at ${t.bigint})`,
      `CREATE INDEX nonces_expiry ON nonces (expires_at)`,
      `CREATE TABLE baselines (
         id TEXT PRIMARY KEY,
         kind TEXT NOT NULL,
         name TEXT NOT NULL,
         body TEXT NOT NULL,
         created_at ${t.bigint} NOT NULL)`,
      `CREATE TABLE policies (id TEXT PRIMARY KEY, enabled INTEGER NOT NULL, locked INTEGER NOT NULL)`,
      `CREATE TABLE tpm_roots (fingerprint TEXT PRIMARY KEY, certificate ${t.blob} NOT NULL, created_at ${t.bigint} NOT NULL)`,
      `CREATE TABLE audit (
         seq ${t.bigint} PRIMARY KEY,
         at ${t.bigint} NOT NULL,
         event TEXT NOT NULL,
         host_id TEXT,
         detail TEXT NOT NULL,
         prev_hash TEXT NOT NULL,
         hash TEXT NOT NULL)`,
    ],
  },
  appendOnlyAudit,
  auditHeadOnlyAndNonceSources,
  hostCertificatesNotBefore,
  keyProtectorGenerations(5),
  baselinesRevision(6),
];

/** The config key {@link baselinesRevision} keeps. */
export const BASELINES_REVISION_KEY = "baselinesRevision";

/**
 * v6: a revision of the baselines table, bumped by the database itself on every INSERT, UPDATE,
 * DELETE (and, on PostgreSQL, TRUNCATE) of it — whoever writes: this node, another node, an
 * operator's SQL. A node keeps the parsed baselines of the revision it read and reads them again
 * only when the revision moved (context.ts `BaselineSet`), instead of reading and parsing every
 * baseline on every TPM attestation (1,000 of them at scale: bench/hgs-load). Whoever can drop
 * the trigger can also edit the rows unseen by a running node until its restart; such a writer
 * owns the database anyway (the audit chain and its checkpoints are what detect that).
 */
function baselinesRevision(version: number): Migration {
  return {
    version,
    name: "baselines revision",
    sql: (t) => [
      `INSERT INTO config (key, value) VALUES ('${BASELINES_REVISION_KEY}', '0')`,
      ...(t.kind === "sqlite"
        ? (["INSERT", "UPDATE", "DELETE"] as const).map(
            (op) =>
              `CREATE TRIGGER baselines_revision_${op.toLowerCase()} AFTER ${op} ON baselines BEGIN
                 UPDATE config SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = '${BASELINES_REVISION_KEY}';
               END`,
          )
        : [
            `CREATE FUNCTION baselines_revision_bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
               UPDATE config SET value = (value::bigint + 1)::text WHERE key = '${BASELINES_REVISION_KEY}';
               RETURN NULL;
             END $$`,
            `CREATE TRIGGER baselines_revision AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON baselines
               FOR EACH STATEMENT EXECUTE FUNCTION baselines_revision_bump()`,
          ]),
    ],
  };
}

/**
 * Rollback of key protectors in HGS mode (release.ts): per protector id, the newest transport-key
 * generation a host has presented (so a host held it) and the newest HGS issued. A release of an
 * older generation than `presented` is refused. (The version number is assigned where the list
 * is assembled: other migrations may land before this one.)
 */
function keyProtectorGenerations(version: number): Migration {
  return {
    version,
    name: "key-protector generations",
    sql: (t) => [
      `CREATE TABLE key_protector_generations (
         protector_id TEXT PRIMARY KEY,
         presented ${t.bigint} NOT NULL,
         released ${t.bigint} NOT NULL,
         updated_at ${t.bigint} NOT NULL)`,
    ],
  };
}

export const SCHEMA_VERSION = Math.max(...migrations.map((m) => m.version));

async function currentVersion(tx: Tx, driver: Driver): Promise<number> {
  const exists =
    driver.kind === "sqlite"
      ? await tx.query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'hgs_schema'`)
      : await tx.query(
          `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'hgs_schema'`,
        );
  if (exists.length === 0) {
    await tx.run(
      `CREATE TABLE hgs_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at ${driver.types.bigint} NOT NULL)`,
    );
    return 0;
  }
  const rows = await tx.query<{ v: number | null }>(`SELECT MAX(version) AS v FROM hgs_schema`);
  return Number(rows[0]?.v ?? 0);
}

/** Brings the schema to {@link SCHEMA_VERSION}; returns the versions applied now. */
export async function migrate(driver: Driver): Promise<number[]> {
  return driver.transaction(async (tx) => {
    await tx.lock(MIGRATION_LOCK);
    const have = await currentVersion(tx, driver);
    if (have > SCHEMA_VERSION) {
      throw hgsError(
        "HGS_ERR_MIGRATION",
        `the database schema is version ${have}, newer than this build's ${SCHEMA_VERSION}`,
        { have, supported: SCHEMA_VERSION },
      );
    }
    const applied: number[] = [];
    for (const m of migrations) {
      if (m.version <= have) continue;
      for (const stmt of m.sql({ ...driver.types, kind: driver.kind })) await tx.run(stmt);
      await tx.run(`INSERT INTO hgs_schema (version, name, applied_at) VALUES (?, ?, ?)`, [
        m.version,
        m.name,
        Date.now(),
      ]);
      applied.push(m.version);
    }
    return applied;
  });
}
