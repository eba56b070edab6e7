/**
 * Hardening item 3 (b)-(d): the audit chain anchored by signed checkpoints kept outside the
 * database, on real SQLite and a real PostgreSQL cluster. An attacker who owns the database
 * rewrites the chain past the append-only triggers (SQLite INSERT OR REPLACE; triggers dropped),
 * empties the table (DELETE after dropping triggers; PostgreSQL TRUNCATE) or removes its tail:
 * each is refused by the table while its guards stand, and reported with its own finding once
 * they are dropped. `--head` takes any earlier head. Two nodes on one PostgreSQL database: each
 * node's checkpoints verify against the shared chain.
 */
import assert from "node:assert/strict";
import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import pg from "pg";
import { canonicalJson } from "../../src/attest/json.js";
import { auditVerdict, updateSettings } from "../../src/hgs/admin.js";
import { entryHash } from "../../src/hgs/audit-chain.js";
import {
  CHECKPOINTS_FILE,
  MAX_CHECKPOINTS,
  mergeCheckpoints,
  parseCheckpoints,
} from "../../src/hgs/audit-checkpoints.js";
import { verifyAuditChain } from "../../src/hgs/audit.js";
import { openHgs } from "../../src/hgs/context.js";
import type { AuditRow } from "../../src/hgs/store/repo.js";
import { admin, startHgs, type HgsFixture } from "../helpers/hgs-fixture.js";
import { startPostgres, type PgCluster } from "../helpers/hgs-postgres.js";
import { hgsCli } from "../helpers/hgs-proc.js";

type Db = (name: string) => Promise<string | undefined>;

/** `n` audited changes through the admin API. */
async function grow(fx: HgsFixture, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await admin(fx, "PATCH", "/admin/v1/settings", { nonceTtlSeconds: 60 + ((i * 7) % 3000) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
}

async function rows(fx: HgsFixture): Promise<AuditRow[]> {
  return fx.ctx.repo.auditAfter(0, 10_000);
}

/** The chain from `seq` on, with entry `seq`'s detail changed and every hash after it recomputed. */
function rewritten(all: AuditRow[], seq: number): AuditRow[] {
  const out: AuditRow[] = [];
  let prev = all.find((r) => r.seq === seq - 1)?.hash ?? "0".repeat(64);
  for (const r of all.filter((x) => x.seq >= seq)) {
    const detail =
      r.seq === seq
        ? { ...(JSON.parse(r.detail) as Record<string, unknown>), forged: true }
        : (JSON.parse(r.detail) as Record<string, unknown>);
    const hash = entryHash(prev, { ...r, detail });
    out.push({ ...r, detail: canonicalJson(detail), prevHash: prev, hash });
    prev = hash;
  }
  return out;
}

const values = (r: AuditRow) => [r.seq, r.at, r.event, r.hostId, r.detail, r.prevHash, r.hash];

/** Drops every guard the table has (what a database owner can always do). */
async function dropGuards(fx: HgsFixture): Promise<void> {
  const d = fx.ctx.repo.driver;
  for (const t of ["audit_no_update", "audit_no_delete", "audit_append_at_head", "audit_no_truncate"])
    await d.run(d.kind === "sqlite" ? `DROP TRIGGER IF EXISTS ${t}` : `DROP TRIGGER IF EXISTS ${t} ON audit`);
}

const ids = (v: { findings: readonly { id: string; severity: string }[] }) =>
  v.findings.filter((f) => f.severity === "error").map((f) => f.id);

function anchorSuite(label: string, db: Db): void {
  describe(`${label}: the audit chain anchored by signed checkpoints`, () => {
    let n = 0;
    const open = async () => {
      const spec = await db(`anchor_${++n}`);
      const fx = await startHgs(spec ? { db: spec } : {});
      await grow(fx, 6);
      assert.equal((await fx.ctx.checkpoints.take()).taken, true);
      return fx;
    };

    it("(b) a rewritten, re-hashed chain is refused by the table, and reported rewritten when its guards are gone", async () => {
      const fx = await open();
      try {
        const d = fx.ctx.repo.driver;
        const forged = rewritten(await rows(fx), 3);
        const replace =
          d.kind === "sqlite"
            ? `INSERT OR REPLACE INTO audit (seq, at, event, host_id, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)`
            : `INSERT INTO audit (seq, at, event, host_id, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (seq) DO UPDATE SET at = EXCLUDED.at, event = EXCLUDED.event, host_id = EXCLUDED.host_id,
               detail = EXCLUDED.detail, prev_hash = EXCLUDED.prev_hash, hash = EXCLUDED.hash`;
        await assert.rejects(d.run(replace, values(forged[0]!)), /append-only/);
        assert.equal((await auditVerdict(fx.ctx)).ok, true);

        await dropGuards(fx);
        for (const r of forged) await d.run(replace, values(r));
        // The chain alone links again: only the checkpoints can tell.
        const bare = await verifyAuditChain(fx.ctx.repo);
        assert.equal(bare.ok, true, JSON.stringify(bare.findings));
        const v = await auditVerdict(fx.ctx);
        assert.equal(v.ok, false);
        assert.deepEqual([...new Set(ids(v))], ["audit.rewritten"]);
        assert.ok(v.findings.every((f) => f.severity !== "error" || f.seq >= 3));
      } finally {
        await fx.close();
      }
    });

    it("(c) an emptied table is refused while guarded, and reported emptied (not 'intact: 0 entries')", async () => {
      const fx = await open();
      try {
        const d = fx.ctx.repo.driver;
        await assert.rejects(
          d.run(d.kind === "sqlite" ? `DELETE FROM audit` : `TRUNCATE audit`),
          /append-only/,
        );
        await dropGuards(fx);
        await d.run(d.kind === "sqlite" ? `DELETE FROM audit` : `TRUNCATE audit`);
        const v = await auditVerdict(fx.ctx);
        assert.equal(v.entries, 0);
        assert.equal(v.ok, false);
        assert.deepEqual(ids(v), ["audit.emptied"]);
        // Even without any checkpoint, an initialised HGS never has an empty log.
        assert.deepEqual(ids(await verifyAuditChain(fx.ctx.repo)), ["audit.emptied"]);
        // And the node does not sign the emptied table's (non-)head.
        assert.equal((await fx.ctx.checkpoints.take()).taken, false);
      } finally {
        await fx.close();
      }
    });

    it("a removed tail is reported truncated; a new entry after it does not hide that", async () => {
      const fx = await open();
      try {
        const d = fx.ctx.repo.driver;
        await dropGuards(fx);
        await d.run(`DELETE FROM audit WHERE seq > ?`, [3]);
        const v = await auditVerdict(fx.ctx);
        assert.deepEqual(ids(v), ["audit.truncated"]);
        const checkpoint = await fx.ctx.checkpoints.take();
        assert.equal(checkpoint.taken, false);
        assert.equal(checkpoint.reason, "not-extended");
        await grow(fx, 5);
        assert.ok(ids(await auditVerdict(fx.ctx)).includes("audit.rewritten"));
      } finally {
        await fx.close();
      }
    });

    it("(d) --head takes any earlier head and says where it is; an unknown head is refused", async () => {
      const fx = await open();
      try {
        const earlier = (await rows(fx)).find((r) => r.seq === 4)!;
        await grow(fx, 3);
        const v = await auditVerdict(fx.ctx, earlier.hash);
        assert.equal(v.ok, true, JSON.stringify(v.findings));
        assert.equal(v.headAt, 4);
        assert.ok(v.passed.includes("audit.head"));
        const missing = await auditVerdict(fx.ctx, "f".repeat(64));
        assert.deepEqual(ids(missing), ["audit.head-mismatch"]);
        if (fx.ctx.repo.driver.kind === "sqlite") {
          const cli = hgsCli(["audit", "verify", "--dir", fx.dir, "--head", earlier.hash, "--json"]);
          assert.equal(cli.status, 0, cli.stdout + cli.stderr);
          assert.equal((cli.json as { headAt: number }).headAt, 4);
          const text = hgsCli(["audit", "verify", "--dir", fx.dir, "--head", earlier.hash]);
          assert.match(text.stdout, /found at #4/);
        }
      } finally {
        await fx.close();
      }
    });

    it("a checkpoint not signed by this HGS is reported; the export verifies with --checkpoints", async () => {
      const fx = await open();
      try {
        const file = path.join(fx.dir, CHECKPOINTS_FILE);
        const doc = parseCheckpoints(readFileSync(file, "utf8"));
        const c = doc.checkpoints.at(-1)!;
        const forged = { ...doc, checkpoints: [...doc.checkpoints, { ...c, seq: c.seq + 50 }] };
        writeFileSync(file, JSON.stringify(forged));
        const v = await auditVerdict(fx.ctx);
        assert.deepEqual(ids(v), ["audit.checkpoint-signature"]);
        writeFileSync(file, "{ not json");
        assert.deepEqual(ids(await auditVerdict(fx.ctx)), ["audit.checkpoints-unreadable"]);
        assert.equal(
          (await fx.ctx.checkpoints.take()).reason,
          "unreadable",
          "an unreadable file is never overwritten",
        );
        assert.equal(readFileSync(file, "utf8"), "{ not json");
        writeFileSync(file, JSON.stringify(doc));
        assert.equal((await auditVerdict(fx.ctx)).ok, true);

        if (fx.ctx.repo.driver.kind === "sqlite") {
          const exported = hgsCli(["audit", "checkpoints", "--dir", fx.dir, "--json"]);
          assert.equal(exported.status, 0, exported.stderr);
          const saved = path.join(fx.root, "export.json");
          writeFileSync(saved, exported.stdout);
          // The directory's own file is lost (or rolled back): the export still anchors the chain.
          rmSync(file);
          await dropGuards(fx);
          await fx.ctx.repo.driver.run(`DELETE FROM audit WHERE seq > ?`, [2]);
          const alone = hgsCli(["audit", "verify", "--dir", fx.dir, "--json"]);
          assert.equal(alone.status, 0, "without checkpoints a removed tail cannot be seen");
          const anchored = hgsCli(["audit", "verify", "--dir", fx.dir, "--checkpoints", saved, "--json"]);
          assert.equal(anchored.status, 4, anchored.stdout + anchored.stderr);
          assert.ok(
            ids(anchored.json as { findings: { id: string; severity: string }[] }).includes(
              "audit.truncated",
            ),
          );
        }
      } finally {
        await fx.close();
      }
    });

    it("the checkpoints route hands them to anyone, without a credential", async () => {
      const fx = await open();
      try {
        const r = await fx.app.inject({ method: "GET", url: "/audit/v1/checkpoints" });
        assert.equal(r.statusCode, 200);
        const body = r.json() as {
          signerId: string;
          signerCertificate: string;
          checkpoints: { seq: number }[];
        };
        assert.equal(body.signerId, fx.ctx.signer.id);
        assert.match(body.signerCertificate, /BEGIN CERTIFICATE/);
        assert.ok(body.checkpoints.some((c) => c.seq === 1));
        assert.equal(body.checkpoints.at(-1)?.seq, 7);
      } finally {
        await fx.close();
      }
    });
  });
}

describe("the checkpoint file stays bounded", () => {
  it(`keeps at most ${MAX_CHECKPOINTS}: the newest half all, the oldest always, older ones thinned`, () => {
    const many = Array.from({ length: 5000 }, (_, i) => ({
      seq: i + 1,
      hash: "a".repeat(64),
      at: i,
      signature: "",
    }));
    const kept = mergeCheckpoints(many.slice(2500), many.slice(0, 2600));
    assert.ok(kept.length <= MAX_CHECKPOINTS);
    assert.equal(kept[0]?.seq, 1);
    assert.deepEqual(
      kept.slice(-MAX_CHECKPOINTS / 2).map((c) => c.seq),
      many.slice(-MAX_CHECKPOINTS / 2).map((c) => c.seq),
    );
    assert.deepEqual(kept, mergeCheckpoints(kept), "merging is idempotent");
  });
});

anchorSuite("sqlite", () => Promise.resolve(undefined));

let cluster: PgCluster | undefined;
after(() => cluster?.stop());
async function database(name: string): Promise<string> {
  cluster ??= startPostgres();
  const client = new pg.Client({ connectionString: cluster.url });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  return cluster.url.replace("/postgres?", `/${name}?`);
}
anchorSuite("postgres", database);

describe("postgres: two nodes sharing one database each anchor the shared chain", () => {
  it("each node's checkpoints verify against the chain, and a removed tail breaks the other node's", async () => {
    const fx = await startHgs({ db: await database("anchor_two_nodes") });
    const dir2 = path.join(fx.root, "node2");
    cpSync(fx.dir, dir2, { recursive: true });
    rmSync(path.join(dir2, CHECKPOINTS_FILE));
    const node2 = await openHgs(dir2);
    try {
      await grow(fx, 2);
      assert.equal((await fx.ctx.checkpoints.take()).taken, true);
      for (let i = 0; i < 3; i++) await updateSettings(node2, { nonceTtlSeconds: 200 + i });
      assert.equal((await node2.checkpoints.take()).taken, true);
      await grow(fx, 1);
      assert.equal((await fx.ctx.checkpoints.take()).taken, true);
      const own = fx.ctx.checkpoints.anchors();
      const theirs = node2.checkpoints.document().checkpoints;
      const both = await verifyAuditChain(fx.ctx.repo, undefined, {
        ...own,
        checkpoints: [...own.checkpoints, ...theirs],
      });
      assert.equal(both.ok, true, JSON.stringify(both.findings));
      assert.equal(both.checkpoints, own.checkpoints.length + theirs.length);
      assert.equal((await auditVerdict(node2)).ok, true);

      await dropGuards(fx);
      const node2Newest = theirs.at(-1)!.seq;
      await fx.ctx.repo.driver.run(`DELETE FROM audit WHERE seq >= ?`, [node2Newest]);
      assert.deepEqual(ids(await auditVerdict(node2)), ["audit.truncated"]);
      assert.deepEqual(ids(await auditVerdict(fx.ctx)), ["audit.truncated"]);
    } finally {
      await node2.close();
      await fx.close();
    }
  });
});
