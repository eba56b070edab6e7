/**
 * Rollback (hardening issue 11, item 5), with the real swtpm and no guest: a VM start's vTPM half
 * (host/vm/vtpm.ts startVtpm: the version check and move, then the VM's swtpm, stopped again at
 * once), key-protector roll and revoke (host/vm/rekey.ts), another VM's key protector, and
 * SIGKILL of a start or a roll at random moments. Each case failed before the item.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { hostContext } from "../../src/host/index.js";
import { newVmConfig } from "../../src/host/vm/config.js";
import type { VmContext } from "../../src/host/vm/context.js";
import { unlockVm, zeroSecrets } from "../../src/host/vm/keys.js";
import { killPidFile } from "../../src/host/vm/processes.js";
import { grantVmGuardian, rekeyVm } from "../../src/host/vm/rekey.js";
import { restoreKeyProtector, setKeyProtector } from "../../src/host/vm/settings.js";
import { statementPaths } from "../../src/host/vm/security-statement.js";
import { startVtpm } from "../../src/host/vm/vtpm.js";
import { GuardianStore } from "../../src/host/guardians.js";
import { parseKeyProtector } from "../../src/protector/key-protector.js";
import { exportGuardianPublicPem } from "../../src/protector/guardian.js";
import { readVersion, VM_SECRET } from "../../src/protector/vm-secrets.js";
import { rejectsWith } from "../helpers/errors.js";
import { repoPath } from "../helpers/paths.js";

let dir: string;
let ctx: VmContext;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "bulwark-rollback-"));
  ctx = hostContext(dir);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function newVm(c: VmContext, name: string): Promise<void> {
  await c.store.create(newVmConfig({ name }));
  await setKeyProtector(c, name, { kind: "new-local" });
}

/** A cold start's vTPM half, as `vm start` runs it under the VM's lock; the swtpm is stopped after. */
async function startTpmOnly(c: VmContext, name: string): Promise<void> {
  await c.store.withLock(name, async () => {
    const p = c.store.paths(name);
    await mkdir(p.runDir, { recursive: true, mode: 0o700 });
    const secrets = await unlockVm(c, name);
    try {
      await startVtpm(p, secrets, () => undefined, { manufacturedBefore: false });
    } finally {
      zeroSecrets(secrets);
      await killPidFile(p.swtpmPid);
    }
  });
}

async function sealedVersion(c: VmContext, name: string): Promise<bigint | undefined> {
  const s = await unlockVm(c, name);
  try {
    return readVersion(s, VM_SECRET.vtpmVersion);
  } finally {
    zeroSecrets(s);
  }
}

const permall = (c: VmContext, name: string) => path.join(c.store.paths(name).tpmDir, "tpm2-00.permall");

describe("vTPM state version", () => {
  it("an older tpm2-00.permall is refused with VM_ERR_STATE_ROLLBACK; the newest starts", async () => {
    await newVm(ctx, "v1");
    await startTpmOnly(ctx, "v1");
    assert.equal(await sealedVersion(ctx, "v1"), 1n);
    const old = path.join(dir, "v1-permall.old");
    await copyFile(permall(ctx, "v1"), old);
    await startTpmOnly(ctx, "v1");
    assert.equal(await sealedVersion(ctx, "v1"), 2n);
    const newest = path.join(dir, "v1-permall.new");
    await copyFile(permall(ctx, "v1"), newest);
    await copyFile(old, permall(ctx, "v1"));
    await rejectsWith(startTpmOnly(ctx, "v1"), "VM_ERR_STATE_ROLLBACK");
    await copyFile(newest, permall(ctx, "v1"));
    await startTpmOnly(ctx, "v1");
    assert.equal(await sealedVersion(ctx, "v1"), 3n);
  });

  it("the crash window (version written to the vTPM, not yet sealed) still starts", async () => {
    await newVm(ctx, "v2");
    await startTpmOnly(ctx, "v2");
    const p = ctx.store.paths("v2");
    const sealedBefore = await readFile(p.vmSecrets);
    await startTpmOnly(ctx, "v2"); // vTPM at 2, sealed 2
    await writeFile(p.vmSecrets, sealedBefore); // as if killed between the write and the seal: sealed 1
    assert.equal(await sealedVersion(ctx, "v2"), 1n);
    await startTpmOnly(ctx, "v2");
    assert.equal(await sealedVersion(ctx, "v2"), 3n);
  });
});

describe("key-protector roll and revoke", () => {
  it("roll: new transport and vTPM keys; the old secrets no longer open the vTPM state, the new ones do", async () => {
    await newVm(ctx, "r1");
    await startTpmOnly(ctx, "r1");
    const p = ctx.store.paths("r1");
    const oldKp = await readFile(p.keyProtector);
    const oldSecrets = await readFile(p.vmSecrets);
    const r = await rekeyVm(ctx, "r1");
    assert.equal(r.vtpmRekeyed, true);
    assert.equal(r.keyProtector.keyGeneration, parseKeyProtector(oldKp).keyGeneration + 1);
    await startTpmOnly(ctx, "r1"); // the re-keyed state opens with the new secrets, version intact
    assert.equal(await sealedVersion(ctx, "r1"), 2n);
    // The old protector and the old secrets (a host that kept them) open nothing current.
    const newKp = await readFile(p.keyProtector);
    const newSecrets = await readFile(p.vmSecrets);
    await writeFile(p.keyProtector, oldKp);
    await writeFile(p.keyProtectorLastKnownGood, oldKp);
    await rejectsWith(startTpmOnly(ctx, "r1"), "PROTECTOR_ERR_VMSECRETS_BINDING");
    await writeFile(p.vmSecrets, oldSecrets);
    await rejectsWith(startTpmOnly(ctx, "r1"), "VM_ERR_VTPM_KEY");
    await writeFile(p.keyProtector, newKp);
    await writeFile(p.keyProtectorLastKnownGood, newKp);
    await writeFile(p.vmSecrets, newSecrets);
    await startTpmOnly(ctx, "r1");
  });

  it("revoke: the revoked host's old key protector, last known good and secrets cannot start the VM", async () => {
    // Host B, a second host with its own guardian, is granted the VM and then revoked.
    const dirB = await mkdtemp(path.join(os.tmpdir(), "bulwark-rollback-b-"));
    try {
      const ctxB = hostContext(dirB);
      const gB = await ctxB.guardians.untrustedGuardian();
      const storeA = new GuardianStore(dir);
      await storeA.import(exportGuardianPublicPem(gB), { name: "hostB" });
      await newVm(ctx, "k1");
      await grantVmGuardian(ctx, "k1", await storeA.getPublic("hostB"));
      await startTpmOnly(ctx, "k1");
      // Host B gets a copy of the VM's directory and can start it.
      const copyVm = async () => {
        await rm(ctxB.store.paths("k1").dir, { recursive: true, force: true });
        await mkdir(path.dirname(ctxB.store.paths("k1").dir), { recursive: true });
        await cp(ctx.store.paths("k1").dir, ctxB.store.paths("k1").dir, {
          recursive: true,
          filter: (f) => path.basename(f) !== "run", // sockets and pid files of the last start
        });
      };
      await copyVm();
      await startTpmOnly(ctxB, "k1");
      const pB = ctxB.store.paths("k1");
      const keptKp = await readFile(pB.keyProtector);
      const keptSecrets = await readFile(pB.vmSecrets);
      // The owner (host A) revokes B; the VM's current files reach B again (shared storage).
      await rejectsWith(rekeyVm(ctx, "k1", { revoke: "nobody" }), "PROTECTOR_ERR_GUARDIAN_NOT_FOUND");
      await rekeyVm(ctx, "k1", { revoke: "hostB" });
      await copyVm();
      await rejectsWith(startTpmOnly(ctxB, "k1"), "PROTECTOR_ERR_NOT_AUTHORIZED");
      // B puts its old protector back, as current and as last known good, then restores that.
      // (The secrets name the new protector, whose last-known-good copy does not list B.)
      await writeFile(pB.keyProtector, keptKp);
      await rejectsWith(startTpmOnly(ctxB, "k1"), "PROTECTOR_ERR_NOT_AUTHORIZED");
      await writeFile(pB.keyProtectorLastKnownGood, keptKp);
      await restoreKeyProtector(ctxB, "k1");
      await rejectsWith(startTpmOnly(ctxB, "k1"), "PROTECTOR_ERR_VMSECRETS_BINDING");
      // With its old secrets too, the current vTPM state does not decrypt.
      await writeFile(pB.vmSecrets, keptSecrets);
      await rejectsWith(startTpmOnly(ctxB, "k1"), "VM_ERR_VTPM_KEY");
      // Host A still starts it.
      await startTpmOnly(ctx, "k1");
    } finally {
      await rm(dirB, { recursive: true, force: true });
    }
  });

  it("roll is refused while the VM is saved", async () => {
    await newVm(ctx, "r2");
    const p = ctx.store.paths("r2");
    await writeFile(p.savedState, "x");
    await writeFile(p.savedStateMeta, JSON.stringify({ version: 1, encrypted: true }));
    await rejectsWith(rekeyVm(ctx, "r2"), "VM_ERR_STATE");
  });
});

describe("key-protector grant and revoke --vm hold the VM's lock", () => {
  const bin = repoPath("dist/src/cli/main.js");
  const cli = (args: string[]) => {
    const r = spawnSync(process.execPath, [bin, ...args, "--state-dir", dir, "--json"], { encoding: "utf8" });
    const err = (JSON.parse(r.stderr.trim() || r.stdout.trim() || "{}") as { error?: { code?: string } })
      .error;
    return { status: r.status, code: err?.code };
  };
  const idle = () => spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });

  it("refuse while another process drives the VM, and revoke refuses a running VM; grant does not need it off", async () => {
    await newVm(ctx, "lk");
    const g = new GuardianStore(dir);
    await g.import(
      exportGuardianPublicPem(
        await hostContext(await mkdtemp(path.join(dir, "h-"))).guardians.untrustedGuardian(),
      ),
      {
        name: "hostL",
      },
    );
    const p = ctx.store.paths("lk");
    const before = await readFile(p.keyProtector);
    const holder = idle();
    try {
      await writeFile(p.lock, String(holder.pid));
      assert.deepEqual(
        cli(["key-protector", "grant", "--vm", "lk", "--guardian", "hostL"]).code,
        "VM_ERR_LOCKED",
      );
      assert.deepEqual(
        cli(["key-protector", "revoke", "--vm", "lk", "--guardian", "hostL"]).code,
        "VM_ERR_LOCKED",
      );
      assert.deepEqual(await readFile(p.keyProtector), before, "nothing written while locked");
    } finally {
      holder.kill("SIGKILL");
      await rm(p.lock, { force: true });
    }
    // A running VM (a live process holding its pid file and QMP path): grant works, revoke is refused.
    await mkdir(p.runDir, { recursive: true });
    const qemu = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)", p.qmpSocket], {
      stdio: "ignore",
    });
    try {
      await writeFile(p.qemuPid, String(qemu.pid));
      assert.equal(cli(["key-protector", "grant", "--vm", "lk", "--guardian", "hostL"]).status, 0);
      assert.equal(
        cli(["key-protector", "revoke", "--vm", "lk", "--guardian", "hostL"]).code,
        "VM_ERR_STATE",
      );
      assert.equal(cli(["vm", "key-protector", "roll", "lk"]).code, "VM_ERR_STATE");
    } finally {
      qemu.kill("SIGKILL");
      await rm(p.qemuPid, { force: true });
    }
    assert.equal(cli(["key-protector", "revoke", "--vm", "lk", "--guardian", "hostL"]).status, 0);
    assert.equal(cli(["vm", "key-protector", "roll", "lk"]).status, 0);
    await startTpmOnly(ctx, "lk");
  });
});

describe("another VM's key protector", () => {
  it("in place of this VM's is refused loudly, not replaced by the last known good copy", async () => {
    await newVm(ctx, "f1");
    await newVm(ctx, "f2");
    await startTpmOnly(ctx, "f1");
    const p1 = ctx.store.paths("f1");
    await copyFile(ctx.store.paths("f2").keyProtector, p1.keyProtector);
    await rejectsWith(startTpmOnly(ctx, "f1"), "PROTECTOR_ERR_FOREIGN_PROTECTOR");
    // With the other VM's signed settings copied too, the owner's signed settings name another VM.
    await copyFile(statementPaths(ctx.store.paths("f2")).file, statementPaths(p1).file);
    await rejectsWith(startTpmOnly(ctx, "f1"), "VM_ERR_SETTINGS_TAMPERED");
    // And with its last known good copy too: nothing of this VM's is left to open its secrets.
    await copyFile(ctx.store.paths("f2").keyProtector, p1.keyProtectorLastKnownGood);
    await rejectsWith(startTpmOnly(ctx, "f1"), "VM_ERR_SETTINGS_TAMPERED");
  });

  it("a crash between the secrets and the protector of `key-protector set` is not mistaken for one", async () => {
    await newVm(ctx, "f3");
    const p = ctx.store.paths("f3");
    const before = await readFile(p.keyProtector);
    const signedBefore = await readFile(statementPaths(p).file);
    await setKeyProtector(ctx, "f3", { kind: "new-local" }); // a new protector id
    // As if killed before the protector itself (and the settings signed after it) were written.
    await writeFile(p.keyProtector, before);
    await writeFile(statementPaths(p).file, signedBefore);
    await startTpmOnly(ctx, "f3");
  });
});

describe("SIGKILL never bricks", () => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const child = path.join(here, "vm-rollback-child.js");

  async function killDuring(op: "start" | "roll", name: string, afterMs: number): Promise<void> {
    const proc = spawn(process.execPath, [child, dir, name, op], { stdio: ["ignore", "pipe", "ignore"] });
    const exited = new Promise((r) => proc.once("exit", r));
    // Timed from the child's first operation, not from its start (module loading varies with load).
    await new Promise<void>((r) => proc.stdout.once("data", () => r()));
    await sleep(afterMs);
    proc.kill("SIGKILL");
    await exited;
    // What a killed command leaves: its lock (stale, taken over) and maybe its swtpm.
    await killPidFile(ctx.store.paths(name).swtpmPid).catch(() => undefined);
  }

  it("kill -9 during start and during roll, at spread-out moments: the VM starts after each", async () => {
    await newVm(ctx, "kill1");
    await startTpmOnly(ctx, "kill1");
    for (const [i, ms] of [40, 120, 220, 350, 500, 700].entries()) {
      await killDuring(i % 2 === 0 ? "roll" : "start", "kill1", ms);
      await startTpmOnly(ctx, "kill1");
    }
    const s = await unlockVm(ctx, "kill1");
    try {
      assert.ok((readVersion(s, VM_SECRET.vtpmVersion) ?? 0n) >= 7n);
      // The secrets open under the protector in place (or its last known good copy).
      const kp = parseKeyProtector(await readFile(ctx.store.paths("kill1").keyProtectorLastKnownGood));
      assert.ok(kp.keyGeneration >= 1);
    } finally {
      zeroSecrets(s);
    }
  });
});
