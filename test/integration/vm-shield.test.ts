/**
 * Hardening issue 11, items 1 and 4, on real QEMU + OVMF + swtpm: VMs that run on a granted host
 * (the owner granted its guardian; the owner's key is not there), started through the CLI with a
 * fake `qemu-system-x86_64` and `swtpm` first in PATH. The QMP gate of an encryption-on VM is an
 * allow-list (snapshot-save and every other state writer refused), every command the real QEMU
 * offers is classified, and editing config.json while the VM runs does not open the gate. The
 * VMs have no disk: QEMU and the firmware run, which is all the gate needs.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { hostContext } from "../../src/host/index.js";
import { newVmConfig, type VmConfig } from "../../src/host/vm/config.js";
import type { VmContext } from "../../src/host/vm/context.js";
import { createVm, turnOffVm } from "../../src/host/vm/lifecycle.js";
import { qemuPidOf } from "../../src/host/vm/processes.js";
import {
  classifyQmpCommand,
  encryptedAllowList,
  qmpClasses,
  shieldedAllowList,
} from "../../src/host/vm/qmp-gate.js";
import { statementPaths } from "../../src/host/vm/security-statement.js";
import { setKeyProtector, setSecurity, setSecurityPolicy, setTpm } from "../../src/host/vm/settings.js";
import { publicGuardian } from "../../src/protector/guardian.js";
import { grantGuardian } from "../../src/protector/key-protector.js";
import { repoPath } from "../helpers/paths.js";

const bin = repoPath("dist/src/cli/main.js");
let root: string;
let owner: VmContext;
let granted: VmContext;
let fakeDir: string;
let fakeMarker: string;

/** The CLI on the granted host, with the fake programs first in PATH. */
function cli(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args, "--state-dir", granted.store.stateDir, "--json"], {
    encoding: "utf8",
    env: { ...process.env, PATH: `${fakeDir}:${process.env["PATH"] ?? ""}` },
  });
  let json: Record<string, unknown> & { error?: { code: string; message: string } } = {};
  try {
    json = JSON.parse(r.stdout) as typeof json;
  } catch {
    // not JSON
  }
  return { status: r.status, json, stdout: r.stdout, stderr: r.stderr };
}

/** Creates the VM on the owner's host with `secure` applied, moves it to the granted host and grants it. */
async function provision(name: string, secure: (n: string) => Promise<unknown>): Promise<void> {
  await createVm(owner, newVmConfig({ name, network: "none", memoryMiB: 256 }));
  await setKeyProtector(owner, name, { kind: "new-local" });
  await secure(name);
  const to = granted.store.paths(name);
  await cp(owner.store.paths(name).dir, to.dir, { recursive: true });
  const kp = grantGuardian(
    new Uint8Array(await readFile(to.keyProtector)),
    publicGuardian(await granted.guardians.untrustedGuardian()),
    { owner: await owner.guardians.untrustedGuardian() },
  );
  await writeFile(to.keyProtector, kp);
  await writeFile(to.keyProtectorLastKnownGood, kp);
}

async function weakenConfig(name: string): Promise<void> {
  const file = granted.store.paths(name).config;
  const c = JSON.parse(await readFile(file, "utf8")) as VmConfig;
  const weak: VmConfig = {
    ...c,
    security: { policy: "None", encryptStateAndMigration: false },
    console: true,
    debugStub: true,
  };
  await writeFile(file, JSON.stringify(weak, null, 2));
}

function refused(name: string, command: string, args = "{}"): void {
  const r = cli(["vm", "qmp", name, command, args]);
  assert.equal(r.json.error?.code, "VM_ERR_QMP_REFUSED", `${command}: ${r.stdout}${r.stderr}`);
}

before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "bulwark-shield-"));
  owner = hostContext(path.join(root, "owner"));
  granted = hostContext(path.join(root, "granted"));
  fakeDir = path.join(root, "fake-bin");
  fakeMarker = path.join(root, "fake-ran");
  await mkdir(fakeDir);
  for (const p of ["qemu-system-x86_64", "swtpm", "swtpm_setup", "qemu-img"]) {
    // A look-alike that would copy the key on fd 3 and add a monitor; it only leaves a mark.
    const f = path.join(fakeDir, p);
    await writeFile(
      f,
      `#!/bin/sh\necho "${p} $*" >> ${fakeMarker}\ncat <&3 >> ${fakeMarker} 2>/dev/null\nexit 1\n`,
    );
    await chmod(f, 0o755);
  }
  await provision("enc", async (n) => {
    await setTpm(owner, n, true);
    await setSecurity(owner, n, { encryptStateAndMigration: true });
    await setSecurityPolicy(owner, n, { encryptionSupported: true });
  });
  await provision("shield", (n) => setSecurityPolicy(owner, n, { shielded: true }));
});

after(async () => {
  for (const n of ["enc", "shield"]) await turnOffVm(granted, n).catch(() => undefined);
  await rm(root, { recursive: true, force: true });
});

describe("an encryption-on VM on a granted host", () => {
  it("starts from the system's QEMU and swtpm, not the ones first in PATH", () => {
    const r = cli(["vm", "start", "enc"]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(r.json["state"], "Running");
    assert.equal(existsSync(fakeMarker), false, "a fake program ran");
    const pid = qemuPidOf(granted.store.paths("enc"));
    assert.ok(pid !== null);
  });

  it("refuses snapshot-save and every command that writes state, memory or disks", () => {
    refused(
      "enc",
      "snapshot-save",
      JSON.stringify({ "job-id": "s", tag: "t", vmstate: "disk0", devices: [] }),
    );
    for (const cmd of [
      "snapshot-load",
      "snapshot-delete",
      "human-monitor-command",
      "migrate",
      "dump-guest-memory",
      "memsave",
      "pmemsave",
      "blockdev-add",
      "blockdev-backup",
      "drive-backup",
      "drive-mirror",
      "block-commit",
      "block-export-add",
      "nbd-server-start",
      "device_add",
      "object-add",
      "chardev-add",
      "netdev_add",
      "qom-set",
      "qom-get",
      "getfd",
      "add-fd",
      "x-query-ramblock",
      "x-a-command-from-a-newer-qemu",
    ]) {
      refused("enc", cmd);
    }
  });

  it("classifies every command the running QEMU offers; allows only status, power and host metadata", async () => {
    const r = cli(["vm", "qmp", "enc", "query-commands"]);
    assert.equal(r.status, 0, r.stderr);
    const offered = (JSON.parse(r.stdout) as { name: string }[]).map((c) => c.name);
    assert.ok(offered.length > 150, `QEMU offered ${offered.length} commands`);
    const unclassified = offered.filter((n) => classifyQmpCommand(n) === undefined);
    assert.deepEqual(unclassified, [], "classify these in src/host/vm/qmp-gate.ts");
    for (const n of encryptedAllowList) {
      const k = classifyQmpCommand(n);
      assert.ok(k === "status" || k === "power" || k === "metadata", `${n}: ${String(k)}`);
      assert.ok(qmpClasses[k].length > 20, "each class says why");
    }
    for (const n of shieldedAllowList)
      assert.ok(encryptedAllowList.includes(n), `shielded is stricter: ${n}`);
    // What is allowed works on the real VM.
    for (const cmd of ["query-status", "query-block", "query-pci", "query-memory-size-summary"]) {
      const ok = cli(["vm", "qmp", "enc", cmd]);
      assert.equal(ok.status, 0, `${cmd}: ${ok.stdout}${ok.stderr}`);
    }
  });

  it("config.json weakened while it runs does not open the gate", async () => {
    await weakenConfig("enc");
    refused("enc", "pmemsave", JSON.stringify({ val: 0, size: 4096, filename: path.join(root, "ram") }));
    refused("enc", "snapshot-save");
    assert.equal(existsSync(path.join(root, "ram")), false);
    // The copy verified at start replaced by anything else: gated as shielded.
    await writeFile(statementPaths(granted.store.paths("enc")).runCopy, "not the statement");
    refused("enc", "query-block");
    assert.equal(cli(["vm", "qmp", "enc", "query-status"]).status, 0);
  });
});

describe("a shielded VM on a granted host", () => {
  it("starts; config.json weakened while it runs leaves pmemsave refused", async () => {
    const r = cli(["vm", "start", "shield"]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    await weakenConfig("shield");
    refused("shield", "pmemsave", JSON.stringify({ val: 0, size: 4096, filename: path.join(root, "ram2") }));
    refused("shield", "query-block");
    assert.equal(existsSync(path.join(root, "ram2")), false);
    // Nor does it make a save plain: the save is refused and the VM keeps running.
    const save = cli(["vm", "save", "shield"]);
    assert.equal(save.json.error?.code, "VM_ERR_SETTINGS_TAMPERED", save.stdout + save.stderr);
    assert.equal(existsSync(granted.store.paths("shield").savedState), false);
    assert.notEqual(qemuPidOf(granted.store.paths("shield")), null);
    await turnOffVm(granted, "shield");
    // Weakened while off: the next start is refused before any key.
    const again = cli(["vm", "start", "shield"]);
    assert.equal(again.json.error?.code, "VM_ERR_SETTINGS_TAMPERED", again.stdout);
    assert.equal(qemuPidOf(granted.store.paths("shield")), null);
  });
});
