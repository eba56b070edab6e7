import { probeHost } from "../host/probe.js";
import { parse, printJson } from "./args.js";

const help = `Usage: bulwark doctor [--json]

Checks what Bulwark needs on this host: QEMU and its version, OVMF images found through QEMU's
firmware descriptors (secure-boot, enrolled-keys, requires-smm), swtpm and its capabilities,
whether /dev/kvm is usable and whether SMM works under KVM, and the accelerator Bulwark will use.
Every missing piece names the Debian package to install. Exit 0 when everything needed is present.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, {}, false);
  if (values.help) {
    process.stdout.write(`${help}\n`);
    return 0;
  }
  const r = await probeHost();
  const ok = r.missingPackages.length === 0;
  if (values.json) {
    printJson({ ok, ...r });
    return ok ? 0 : 7;
  }
  const mark = (b: boolean) => (b ? "ok  " : "MISSING");
  const out: string[] = [];
  out.push(`${mark(!!r.qemu.path)} QEMU        ${r.qemu.version ?? `install ${r.qemu.package}`}`);
  const caps = r.swtpm.capabilities as { features?: string[] } | null;
  out.push(
    `${mark(!!r.swtpm.path)} swtpm       ${r.swtpm.version ?? `install ${r.swtpm.package}`}${caps?.features ? ` (${caps.features.join(", ")})` : ""}`,
  );
  out.push("     firmware (QEMU descriptors):");
  for (const f of r.firmware) {
    out.push(
      `       ${f.executable}  [${f.features.filter((x) => ["secure-boot", "enrolled-keys", "requires-smm"].includes(x)).join(", ")}]`,
    );
  }
  out.push(
    `${mark(!!r.secureBootFirmware)} Secure Boot firmware ${r.secureBootFirmware?.executable ?? "none: install ovmf"}`,
  );
  out.push(
    `     KVM: ${r.kvm.device ? "/dev/kvm present" : "no /dev/kvm"}, ${r.kvm.usable ? "usable" : "not usable"}, SMM ${r.kvm.smm ? "works" : "does not work"} (${r.kvm.detail})`,
  );
  out.push(
    `     accelerator: ${r.accelerator}${r.accelerator === "tcg" ? " (software emulation: slower, but OVMF Secure Boot with SMM works)" : ""}`,
  );
  for (const t of r.tools)
    out.push(
      `${mark(!!t.path)} ${t.name.padEnd(11)} ${t.path ? (t.version ?? t.path) : `install ${t.package}`}`,
    );
  if (!ok) out.push("", `Install the missing pieces: apt-get install ${r.missingPackages.join(" ")}`);
  process.stdout.write(`${out.join("\n")}\n`);
  return ok ? 0 : 7;
}
