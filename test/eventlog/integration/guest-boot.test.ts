/**
 * The real boot chain: the guest test image (Debian shim → grub → kernel, from src/host) booted
 * under OVMF Secure Boot with a vTPM. The guest dumps binary_bios_measurements and runs
 * tpm2_pcrread; our parse must match tpm2_eventlog, our replay must reproduce the TPM's PCRs
 * (all but PCR 10, which IMA extends from its own log), and the boot-application digests must be
 * the Authenticode hashes of the very shim, grub and kernel files booted.
 *
 * Second boot, no Secure Boot keys (OVMF_VARS_4M.fd): the guest shows no event log. Why: with
 * Secure Boot off, Debian's grub starts the kernel through the legacy boot protocol instead of
 * LoadImage, so the kernel's EFI stub — which copies the log into the LINUX_EFI_TPM_EVENT_LOG
 * table — never runs. The TPM proves it: PCR 4 holds shim and grub but no kernel measurement.
 * (The firmware's own log exists in that setup too: see ovmf-dumplog.test.ts.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { bootGuest } from "../../../src/lab/boot.js";
import { ensureGuestImage } from "../../../src/lab/guest-image.js";
import {
  EventType,
  extractFacts,
  parseEventLog,
  parsePcrReadYaml,
  verifyEventLog,
  type PcrValues,
} from "../../../src/eventlog/index.js";
import { authenticodeDigest } from "../../../src/uefi/authenticode.js";
import { parsePe } from "../../../src/uefi/pe.js";
import { runTpm2Eventlog } from "../../helpers/eventlog-tpm2tools.js";

const READ_PCRS = "tpm2_pcrread sha1:all+sha256:all+sha384:all+sha512:all";
const IMA_PCR = 10;
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function withoutIma(p: PcrValues): PcrValues {
  return new Map([...p].map(([bank, m]) => [bank, new Map([...m].filter(([i]) => i !== IMA_PCR))]));
}

test(
  "guest boot: shim/grub/kernel log matches tpm2_eventlog and replays to the guest TPM's PCRs",
  { timeout: 900_000 },
  async (t) => {
    const img = await ensureGuestImage("tpm2tools");
    const r = await bootGuest({ disk: img.disk, tpm: true, timeoutMs: 600_000, script: READ_PCRS });
    assert.equal(r.outcome, "poweroff", r.serial.slice(-2000));
    assert.ok(r.eventLog, "the guest printed binary_bios_measurements");
    assert.equal(r.scriptExitCode, 0, r.scriptOutput ?? "");
    const log = parseEventLog(r.eventLog);
    const tpm = parsePcrReadYaml(r.scriptOutput ?? "");

    const tmp = mkdtempSync(path.join(os.tmpdir(), "bulwark-eventlog-guest-"));
    try {
      const file = path.join(tmp, "binary_bios_measurements");
      writeFileSync(file, r.eventLog);
      const tool = runTpm2Eventlog(file);
      assert.equal(tool.events.length, log.events.length);
      log.events.forEach((e, i) => {
        const te = tool.events[i]!;
        assert.deepEqual([te.pcr, te.type, te.size], [e.pcrIndex, e.typeName, e.data.length], `event ${i}`);
        if (i > 0)
          assert.deepEqual(
            te.digests,
            e.digests.map((d) => ({ alg: d.bank, digest: hex(d.digest) })),
          );
      });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }

    const v = verifyEventLog(log, { pcrs: withoutIma(tpm), requireSecureBoot: true });
    assert.equal(v.ok, true, JSON.stringify(v.findings, null, 1));
    assert.deepEqual(
      v.boundPcrs,
      Array.from({ length: 24 }, (_, i) => i).filter((i) => i !== IMA_PCR),
    );
    const full = verifyEventLog(log, { pcrs: tpm });
    assert.deepEqual(
      full.findings.filter((f) => f.id === "pcr-mismatch").map((f) => f.pcr),
      [IMA_PCR, IMA_PCR, IMA_PCR, IMA_PCR],
      "only IMA's PCR is outside the firmware log",
    );

    const f = extractFacts(log);
    const authenticode = (file: string) =>
      hex(authenticodeDigest(parsePe(new Uint8Array(readFileSync(file))), "sha256"));
    const apps = f.bootApplications.map((b) => b.digests["sha256"]);
    assert.equal(apps[0], authenticode(img.bootChain.shim), "shim");
    assert.equal(apps[1], authenticode(img.bootChain.grub), "grub");
    assert.ok(apps.slice(2).includes(authenticode(img.bootChain.kernel)), "kernel");
    assert.equal(f.secureBoot?.enabled, true);
    assert.ok(f.kernelCommandLines.length > 0 && f.kernelCommandLines.every((k) => k.proof.proven));
    assert.ok(f.grubFiles.some((g) => g.label.endsWith("/vmlinuz")));
    // grub measured the kernel file into PCR 9: the digest is the file's hash.
    const vmlinuz = createHash("sha256").update(readFileSync(img.bootChain.kernel)).digest("hex");
    assert.ok(
      f.grubFiles.some((g) => g.digests["sha256"] === vmlinuz),
      "PCR 9 carries the kernel file's digest",
    );

    await t.test("no Secure Boot keys: no log in the guest, and PCR 4 shows why", async () => {
      const nk = await bootGuest({
        disk: img.disk,
        vars: "/usr/share/OVMF/OVMF_VARS_4M.fd",
        tpm: true,
        timeoutMs: 600_000,
        script: READ_PCRS,
      });
      assert.equal(nk.outcome, "poweroff");
      assert.equal(nk.secureBoot, false);
      assert.equal(nk.tpmPresent, true);
      assert.equal(nk.eventLog, null, "Linux exposes no binary_bios_measurements");
      const nkPcr4 = parsePcrReadYaml(nk.scriptOutput ?? "")
        .get("sha256")!
        .get(4)!;
      // Replay PCR 4 of the Secure Boot log up to grub (no kernel LoadImage): it equals the no-keys TPM.
      const pcr4 = log.events.filter((e) => e.pcrIndex === 4 && e.eventType !== EventType.EV_NO_ACTION);
      const kernelAt = pcr4.findIndex(
        (e, i) =>
          i > 0 &&
          e.eventType === EventType.EV_EFI_BOOT_SERVICES_APPLICATION &&
          f.bootApplications[2]?.event === e.index,
      );
      let acc: Buffer = Buffer.alloc(32);
      for (const e of pcr4.slice(0, kernelAt)) {
        acc = createHash("sha256")
          .update(acc)
          .update(e.digests.find((d) => d.bank === "sha256")!.digest)
          .digest();
      }
      assert.equal(hex(acc), hex(nkPcr4));
    });
  },
);
