/**
 * TPM-mode guarded host without a VM: a real swtpm "booted" with a consistent event log, a real
 * HGS in TPM mode. `bulwark host ek export` → registration, attestation refused while HGS has no
 * baselines (InsecureHostConfiguration: SecureBootSettings, CodeIntegrityPolicy), `bulwark host
 * baseline capture` → `hgs baseline add`, then attestation passes (AK enrolled by credential
 * activation on first use).
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { parseBaseline } from "../../src/hgs/baseline.js";
import type { HostGuardStatus } from "../../src/host/guarded/attestation.js";
import { startLocalHgs, type LocalHgs } from "../../src/cli/demo-fabric.js";
import { hostCli } from "../helpers/guarded-host.js";
import { startGuardedTpm, type GuardedTpm } from "../helpers/guarded-tpm.js";

describe("guarded host in TPM mode (swtpm host, real HGS)", () => {
  let root: string;
  let hgs: LocalHgs;
  let tpm: GuardedTpm;
  let hostDir: string;

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), "bulwark-guarded-tpm-"));
    hgs = await startLocalHgs(path.join(root, "hgs"));
    await hgs.svc.updateSettings({ mode: "tpm" });
    tpm = await startGuardedTpm();
    hostDir = path.join(root, "host");
    await writeFile(path.join(root, "ca.pem"), hgs.caPem);
  });

  after(async () => {
    await tpm.stop();
    await hgs.stop();
    await rm(root, { recursive: true, force: true });
  });

  it("configures TPM mode and exports the EK for registration", async () => {
    const c = await hostCli(hostDir, [
      "config",
      "--hgs",
      hgs.urls[0] as string,
      "--ca",
      path.join(root, "ca.pem"),
      "--mode",
      "tpm",
      "--tpm",
      tpm.target,
      "--event-log",
      tpm.eventLogFile,
    ]);
    assert.equal(c.status, 0, c.stderr);
    assert.equal(c.json["attestationMode"], "tpm");
    const ekFile = path.join(root, "ek.pub");
    const ek = await hostCli(hostDir, ["ek", "export", "--out", ekFile]);
    assert.equal(ek.status, 0, ek.stderr);
    const h = await hgs.svc.addTpmHost("tpm-host", new Uint8Array(await readFile(ekFile)));
    assert.equal(h.id, ek.json["hostId"]);
  });

  it("is refused as InsecureHostConfiguration while HGS has no baselines", async () => {
    const a = await hostCli(hostDir, ["attest"]);
    assert.equal(a.status, 4, a.stderr);
    const s = a.json as unknown as HostGuardStatus;
    assert.equal(s.AttestationStatus, "InsecureHostConfiguration");
    assert.deepEqual([...s.AttestationSubstatus].sort(), ["CodeIntegrityPolicy", "SecureBootSettings"]);
    assert.equal(s.AttestationOperationMode, "TrustedPlatformModule");
    assert.equal(s.HealthCertificate, null);
  });

  it("captures baselines in HGS's format; with them registered the host passes", async () => {
    for (const kind of ["secureboot", "codeintegrity"]) {
      const out = path.join(root, `${kind}.json`);
      const b = await hostCli(hostDir, [
        "baseline",
        "capture",
        "--kind",
        kind,
        "--name",
        `lab ${kind}`,
        "--out",
        out,
      ]);
      assert.equal(b.status, 0, b.stderr);
      const text = await readFile(out, "utf8");
      const parsed = parseBaseline(JSON.parse(text));
      assert.deepEqual(Object.keys(parsed.pcrs).sort(), kind === "secureboot" ? ["7"] : ["4", "8", "9"]);
      await hgs.svc.addBaseline(text);
    }
    const a = await hostCli(hostDir, ["attest"]);
    assert.equal(a.status, 0, a.stderr + a.stdout);
    const s = a.json as unknown as HostGuardStatus;
    assert.equal(s.AttestationStatus, "Passed");
    assert.ok(s.HealthCertificate?.valid);
    assert.equal(s.HealthCertificate?.mode, "tpm");
    // The AK stays enrolled: attesting again needs no new credential activation.
    const again = await hostCli(hostDir, ["attest"]);
    assert.equal(again.status, 0, again.stderr);
  });
});
