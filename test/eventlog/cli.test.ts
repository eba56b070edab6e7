/** `bulwark eventlog show|replay|verify` run as a user would, on a real log. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { repoPath } from "../helpers/paths.js";

const dir = repoPath("test/vectors/eventlog/ovmf-snakeoil-secureboot");
const log = path.join(dir, "binary_bios_measurements");

function bulwark(...args: string[]) {
  const r = spawnSync(process.execPath, [repoPath("dist/src/cli/main.js"), ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("eventlog show prints every event and the facts, with proof marks", () => {
  const r = bulwark("eventlog", "show", log);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Format: crypto-agile; banks: sha1, sha256, sha384, sha512; 24 events/);
  assert.match(r.stdout, /Secure Boot: enabled \[proven\]/);
  assert.match(r.stdout, /Authority: db → O=SnakeOil/);
  assert.match(r.stdout, /BOOTX64\.EFI \[path unproven\]/);
});

test("eventlog show names the bank of a SHA-1-only log's digests (never 'sha256' over a SHA-1)", () => {
  const r = bulwark("eventlog", "show", path.join(dir, "tcg12.bin"));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Format: sha1; banks: sha1/);
  assert.match(r.stdout, /Boot application: sha1 [0-9a-f]{40} path /);
  assert.doesNotMatch(r.stdout, /sha256 [0-9a-f]{40}\b(?![0-9a-f])/);
});

test("eventlog show --json gives events with digests and proofs", () => {
  const r = bulwark("eventlog", "show", log, "--json");
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as {
    events: { type: string; digests: Record<string, string>; proof: { proven: boolean } }[];
  };
  assert.equal(j.events.length, 24);
  assert.equal(j.events[4]!.type, "EV_EFI_VARIABLE_DRIVER_CONFIG");
  assert.equal(j.events[4]!.digests["sha256"]!.length, 64);
  assert.equal(j.events[4]!.proof.proven, true);
});

test("eventlog replay --json equals the PCR values the TPM reported", () => {
  const r = bulwark("eventlog", "replay", log, "--json");
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { banks: Record<string, { pcrs: Record<string, string> }> };
  const tpm = JSON.parse(readFileSync(path.join(dir, "pcrs.json"), "utf8")) as Record<
    string,
    Record<string, string>
  >;
  for (const bank of ["sha1", "sha256", "sha384", "sha512"]) assert.deepEqual(j.banks[bank]!.pcrs, tpm[bank]);
  const one = bulwark("eventlog", "replay", log, "--bank", "sha256");
  assert.match(one.stdout, /^sha256:\n {3}0 : 0x[0-9a-f]{64}/);
  assert.doesNotMatch(one.stdout, /sha1:/);
});

test("eventlog verify --ignore-pcr 10: the guest log against tpm2_pcrread output from the guest", () => {
  const g = repoPath("test/vectors/eventlog/debian-shim-grub-kernel-ms-secureboot");
  const args = [
    "eventlog",
    "verify",
    path.join(g, "binary_bios_measurements"),
    "--pcrs",
    path.join(g, "pcrs.yaml"),
  ];
  const all = bulwark(...args, "--require-secure-boot");
  assert.equal(all.code, 4, "PCR 10 (IMA) is not in the firmware log");
  assert.match(all.stdout, /pcr-mismatch: sha256 PCR 10/);
  const r = bulwark(...args, "--require-secure-boot", "--ignore-pcr", "10");
  assert.equal(r.code, 0, r.stdout);
  assert.match(r.stdout, /Verdict: OK; PCRs bound to the TPM values: 0 1 2 3 4 5 6 7 8 9 11 12/);
  assert.match(r.stdout, /kernel_cmdline: \/bulwark\/vmlinuz console=ttyS0,115200 .* \[proven\]/);
});

test("eventlog verify: exit 0 against the TPM's values, 4 against other values", () => {
  assert.equal(
    bulwark("eventlog", "verify", log, "--pcrs", path.join(dir, "pcrs.json"), "--require-secure-boot").code,
    0,
  );
  const tmp = mkdtempSync(path.join(os.tmpdir(), "bulwark-eventlog-cli-"));
  try {
    const pcrs = path.join(tmp, "pcrs.yaml");
    writeFileSync(pcrs, `  sha256:\n    7 : 0x${"00".repeat(32)}\n`);
    const r = bulwark("eventlog", "verify", log, "--pcrs", pcrs, "--json");
    assert.equal(r.code, 4);
    const j = JSON.parse(r.stdout) as { ok: boolean; findings: { id: string; pcr?: number }[] };
    assert.equal(j.ok, false);
    assert.ok(j.findings.some((f) => f.id === "pcr-mismatch" && f.pcr === 7));
    const garbage = path.join(tmp, "garbage.bin");
    writeFileSync(garbage, "not an event log at all");
    const g = bulwark("eventlog", "show", garbage, "--json");
    assert.equal(g.code, 5);
    assert.equal((JSON.parse(g.stdout) as { error: { code: string } }).error.code, "EVENTLOG_ERR_MALFORMED");
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  assert.equal(bulwark("eventlog", "show", "/nonexistent/log").code, 9);
  assert.equal(
    bulwark("eventlog", "verify", log, "--pcrs", path.join(dir, "pcrs.json"), "--ignore-pcr", "x").code,
    2,
  );
  assert.equal(bulwark("eventlog", "frobnicate", log).code, 2);
});
