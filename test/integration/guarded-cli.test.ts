/**
 * `bulwark host` as a process, without HGS or VMs: configuration validation and exit statuses,
 * local mode, the identity keys (created once, 0600, only public halves printed).
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { hostKeyPath, keyReleaseKeyPath } from "../../src/host/guarded/identity.js";
import { hostCli } from "../helpers/guarded-host.js";

describe("bulwark host: configuration and identity", () => {
  let root: string;
  let dir: string;

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), "bulwark-guarded-cli-"));
    dir = path.join(root, "state");
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("an unconfigured host is in local mode; attest refuses", async () => {
    const s = await hostCli(dir, ["status"]);
    assert.equal(s.status, 0, s.stderr);
    assert.equal(s.json["Mode"], "Local");
    assert.equal(s.json["IsHostGuarded"], false);
    assert.equal(s.json["AttestationStatus"], "NotConfigured");
    const a = await hostCli(dir, ["attest"]);
    assert.equal(a.status, 4);
    assert.equal((a.json["error"] as { code: string }).code, "HOSTGUARD_ERR_LOCAL_MODE");
  });

  it("refuses invalid configurations with HOSTGUARD_ERR_CONFIG or a usage error", async () => {
    const cases: [string[], number, string][] = [
      [["config", "--hgs", "not a url"], 5, "HOSTGUARD_ERR_CONFIG"],
      [["config", "--hgs", "http://127.0.0.1:8443"], 5, "HOSTGUARD_ERR_CONFIG"],
      [["config", "--hgs", "https://127.0.0.1:8443", "--fallback", "ftp://x"], 5, "HOSTGUARD_ERR_CONFIG"],
      [["config", "--hgs", "https://127.0.0.1:8443", "--renew-fraction", "1.5"], 5, "HOSTGUARD_ERR_CONFIG"],
      [["config", "--hgs", "https://127.0.0.1:8443", "--mode", "tpm"], 5, "HOSTGUARD_ERR_CONFIG"],
      [["config", "--hgs", "https://127.0.0.1:8443", "--mode", "ad"], 2, "CLI_ERR_USAGE"],
      [["config", "--hgs", "https://127.0.0.1:8443", "--local-mode"], 2, "CLI_ERR_USAGE"],
      [["frobnicate"], 2, "CLI_ERR_USAGE"],
    ];
    for (const [args, status, code] of cases) {
      const r = await hostCli(dir, args);
      assert.equal(r.status, status, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.equal((r.json["error"] as { code: string } | undefined)?.code, code, args.join(" "));
    }
    const ca = path.join(root, "not-a-cert.pem");
    await writeFile(ca, "hello");
    const bad = await hostCli(dir, ["config", "--hgs", "https://127.0.0.1:8443", "--ca", ca]);
    assert.equal(bad.status, 5);
    assert.equal((await hostCli(dir, ["status"])).json["Mode"], "Local", "nothing was stored");
  });

  it("creates the identity once, 0600, and prints only public keys", async () => {
    const c = await hostCli(dir, [
      "config",
      "--hgs",
      "https://hgs.example:8443",
      "--fallback",
      "https://hgs2.example:8443",
    ]);
    assert.equal(c.status, 0, c.stderr);
    assert.deepEqual(c.json["fallbackUrls"], ["https://hgs2.example:8443"]);
    for (const f of [hostKeyPath(dir), keyReleaseKeyPath(dir), path.join(dir, "host", "hgs-client.json")])
      assert.equal((await stat(f)).mode & 0o777, 0o600, f);
    const k1 = await hostCli(dir, ["key", "export"]);
    const k2 = await hostCli(dir, ["key", "export"]);
    assert.equal(k1.status, 0, k1.stderr);
    assert.equal(k1.json["publicKey"], k2.json["publicKey"], "the host key is created once");
    assert.match(k1.json["publicKey"] as string, /BEGIN PUBLIC KEY/);
    assert.match(k1.json["hostId"] as string, /^[0-9a-f]{64}$/);
    const priv = await readFile(hostKeyPath(dir), "utf8");
    assert.ok(!k1.stdout.includes(priv.split("\n")[1] as string), "no private key material printed");
    const s = await hostCli(dir, ["status"]);
    assert.equal(s.json["Mode"], "HostGuardianService");
    assert.equal(s.json["AttestationStatus"], "NotConfigured", "guarded but never attested");
    assert.equal(s.json["HostId"], k1.json["hostId"]);
    const l = await hostCli(dir, ["config", "--local-mode"]);
    assert.equal(l.status, 0, l.stderr);
    assert.equal((await hostCli(dir, ["status"])).json["Mode"], "Local");
  });
});
