/**
 * The foundation proof: Debian's signed shim → grub → kernel boots under OVMF Secure Boot with a
 * vTPM (real QEMU + OVMF + swtpm, TCG where KVM cannot run OVMF), a corrupted grub is refused,
 * the tpm2-tools variant reads PCR 7 inside the guest, and no child process survives.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { bootGuest, type GuestBootReport } from "../../src/lab/boot.js";
import { buildGuestDisk, ensureGuestImage, espPaths } from "../../src/lab/guest-image.js";
import { processAlive } from "../helpers/processes.js";

function assertReaped(r: GuestBootReport): void {
  assert.ok(r.pids.length >= 1);
  for (const pid of r.pids) assert.equal(processAlive(pid), false, `process ${pid} survived the boot`);
}

test("signed chain boots under Secure Boot with a vTPM and reports its event log", async () => {
  const img = await ensureGuestImage("base");
  const r = await bootGuest({ disk: img.disk, tpm: true, timeoutMs: 240_000 });
  assert.equal(r.outcome, "poweroff", r.serial.slice(-2000));
  assert.equal(r.ready, true);
  assert.equal(r.secureBoot, true);
  assert.equal(r.tpmPresent, true);
  assert.match(r.lockdown ?? "", /\[integrity\]/, "Debian's kernel locks down under Secure Boot");
  assert.ok(r.eventLog && r.eventLog.length > 1000, "non-empty TCG event log");
  // The crypto-agile log opens with the Spec ID event ("Spec ID Event03").
  assert.ok(Buffer.from(r.eventLog).includes(Buffer.from("Spec ID Event03")));
  assertReaped(r);
});

test("a grub with one byte flipped inside its signed region is refused", async () => {
  const img = await ensureGuestImage("base");
  const grub = Buffer.from(await readFile(img.bootChain.grub));
  // Flip a byte in the middle of the image: inside a section, so inside the Authenticode hash.
  const at = Math.floor(grub.length / 2);
  grub[at] = (grub[at] as number) ^ 0xff;
  const dir = await mkdtemp(path.join(os.tmpdir(), "bulwark-test-"));
  try {
    const disk = await buildGuestDisk({
      variant: "base",
      out: path.join(dir, "corrupt-grub.img"),
      overrides: { [espPaths.grub]: grub },
    });
    const r = await bootGuest({ disk, tpm: false, timeoutMs: 120_000 });
    assert.equal(r.ready, false, "the guest must not reach its ready marker");
    // shim draws "Verification failed: (0x1A) Security Violation" for grub.
    assert.equal(
      r.outcome,
      "refused",
      `expected a verification refusal, got ${r.outcome}: ${r.serial.slice(-1500)}`,
    );
    assert.match(r.refusal ?? "", /Security Violation|Access Denied/);
    assertReaped(r);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("the tpm2-tools variant reads PCR 7 inside the guest", async () => {
  const img = await ensureGuestImage("tpm2tools");
  const r = await bootGuest({
    disk: img.disk,
    tpm: true,
    script: "tpm2_pcrread sha256:7\n",
    timeoutMs: 240_000,
  });
  assert.equal(r.outcome, "poweroff", r.serial.slice(-2000));
  assert.equal(r.scriptExitCode, 0, r.scriptOutput ?? "");
  const m = /7\s*:\s*0x([0-9A-F]{64})/.exec(r.scriptOutput ?? "");
  assert.ok(m, `PCR 7 not in output: ${r.scriptOutput}`);
  assert.notEqual(m[1], "0".repeat(64), "PCR 7 holds Secure Boot measurements");
  assertReaped(r);
});
