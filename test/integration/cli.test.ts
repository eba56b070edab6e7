/** The `bulwark` command as a user runs it: version, help, doctor, demo, Ctrl-C. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { childrenOf, processAlive, processesMatching } from "../helpers/processes.js";
import { repoPath } from "../helpers/paths.js";

const bin = repoPath("dist/src/cli/main.js");
const cli = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" });

test("--version prints the package version", () => {
  const r = cli(["--version"]);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /^bulwark \d+\.\d+\.\d+\n$/);
});

test("unknown verbs and options fail with the usage status", () => {
  assert.equal(cli(["no-such-verb"]).status, 2);
  const r = cli(["doctor", "--no-such-option", "--json"]);
  assert.equal(r.status, 2);
  assert.equal(JSON.parse(r.stdout).error.code, "CLI_ERR_USAGE");
});

test("doctor finds QEMU, the secure-boot OVMF, swtpm and picks an accelerator", () => {
  const r = cli(["doctor", "--json"]);
  const report = JSON.parse(r.stdout) as {
    ok: boolean;
    qemu: { version: string };
    secureBootFirmware: { executable: string; features: string[] } | null;
    swtpm: { capabilities: { features: string[] } };
    kvm: { device: boolean; usable: boolean; smm: boolean };
    accelerator: string;
    missingPackages: string[];
  };
  assert.equal(r.status, 0, r.stdout);
  assert.equal(report.ok, true);
  assert.match(report.qemu.version, /QEMU emulator version/);
  assert.ok(report.secureBootFirmware?.features.includes("requires-smm"));
  assert.ok(report.swtpm.capabilities.features.includes("tpm-2.0"));
  // The accelerator follows the probe: KVM only when SMM works under it.
  assert.equal(report.accelerator, report.kvm.usable && report.kvm.smm ? "kvm" : "tcg");
  const human = cli(["doctor"]);
  assert.match(human.stdout, /accelerator: (kvm|tcg)/);
});

test("Ctrl-C during the demo stops QEMU and swtpm and exits 130", async () => {
  const child = spawn(process.execPath, [bin, "demo", "--quiet"], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  // Wait until QEMU and swtpm are running, then interrupt.
  const deadline = Date.now() + 60_000;
  let before: number[] = [];
  while (before.length < 2 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    // Only this demo's own children: other tests may be booting guests at the same time.
    before = child.pid === undefined ? [] : childrenOf(child.pid);
  }
  assert.ok(before.length >= 1, "QEMU/swtpm should be running before Ctrl-C");
  child.kill("SIGINT");
  const code = await new Promise<number | null>((r) => child.on("exit", r));
  assert.equal(code, 130, err);
  assert.match(err, /HOST_ERR_INTERRUPTED/);
  for (const pid of before) assert.equal(processAlive(pid), false, `process ${pid} survived Ctrl-C`);
});

test("demo part 3: HGS refuses the unregistered host, then releases the shielded VM's keys", async () => {
  const child = spawn(process.execPath, [bin, "demo", "--part", "fabric", "--json"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((r) => child.on("exit", r));
  assert.equal(code, 0, err + out);
  const r = JSON.parse(out) as {
    ok: boolean;
    fabric: {
      unregistered: { error: string; attestationStatus: string; vmState: string };
      registered: { vmState: string };
      keyProtector: { guardians: string[]; keyGenerationBefore: number; keyGenerationAfter: number };
      hostStatus: { AttestationStatus: string };
      auditEvents: string[];
    };
  };
  assert.equal(r.ok, true);
  assert.deepEqual(r.fabric.unregistered, {
    error: "HOSTGUARD_ERR_ATTESTATION_FAILED",
    attestationStatus: "UnauthorizedHost",
    vmState: "Off",
  });
  assert.equal(r.fabric.registered.vmState, "Running");
  assert.deepEqual(r.fabric.keyProtector.guardians, ["HGS"]);
  assert.equal(r.fabric.keyProtector.keyGenerationAfter, r.fabric.keyProtector.keyGenerationBefore + 1);
  assert.equal(r.fabric.hostStatus.AttestationStatus, "Passed");
  assert.ok(r.fabric.auditEvents.includes("key.released"));
  // The VM (QEMU and swtpm run detached from the CLI) was turned off on the way out.
  assert.deepEqual(processesMatching("bulwark-fabric-"), []);
});

test("a reader that stops early (| head) ends the command quietly", () => {
  const log = repoPath(
    "test/vectors/eventlog/debian-shim-grub-kernel-ms-secureboot/binary_bios_measurements",
  );
  // 108 KB of JSON: more than a pipe holds, so the write meets the closed pipe.
  const r = spawnSync(
    "sh",
    ["-c", `"${process.execPath}" "${bin}" eventlog show "${log}" --json | head -c 10`],
    {
      encoding: "utf8",
    },
  );
  assert.equal(r.stdout.length, 10);
  assert.equal(r.stderr, "");
});
