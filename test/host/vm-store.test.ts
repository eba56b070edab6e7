/** The VM store, config rules, QEMU command line and QMP gate, without booting anything. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { isBulwarkError } from "../../src/core/errors.js";
import { newVmConfig, shield, validateConfig } from "../../src/host/vm/config.js";
import { qemuArgs } from "../../src/host/vm/qemu-args.js";
import { checkQmpCommand, memoryReadingCommands } from "../../src/host/vm/qmp-gate.js";
import { VmStore } from "../../src/host/vm/store.js";
import { repoPath } from "../helpers/paths.js";

const bin = repoPath("dist/src/cli/main.js");

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "bulwark-store-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("every vm verb on an unknown VM is VM_ERR_NOT_FOUND (exit status from the catalogue)", async () => {
  await withDir(async (dir) => {
    await assert.rejects(new VmStore(dir).lock("missing"), { code: "VM_ERR_NOT_FOUND" });
    for (const verb of [
      ["start"],
      ["stop"],
      ["turn-off"],
      ["save"],
      ["pause"],
      ["show"],
      ["console"],
      ["delete"],
      ["tpm", "enable"],
      ["key-protector", "show"],
      ["key-protector", "restore-last-known-good"],
      ["security-policy", "set", "--shielded", "on"],
    ]) {
      const [a, b, ...rest] = verb;
      const args = b && !b.startsWith("-") ? [a, b, "missing", ...rest] : [a, "missing", ...verb.slice(1)];
      const r = spawnSync(
        process.execPath,
        [bin, "vm", ...(args as string[]), "--state-dir", dir, "--json"],
        {
          encoding: "utf8",
        },
      );
      const err = (JSON.parse(r.stdout) as { error?: { code: string } }).error;
      assert.equal(err?.code, "VM_ERR_NOT_FOUND", `vm ${verb.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.notEqual(r.status, 0);
    }
  });
});

test("vm new refuses a disk that does not exist, and creates nothing", async () => {
  await withDir(async (dir) => {
    const r = spawnSync(
      process.execPath,
      [bin, "vm", "new", "d", "--disk", path.join(dir, "absent.qcow2"), "--state-dir", dir, "--json"],
      { encoding: "utf8" },
    );
    assert.equal((JSON.parse(r.stdout) as { error?: { code: string } }).error?.code, "VM_ERR_INVALID_CONFIG");
    assert.deepEqual(await new VmStore(dir).list(), []);
  });
});

test("names, duplicates and locks are typed errors", async () => {
  await withDir(async (dir) => {
    const store = new VmStore(dir);
    assert.throws(() => newVmConfig({ name: "../escape" }), { code: "VM_ERR_INVALID_NAME" });
    assert.throws(() => newVmConfig({ name: "" }), { code: "VM_ERR_INVALID_NAME" });
    const c = newVmConfig({ name: "a" });
    await store.create(c);
    await assert.rejects(store.create(c), { code: "VM_ERR_EXISTS" });
    await assert.rejects(store.load("missing"), { code: "VM_ERR_NOT_FOUND" });
    const lock = await store.lock("a");
    // A lock held by a live process (pid 1) is respected; our own stale lock file is not.
    await readFile(path.join(dir, "vms/a/.lock"), "utf8");
    await lock.release();
    const { writeFile } = await import("node:fs/promises");
    await writeFile(path.join(dir, "vms/a/.lock"), "1");
    await assert.rejects(store.lock("a"), { code: "VM_ERR_LOCKED" });
    await writeFile(path.join(dir, "vms/a/.lock"), "999999999");
    const stale = await store.lock("a");
    await stale.release();
  });
});

test("the Shielded policy forces and locks settings and takes away the ways in", () => {
  const c = shield({
    ...newVmConfig({ name: "s", disks: [{ path: "/d.img", format: "raw" }] }),
    guestAgent: true,
    debugStub: true,
  });
  assert.equal(c.firmware.secureBoot && c.tpm.enabled && c.security.encryptStateAndMigration, true);
  assert.equal(c.console || c.guestAgent || c.debugStub || c.shares.length > 0, false);
  assert.throws(() => validateConfig({ ...c, tpm: { enabled: false } }), { code: "VM_ERR_INVALID_CONFIG" });
  assert.throws(() => validateConfig({ ...c, console: true }), { code: "VM_ERR_INVALID_CONFIG" });
  const store = new VmStore("/var/lib/bulwark-test");
  const shieldedArgs = qemuArgs(c, store.paths("s"), {
    accelerator: "tcg",
    firmwareCode: "/code.fd",
    tpmSocket: "/t.sock",
  });
  assert.ok(
    !shieldedArgs.includes("-serial") && !shieldedArgs.includes("-gdb") && !shieldedArgs.includes("-virtfs"),
  );
  assert.ok(shieldedArgs.some((a) => a.includes("dump-guest-core=off")));
  assert.ok(shieldedArgs.includes("-sandbox"));
  assert.equal(shieldedArgs.filter((a) => a === "-mon").length, 1, "only the QMP monitor");
  const open = { ...newVmConfig({ name: "o" }), guestAgent: true, debugStub: true };
  const openArgs = qemuArgs(open, store.paths("o"), { accelerator: "tcg", firmwareCode: "/code.fd" });
  assert.ok(openArgs.includes("-serial") && openArgs.includes("-gdb"));
  for (const cmd of memoryReadingCommands) {
    assert.throws(
      () => checkQmpCommand(c, cmd),
      (e: unknown) => isBulwarkError(e) && e.code === "VM_ERR_QMP_REFUSED",
    );
  }
  assert.doesNotThrow(() => checkQmpCommand(c, "query-status"));
  assert.doesNotThrow(() => checkQmpCommand(open, "dump-guest-memory"));
});

test("vm new/list/show/firmware set/delete through the CLI", async () => {
  await withDir(async (dir) => {
    const run = (...args: string[]) => {
      const r = spawnSync(process.execPath, [bin, ...args, "--state-dir", dir, "--json"], {
        encoding: "utf8",
      });
      return { status: r.status, json: JSON.parse(r.stdout || "{}") as Record<string, unknown> };
    };
    assert.equal(run("vm", "new", "web", "--memory", "1024").status, 0);
    assert.equal((run("vm", "new", "web").json["error"] as { code: string }).code, "VM_ERR_EXISTS");
    const list = run("vm", "list").json as unknown as { name: string; state: string }[];
    assert.deepEqual(
      list.map((v) => [v.name, v.state]),
      [["web", "Off"]],
    );
    const show = run("vm", "show", "web").json as { security: { template: string; secureBoot: boolean } };
    assert.equal(show.security.template, "MicrosoftUEFICertificateAuthority");
    // The NVRAM follows the template: the UEFI CA is in db, then the Windows PCA after a switch.
    const nvram = path.join(dir, "vms/web/nvram.fd");
    const dbOf = () => {
      const r = spawnSync(process.execPath, [bin, "secureboot", "vars", "show", nvram, "--json"], {
        encoding: "utf8",
      });
      return r.stdout;
    };
    assert.match(dbOf(), /Microsoft Corporation UEFI CA 2011/);
    assert.equal(run("vm", "firmware", "set", "web", "--template", "MicrosoftWindows").status, 0);
    assert.match(dbOf(), /Microsoft Windows Production PCA 2011/);
    assert.doesNotMatch(dbOf(), /Microsoft Corporation UEFI CA 2011/);
    assert.equal(run("vm", "delete", "web").status, 0);
    assert.deepEqual(run("vm", "list").json, []);
  });
});

test("a test boot runs the VM command line in harness supervision: console on stdio, no QMP, no reboot", () => {
  const store = new VmStore("/tmp/bulwark-boot-x");
  const c = {
    ...newVmConfig({
      name: "boot",
      disks: [{ path: "/d.img", format: "raw", snapshot: true }],
      network: "none",
    }),
    tpm: { enabled: true },
  };
  const launch = { accelerator: "tcg", firmwareCode: "/code.fd", tpmSocket: "/t.sock" } as const;
  const harness = qemuArgs(c, store.paths("boot"), { ...launch, supervision: "harness" });
  const managed = qemuArgs(c, store.paths("boot"), launch);
  const serial = (a: string[]) => a[a.indexOf("-serial") - 1];
  assert.equal(serial(harness), "stdio,id=ser0,signal=off");
  assert.match(serial(managed) ?? "", /^socket,id=ser0,path=.*console\.sock/);
  for (const managedOnly of ["-name", "-uuid", "-mon", "-pidfile", "-daemonize"]) {
    assert.ok(managed.includes(managedOnly), managedOnly);
    assert.ok(!harness.includes(managedOnly), managedOnly);
  }
  assert.ok(harness.includes("-no-reboot") && !managed.includes("-no-reboot"));
  // The machine the guest sees is the same: firmware, disk, vTPM.
  const machine = (a: string[]) =>
    a.filter((x) => /^q35|^if=|^virtio-blk|^tpm-tis|^emulator|^socket,id=chrtpm/.test(x));
  assert.deepEqual(machine(harness), machine(managed));
});
