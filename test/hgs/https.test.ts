/**
 * The real service over HTTPS: `bulwark hgs init` and `serve` as processes, the host client with
 * a dead primary URL and a live fallback, administration by CLI and by the admin API, a restart
 * that keeps registrations, baselines, audit and the signer, and the audit chain checked by
 * `bulwark hgs audit verify` before and after an edit of the database.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { HgsClient, type HgsRefusal } from "../../src/host/guarded/hgs-client.js";
import { importGuardianPublicPem } from "../../src/protector/guardian.js";
import { ecKey, pem, protectorFor } from "../helpers/hgs-fixture.js";
import { hgsCli, startServe, type ServeProcess } from "../helpers/hgs-proc.js";
import { processAlive, processesMatching } from "../helpers/processes.js";

describe("HGS over real HTTPS, run by the CLI", () => {
  let root: string;
  let dir: string;
  let serve: ServeProcess | undefined;
  const hostKey = ecKey();
  const krk = ecKey();

  before(() => {
    root = mkdtempSync(path.join(tmpdir(), "bulwark-hgs-https-"));
    dir = path.join(root, "hgs");
  });
  after(async () => {
    await serve?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it("init writes keys 0600 and never prints the admin credential", () => {
    const r = hgsCli(["init", "--dir", dir, "--json"]);
    assert.equal(r.status, 0, r.stderr);
    const cred = readFileSync(path.join(dir, "admin-credential"), "utf8").trim();
    assert.match(cred, /^hgsadm_/);
    assert.ok(!r.stdout.includes(cred) && !r.stderr.includes(cred));
    for (const f of ["admin-credential", "guardian.pem", "attestation-signer.pem", "tls.key", "hgs.json"]) {
      assert.equal(statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
    }
    assert.equal(hgsCli(["init", "--dir", dir]).status, 6, "a second init must refuse (conflict)");
  });

  it("administers by CLI, attests and releases keys over HTTPS through the fallback URL", async () => {
    assert.equal(hgsCli(["mode", "set", "key", "--dir", dir]).status, 0);
    writeFileSync(path.join(root, "host.pem"), pem(hostKey));
    const add = hgsCli([
      "host",
      "add-key",
      "--dir",
      dir,
      "--name",
      "node-1",
      "--public-key",
      path.join(root, "host.pem"),
      "--json",
    ]);
    assert.equal(add.status, 0, add.stderr);
    const baseline = {
      format: "bulwark-hgs-baseline/v1",
      kind: "secureboot",
      name: "lab",
      bank: "sha256",
      pcrs: { "7": "ab".repeat(32) },
    };
    writeFileSync(path.join(root, "baseline.json"), JSON.stringify(baseline));
    assert.equal(hgsCli(["baseline", "add", path.join(root, "baseline.json"), "--dir", dir]).status, 0);

    serve = await startServe(dir);
    const ca = readFileSync(path.join(dir, "tls.crt"), "utf8");
    const client = new HgsClient({ urls: ["https://127.0.0.1:1", serve.url], ca, timeoutMs: 5000 });
    try {
      const info = await client.info();
      assert.equal(info.mode, "key");
      assert.equal(client.current, 1, "the fallback answered");
      // The guardian HGS publishes is what the protector library imports.
      const g = importGuardianPublicPem(info.guardian);
      assert.equal(g.name, "HGS");
      const cli = hgsCli(["guardian", "export", "--dir", dir]);
      assert.equal(cli.stdout, info.guardian);

      const a = await client.attestHostKey({ hostKey, keyReleaseKey: krk });
      assert.equal(a.verdict.status, "Passed");
      const { keyProtector, transportKey } = protectorFor(info.guardian);
      const r = await client.releaseKey({
        healthCertificate: a.healthCertificate,
        keyReleaseKey: krk,
        keyProtector,
      });
      assert.deepEqual(Buffer.from(r.oldKey.key), Buffer.from(transportKey.key));
      await assert.rejects(
        client.attestHostKey({ hostKey: ecKey(), keyReleaseKey: krk }),
        (e: HgsRefusal) => e.status === 403 && e.verdict?.status === "UnauthorizedHost",
      );
      writeFileSync(path.join(root, "cert.txt"), a.healthCertificate);

      const spec = (await client.request("GET", "/openapi.json")) as { paths: Record<string, unknown> };
      assert.ok(spec.paths["/host/v1/attest/tpm"]);
    } finally {
      client.close();
    }
  });

  it("keeps registrations, baselines, audit and the signer across a restart", async () => {
    // Nothing secret was printed by the service while it served the requests above.
    const printed = serve?.output() ?? "";
    const cred0 = readFileSync(path.join(dir, "admin-credential"), "utf8").trim();
    assert.ok(!printed.includes(cred0) && !printed.includes("PRIVATE KEY"), printed);
    assert.deepEqual(
      Object.keys(JSON.parse(serve?.stdout() ?? "") as object),
      ["listening", "pid"],
      "only the listening line on stdout",
    );
    for (const line of (serve?.stderr() ?? "").split("\n").filter(Boolean)) {
      assert.doesNotThrow(() => JSON.parse(line), `stderr holds only JSON log lines: ${line}`);
    }
    const pid = serve?.proc.pid as number;
    await serve?.stop();
    assert.equal(processAlive(pid), false);
    serve = await startServe(dir);
    const ca = readFileSync(path.join(dir, "tls.crt"), "utf8");
    const cred = readFileSync(path.join(dir, "admin-credential"), "utf8").trim();
    const client = new HgsClient({ urls: [serve.url], ca });
    try {
      const adminGet = async (p: string) => {
        const { request } = await import("node:https");
        return new Promise<unknown>((resolve, reject) => {
          const req = request(
            new URL(p, serve?.url),
            { ca, headers: { authorization: `Bearer ${cred}` } },
            (res) => {
              let s = "";
              res.on("data", (d: Buffer) => (s += d.toString()));
              res.on("end", () => resolve(JSON.parse(s)));
            },
          );
          req.on("error", reject);
          req.end();
        });
      };
      const hosts = (await adminGet("/admin/v1/hosts")) as { hosts: { name: string }[] };
      assert.deepEqual(
        hosts.hosts.map((h) => h.name),
        ["node-1"],
      );
      const baselines = (await adminGet("/admin/v1/baselines")) as { baselines: unknown[] };
      assert.equal(baselines.baselines.length, 1);
      const audit = (await adminGet("/admin/v1/audit/verify")) as { ok: boolean; entries: number };
      assert.equal(audit.ok, true);
      assert.ok(audit.entries >= 6);
      // A certificate issued before the restart still releases keys: same signer, same store.
      const cert = readFileSync(path.join(root, "cert.txt"), "utf8");
      const info = await client.info();
      const r = await client.releaseKey({
        healthCertificate: cert,
        keyReleaseKey: krk,
        keyProtector: protectorFor(info.guardian).keyProtector,
      });
      assert.equal(r.newKey.keyGeneration, r.oldKey.keyGeneration + 1);
    } finally {
      client.close();
    }
  });

  it("serves with --workers 2 and leaves no process behind", async () => {
    await serve?.stop();
    serve = await startServe(dir, ["--workers", "2"]);
    const ca = readFileSync(path.join(dir, "tls.crt"), "utf8");
    const clients = [0, 1, 2, 3].map(() => new HgsClient({ urls: [serve?.url as string], ca }));
    try {
      const infos = await Promise.all(clients.map((c) => c.info()));
      assert.ok(infos.every((i) => i.mode === "key"));
      const a = await (clients[0] as HgsClient).attestHostKey({ hostKey, keyReleaseKey: krk });
      assert.equal(a.verdict.status, "Passed");
    } finally {
      for (const c of clients) c.close();
    }
    const pid = serve.proc.pid as number;
    await serve.stop();
    serve = undefined;
    assert.equal(processAlive(pid), false);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(processesMatching(dir), [], "no HGS worker survives its primary");
  });

  it("`hgs audit verify` detects an edited entry", async () => {
    await serve?.stop();
    serve = undefined;
    const ok = hgsCli(["audit", "verify", "--dir", dir, "--json"]);
    assert.equal(ok.status, 0, ok.stdout);
    const db = new Database(path.join(dir, "hgs.db"));
    try {
      assert.throws(() => db.prepare(`UPDATE audit SET event = 'x'`).run(), /append-only/);
      db.prepare(`DROP TRIGGER audit_no_update`).run();
      db.prepare(`UPDATE audit SET event = 'key.refused' WHERE event = 'key.released'`).run();
    } finally {
      db.close();
    }
    const bad = hgsCli(["audit", "verify", "--dir", dir, "--json"]);
    assert.equal(bad.status, 4);
    assert.ok(
      (bad.json as { findings: { id: string }[] }).findings.some((f) => f.id === "audit.hash-mismatch"),
    );
  });
});
