/**
 * The security settings' locks (host/vm/settings.ts), called directly as any front end calls
 * them: off-only changes, Shielded's forced settings, the owner key on shielded VMs, the key
 * protector first, NVRAM re-provisioning, and the console refusal. No VM boots: a running VM is
 * a process whose pid file and command line match the VM's, as the runtime checks them.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { hostContext } from "../../src/host/index.js";
import { newVmConfig } from "../../src/host/vm/config.js";
import type { VmContext } from "../../src/host/vm/context.js";
import { vmStatus } from "../../src/host/vm/lifecycle.js";
import { provisionNvram } from "../../src/host/vm/nvram.js";
import {
  consoleFor,
  lockedByShielding,
  restoreKeyProtector,
  setFirmware,
  setKeyProtector,
  setSecurity,
  setSecurityPolicy,
  setTpm,
} from "../../src/host/vm/settings.js";
import { UNTRUSTED_GUARDIAN } from "../../src/protector/guardian.js";
import { parseVarStore } from "../../src/uefi/varstore.js";
import { reportVarStore } from "../../src/uefi/varstore-report.js";
import { rejectsWith } from "../helpers/errors.js";

let dir: string;
let ctx: VmContext;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "bulwark-settings-"));
  ctx = hostContext(dir);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function newVm(name: string, secureBoot = true): Promise<void> {
  const c = newVmConfig({ name, secureBoot });
  await provisionNvram(ctx.store.stateDir, c, await ctx.store.create(c), { fresh: true });
}

async function secureBootOf(name: string): Promise<string> {
  const bytes = new Uint8Array(await readFile(ctx.store.paths(name).nvram));
  return reportVarStore(parseVarStore(bytes), bytes.length).secureBoot;
}

/** Makes the VM look running to the runtime: a live process holding its pid file and QMP path. */
async function pretendRunning(name: string): Promise<ChildProcess> {
  const p = ctx.store.paths(name);
  await mkdir(p.runDir, { recursive: true });
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)", p.qmpSocket], {
    stdio: "ignore",
  });
  await writeFile(p.qemuPid, String(child.pid));
  return child;
}

describe("VM security settings", () => {
  it("change only while the VM is off", async () => {
    await newVm("saved");
    const p = ctx.store.paths("saved");
    await writeFile(p.savedState, "state");
    await writeFile(p.savedStateMeta, JSON.stringify({ version: 1, encrypted: false, bytes: 5 }));
    assert.equal((await vmStatus(ctx, "saved")).state, "Saved");
    await rejectsWith(setTpm(ctx, "saved", false), "VM_ERR_STATE");
    await rejectsWith(setFirmware(ctx, "saved", { secureBoot: false }), "VM_ERR_STATE");
    await rejectsWith(setKeyProtector(ctx, "saved", { kind: "new-local" }), "VM_ERR_STATE");
    await rejectsWith(restoreKeyProtector(ctx, "saved"), "VM_ERR_STATE");
    await rejectsWith(setSecurityPolicy(ctx, "saved", { shielded: true }), "VM_ERR_STATE");
    assert.equal((await ctx.store.load("saved")).firmware.secureBoot, true, "nothing changed");
  });

  it("the vTPM, state encryption and a policy need a key protector first", async () => {
    await newVm("bare");
    await rejectsWith(setTpm(ctx, "bare", true), "VM_ERR_KEY_PROTECTOR_REQUIRED");
    await rejectsWith(
      setSecurity(ctx, "bare", { encryptStateAndMigration: true }),
      "VM_ERR_KEY_PROTECTOR_REQUIRED",
    );
    await rejectsWith(setSecurityPolicy(ctx, "bare", { shielded: true }), "VM_ERR_KEY_PROTECTOR_REQUIRED");
    await rejectsWith(restoreKeyProtector(ctx, "bare"), "VM_ERR_KEY_PROTECTOR_REQUIRED");
    // Turning things off needs nothing.
    const r = await setSecurity(ctx, "bare", { encryptStateAndMigration: false });
    assert.deepEqual(r.changes, []);
  });

  it("Shielded forces and locks Secure Boot, the vTPM and encryption, re-provisioning the NVRAM", async () => {
    await newVm("sh", false);
    assert.equal(await secureBootOf("sh"), "disabled");
    const kp = await setKeyProtector(ctx, "sh", { kind: "new-local" });
    assert.deepEqual(kp.command, ["bulwark", "vm", "key-protector", "set", "sh", "--new-local"]);
    assert.equal(kp.changes[0]?.setting, "keyProtector");

    const r = await setSecurityPolicy(ctx, "sh", { shielded: true });
    assert.equal(r.config.security.policy, "Shielded");
    assert.deepEqual(Object.fromEntries(r.changes.map((c) => [c.setting, [c.from, c.to]])), {
      secureBoot: [false, true],
      tpm: [false, true],
      encryptStateAndMigration: [false, true],
      policy: ["None", "Shielded"],
      console: [true, false],
    });
    assert.deepEqual(r.command, ["bulwark", "vm", "security-policy", "set", "sh", "--shielded", "on"]);
    assert.equal(await secureBootOf("sh"), "enabled", "Secure Boot turned on by shielding rewrote the NVRAM");
    assert.deepEqual(lockedByShielding(r.config), ["secureBoot", "tpm", "encryptStateAndMigration"]);

    await rejectsWith(setFirmware(ctx, "sh", { secureBoot: false }), "VM_ERR_POLICY_LOCKED");
    await rejectsWith(setTpm(ctx, "sh", false), "VM_ERR_POLICY_LOCKED");
    await rejectsWith(setSecurity(ctx, "sh", { encryptStateAndMigration: false }), "VM_ERR_POLICY_LOCKED");
    await rejectsWith(setSecurityPolicy(ctx, "sh", { encryptionSupported: true }), "VM_ERR_POLICY_LOCKED");
    // What Shielded does not force may change; leaving it keeps the settings and brings the console back.
    const fw = await setFirmware(ctx, "sh", { template: "MicrosoftWindows" });
    assert.deepEqual(fw.changes, [
      { setting: "template", from: "MicrosoftUEFICertificateAuthority", to: "MicrosoftWindows" },
    ]);
    const off = await setSecurityPolicy(ctx, "sh", { shielded: false, encryptionSupported: false });
    assert.equal(off.config.security.policy, "None");
    assert.equal(off.config.console, true);
    assert.equal(off.config.tpm.enabled, true);
    assert.deepEqual(lockedByShielding(off.config), []);
    const es = await setSecurityPolicy(ctx, "sh", { encryptionSupported: true });
    assert.equal(es.config.security.policy, "EncryptionSupported");
  });

  it("a shielded VM changes only where the owner guardian's private key is", async () => {
    await newVm("owned");
    await setKeyProtector(ctx, "owned", { kind: "new-local" });
    await setSecurityPolicy(ctx, "owned", { shielded: true });
    const exported = await ctx.guardians.exportPrivate(UNTRUSTED_GUARDIAN);
    await ctx.guardians.remove(UNTRUSTED_GUARDIAN);
    try {
      await rejectsWith(
        setFirmware(ctx, "owned", { template: "MicrosoftWindows" }),
        "VM_ERR_OWNER_KEY_REQUIRED",
      );
      await rejectsWith(setKeyProtector(ctx, "owned", { kind: "new-local" }), "VM_ERR_OWNER_KEY_REQUIRED");
      await rejectsWith(setSecurityPolicy(ctx, "owned", { shielded: false }), "VM_ERR_OWNER_KEY_REQUIRED");
      assert.equal((await ctx.store.load("owned")).security.policy, "Shielded");
    } finally {
      await ctx.guardians.import(exported);
    }
    const r = await setSecurityPolicy(ctx, "owned", { shielded: false });
    assert.equal(r.config.security.policy, "EncryptionSupported");
  });

  it("a console only for a running VM that is not shielded", async () => {
    await newVm("con");
    await rejectsWith(consoleFor(ctx, "con"), "VM_ERR_CONSOLE_UNAVAILABLE");
    const running = await pretendRunning("con");
    try {
      assert.equal(await consoleFor(ctx, "con"), ctx.store.paths("con").consoleSocket);
      await rejectsWith(setTpm(ctx, "con", false), "VM_ERR_STATE");
      await ctx.store.save({ ...(await ctx.store.load("con")), console: false });
      await rejectsWith(consoleFor(ctx, "con"), "VM_ERR_CONSOLE_UNAVAILABLE");
    } finally {
      running.kill("SIGKILL");
    }
  });
});
