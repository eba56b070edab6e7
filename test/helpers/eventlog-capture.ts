/**
 * Re-captures the OVMF event-log vectors: `node dist/test/helpers/eventlog-capture.js [name...]`.
 * Writes test/vectors/eventlog/<setup>/{binary_bios_measurements, tcg12.bin, pcrs.json,
 * provenance.json}. Run by hand only (tests read the stored files and also boot live).
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { captureFromOvmf, SETUPS } from "./eventlog-ovmf.js";
import { repoPath } from "./paths.js";

function version(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return `${r.stdout ?? ""}`.split("\n")[0]!.trim();
}

function debVersion(pkg: string): string {
  return version("dpkg-query", ["-W", "-f=${Version}", pkg]);
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  for (const setup of SETUPS.filter((s) => wanted.length === 0 || wanted.includes(s.name))) {
    const c = await captureFromOvmf(setup);
    const dir = repoPath("test/vectors/eventlog", setup.name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, "binary_bios_measurements"), c.tcg2);
    if (c.tcg12) writeFileSync(path.join(dir, "tcg12.bin"), c.tcg12);
    writeFileSync(path.join(dir, "pcrs.json"), `${JSON.stringify(c.pcrs, null, 2)}\n`);
    const provenance = {
      captured: new Date().toISOString(),
      how: "OVMF + swtpm boot of dumplog.efi (test/helpers/eventlog-ovmf.ts); log from EFI_TCG2_PROTOCOL.GetEventLog, PCRs from TPM2_PCR_Read",
      firmwareCode: setup.code,
      varsTemplate: setup.varsTemplate,
      efi: path.relative(repoPath(), setup.efi),
      pcrBanks: setup.pcrBanks ?? "all (a fresh swtpm state allocates sha1, sha256, sha384, sha512)",
      packages: {
        ovmf: debVersion("ovmf"),
        "qemu-system-x86": debVersion("qemu-system-x86"),
        swtpm: debVersion("swtpm"),
      },
      seconds: c.seconds,
    };
    writeFileSync(path.join(dir, "provenance.json"), `${JSON.stringify(provenance, null, 2)}\n`);
    process.stdout.write(
      `${setup.name}: ${c.tcg2.length} bytes, sha1 log ${c.tcg12?.length ?? 0} bytes, ${c.seconds}s\n`,
    );
  }
}

await main();
