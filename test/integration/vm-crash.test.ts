/**
 * Hardening item 6 on real QEMU + OVMF + swtpm, without booting a guest (the disk is empty: a
 * started VM sits in OVMF): a start whose vTPM dies at once is an error that leaves nothing
 * running and nothing changed; a lost vTPM state is refused, never silently re-manufactured,
 * until `vm tpm reset --yes`; each file of a VM missing or replaced gives a catalogue code that
 * names it, never "internal error".
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cp, mkdir, mkdtemp, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { newVmConfig } from "../../src/host/vm/config.js";
import { startVm, turnOffVm, vmStatus } from "../../src/host/vm/lifecycle.js";
import { setKeyProtector, setSecurityPolicy, setTpm } from "../../src/host/vm/settings.js";
import { resetVtpm } from "../../src/host/vm/vtpm-reset.js";
import { rejectsWith } from "../helpers/errors.js";
import { repoPath } from "../helpers/paths.js";
import { processesMatching } from "../helpers/processes.js";
import { makeTestHost } from "../helpers/vm.js";

// The probe's two short QEMU runs are not what these tests are about.
process.env["BULWARK_ACCEL"] = "tcg";

const host = await makeTestHost("bulwark-crash-");
after(() => host.cleanup());
const disk = path.join(host.dir, "empty.raw");
await writeFile(disk, Buffer.alloc(1 << 20));
const NAME = "c";
await host.ctx.store.create(
  newVmConfig({ name: NAME, disks: [{ path: disk, format: "raw" }], network: "none" }),
);
await setKeyProtector(host.ctx, NAME, { kind: "new-local" });
await setTpm(host.ctx, NAME, true);
// Shielded: QEMU is not daemonized, so "up" used to mean only "pid file and QMP socket exist".
await setSecurityPolicy(host.ctx, NAME, { shielded: true });
const p = host.ctx.store.paths(NAME);
const permall = path.join(p.tpmDir, "tpm2-00.permall");

const bin = repoPath("dist/src/cli/main.js");
function cli(stateDir: string, args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args, "--state-dir", stateDir, "--json"], {
    encoding: "utf8",
    timeout: 90_000,
  });
  const at = r.stdout.indexOf('{"error"');
  const error =
    at >= 0 ? (JSON.parse(r.stdout.slice(at)) as { error: { code: string; message: string } }).error : null;
  return { status: r.status, error, stdout: r.stdout, stderr: r.stderr };
}

/** Nothing of this VM is running: no QEMU on its QMP socket, no swtpm on its state directory. */
function assertNothingRunning(dir = host.dir): void {
  assert.deepEqual(processesMatching(path.join(dir, "vms", NAME, "run", "qmp.sock")), [], "a QEMU is left");
  assert.deepEqual(processesMatching(path.join(dir, "vms", NAME, "tpm")), [], "a swtpm is left");
}

test("a vTPM state that swtpm cannot load: start fails with a typed error, nothing left running or changed", async () => {
  const first = await startVm(host.ctx, NAME);
  assert.equal(first.state, "Running");
  assert.ok((await host.ctx.store.load(NAME)).vtpmManufacturedAt, "the first start records the manufacture");
  await turnOffVm(host.ctx, NAME);
  const good = await readFile(permall);

  for (const damage of [
    async () => truncate(permall, 100),
    async () => writeFile(permall, randomBytes(good.length)),
  ]) {
    await damage();
    const damaged = await readFile(permall);
    const config = await readFile(p.config);
    // The host's own session with swtpm (the vTPM version check, before QEMU) is the first to
    // load the state: it refuses with VM_ERR_VTPM_KEY (a state that does not open under this
    // VM's key). A QEMU that dies at once is VM_ERR_START_FAILED (the missing-disk case below).
    await rejectsWith(startVm(host.ctx, NAME), "VM_ERR_VTPM_KEY");
    assertNothingRunning();
    assert.equal((await vmStatus(host.ctx, NAME)).state, "Off");
    assert.deepEqual(await readFile(permall), damaged, "the vTPM state is left as it was");
    assert.deepEqual(await readFile(p.config), config, "the config is left as it was");
  }
  await writeFile(permall, good);
  assert.equal((await startVm(host.ctx, NAME)).state, "Running");
  await turnOffVm(host.ctx, NAME);
});

test("a lost vTPM state is refused, not re-manufactured; vm tpm reset --yes makes a new one, recorded", async () => {
  const manufactured = (await host.ctx.store.load(NAME)).vtpmManufacturedAt;
  assert.ok(manufactured);
  for (const lose of [() => rm(permall), () => rm(p.tpmDir, { recursive: true })]) {
    await mkdir(p.tpmDir, { recursive: true, mode: 0o700 });
    await lose();
    await rejectsWith(startVm(host.ctx, NAME), "VM_ERR_VTPM_STATE_MISSING");
    await assert.rejects(stat(permall), "no new vTPM was made");
    assertNothingRunning();
    const r = cli(host.dir, ["vm", "start", NAME]);
    assert.equal(r.error?.code, "VM_ERR_VTPM_STATE_MISSING", r.stdout + r.stderr);
    assert.match(r.error?.message ?? "", /vm tpm reset c --yes/);
  }
  // Reset: refused without the confirmation, done with it, written down.
  assert.equal(cli(host.dir, ["vm", "tpm", "reset", NAME]).error?.code, "VM_ERR_CONFIRMATION_REQUIRED");
  const done = cli(host.dir, ["vm", "tpm", "reset", NAME, "--yes"]);
  assert.equal(done.status, 0, done.stdout + done.stderr);
  const history = (await readFile(p.history, "utf8"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(history.at(-1)?.["event"], "vtpm-reset");
  assert.equal(history.at(-1)?.["discardedManufacturedAt"], manufactured);
  assert.equal((await host.ctx.store.load(NAME)).vtpmManufacturedAt, undefined);
  assert.equal((await startVm(host.ctx, NAME)).state, "Running");
  await stat(permall);
  const again = (await host.ctx.store.load(NAME)).vtpmManufacturedAt;
  assert.ok(again && again !== manufactured, "the new vTPM's manufacture is recorded");
  // Not while it runs.
  await rejectsWith(resetVtpm(host.ctx, NAME, { confirmed: true }), "VM_ERR_STATE");
  await turnOffVm(host.ctx, NAME);
});

test("each file of a VM missing or replaced by a directory: a catalogue code naming it, never an internal error", async () => {
  const files: [string, string][] = [
    [p.config, "config.json"],
    [p.nvram, "nvram.fd"],
    [p.keyProtector, "key-protector.bkp"],
    [p.keyProtectorLastKnownGood, "key-protector.last-known-good.bkp"],
    [p.vmSecrets, "vm-secrets.bin"],
    [p.tpmDir, "tpm"],
    [permall, "tpm2-00.permall"],
    [
      path.join(host.dir, "host", "guardians", "UntrustedGuardian.guardian.pem"),
      "UntrustedGuardian.guardian.pem",
    ],
    [p.dir, NAME],
  ];
  const verbs = [
    ["vm", "show", NAME],
    ["vm", "start", NAME],
    ["vm", "key-protector", "show", NAME],
    ["vm", "firmware", "set", NAME, "--secure-boot", "on"],
  ];
  const scratch = await mkdtemp(path.join(os.tmpdir(), "bulwark-crash-files-"));
  try {
    for (const [file, shown] of files) {
      for (const mode of ["deleted", "a directory"] as const) {
        const dir = path.join(scratch, "s");
        await rm(dir, { recursive: true, force: true });
        await cp(host.dir, dir, { recursive: true });
        const target = path.join(dir, path.relative(host.dir, file));
        await rm(target, { recursive: true, force: true });
        if (mode === "a directory") await mkdir(target);
        // Replaced by a directory (EISDIR, which carries no path): the verbs that read every file.
        for (const argv of mode === "deleted" ? verbs : verbs.slice(0, 2)) {
          const r = cli(dir, argv);
          const what = `${shown} ${mode}: ${argv.join(" ")}`;
          assert.notEqual(r.status, null, `${what} hung`);
          if (r.error) {
            assert.notEqual(r.error.code, "CORE_ERR_INTERNAL", `${what}: ${r.error.message}`);
            assert.doesNotMatch(r.error.message, /internal error/, what);
          }
          if (argv[1] === "start") {
            if (r.status === 0) cli(dir, ["vm", "turn-off", NAME]);
            assertNothingRunning(dir);
          }
        }
      }
    }
    // The disk, the same way (it lives outside the state directory).
    await rm(disk);
    const r = cli(host.dir, ["vm", "start", NAME]);
    assert.equal(r.error?.code, "VM_ERR_START_FAILED", r.stdout);
    assert.match(r.error?.message ?? "", /empty\.raw/);
    assertNothingRunning();
  } finally {
    await writeFile(disk, Buffer.alloc(1 << 20));
    await rm(scratch, { recursive: true, force: true });
  }
});
