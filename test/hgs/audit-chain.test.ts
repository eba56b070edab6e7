/**
 * The audit chain's hash over the stored text (audit-chain.ts `entryHashOfText`), and what
 * verify still reports with it: the hash equals the rule's over the parsed detail for every
 * canonical text; a detail stored in another form of the same content is `detail-not-canonical`
 * (and nothing else), an edited detail is `hash-mismatch`, as before. Rows are written past the
 * table's guards (triggers dropped) on a real SQLite database.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { canonicalJson } from "../../src/attest/json.js";
import { entryHash, entryHashOfText, GENESIS, isCanonicalText } from "../../src/hgs/audit-chain.js";
import { appendAudit, verifyAuditChain } from "../../src/hgs/audit.js";
import { openDriver } from "../../src/hgs/store/driver.js";
import { HgsRepo } from "../../src/hgs/store/repo.js";

const DETAILS: Record<string, unknown>[] = [
  {},
  { mode: "key", jti: "00ff", exp: 1_800_000_000 },
  { z: 1, a: [3, { y: null, b: "x" }], m: { k: true, c: -0.5 } },
  { name: 'h\u00f4te \u2603 \ud83d\ude00 "quoted" \\ back', nested: { deep: [[], {}, [1e21, 5e-7]] } },
];

describe("audit chain hash over the stored text", () => {
  it("equals the rule's hash over the parsed detail for every canonical text", () => {
    let prev = GENESIS;
    DETAILS.forEach((detail, i) => {
      for (const hostId of [null, "a".repeat(64)]) {
        const e = { seq: i + 1, at: 1_764_000_000_000 + i, event: "key.released", hostId };
        const text = canonicalJson(detail);
        assert.equal(entryHashOfText(prev, e, text), entryHash(prev, { ...e, detail }));
        // Another spelling of the same content hashes differently: the text is what counts.
        if (Object.keys(detail).length > 1)
          assert.notEqual(
            entryHashOfText(prev, e, JSON.stringify(detail, null, 1)),
            entryHash(prev, { ...e, detail }),
          );
      }
      prev = entryHash(prev, { seq: i + 1, at: 0, event: "x", hostId: null, detail });
    });
  });
});

describe("canonical text check", () => {
  it("answers as comparing with canonicalJson does, for canonical and other spellings", () => {
    const values: unknown[] = [
      ...DETAILS,
      { "10": 1, "2": 2, b: 3 }, // integer-like keys: objects order them numerically
      { b: 1, a: 2 },
      [{ b: 1, a: { d: 1, c: 2 } }],
      "text",
      42,
      null,
    ];
    for (const v of values) {
      for (const text of [canonicalJson(v), JSON.stringify(v), JSON.stringify(v, null, 1)]) {
        const parsed: unknown = JSON.parse(text);
        assert.equal(isCanonicalText(text, parsed), canonicalJson(parsed) === text, text);
      }
    }
    assert.equal(isCanonicalText('{"b":1,"a":2}', { b: 1, a: 2 }), false);
    assert.equal(isCanonicalText('{"10":1,"2":2}', JSON.parse('{"10":1,"2":2}')), true);
  });
});

describe("verify with hashes over the stored text", () => {
  let root: string;
  let repo: HgsRepo;

  before(async () => {
    root = mkdtempSync(path.join(tmpdir(), "bulwark-audit-chain-"));
    repo = new HgsRepo(await openDriver({ kind: "sqlite", path: path.join(root, "hgs.db") }));
    await repo.migrate();
    await repo.transaction(async (tx) => {
      for (const d of DETAILS) await appendAudit(tx, "config.changed", null, d);
    });
  });

  after(async () => {
    await repo.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("passes the chain as written", async () => {
    const v = await verifyAuditChain(repo);
    assert.equal(v.ok, true, JSON.stringify(v.findings));
    assert.equal(v.entries, DETAILS.length);
  });

  it("reports a re-spelled detail as not canonical only, and an edited one as a hash mismatch", async () => {
    for (const t of ["audit_no_update", "audit_no_delete", "audit_append_at_head"])
      await repo.driver.run(`DROP TRIGGER ${t}`);
    const respelled = JSON.stringify({ jti: "00ff", mode: "key", exp: 1_800_000_000 }, null, 1);
    await repo.driver.run(`UPDATE audit SET detail = ? WHERE seq = 2`, [respelled]);
    const edited = canonicalJson({ z: 2, a: [3, { y: null, b: "x" }], m: { k: true, c: -0.5 } });
    await repo.driver.run(`UPDATE audit SET detail = ? WHERE seq = 3`, [edited]);
    const v = await verifyAuditChain(repo);
    assert.equal(v.ok, false);
    assert.deepEqual(
      v.findings.map((f) => `${f.seq}:${f.id}`),
      ["2:audit.detail-not-canonical", "3:audit.hash-mismatch"],
    );
  });
});
