/**
 * What this host can run: QEMU, OVMF, swtpm, KVM and SMM under KVM. `bulwark doctor` prints it;
 * the runtime uses {@link chooseAccelerator}. OVMF's secure-boot build needs SMM; where KVM
 * cannot provide it, QEMU exits at once and we fall back to TCG.
 */
import { accessSync, constants } from "node:fs";
import { spawnChild } from "./children.js";
import { debianPackageOf, findProgram, runProgram } from "./tools.js";
import { readFirmwareDescriptors, type FirmwareDescriptor } from "./firmware.js";

export interface ToolStatus {
  readonly name: string;
  readonly path: string | null;
  readonly version: string | null;
  readonly package: string;
}

export interface KvmStatus {
  readonly device: boolean;
  readonly usable: boolean;
  readonly smm: boolean;
  readonly detail: string;
}

export interface HostReport {
  readonly qemu: ToolStatus;
  readonly swtpm: ToolStatus & { capabilities: unknown };
  readonly tools: ToolStatus[];
  readonly firmware: FirmwareDescriptor[];
  readonly secureBootFirmware: FirmwareDescriptor | null;
  readonly kvm: KvmStatus;
  readonly accelerator: "kvm" | "tcg";
  readonly missingPackages: string[];
}

async function toolStatus(name: string, versionArgs: string[] | null): Promise<ToolStatus> {
  const p = findProgram(name);
  let version: string | null = null;
  if (p && versionArgs) {
    try {
      const { stdout, stderr } = await runProgram(p, versionArgs, { timeout: 10_000 });
      version = (stdout || stderr).split("\n")[0]?.trim() ?? null;
    } catch {
      version = null;
    }
  }
  return { name, path: p ?? null, version, package: debianPackageOf[name] ?? name };
}

/** Starts QEMU paused under KVM with SMM on; SMM-less KVM makes it exit at once. */
export async function probeKvm(): Promise<KvmStatus> {
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
  } catch {
    return { device: false, usable: false, smm: false, detail: "/dev/kvm missing or not accessible" };
  }
  const qemu = findProgram("qemu-system-x86_64");
  if (!qemu) return { device: true, usable: false, smm: false, detail: "qemu-system-x86_64 not installed" };
  // Alive after 1.5 s: QEMU accepted the machine (then it is stopped); exited: it refused.
  const attempt = async (smm: boolean): Promise<{ ok: boolean; stderr: string }> => {
    const q = spawnChild(qemu, [
      "-accel",
      "kvm",
      "-machine",
      `q35,smm=${smm ? "on" : "off"}`,
      "-nodefaults",
      "-display",
      "none",
      "-S",
      "-m",
      "64",
    ]);
    let timer: NodeJS.Timeout | undefined;
    const alive = await Promise.race([
      q.exited.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), 1500))),
    ]);
    clearTimeout(timer);
    if (alive) await q.stop(0);
    return { ok: alive, stderr: q.stderrTail() };
  };
  const plain = await attempt(false);
  if (!plain.ok) {
    return {
      device: true,
      usable: false,
      smm: false,
      detail: plain.stderr.trim().split("\n").pop() ?? "QEMU exited",
    };
  }
  const smm = await attempt(true);
  return {
    device: true,
    usable: true,
    smm: smm.ok,
    detail: smm.ok ? "KVM with SMM works" : (smm.stderr.trim().split("\n").pop() ?? "SMM not supported"),
  };
}

/**
 * Process-wide on purpose: whether KVM works with SMM is a fact about this machine and kernel
 * that does not change while the process runs, and finding out costs two QEMU starts; every VM
 * start and test boot in the process shares the one answer.
 */
let cachedAccel: Promise<"kvm" | "tcg"> | undefined;

/** kvm when KVM works with SMM (OVMF secure boot needs it), else tcg; BULWARK_ACCEL forces one. */
export function chooseAccelerator(): Promise<"kvm" | "tcg"> {
  const forced = process.env["BULWARK_ACCEL"];
  if (forced === "tcg" || forced === "kvm") return Promise.resolve(forced);
  cachedAccel ??= probeKvm().then((k) => (k.usable && k.smm ? "kvm" : "tcg"));
  return cachedAccel;
}

export async function probeHost(): Promise<HostReport> {
  const qemu = await toolStatus("qemu-system-x86_64", ["--version"]);
  const swtpmTool = await toolStatus("swtpm", ["--version"]);
  let capabilities: unknown = null;
  if (swtpmTool.path) {
    try {
      const { stdout } = await runProgram(swtpmTool.path, ["socket", "--tpm2", "--print-capabilities"]);
      capabilities = JSON.parse(stdout);
    } catch {
      capabilities = null;
    }
  }
  const tools = await Promise.all(
    [
      ["qemu-img", ["--version"]],
      ["swtpm_setup", ["--version"]],
      ["tpm2", null],
      ["sbsign", null],
      ["sbverify", null],
      ["mcopy", ["--version"]],
      ["sgdisk", ["--version"]],
      ["mkfs.vfat", null],
      ["cpio", ["--version"]],
      ["openssl", ["version"]],
      ["setpriv", ["--version"]],
    ].map(([n, a]) => toolStatus(n as string, a as string[] | null)),
  );
  const firmware = readFirmwareDescriptors();
  const secureBootFirmware =
    firmware.find(
      (d) =>
        d.architectures.includes("x86_64") &&
        d.features.includes("secure-boot") &&
        d.features.includes("requires-smm") &&
        !d.features.includes("enrolled-keys"),
    ) ?? null;
  const kvm = await probeKvm();
  const accelerator = process.env["BULWARK_ACCEL"] === "tcg" ? "tcg" : kvm.usable && kvm.smm ? "kvm" : "tcg";
  const missing = new Set<string>();
  for (const t of [qemu, swtpmTool, ...tools]) if (!t.path) missing.add(t.package);
  if (!secureBootFirmware) missing.add("ovmf");
  return {
    qemu,
    swtpm: { ...swtpmTool, capabilities },
    tools,
    firmware,
    secureBootFirmware,
    kvm,
    accelerator,
    missingPackages: [...missing].sort(),
  };
}
