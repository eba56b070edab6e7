/**
 * Hardening issue 11, item 7: `bulwark hgs init` leaves nothing readable by other users and
 * nothing behind when it fails. Real processes (the compiled CLI), real SQLite, a real
 * PostgreSQL cluster.
 */
import assert from "node:assert/strict";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { openHgs } from "../../src/hgs/context.js";
import { addKeyHost } from "../../src/hgs/admin.js";
import { ecKey, pem } from "../helpers/hgs-fixture.js";
import { startPostgres, type PgCluster } from "../helpers/hgs-postgres.js";
import { hgsCli } from "../helpers/hgs-proc.js";

const mode = (p: string) => statSync(p).mode & 0o777;
const code = (r: { stderr: string; json: unknown }) =>
  (r.json as { error?: { code?: string } } | undefined)?.error?.code ?? r.stderr;

describe("hgs init: file modes (issue 11 item 7)", () => {
  let root: string;
  before(() => {
    // What a default login shell has: without a fix, new files are world-readable.
    process.umask(0o022);
    root = mkdtempSync(path.join(tmpdir(), "bulwark-hgs-init-"));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("refuses an existing directory other users can enter, and writes nothing there", () => {
    for (const m of [0o755, 0o750, 0o711, 0o701, 0o777]) {
      const dir = path.join(root, `open-${m.toString(8)}`);
      mkdirSync(dir);
      chmodSync(dir, m);
      const r = hgsCli(["init", "--dir", dir, "--json"]);
      assert.equal(r.status, 4, `${m.toString(8)}: ${r.stdout} ${r.stderr}`);
      assert.match(code(r), /HGS_ERR_UNSAFE_PERMISSIONS/);
      assert.deepEqual(readdirSync(dir), [], "nothing written");
      assert.equal(mode(dir), m, "the operator's directory is left as it was");
    }
  });

  it("initialises an existing empty 0700 directory, and a new one as 0700", () => {
    const existing = path.join(root, "private");
    mkdirSync(existing, { mode: 0o700 });
    assert.equal(hgsCli(["init", "--dir", existing]).status, 0);
    const fresh = path.join(root, "new", "deeper", "hgs");
    assert.equal(hgsCli(["init", "--dir", fresh]).status, 0);
    assert.equal(mode(fresh), 0o700);
    for (const dir of [existing, fresh]) {
      for (const f of [
        "hgs.db",
        "hgs.json",
        "guardian.pem",
        "tls.key",
        "attestation-signer.pem",
        "admin-credential",
      ])
        assert.equal(mode(path.join(dir, f)), 0o600, `${dir}/${f}`);
    }
  });

  it("creates a SQLite database elsewhere 0600, and its -wal and -shm too", async () => {
    const shared = path.join(root, "shared");
    mkdirSync(shared, { mode: 0o755 });
    chmodSync(shared, 0o755);
    const dbPath = path.join(shared, "fabric.db");
    const dir = path.join(root, "elsewhere");
    const r = hgsCli(["init", "--dir", dir, "--db", `sqlite:${dbPath}`]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(mode(dbPath), 0o600);
    const ctx = await openHgs(dir);
    try {
      await addKeyHost(ctx, "wal-writer", pem(ecKey()));
      for (const f of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`]) {
        assert.ok(existsSync(f), f);
        assert.equal(mode(f), 0o600, f);
      }
    } finally {
      await ctx.close();
    }
  });

  it("refuses an existing SQLite file other users can read", () => {
    const dbPath = path.join(root, "open.db");
    new Database(dbPath).close();
    chmodSync(dbPath, 0o644);
    const dir = path.join(root, "with-open-db");
    const r = hgsCli(["init", "--dir", dir, "--db", `sqlite:${dbPath}`, "--json"]);
    assert.equal(r.status, 4, r.stderr);
    assert.match(code(r), /HGS_ERR_UNSAFE_PERMISSIONS/);
    assert.ok(!existsSync(dir), "the directory it would have made is not left behind");
  });
});

describe("hgs init: all or nothing (issue 11 item 7)", () => {
  let root: string;
  let pg: PgCluster | undefined;
  before(() => {
    root = mkdtempSync(path.join(tmpdir(), "bulwark-hgs-init-"));
  });
  after(() => {
    pg?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  function assertClean(dir: string, existed: boolean) {
    if (existed) assert.deepEqual(readdirSync(dir), [], `${dir} holds nothing`);
    else assert.ok(!existsSync(dir), `${dir} is not left behind`);
  }

  it("an unreachable PostgreSQL leaves no keys, and the retry initialises", () => {
    const dir = path.join(root, "unreachable");
    const r = hgsCli(["init", "--dir", dir, "--db", "postgres://hgs:secret@127.0.0.1:1/hgs", "--json"]);
    assert.equal(r.status, 8, r.stderr);
    assert.equal(code(r), "HGS_ERR_STORE");
    assert.ok(!r.stdout.includes("secret") && !r.stderr.includes("secret"), "the password is never printed");
    assertClean(dir, false);
    const retry = hgsCli(["init", "--dir", dir, "--json"]);
    assert.equal(retry.status, 0, retry.stderr);
  });

  it("a PostgreSQL that refuses the database (real server) leaves an existing directory empty", () => {
    pg = startPostgres();
    const dir = path.join(root, "pg-refused");
    mkdirSync(dir, { mode: 0o700 });
    const missing = pg.url.replace("/postgres?", "/no_such_database?");
    const r = hgsCli(["init", "--dir", dir, "--db", missing, "--json"]);
    assert.equal(r.status, 8, r.stderr);
    assertClean(dir, true);
    const retry = hgsCli(["init", "--dir", dir, "--db", pg.url, "--json"]);
    assert.equal(retry.status, 0, retry.stderr);
    assert.equal(mode(path.join(dir, "hgs.json")), 0o600);
  });

  it("a database that belongs to another fabric leaves the second directory clean", () => {
    const dbPath = path.join(root, "owned.db");
    const first = path.join(root, "first");
    assert.equal(hgsCli(["init", "--dir", first, "--db", `sqlite:${dbPath}`]).status, 0);
    const second = path.join(root, "second");
    const r = hgsCli(["init", "--dir", second, "--db", `sqlite:${dbPath}`, "--json"]);
    assert.equal(r.status, 6, r.stderr);
    assert.equal(code(r), "HGS_ERR_EXISTS");
    assertClean(second, false);
    // The first fabric is untouched.
    assert.equal(hgsCli(["host", "list", "--dir", first]).status, 0);
  });

  it("a file that is not a SQLite database is refused, kept as it was, and the directory left clean", () => {
    const dir = path.join(root, "sqlite-fail");
    mkdirSync(dir, { mode: 0o700 });
    const notDb = path.join(root, "not-a-database");
    writeFileSync(notDb, "x".repeat(4096), { mode: 0o600 });
    const r = hgsCli(["init", "--dir", dir, "--db", `sqlite:${notDb}`, "--json"]);
    assert.equal(r.status, 8, r.stderr);
    assert.equal(code(r), "HGS_ERR_STORE");
    assertClean(dir, true);
    assert.equal(statSync(notDb).size, 4096);
  });
});

describe("hgs host list: names stored before the name rule (issue 11 item 7)", () => {
  let root: string;
  before(() => {
    root = mkdtempSync(path.join(tmpdir(), "bulwark-hgs-names-"));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("escapes controls, bidi overrides and invisible characters of an old row", () => {
    const dir = path.join(root, "hgs");
    assert.equal(hgsCli(["init", "--dir", dir]).status, 0);
    const raw = "evil\u202Egpj.exe\u001b[2J\u009b31m\u200Bx\nforged-line";
    const db = new Database(path.join(dir, "hgs.db"));
    db.prepare(`INSERT INTO hosts (id, name, kind, public_key, created_at) VALUES (?, ?, 'key', ?, ?)`).run(
      "ab".repeat(32),
      raw,
      Buffer.alloc(1),
      Date.now(),
    );
    db.close();
    const r = hgsCli(["host", "list", "--dir", dir]);
    assert.equal(r.status, 0, r.stderr);
    for (const c of ["\u202E", "\u001b", "\u009b", "\u200B"])
      assert.ok(!r.stdout.includes(c), JSON.stringify(c));
    assert.equal(r.stdout.trim().split("\n").length, 1, "one host, one line");
    assert.match(r.stdout, /evil\\u\{202e\}gpj\.exe\\u\{1b\}\[2J\\u\{9b\}31m\\u\{200b\}x\\u\{a\}forged-line/);
    // JSON keeps the stored string exactly (a JSON reader decides how to show it).
    const j = hgsCli(["host", "list", "--dir", dir, "--json"]);
    assert.equal((j.json as { name: string }[])[0]?.name, raw);
  });
});
