/**
 * A guarded host end to end: a real HGS (in process, two HTTPS nodes on 127.0.0.1 over one SQLite
 * database, host-key mode), a guarded host in a temporary state directory, and a shielded VM whose
 * key protector names only the HGS guardian (provisioned in a separate owner state directory and
 * moved over). Real QEMU + OVMF + swtpm under TCG; two VM starts in all.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { listAuditEntries, setRevoked, updateSettings } from "../../src/hgs/admin.js";
import { ensureGuestImage } from "../../src/lab/guest-image.js";
import {
  ensureHealthCertificate,
  hostGuardStatus,
  openClient,
  type HostGuardStatus,
} from "../../src/host/guarded/attestation.js";
import { readConfig, writeConfig } from "../../src/host/guarded/config.js";
import { hostKeyPath, keyReleaseKeyPath } from "../../src/host/guarded/identity.js";
import { unlockVmViaHgs } from "../../src/host/guarded/unlock.js";
import { unlockRequest } from "../../src/host/vm/keys.js";
import { inspectKeyProtector } from "../../src/protector/key-protector.js";
import { VM_SECRET, vmSecretsHeader } from "../../src/protector/vm-secrets.js";
import { hostContext } from "../../src/host/index.js";
import { startVm, turnOffVm, vmStatus } from "../../src/host/vm/lifecycle.js";
import type { VmContext } from "../../src/host/vm/context.js";
import {
  guardHost,
  provisionShieldedVmForHgs,
  startLocalHgs,
  type LocalHgs,
} from "../../src/cli/demo-fabric.js";
import { hostCli } from "../helpers/guarded-host.js";
import { processAlive } from "../helpers/processes.js";
import { rejectsWith } from "../helpers/errors.js";

/** The HGS half of the host's key source alone, as the composed one calls it after the local guardians. */
async function viaHgs(c: VmContext, name: string) {
  return unlockVmViaHgs(c.store.stateDir, await unlockRequest(c, name));
}

const VM = "shielded";

function pidOf(file: string): Promise<number> {
  return readFile(file, "utf8").then((t) => Number(t.trim()));
}

describe("guarded host: shielded VM keys from HGS at every start", () => {
  let root: string;
  let hgs: LocalHgs;
  let hostDir: string;
  let ctx: VmContext;
  let hostPem: string;
  let disk: string;

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), "bulwark-guarded-"));
    hgs = await startLocalHgs(path.join(root, "hgs"), { nodes: 2 });
    hostDir = path.join(root, "host");
    ctx = hostContext(hostDir);
    disk = (await ensureGuestImage("tpm2tools")).disk;
  });

  after(async () => {
    await turnOffVm(ctx, VM).catch(() => undefined);
    await hgs.stop();
    await rm(root, { recursive: true, force: true });
  });

  it("a local-mode host does not ask HGS: the local refusal stands", async () => {
    const localDir = path.join(root, "local-host");
    const local = hostContext(localDir);
    await provisionShieldedVmForHgs({
      ownerStateDir: path.join(root, "owner-a"),
      guardedStateDir: localDir,
      name: VM,
      hgsGuardianPem: hgs.guardianPem,
      disk,
    });
    assert.equal(await viaHgs(local, VM), undefined);
    await rejectsWith(startVm(local, VM), "PROTECTOR_ERR_NOT_AUTHORIZED");
    assert.equal((await vmStatus(local, VM)).state, "Off");
    const s = await hostCli(localDir, ["status"]);
    assert.equal(s.status, 0, s.stderr);
    assert.equal(s.json["Mode"], "Local");
    assert.equal(s.json["AttestationStatus"], "NotConfigured");
  });

  it("an unregistered host is refused (UnauthorizedHost): the VM does not start, nothing is written", async () => {
    const h = await guardHost(hostDir, hgs.urls, hgs.caPem);
    hostPem = h.publicKeyPem;
    for (const f of [hostKeyPath(hostDir), keyReleaseKeyPath(hostDir)])
      assert.equal((await stat(f)).mode & 0o777, 0o600, f);
    const kp = await provisionShieldedVmForHgs({
      ownerStateDir: path.join(root, "owner"),
      guardedStateDir: hostDir,
      name: VM,
      hgsGuardianPem: hgs.guardianPem,
      disk,
    });
    assert.deepEqual(
      kp.guardians.map((g) => g.name),
      ["HGS"],
    );
    assert.equal(kp.owner.name, "owner");
    const p = ctx.store.paths(VM);
    const before = await readFile(p.keyProtector);
    const secretsBefore = await readFile(p.vmSecrets);
    const d = await rejectsWith(startVm(ctx, VM), "HOSTGUARD_ERR_ATTESTATION_FAILED");
    assert.equal(d["status"], "UnauthorizedHost");
    assert.ok((d["findings"] as string[]).includes("host.not-registered"));
    assert.equal((await vmStatus(ctx, VM)).state, "Off");
    assert.deepEqual(await readFile(p.keyProtector), before);
    assert.deepEqual(await readFile(p.vmSecrets), secretsBefore);

    const s = await hostCli(hostDir, ["status"]);
    assert.equal(s.status, 0, s.stderr);
    assert.equal(s.json["Mode"], "HostGuardianService");
    assert.equal(s.json["AttestationStatus"], "UnauthorizedHost");
    assert.equal(s.json["HealthCertificate"], null);
    assert.equal(s.json["HostId"], h.hostId);
    const a = await hostCli(hostDir, ["attest"]);
    assert.equal(a.status, 4, "a refused attestation exits 'refused'");
    assert.equal((a.json["error"] as { code: string }).code, "HOSTGUARD_ERR_ATTESTATION_FAILED");
  });

  it("a registered host starts the shielded VM with keys from HGS, and the key protector is rolled", async () => {
    await hgs.registerHostKey("guarded-1", hostPem);
    const p = ctx.store.paths(VM);
    const genBefore = inspectKeyProtector(new Uint8Array(await readFile(p.keyProtector))).keyGeneration;
    const st = await startVm(ctx, VM);
    assert.equal(st.state, "Running");
    const kp = new Uint8Array(await readFile(p.keyProtector));
    const info = inspectKeyProtector(kp);
    assert.equal(info.keyGeneration, genBefore + 1, "HGS rolled the transport key");
    assert.deepEqual(
      info.guardians.map((g) => g.name),
      ["HGS"],
    );
    assert.ok(info.ownerSignature.valid);
    assert.deepEqual(new Uint8Array(await readFile(p.keyProtectorLastKnownGood)), kp, "last known good kept");
    assert.equal(
      vmSecretsHeader(new Uint8Array(await readFile(p.vmSecrets))).keyGeneration,
      info.keyGeneration,
    );
    const events = (await listAuditEntries(hgs.ctx, 0)).map((e) => e.event);
    assert.ok(events.includes("attestation.passed") && events.includes("key.released"), events.join());

    const s = await hostCli(hostDir, ["status"]);
    const status = s.json as unknown as HostGuardStatus;
    assert.equal(status.AttestationStatus, "Passed");
    assert.ok(status.HealthCertificate?.valid);
    assert.equal(status.LastAttestation?.url, hgs.urls[0]);
    assert.equal((await stat(path.join(hostDir, "host", "attestation.json"))).mode & 0o777, 0o600);
    // The vTPM runs under the key HGS released (swtpm would die on a wrong state key).
    const swtpm = await pidOf(p.swtpmPid);
    await sleep(3000);
    assert.ok(processAlive(swtpm), "swtpm is running");
    await turnOffVm(ctx, VM);
  });

  it("with the primary HGS down, attestation and key release use the fallback URL", async () => {
    const [primary, fallback] = hgs.urls as [string, string];
    await hgs.stopNode(primary);
    const a = await hostCli(hostDir, ["attest"]);
    assert.equal(a.status, 0, a.stderr + a.stdout);
    const status = a.json as unknown as HostGuardStatus;
    assert.equal(status.AttestationStatus, "Passed");
    assert.equal(status.KeyProtectionServerUrl, primary);
    assert.deepEqual(status.FallbackKeyProtectionServerUrl, [fallback]);
    assert.equal(status.LastAttestation?.url, fallback);

    const p = ctx.store.paths(VM);
    const genBefore = inspectKeyProtector(new Uint8Array(await readFile(p.keyProtector))).keyGeneration;
    const releasesBefore = (await listAuditEntries(hgs.ctx, 0)).filter(
      (e) => e.event === "key.released",
    ).length;
    assert.equal((await startVm(ctx, VM)).state, "Running");
    assert.equal(
      inspectKeyProtector(new Uint8Array(await readFile(p.keyProtector))).keyGeneration,
      genBefore + 1,
    );
    assert.equal(
      (await listAuditEntries(hgs.ctx, 0)).filter((e) => e.event === "key.released").length,
      releasesBefore + 1,
    );
    // Second start of the same vTPM state, now under the secrets re-sealed after two rolls.
    const swtpm = await pidOf(p.swtpmPid);
    await sleep(5000);
    assert.ok(processAlive(swtpm), "swtpm opened the persisted vTPM state");
    assert.equal((await vmStatus(ctx, VM)).state, "Running");
    await turnOffVm(ctx, VM);
  });

  it("re-attests at the next use once less than renewFraction of the certificate's lifetime remains", async () => {
    await updateSettings(hgs.ctx, { healthCertificateLifetimeSeconds: 60 });
    const c0 = await readConfig(hostDir);
    const c = await writeConfig(hostDir, { ...c0, renewFraction: 0.98 });
    const client = openClient(c);
    try {
      const first = await ensureHealthCertificate(hostDir, c, client, { force: true });
      assert.equal(await ensureHealthCertificate(hostDir, c, client), first, "fresh: the cached one");
      await sleep(2000); // 60 s * (1 - 0.98) = 1.2 s: due for renewal
      const second = await ensureHealthCertificate(hostDir, c, client);
      assert.notEqual(second, first, "renewed at the next use");
      const lazy = await writeConfig(hostDir, { ...c, renewFraction: 0.1 });
      assert.equal(await ensureHealthCertificate(hostDir, lazy, client), second);
    } finally {
      client.close();
    }
    const later = await hostGuardStatus(hostDir, Date.now() + 120_000);
    assert.equal(later.AttestationStatus, "Expired");
    assert.equal(later.HealthCertificate?.valid, false);
  });

  it("recovers from a crash between the protector and secrets writes, and from a tampered protector", async () => {
    const p = ctx.store.paths(VM);
    const key = (s: Map<string, Uint8Array> | undefined) =>
      Buffer.from(s?.get(VM_SECRET.vtpmStateKey) ?? new Uint8Array()).toString("hex");
    const stale = new Uint8Array(await readFile(p.keyProtector));
    const first = await viaHgs(ctx, VM);
    assert.ok(first);
    const gen = inspectKeyProtector(new Uint8Array(await readFile(p.keyProtector))).keyGeneration;
    // Crash after the secrets were re-sealed but before the new protector replaced the old one.
    await writeFile(p.keyProtector, stale);
    const second = await viaHgs(ctx, VM);
    assert.equal(key(second), key(first), "the same VM secrets, through the last known good protector");
    assert.equal(inspectKeyProtector(new Uint8Array(await readFile(p.keyProtector))).keyGeneration, gen + 1);
    // A current protector altered on disk (MAC byte): HGS refuses it, the last known good copy works.
    const current = new Uint8Array(await readFile(p.keyProtector));
    const altered = Uint8Array.from(current);
    altered[altered.length - 1] = (altered[altered.length - 1] as number) ^ 0x01;
    await writeFile(p.keyProtector, altered);
    const third = await viaHgs(ctx, VM);
    assert.equal(key(third), key(first));
    assert.equal(inspectKeyProtector(new Uint8Array(await readFile(p.keyProtector))).keyGeneration, gen + 2);
    assert.ok(
      (await listAuditEntries(hgs.ctx, 0)).some((e) => e.event === "key.refused"),
      "HGS refused the altered one",
    );
    for (const s of [first, second, third]) for (const v of s?.values() ?? []) v.fill(0);
  });

  it("a host revoked at HGS loses its cached certificate's use at the next start", async () => {
    const hostId = (await hostGuardStatus(hostDir)).HostId as string;
    const p = ctx.store.paths(VM);
    const kpBefore = await readFile(p.keyProtector);
    assert.equal(
      (await hostGuardStatus(hostDir)).AttestationStatus,
      "Passed",
      "a valid certificate is cached",
    );
    await setRevoked(hgs.ctx, hostId, true);
    try {
      const d = await rejectsWith(startVm(ctx, VM), "HOSTGUARD_ERR_ATTESTATION_FAILED");
      assert.equal(d["status"], "UnauthorizedHost");
      assert.ok((d["findings"] as string[]).includes("host.revoked"), JSON.stringify(d));
      assert.equal((await vmStatus(ctx, VM)).state, "Off");
      assert.deepEqual(await readFile(p.keyProtector), kpBefore);
      const s = await hostGuardStatus(hostDir);
      assert.equal(s.AttestationStatus, "UnauthorizedHost");
      assert.equal(s.HealthCertificate, null, "the refused host dropped its certificate");
    } finally {
      await setRevoked(hgs.ctx, hostId, false);
    }
    assert.ok(await viaHgs(ctx, VM), "restored at HGS: keys are released again");
  });

  it("with no HGS answering, the VM does not start (HOSTGUARD_ERR_HGS_UNAVAILABLE, TransientError)", async () => {
    for (const u of [...hgs.urls]) await hgs.stopNode(u);
    await rejectsWith(startVm(ctx, VM), "HOSTGUARD_ERR_HGS_UNAVAILABLE");
    assert.equal((await vmStatus(ctx, VM)).state, "Off");
    const a = await hostCli(hostDir, ["attest"]);
    assert.equal(a.status, 8, a.stderr);
    assert.equal((a.json["LastAttestation"] as { status: string }).status, "TransientError");
  });
});
