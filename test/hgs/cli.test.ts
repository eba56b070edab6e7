/**
 * `bulwark hgs` administration verbs as a user runs them (compiled CLI, real processes): exit
 * statuses from the catalogue, JSON output, and the effects seen through the service.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { generateKeyPairSync } from "node:crypto";
import { createCertificate, derToPem } from "../../src/asn1/x509.js";
import { hgsCli } from "../helpers/hgs-proc.js";
import { startSimHost, type SimHost } from "../helpers/hgs-host.js";

describe("bulwark hgs administration verbs", () => {
  let root: string;
  let dir: string;
  let sim: SimHost;
  before(async () => {
    root = mkdtempSync(path.join(tmpdir(), "bulwark-hgs-cli-"));
    dir = path.join(root, "hgs");
    assert.equal(hgsCli(["init", "--dir", dir]).status, 0);
    sim = await startSimHost();
  });
  after(async () => {
    await sim?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it("prints help and refuses unknown verbs and missing --dir with usage status", () => {
    assert.equal(hgsCli(["--help"]).status, 0);
    assert.equal(hgsCli(["frobnicate", "--dir", dir]).status, 2);
    assert.equal(hgsCli(["host", "list"]).status, 2);
  });

  it("mode, settings and policies", () => {
    assert.deepEqual((hgsCli(["mode", "show", "--dir", dir, "--json"]).json as { mode: string }).mode, "tpm");
    const s = hgsCli([
      "settings",
      "set",
      "--dir",
      dir,
      "--health-lifetime",
      "3600",
      "--deny-before",
      "now",
      "--json",
    ]);
    assert.equal(s.status, 0, s.stderr);
    assert.equal(
      (s.json as { healthCertificateLifetimeSeconds: number }).healthCertificateLifetimeSeconds,
      3600,
    );
    assert.ok((s.json as { denyBefore: number }).denyBefore > 0);
    assert.equal(
      hgsCli(["settings", "set", "--dir", dir, "--health-lifetime", "5"]).status,
      5,
      "out of range is invalid input",
    );
    const locked = hgsCli(["policy", "disable", "Hgs_SecureBootEnabled", "--dir", dir, "--json"]);
    assert.equal(locked.status, 4);
    assert.equal((locked.json as { error: { code: string } }).error.code, "HGS_ERR_POLICY_LOCKED");
    assert.equal(hgsCli(["policy", "disable", "Hgs_IommuEnabled", "--dir", dir]).status, 0);
    const list = hgsCli(["policy", "list", "--dir", dir, "--json"]).json as {
      id: string;
      enabled: boolean;
    }[];
    assert.equal(list.find((p) => p.id === "Hgs_IommuEnabled")?.enabled, false);
    assert.equal(list.length, 6);
    assert.equal(hgsCli(["policy", "enable", "Hgs_Nope", "--dir", dir]).status, 3);
  });

  it("TPM hosts, trusted TPM roots, baselines, revocation", () => {
    writeFileSync(path.join(root, "ek.pub"), sim.ekPublic);
    const add = hgsCli([
      "host",
      "add-tpm",
      "--dir",
      dir,
      "--name",
      "tpm-1",
      "--ek-public",
      path.join(root, "ek.pub"),
      "--json",
    ]);
    assert.equal(add.status, 0, add.stderr);
    assert.equal((add.json as { id: string }).id, sim.hostId);
    assert.equal(
      hgsCli(["host", "add-tpm", "--dir", dir, "--name", "again", "--ek-public", path.join(root, "ek.pub")])
        .status,
      6,
    );
    writeFileSync(path.join(root, "junk.pub"), "not a key");
    assert.equal(
      hgsCli(["host", "add-tpm", "--dir", dir, "--name", "junk", "--ek-public", path.join(root, "junk.pub")])
        .status,
      5,
    );

    const ca = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const caCert = createCertificate({
      subject: "CN=Lab TPM CA",
      publicKey: ca.publicKey,
      signingKey: ca.privateKey,
      ca: true,
    });
    writeFileSync(path.join(root, "ca.pem"), derToPem(caCert));
    assert.equal(hgsCli(["tpm-root", "add", path.join(root, "ca.pem"), "--dir", dir]).status, 0);
    assert.equal(hgsCli(["tpm-root", "add", path.join(root, "ca.pem"), "--dir", dir]).status, 6);

    const b = {
      format: "bulwark-hgs-baseline/v1",
      kind: "codeintegrity",
      name: "lab",
      bank: "sha256",
      pcrs: { "4": "cd".repeat(32) },
    };
    writeFileSync(path.join(root, "b.json"), JSON.stringify(b));
    const added = hgsCli(["baseline", "add", path.join(root, "b.json"), "--dir", dir, "--json"]);
    assert.equal(added.status, 0);
    const id = (added.json as { id: string }).id;
    writeFileSync(path.join(root, "bad.json"), JSON.stringify({ ...b, pcrs: { "7": "00".repeat(32) } }));
    assert.equal(
      hgsCli(["baseline", "add", path.join(root, "bad.json"), "--dir", dir]).status,
      5,
      "PCR 7 is not a codeintegrity PCR",
    );
    assert.equal((hgsCli(["baseline", "list", "--dir", dir, "--json"]).json as unknown[]).length, 1);
    assert.equal(hgsCli(["baseline", "remove", id, "--dir", dir]).status, 0);
    assert.equal(hgsCli(["baseline", "remove", id, "--dir", dir]).status, 3);

    assert.equal(hgsCli(["host", "revoke", sim.hostId, "--dir", dir]).status, 0);
    const hosts = hgsCli(["host", "list", "--dir", dir, "--json"]).json as { revokedAt: string | null }[];
    assert.ok(hosts[0]?.revokedAt);
    assert.equal(hgsCli(["host", "restore", sim.hostId, "--dir", dir]).status, 0);
    const events = (hgsCli(["audit", "list", "--dir", dir, "--json"]).json as { event: string }[]).map(
      (e) => e.event,
    );
    for (const e of [
      "host.registered",
      "tpm-root.added",
      "baseline.added",
      "baseline.removed",
      "host.revoked",
      "host.restored",
      "policy.changed",
      "config.changed",
    ]) {
      assert.ok(events.includes(e), e);
    }
    assert.equal(hgsCli(["audit", "verify", "--dir", dir]).status, 0);
  });
});
