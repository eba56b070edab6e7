/**
 * Hardening item 3 (a), over a real HTTPS server on loopback: unauthenticated garbage no longer
 * grows the audit log and the nonce table without bound. Failed requests drain a per-source
 * bucket (then 429 HGS_ERR_RATE_LIMITED with Retry-After, before any work); refusals of callers
 * that proved no identity are audited in full only for the first few per source and interval,
 * the rest counted into one `request.refused` entry; outstanding challenges are capped per source
 * (429) and in total (503 HGS_ERR_NONCES_FULL), expired ones swept. A registered host doing
 * successful attestations and releases is never throttled.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, request } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { attestKeyMessage, keyId, signWithHostKey, spkiDer } from "../../src/attest/host-key.js";
import { listAuditEntries } from "../../src/hgs/admin.js";
import { initHgs, type HgsContext } from "../../src/hgs/context.js";
import { buildServer } from "../../src/hgs/http/server.js";
import { EXPIRED_GRACE_MS, NonceBook } from "../../src/hgs/nonces.js";
import { DETAILED_PER_SOURCE } from "../../src/hgs/refusals.js";
import type { SourceLimits } from "../../src/hgs/http/rate-limit.js";
import { releaseRequestBody } from "../../src/host/guarded/hgs-client.js";
import { ecKey, pem, protectorFor } from "../helpers/hgs-fixture.js";
import { hgsCli, startServe } from "../helpers/hgs-proc.js";

interface Node {
  readonly root: string;
  readonly ctx: HgsContext;
  readonly app: FastifyInstance;
  readonly url: string;
  readonly agent: Agent;
  readonly adminCredential: string;
  close(): Promise<void>;
}

async function startNode(limits: Partial<SourceLimits> = {}): Promise<Node> {
  const root = mkdtempSync(path.join(tmpdir(), "bulwark-hgs-limit-"));
  const init = await initHgs(path.join(root, "hgs"));
  const app = await buildServer(init.ctx, { limits });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const agent = new Agent({ keepAlive: true, maxSockets: 8, ca: init.ctx.dir.tlsCertPem });
  return {
    root,
    ctx: init.ctx,
    app,
    url: `https://127.0.0.1:${port}`,
    agent,
    adminCredential: init.adminCredential,
    async close() {
      agent.destroy();
      await app.close();
      await init.ctx.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

interface Answer {
  readonly status: number;
  readonly retryAfter: string | undefined;
  readonly body: { error?: { code: string; details: Record<string, unknown> } } & Record<string, unknown>;
}

function call(node: Node, method: string, p: string, body?: unknown, bearer?: string): Promise<Answer> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(p, node.url),
      {
        method,
        agent: node.agent,
        headers: {
          ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}),
          ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: res.headers["retry-after"],
            body: JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Answer["body"],
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

const garbageAttestation = () => ({
  hostId: randomBytes(32).toString("hex"),
  nonce: randomBytes(32).toString("hex"),
  keyReleaseKey: spkiDer(ecKey()).toString("base64"),
  signature: randomBytes(64).toString("base64"),
});

async function auditCount(ctx: HgsContext): Promise<number> {
  return (await listAuditEntries(ctx, 0, 10_000)).length;
}

describe("HGS per-source limits over HTTPS (hardening item 3a)", () => {
  let node: Node;
  let keyBody: unknown;
  before(async () => {
    node = await startNode();
    keyBody = garbageAttestation();
    const s = await call(node, "PATCH", "/admin/v1/settings", { mode: "key" }, node.adminCredential);
    assert.equal(s.status, 200);
  });
  after(() => node?.close());

  it("garbage attestations: 429 with Retry-After once the source's failures are used up; the audit log grows by a bounded number of entries", async () => {
    const before = await auditCount(node.ctx);
    const answers: Answer[] = [];
    const t0 = performance.now();
    for (let i = 0; i < 300; i++)
      answers.push(await call(node, "POST", "/host/v1/attest/key", garbageAttestation()));
    const seconds = (performance.now() - t0) / 1000;
    const refused = answers.filter((a) => a.status === 403).length;
    const limited = answers.filter((a) => a.status === 429);
    // The default burst of 100 failures, plus what 10 per second gave back meanwhile.
    assert.ok(refused >= 100 && refused <= 100 + Math.ceil(seconds * 10) + 1, `${refused} in ${seconds} s`);
    assert.equal(limited.length, 300 - refused);
    assert.ok(limited.length > 0);
    for (const a of limited) {
      assert.equal(a.body.error?.code, "HGS_ERR_RATE_LIMITED");
      assert.equal(a.body.error?.details.finding, "request.rate-limited");
      assert.ok(Number(a.retryAfter) >= 1, `Retry-After: ${a.retryAfter}`);
    }
    await node.ctx.audit.drain();
    const entries = (await listAuditEntries(node.ctx, 0, 10_000)).slice(before);
    const detailed = entries.filter((e) => e.event === "attestation.failed");
    const summaries = entries.filter((e) => e.event === "request.refused");
    assert.equal(detailed.length, DETAILED_PER_SOURCE);
    assert.equal(summaries.length, 1, JSON.stringify(summaries));
    const s = summaries[0]!.detail as {
      source: string;
      counted: number;
      rateLimited: number;
      findings: Record<string, number>;
    };
    assert.equal(s.source, "127.0.0.1");
    assert.equal(s.counted, refused - DETAILED_PER_SOURCE);
    assert.equal(s.rateLimited, limited.length);
    assert.equal(s.findings["nonce.unknown"], refused - DETAILED_PER_SOURCE);
    assert.equal(entries.length, DETAILED_PER_SOURCE + 1);
  });

  it("the bucket refills: after Retry-After seconds the source is heard again", async () => {
    let r = await call(node, "POST", "/host/v1/attest/key", keyBody);
    for (let i = 0; i < 200 && r.status !== 429; i++)
      r = await call(node, "POST", "/host/v1/attest/key", keyBody);
    assert.equal(r.status, 429);
    await new Promise((res) => setTimeout(res, Number(r.retryAfter) * 1000 + 100));
    assert.equal((await call(node, "POST", "/host/v1/attest/key", keyBody)).status, 403);
  });
});

describe("HGS challenges are capped per source and in total (hardening item 3a)", () => {
  it("a source holding its limit of unused challenges gets 429 HGS_ERR_RATE_LIMITED until one is used or expires", async () => {
    const node = await startNode({ noncesPerSource: 20 });
    try {
      const hostKey = ecKey();
      await call(node, "PATCH", "/admin/v1/settings", { mode: "key" }, node.adminCredential);
      const reg = await call(
        node,
        "POST",
        "/admin/v1/hosts/key",
        { name: "h", publicKey: pem(hostKey) },
        node.adminCredential,
      );
      assert.equal(reg.status, 200);
      const hostId = keyId(hostKey);
      const nonces: string[] = [];
      for (let i = 0; i < 20; i++) {
        const r = await call(node, "POST", "/host/v1/challenge", { hostId: randomBytes(32).toString("hex") });
        assert.equal(r.status, 200);
      }
      const over = await call(node, "POST", "/host/v1/challenge", { hostId });
      assert.equal(over.status, 429);
      assert.equal(over.body.error?.code, "HGS_ERR_RATE_LIMITED");
      assert.equal(over.body.error?.details.finding, "nonce.source-limit");
      assert.ok(Number(over.retryAfter) >= 1);
      const count = await node.ctx.repo.outstandingNonces("127.0.0.1", Date.now(), 1000);
      assert.equal(count, 20);
      // Expired challenges free the source's slots.
      await node.ctx.repo.driver.run(`UPDATE nonces SET expires_at = ?`, [Date.now() - 1]);
      const again = await call(node, "POST", "/host/v1/challenge", { hostId });
      assert.equal(again.status, 200);
      nonces.push(String(again.body.nonce));
      assert.equal(nonces.length, 1);
    } finally {
      await node.close();
    }
  });

  it("the table holds at most its total of unused challenges (503 HGS_ERR_NONCES_FULL); expired ones are swept", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "bulwark-hgs-nonces-"));
    const init = await initHgs(path.join(root, "hgs"));
    try {
      const book = new NonceBook(init.ctx.repo, undefined, 25);
      for (let i = 0; i < 25; i++) await book.issue("h", "attest-key", 60);
      await assert.rejects(
        book.issue("h", "attest-key", 60),
        (e: { code?: string; details?: { finding?: string } }) => {
          assert.equal(e.code, "HGS_ERR_NONCES_FULL");
          assert.equal(e.details?.finding, "nonce.table-full");
          return true;
        },
      );
      await init.ctx.repo.driver.run(`UPDATE nonces SET expires_at = ?`, [
        Date.now() - EXPIRED_GRACE_MS - 1000,
      ]);
      await book.issue("h", "attest-key", 60);
      const left = await init.ctx.repo.driver.query<{ n: number }>(`SELECT COUNT(*) AS n FROM nonces`);
      assert.equal(Number(left[0]?.n), 1, "the expired ones were deleted");
    } finally {
      await init.ctx.close();
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("bulwark hgs serve --nonces-per-source", () => {
  it("sets the per-source challenge cap of the node (the benchmark raises it); 0 is a usage error", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "bulwark-hgs-serve-limit-"));
    const dir = path.join(root, "hgs");
    assert.equal(hgsCli(["init", "--dir", dir]).status, 0);
    assert.equal(hgsCli(["serve", "--dir", dir, "--nonces-per-source", "0"]).status, 2);
    const serve = await startServe(dir, ["--nonces-per-source", "3"]);
    try {
      const agent = new Agent({ keepAlive: true, ca: readFileSync(path.join(dir, "tls.crt"), "utf8") });
      const node = { url: serve.url, agent } as unknown as Node;
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++)
        statuses.push(
          (await call(node, "POST", "/host/v1/challenge", { hostId: randomBytes(32).toString("hex") }))
            .status,
        );
      agent.destroy();
      assert.deepEqual(statuses, [200, 200, 200, 429]);
    } finally {
      await serve.stop();
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("a registered host is never throttled for succeeding (bench/hgs-load)", () => {
  it("120 successful attestations and 120 releases from one source after it used up its failures", async () => {
    const node = await startNode({ failureBurst: 5, failuresPerSecond: 1 });
    try {
      const hostKey = ecKey();
      const krk = ecKey();
      await call(node, "PATCH", "/admin/v1/settings", { mode: "key" }, node.adminCredential);
      await call(
        node,
        "POST",
        "/admin/v1/hosts/key",
        { name: "h", publicKey: pem(hostKey) },
        node.adminCredential,
      );
      const hostId = keyId(hostKey);
      const attest = async () => {
        const c = await call(node, "POST", "/host/v1/challenge", { hostId });
        assert.equal(c.status, 200, JSON.stringify(c.body));
        const nonce = String(c.body.nonce);
        const krkSpki = spkiDer(krk);
        const signature = signWithHostKey(
          hostKey,
          attestKeyMessage(Buffer.from(nonce, "hex"), krkSpki, hostId),
        );
        return call(node, "POST", "/host/v1/attest/key", {
          hostId,
          nonce,
          keyReleaseKey: krkSpki.toString("base64"),
          signature: Buffer.from(signature).toString("base64"),
        });
      };
      let cert = "";
      for (let i = 0; i < 120; i++) {
        const a = await attest();
        assert.equal(a.status, 200, JSON.stringify(a.body));
        cert = String(a.body.healthCertificate);
      }
      const { keyProtector } = protectorFor(node.ctx.dir.guardianPublicPem);
      let kp = keyProtector;
      for (let i = 0; i < 120; i++) {
        const r = await call(node, "POST", "/host/v1/keys/release", releaseRequestBody(cert, krk, kp));
        assert.equal(r.status, 200, JSON.stringify(r.body));
        kp = Buffer.from(String(r.body.keyProtector), "base64");
      }
    } finally {
      await node.close();
    }
  });
});
