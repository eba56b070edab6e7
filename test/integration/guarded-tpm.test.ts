/**
 * TPM-mode guarded hosts end to end: swtpm "host TPMs" booted with the real event log of our
 * guest's boot (Secure Boot, shim → grub → kernel, IOMMU on the command line) or with a changed
 * boot derived from it (test/helpers/hgs-boot.ts), and a real HGS in TPM mode (in process, HTTPS).
 *
 * Healthy host: `bulwark host ek export` → registration, attestation refused while HGS has no
 * baselines (InsecureHostConfiguration: SecureBootSettings, CodeIntegrityPolicy — every log
 * policy passes on the real log), `bulwark host baseline capture` → `hgs baseline add`, then
 * attestation passes (AK enrolled by credential activation on first use), and a shielded VM whose
 * key protector names only the HGS guardian starts with keys from HGS and boots its guest (real
 * QEMU + OVMF + swtpm under TCG: the one VM boot of this file).
 *
 * Unhealthy hosts (Secure Boot off; no IOMMU option on the kernel command line): the same VM
 * start is refused with the status and sub-status HGS judged, before anything is written or
 * started.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdir, readFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { addBaseline, addTpmHost, listAuditEntries, updateSettings } from "../../src/hgs/admin.js";
import { parseBaseline } from "../../src/attest/baseline.js";
import { ensureGuestImage } from "../../src/lab/guest-image.js";
import { scriptFwCfgName } from "../../src/lab/guest-init.js";
import { hostGuardStatus, type HostGuardStatus } from "../../src/host/guarded/attestation.js";
import { connectQmp } from "../../src/host/vm/processes.js";
import { hostContext } from "../../src/host/index.js";
import { startVm, turnOffVm, vmStatus, waitForPowerOff } from "../../src/host/vm/lifecycle.js";
import { inspectKeyProtector } from "../../src/protector/key-protector.js";
import { provisionShieldedVmForHgs, startLocalHgs, type LocalHgs } from "../../src/cli/demo-fabric.js";
import { hostCli } from "../helpers/guarded-host.js";
import { startGuardedTpm, type GuardedTpm } from "../helpers/guarded-tpm.js";
import type { BootConfig } from "../helpers/hgs-boot.js";
import { childrenOf, processAlive, processesMatching } from "../helpers/processes.js";
import { rejectsWith } from "../helpers/errors.js";

const VM = "shielded";

/** Every file under `dir` (relative path → SHA-256), to show that nothing was written. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = path.join(e.parentPath, e.name);
    out[path.relative(dir, p)] = createHash("sha256")
      .update(await readFile(p))
      .digest("hex");
  }
  return out;
}

describe("guarded hosts in TPM mode (swtpm host TPMs booted with the real log, real HGS)", () => {
  let root: string;
  let hgs: LocalHgs;
  let tpm: GuardedTpm;
  let hostDir: string;
  const tpms: GuardedTpm[] = [];

  /** Configures `dir` as a TPM-mode guarded host of `hgs` using `t`, and registers its EK. */
  async function configureTpmHost(dir: string, t: GuardedTpm, name: string): Promise<string> {
    const c = await hostCli(dir, [
      "config",
      "--hgs",
      hgs.urls[0] as string,
      "--ca",
      path.join(root, "ca.pem"),
      "--mode",
      "tpm",
      "--tpm",
      t.target,
      "--event-log",
      t.eventLogFile,
    ]);
    assert.equal(c.status, 0, c.stderr);
    assert.equal(c.json["attestationMode"], "tpm");
    const ekFile = path.join(root, `${name}-ek.pub`);
    const ek = await hostCli(dir, ["ek", "export", "--out", ekFile]);
    assert.equal(ek.status, 0, ek.stderr);
    const h = await addTpmHost(hgs.ctx, name, new Uint8Array(await readFile(ekFile)));
    assert.equal(h.id, ek.json["hostId"]);
    return h.id;
  }

  async function bootedTpm(boot: BootConfig = {}): Promise<GuardedTpm> {
    const t = await startGuardedTpm(boot);
    tpms.push(t);
    return t;
  }

  /** The owner's shielded VM (key protector: HGS guardian only), moved to the host `dir`. */
  async function provisionVm(dir: string): Promise<void> {
    const script = path.join(root, "guest-script.sh");
    // The guest powers off only if its vTPM (state sealed under the key HGS released) answers.
    await writeFile(
      script,
      "tpm2_getrandom 8 >/dev/null && tpm2_pcrread sha256:7 >/dev/null || sleep 3600\n",
    );
    const kp = await provisionShieldedVmForHgs({
      ownerStateDir: path.join(root, "owner"),
      guardedStateDir: dir,
      name: VM,
      hgsGuardianPem: hgs.guardianPem,
      disk: (await ensureGuestImage("tpm2tools")).disk,
      fwCfg: { [scriptFwCfgName]: script },
    });
    assert.deepEqual(
      kp.guardians.map((g) => g.name),
      ["HGS"],
    );
  }

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), "bulwark-guarded-tpm-"));
    hgs = await startLocalHgs(path.join(root, "hgs"));
    await updateSettings(hgs.ctx, { mode: "tpm" });
    tpm = await bootedTpm();
    hostDir = path.join(root, "host");
    await writeFile(path.join(root, "ca.pem"), hgs.caPem);
  });

  after(async () => {
    await turnOffVm(hostContext(hostDir), VM).catch(() => undefined);
    for (const t of tpms) await t.stop();
    await hgs.stop();
    await rm(root, { recursive: true, force: true });
  });

  it("configures TPM mode and exports the EK for registration", async () => {
    await configureTpmHost(hostDir, tpm, "tpm-host");
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
      await addBaseline(hgs.ctx, text);
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

  it("a healthy host starts the shielded VM with keys from HGS, and its guest boots", async () => {
    await provisionVm(hostDir);
    const ctx = hostContext(hostDir);
    const p = ctx.store.paths(VM);
    const genBefore = inspectKeyProtector(new Uint8Array(await readFile(p.keyProtector))).keyGeneration;
    const st = await startVm(ctx, VM);
    assert.equal(st.state, "Running");
    const qemu = st.qemuPid as number;
    const swtpm = Number((await readFile(p.swtpmPid, "utf8")).trim());
    assert.equal(
      inspectKeyProtector(new Uint8Array(await readFile(p.keyProtector))).keyGeneration,
      genBefore + 1,
      "HGS released the keys and rolled the transport key",
    );
    const audit = (await listAuditEntries(hgs.ctx, 0)).map((e) => e.event);
    assert.ok(audit.includes("key.released"), audit.join());
    // A shielded VM has no serial console, so the markers the guest prints are not visible here.
    // Its /init powers the VM off right after printing them (BULWARK-READY … BULWARK-DONE), and
    // only the guest OS can: QEMU reports SHUTDOWN with reason guest-shutdown.
    const q = await connectQmp(p);
    try {
      const e = await q.waitEvent("SHUTDOWN", 600_000);
      assert.equal(e.data?.["reason"], "guest-shutdown", JSON.stringify(e));
      assert.equal(e.data?.["guest"], true);
    } finally {
      q.close();
    }
    assert.equal(await waitForPowerOff(ctx, VM, 30_000), true);
    assert.equal((await vmStatus(ctx, VM)).state, "Off");
    for (const pid of [qemu, swtpm]) assert.equal(processAlive(pid), false, `process ${pid} survived`);
    assert.deepEqual(processesMatching(p.dir), [], "no process of the VM is left");
  });

  const unhealthy: [string, string, BootConfig, string[], string][] = [
    [
      "Secure Boot off",
      "host-sb-off",
      { secureBoot: false },
      ["SecureBoot", "SecureBootSettings"],
      "eventlog.secure-boot-disabled",
    ],
    [
      "no IOMMU on the kernel command line",
      "host-no-iommu",
      { iommu: false },
      ["Iommu"],
      "hgs.iommu-enabled",
    ],
  ];
  for (const [what, dirName, boot, subStatuses, finding] of unhealthy) {
    it(`a host whose TPM replays a changed log (${what}) is refused: the VM does not start, nothing is written`, async () => {
      const dir = path.join(root, dirName);
      await configureTpmHost(dir, await bootedTpm(boot), dirName);
      if (boot.iommu === false) {
        // The admin approved this boot chain and command line as code (a code-integrity baseline
        // of this host): what refuses it is the IOMMU policy alone.
        const out = path.join(root, `${dirName}-ci.json`);
        const b = await hostCli(dir, [
          "baseline",
          "capture",
          "--kind",
          "codeintegrity",
          "--name",
          dirName,
          "--out",
          out,
        ]);
        assert.equal(b.status, 0, b.stderr);
        await addBaseline(hgs.ctx, await readFile(out, "utf8"));
      }
      await provisionVm(dir);
      const ctx = hostContext(dir);
      const p = ctx.store.paths(VM);
      const filesBefore = await snapshot(p.dir);
      const childrenBefore = childrenOf(process.pid).sort((a, b) => a - b);
      const d = await rejectsWith(startVm(ctx, VM), "HOSTGUARD_ERR_ATTESTATION_FAILED");
      assert.equal(d["status"], "InsecureHostConfiguration");
      assert.deepEqual([...(d["subStatuses"] as string[])].sort(), subStatuses);
      assert.ok((d["findings"] as string[]).includes(finding), JSON.stringify(d));
      assert.equal((await vmStatus(ctx, VM)).state, "Off");
      assert.deepEqual(await snapshot(p.dir), filesBefore, "nothing written in the VM's directory");
      assert.deepEqual(
        childrenOf(process.pid).sort((a, b) => a - b),
        childrenBefore,
        "no process started",
      );
      assert.deepEqual(processesMatching(p.dir), []);
      const s: HostGuardStatus = await hostGuardStatus(dir);
      assert.equal(s.AttestationStatus, "InsecureHostConfiguration");
      assert.deepEqual([...s.AttestationSubstatus].sort(), subStatuses);
      assert.equal(s.HealthCertificate, null);
    });
  }
});
