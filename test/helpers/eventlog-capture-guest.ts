/**
 * Re-captures the real guest-boot vector test/vectors/eventlog/debian-shim-grub-kernel-ms-secureboot:
 * `node dist/test/helpers/eventlog-capture-guest.js` (one guest boot, about 15 s under TCG).
 * Run by hand only, after the guest image's boot chain or grub.cfg changed (tests read the stored
 * files; test/eventlog/integration/guest-boot.test.ts boots live).
 *
 * Boots the tpm2tools guest image under OVMF_CODE_4M.secboot.fd + a copy of OVMF_VARS_4M.ms.fd
 * with a fresh swtpm; the guest's /init prints /sys/kernel/security/tpm0/binary_bios_measurements
 * and the output of `tpm2_pcrread` from the same boot. Writes binary_bios_measurements, pcrs.yaml,
 * grub.cfg (the file grub read and measured into PCR 9: HGS test hosts edit it to derive
 * unhealthy boots) and provenance.json; refuses to write anything unless the log replays to the
 * guest TPM's PCRs (all but IMA's PCR 10) with Secure Boot proven on.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { bootGuest } from "../../src/lab/boot.js";
import { ensureGuestImage } from "../../src/lab/guest-image.js";
import { grubConfig } from "../../src/lab/guest-init.js";
import {
  EventType,
  extractFacts,
  parseEventLog,
  parsePcrReadYaml,
  verifyEventLog,
} from "../../src/eventlog/index.js";
import { REAL_BOOT_VECTOR } from "./hgs-boot.js";
import { repoPath } from "./paths.js";

const READ_PCRS = "tpm2_pcrread sha1:all+sha256:all+sha384:all+sha512:all";
const IMA_PCR = 10;

const sha256Hex = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

async function main(): Promise<void> {
  const img = await ensureGuestImage("tpm2tools", { progress: (m) => process.stderr.write(`${m}\n`) });
  const r = await bootGuest({ disk: img.disk, tpm: true, timeoutMs: 600_000, script: READ_PCRS });
  if (r.outcome !== "poweroff" || !r.eventLog || r.scriptExitCode !== 0 || r.secureBoot !== true) {
    throw new Error(
      `the guest boot did not report a Secure Boot log and PCRs (outcome ${r.outcome}, script rc ${r.scriptExitCode}):\n${r.serial.slice(-2000)}`,
    );
  }
  const log = parseEventLog(r.eventLog);
  const tpm = parsePcrReadYaml(r.scriptOutput ?? "");
  const withoutIma = new Map(
    [...tpm].map(([bank, m]) => [bank, new Map([...m].filter(([i]) => i !== IMA_PCR))]),
  );
  const v = verifyEventLog(log, { pcrs: withoutIma, requireSecureBoot: true });
  if (!v.ok) throw new Error(`the log does not verify against the guest TPM: ${JSON.stringify(v.findings)}`);

  // grub measures the configuration file it sources into PCR 9; keep the very bytes it read.
  const cfgDigest = sha256Hex(grubConfig);
  const cfgEvent = log.events.find(
    (e) =>
      e.pcrIndex === 9 &&
      e.eventType === EventType.EV_IPL &&
      Buffer.from(e.data).toString("latin1").replace(/\0+$/, "").endsWith("/grub.cfg"),
  );
  const measured = cfgEvent?.digests.find((d) => d.bank === "sha256");
  if (!measured || Buffer.from(measured.digest).toString("hex") !== cfgDigest) {
    throw new Error("grub.cfg on the image is not the file grub measured into PCR 9");
  }

  const dir = repoPath("test/vectors/eventlog", REAL_BOOT_VECTOR);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "binary_bios_measurements"), r.eventLog);
  writeFileSync(path.join(dir, "pcrs.yaml"), r.scriptOutput ?? "");
  writeFileSync(path.join(dir, "grub.cfg"), grubConfig);
  const provenance = {
    captured: new Date().toISOString(),
    how: "bootGuest (src/host/boot.ts) of the tpm2tools guest image: OVMF_CODE_4M.secboot.fd + a copy of OVMF_VARS_4M.ms.fd (Microsoft + Debian keys enrolled, Secure Boot on), swtpm vTPM, QEMU TCG; the guest /init base64-dumps /sys/kernel/security/tpm0/binary_bios_measurements on the serial console; pcrs.yaml is tpm2_pcrread sha1:all+sha256:all+sha384:all+sha512:all run inside the same guest after boot; captured by test/helpers/eventlog-capture-guest.ts",
    guestImageKey: img.key,
    guestPackages: img.packages,
    bootChainSha256: {
      shimx64: sha256Hex(readFileSync(img.bootChain.shim)),
      grubx64: sha256Hex(readFileSync(img.bootChain.grub)),
      vmlinuz: sha256Hex(readFileSync(img.bootChain.kernel)),
      "grub.cfg": cfgDigest,
    },
    kernelCommandLines: extractFacts(log).kernelCommandLines.map((k) => k.text),
    pcrsNotInLog: {
      [IMA_PCR]:
        "IMA (the kernel extends PCR 10 with its own runtime log, ascii_runtime_measurements, not binary_bios_measurements)",
    },
    seconds: r.seconds,
  };
  writeFileSync(path.join(dir, "provenance.json"), `${JSON.stringify(provenance, null, 2)}\n`);
  process.stdout.write(
    `${REAL_BOOT_VECTOR}: ${r.eventLog.length} bytes, ${log.events.length} events, kernel command line ${JSON.stringify(provenance.kernelCommandLines)}, ${r.seconds}s\n`,
  );
}

await main();
