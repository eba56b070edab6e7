/**
 * The storage drivers: migrations (versioned, idempotent, refused when the schema is newer),
 * transactions (rollback on error), the append-only audit table, and the audit group commit —
 * on SQLite and on a private PostgreSQL cluster started (and stopped) here.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { AuditWriter, requireIntactAudit, verifyAuditChain } from "../../src/hgs/audit.js";
import { openDriver, parseDbSpec, type Driver } from "../../src/hgs/store/driver.js";
import { migrate, SCHEMA_VERSION } from "../../src/hgs/store/migrations.js";
import { HgsRepo } from "../../src/hgs/store/repo.js";
import { startPostgres, type PgCluster } from "../helpers/hgs-postgres.js";

function driverSuite(name: string, open: () => Promise<{ spec: string; cleanup: () => void }>) {
  describe(`${name} driver`, () => {
    let d: Driver;
    let spec: string;
    let cleanup: () => void;
    before(async () => {
      ({ spec, cleanup } = await open());
      d = await openDriver(parseDbSpec(spec) as NonNullable<ReturnType<typeof parseDbSpec>>);
    });
    after(async () => {
      await d?.close();
      cleanup?.();
    });

    it("migrates once, in order, and refuses a newer schema", async () => {
      assert.deepEqual(
        await migrate(d),
        Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
      );
      assert.deepEqual(await migrate(d), []);
      const other = await openDriver(parseDbSpec(spec) as NonNullable<ReturnType<typeof parseDbSpec>>);
      try {
        await other.run(`INSERT INTO hgs_schema (version, name, applied_at) VALUES (?, ?, ?)`, [
          99,
          "future",
          0,
        ]);
        await assert.rejects(migrate(other), (e: { code?: string }) => e.code === "HGS_ERR_MIGRATION");
        await other.run(`DELETE FROM hgs_schema WHERE version = 99`);
      } finally {
        await other.close();
      }
    });

    it("rolls a failed transaction back", async () => {
      await assert.rejects(
        d.transaction(async (tx) => {
          await tx.run(`INSERT INTO config (key, value) VALUES (?, ?)`, ["k", "v"]);
          throw new Error("boom");
        }),
        /boom/,
      );
      assert.deepEqual(await d.query(`SELECT * FROM config WHERE key = ?`, ["k"]), []);
      await assert.rejects(
        d.run(`INSERT INTO nope VALUES (1)`),
        (e: { code?: string }) => e.code === "HGS_ERR_STORE",
      );
    });

    it("group-commits concurrent audit appends into one intact chain; the table refuses edits", async () => {
      const repo = new HgsRepo(d);
      const w = new AuditWriter(repo);
      const entries = await Promise.all(
        Array.from({ length: 300 }, (_, i) => w.append("key.released", null, { i })),
      );
      assert.deepEqual(
        entries.map((e) => e.seq),
        Array.from({ length: 300 }, (_, i) => i + 1),
      );
      const v = requireIntactAudit(await verifyAuditChain(repo));
      assert.equal(v.ok, true);
      assert.equal(v.entries, 300);
      assert.equal(v.head, entries.at(-1)?.hash);
      await assert.rejects(d.run(`UPDATE audit SET at = 0`), /append-only/);
      await assert.rejects(d.run(`DELETE FROM audit`), /append-only/);
      const truncated = await verifyAuditChain(repo, "f".repeat(64));
      assert.equal(truncated.ok, false);
      assert.equal(truncated.findings[0]?.id, "audit.head-mismatch");
      assert.throws(
        () => requireIntactAudit(truncated),
        (e: { code?: string }) => e.code === "HGS_ERR_AUDIT_BROKEN",
      );
    });

    it("judges claims and key generations in queue order, within and across group commits", async () => {
      const repo = new HgsRepo(d);
      const w = new AuditWriter(repo);
      const claim = (nonce: string, protectorId: string, presented: number) => ({
        nonce: { nonce, hostId: "h", purpose: "release", expiresAt: Date.now() + 60_000, usedAt: Date.now() },
        taken: () => new Error(`taken ${nonce}`),
        generation: {
          protectorId,
          presented,
          released: presented + 1,
          rolledBack: (newest: { presented: number } | undefined) =>
            new Error(`rolled back ${nonce} < ${newest?.presented}`),
        },
      });
      // Queued in one tick: the first goes alone, the rest in the next group commit.
      const outcomes = await Promise.allSettled([
        w.append("key.released", "h", { n: 1 }, claim("r:a", "P", 5)),
        w.append("key.released", "h", { n: 2 }, claim("r:b", "P", 4)),
        w.append("key.released", "h", { n: 3 }, claim("r:a", "P", 5)),
        w.append("key.released", "h", { n: 4 }, claim("r:c", "Q", 1)),
        w.append("key.released", "h", { n: 5 }, claim("r:d", "P", 6)),
        w.append("key.released", "h", { n: 6 }, claim("r:e", "P", 5)),
        w.append("key.released", "h", { n: 7 }, claim("r:d", "R", 1)),
      ]);
      assert.deepEqual(
        outcomes.map((o) => (o.status === "fulfilled" ? "ok" : (o.reason as Error).message)),
        ["ok", "rolled back r:b < 5", "taken r:a", "ok", "ok", "rolled back r:e < 6", "taken r:d"],
      );
      assert.deepEqual(await repo.keyGenerations("P"), { presented: 6, released: 7 });
      assert.deepEqual(await repo.keyGenerations("Q"), { presented: 1, released: 2 });
      // A request refused for a taken claim still recorded its (newer or equal) generation first.
      assert.deepEqual(await repo.keyGenerations("R"), { presented: 1, released: 2 });
      for (const [n, exists] of [
        ["r:a", true],
        ["r:b", false],
        ["r:c", true],
        ["r:d", true],
        ["r:e", false],
      ] as const)
        assert.equal(await repo.nonceExists(n), exists, n);
      const v = requireIntactAudit(await verifyAuditChain(repo));
      assert.equal(v.ok, true);
    });
  });
}

driverSuite("sqlite", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "bulwark-hgs-store-"));
  return Promise.resolve({
    spec: `sqlite:${path.join(dir, "t.db")}`,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  });
});

let cluster: PgCluster | undefined;
after(() => cluster?.stop());
driverSuite("postgres", () => {
  cluster = startPostgres();
  return Promise.resolve({ spec: cluster.url, cleanup: () => undefined });
});
