/**
 * The repository's typed rows (camelCase, Buffers, numbers, booleans) over a real SQLite store,
 * the single-use claim, and the deterministic sweep of expired nonces by the nonce book.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { NonceBook, EXPIRED_GRACE_MS } from "../../src/hgs/nonces.js";
import { openDriver } from "../../src/hgs/store/driver.js";
import { HgsRepo } from "../../src/hgs/store/repo.js";

describe("HGS repository (SQLite)", () => {
  let root: string;
  let repo: HgsRepo;
  before(async () => {
    root = mkdtempSync(path.join(tmpdir(), "bulwark-hgs-repo-"));
    repo = new HgsRepo(await openDriver({ kind: "sqlite", path: path.join(root, "t.db") }));
    await repo.migrate();
  });
  after(async () => {
    await repo.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("reads back the rows it writes, typed", async () => {
    const row = {
      id: "a".repeat(64),
      name: "h",
      kind: "tpm" as const,
      publicKey: null,
      ekPublic: Buffer.from([1, 2, 3]),
      ekCertificate: null,
      akPublic: null,
      createdAt: 1234,
    };
    await repo.insertHost(row);
    assert.deepEqual(await repo.host(row.id), { ...row, revokedAt: null, certificatesNotBefore: null });
    assert.equal(await repo.setHostRevokedAt(row.id, 99), true);
    assert.equal((await repo.host(row.id))?.revokedAt, 99);
    assert.equal(await repo.setHostRevokedAt("nope", 1), false);
    await repo.insertPolicy({ id: "P", enabled: true, locked: false });
    assert.deepEqual(await repo.policy("P"), { id: "P", enabled: true, locked: false });
    assert.deepEqual([...(await repo.enabledPolicyIds())], ["P"]);
  });

  it("a claim is single use, and is written only with the transaction that makes it", async () => {
    const claim = { nonce: "r:1", hostId: "h", purpose: "release", expiresAt: 10, usedAt: 5 };
    await assert.rejects(
      repo.transaction(async (tx) => {
        assert.deepEqual([...(await tx.claimNonces([claim]))], ["r:1"]);
        throw new Error("rolled back");
      }),
      /rolled back/,
    );
    assert.equal(await repo.nonceExists("r:1"), false);
    const other = { ...claim, nonce: "r:2" };
    assert.deepEqual([...(await repo.transaction((tx) => tx.claimNonces([claim, other])))], ["r:1", "r:2"]);
    assert.deepEqual(
      [...(await repo.transaction((tx) => tx.claimNonces([claim, { ...claim, nonce: "r:3" }])))],
      ["r:3"],
    );
  });

  it("sweeps nonces expired beyond the grace on the first issue, then at most once per interval", async () => {
    const now = Date.now();
    const old = {
      hostId: "h",
      purpose: "attest-key",
      payload: null,
      expiresAt: now - EXPIRED_GRACE_MS - 1000,
    };
    const recent = { hostId: "h", purpose: "attest-key", payload: null, expiresAt: now - 1000 };
    await repo.insertNonce({ nonce: "old-1", ...old });
    await repo.insertNonce({ nonce: "recent", ...recent });
    const book = new NonceBook(repo);
    const issued = await book.issue("h", "attest-key", 60);
    assert.equal(await repo.nonceExists("old-1"), false, "swept on the first issue");
    assert.equal(await repo.nonceExists("recent"), true, "kept within the grace (reported as expired)");
    assert.equal(await repo.nonceExists(issued.nonce), true);
    const expired = await book.consume("recent", "h", "attest-key");
    assert.ok("id" in expired);
    assert.equal(expired.id, "nonce.expired");
    assert.equal(expired.expected, `before ${new Date(recent.expiresAt).toISOString()}`);
    await repo.insertNonce({ nonce: "old-2", ...old });
    await book.issue("h", "attest-key", 60);
    assert.equal(await repo.nonceExists("old-2"), true, "no second sweep within the interval");
    await new NonceBook(repo).issue("h", "attest-key", 60);
    assert.equal(
      await repo.nonceExists("old-2"),
      false,
      "a new book (a node opening its store) sweeps first",
    );
  });
});
