/**
 * OVMF images found through QEMU's firmware descriptors (docs/interop/firmware.json in QEMU),
 * read from /usr/share/qemu/firmware and /etc/qemu/firmware with the usual precedence (same file
 * name: the later directory wins). QEMU's third place, ~/.config/qemu/firmware, is not read: the
 * firmware that measures and enforces a VM's boot is the system's, not whatever the caller's
 * home directory names.
 */
import { readdirSync, readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { hostError } from "./errors.js";

export interface FirmwareDescriptor {
  readonly file: string;
  readonly description: string;
  readonly interfaceTypes: readonly string[];
  readonly executable: string;
  readonly nvramTemplate: string | undefined;
  readonly features: readonly string[];
  readonly architectures: readonly string[];
  readonly machines: readonly string[];
}

export const firmwareDirs = (): string[] => ["/usr/share/qemu/firmware", "/etc/qemu/firmware"];

interface RawDescriptor {
  description?: string;
  "interface-types"?: string[];
  mapping?: { device?: string; executable?: { filename?: string }; "nvram-template"?: { filename?: string } };
  targets?: { architecture?: string; machines?: string[] }[];
  features?: string[];
}

export function readFirmwareDescriptors(dirs: string[] = firmwareDirs()): FirmwareDescriptor[] {
  const byName = new Map<string, string>();
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir)) if (f.endsWith(".json")) byName.set(f, path.join(dir, f));
  }
  const out: FirmwareDescriptor[] = [];
  for (const name of [...byName.keys()].sort()) {
    const file = byName.get(name) as string;
    let raw: RawDescriptor;
    try {
      raw = JSON.parse(readFileSync(file, "utf8")) as RawDescriptor;
    } catch {
      continue;
    }
    const executable = raw.mapping?.executable?.filename;
    if (raw.mapping?.device !== "flash" || !executable) continue;
    out.push({
      file,
      description: raw.description ?? "",
      interfaceTypes: raw["interface-types"] ?? [],
      executable,
      nvramTemplate: raw.mapping["nvram-template"]?.filename,
      features: raw.features ?? [],
      architectures: (raw.targets ?? []).map((t) => t.architecture ?? ""),
      machines: (raw.targets ?? []).flatMap((t) => t.machines ?? []),
    });
  }
  return out;
}

export interface SecureBootFirmware {
  /** OVMF code with Secure Boot and SMM (no keys enrolled in its own template). */
  readonly code: string;
  /** NVRAM template with no keys (setup mode). */
  readonly blankVars: string | undefined;
  /** NVRAM template with Microsoft's keys enrolled (Debian's OVMF_VARS_4M.ms.fd). */
  readonly msVars: string | undefined;
  readonly descriptor: string;
}

/** The x86_64 q35 UEFI firmware with secure-boot + requires-smm. */
export function findSecureBootFirmware(descriptors = readFirmwareDescriptors()): SecureBootFirmware {
  const candidates = descriptors.filter(
    (d) =>
      d.interfaceTypes.includes("uefi") &&
      d.architectures.includes("x86_64") &&
      d.features.includes("secure-boot") &&
      d.features.includes("requires-smm") &&
      existsSync(d.executable),
  );
  const plain = candidates.find((d) => !d.features.includes("enrolled-keys"));
  const enrolled = candidates.find((d) => d.features.includes("enrolled-keys"));
  const chosen = plain ?? enrolled;
  if (!chosen) {
    throw hostError(
      "HOST_ERR_FIRMWARE_NOT_FOUND",
      "no x86_64 UEFI firmware with secure-boot and requires-smm in QEMU's firmware descriptors: install the Debian package 'ovmf'",
      { package: "ovmf" },
    );
  }
  return {
    code: chosen.executable,
    blankVars: plain?.nvramTemplate,
    msVars: enrolled?.nvramTemplate,
    descriptor: chosen.file,
  };
}
