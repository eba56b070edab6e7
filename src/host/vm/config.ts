/**
 * A VM's versioned configuration (config.json in its directory) and the Hyper-V security rules:
 * settings change only while the VM is off; the Shielded policy forces and locks Secure Boot,
 * the vTPM and state encryption, and takes away the fabric administrator's ways in.
 */
import { randomUUID } from "node:crypto";
import { vmError } from "./errors.js";

export const CONFIG_VERSION = 1;

export type SecurityPolicy = "None" | "EncryptionSupported" | "Shielded";
export const securityPolicies: readonly SecurityPolicy[] = ["None", "EncryptionSupported", "Shielded"];

export interface DiskConfig {
  readonly path: string;
  readonly format: "raw" | "qcow2";
  /** Open with snapshot=on: guest writes go to a temporary overlay (test images). */
  readonly snapshot?: boolean;
}

export interface VmConfig {
  readonly version: typeof CONFIG_VERSION;
  readonly id: string;
  readonly name: string;
  readonly createdAt: string;
  readonly cpus: number;
  readonly memoryMiB: number;
  readonly disks: readonly DiskConfig[];
  readonly network: "user" | "none";
  readonly firmware: { readonly secureBoot: boolean; readonly template: string };
  readonly tpm: { readonly enabled: boolean };
  readonly security: { readonly encryptStateAndMigration: boolean; readonly policy: SecurityPolicy };
  /** Serial console on a UNIX socket + log (never for shielded VMs). */
  readonly console: boolean;
  /** qemu-guest-agent virtio-serial channel: our PowerShell Direct analogue. */
  readonly guestAgent: boolean;
  /** Host directories shared into the guest over 9p. */
  readonly shares: readonly { readonly tag: string; readonly path: string }[];
  /** gdb stub on a UNIX socket. */
  readonly debugStub: boolean;
  /** Files exposed to the guest through QEMU fw_cfg (name → host path); the test image runs opt/bulwark/script. */
  readonly fwCfg: Readonly<Record<string, string>>;
}

export const MICROSOFT_UEFI_CA = "MicrosoftUEFICertificateAuthority";

export function validateVmName(name: string): void {
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/.test(name)) {
    throw vmError("VM_ERR_INVALID_NAME", `invalid VM name '${name}'`);
  }
}

export interface NewVmOptions {
  name: string;
  cpus?: number;
  memoryMiB?: number;
  disks?: DiskConfig[];
  network?: "user" | "none";
  template?: string;
  secureBoot?: boolean;
}

/** Gen-2 defaults: Secure Boot on with the Microsoft UEFI CA template, no vTPM, policy None. */
export function newVmConfig(o: NewVmOptions): VmConfig {
  validateVmName(o.name);
  const c: VmConfig = {
    version: CONFIG_VERSION,
    id: randomUUID(),
    name: o.name,
    createdAt: new Date().toISOString(),
    cpus: o.cpus ?? 1,
    memoryMiB: o.memoryMiB ?? 512,
    disks: o.disks ?? [],
    network: o.network ?? "user",
    firmware: { secureBoot: o.secureBoot ?? true, template: o.template ?? MICROSOFT_UEFI_CA },
    tpm: { enabled: false },
    security: { encryptStateAndMigration: false, policy: "None" },
    console: true,
    guestAgent: false,
    shares: [],
    debugStub: false,
    fwCfg: {},
  };
  validateConfig(c);
  return c;
}

function invalid(field: string, why: string): never {
  throw vmError("VM_ERR_INVALID_CONFIG", `${field}: ${why}`, { field });
}

/** Checks a configuration read from disk or built by a command. */
export function validateConfig(c: VmConfig): void {
  if (c.version !== CONFIG_VERSION) invalid("version", `unsupported config version ${String(c.version)}`);
  validateVmName(c.name);
  if (!Number.isInteger(c.cpus) || c.cpus < 1 || c.cpus > 64) invalid("cpus", "must be 1-64");
  if (!Number.isInteger(c.memoryMiB) || c.memoryMiB < 64 || c.memoryMiB > 1024 * 1024) {
    invalid("memoryMiB", "must be 64 MiB - 1 TiB");
  }
  for (const d of c.disks) {
    if (!d.path.startsWith("/")) invalid("disks", `disk path must be absolute: ${d.path}`);
    if (d.format !== "raw" && d.format !== "qcow2") invalid("disks", `format must be raw or qcow2`);
  }
  if (!securityPolicies.includes(c.security.policy))
    invalid("security.policy", `must be one of ${securityPolicies.join(", ")}`);
  for (const [name, file] of Object.entries(c.fwCfg)) {
    if (!/^opt\/[A-Za-z0-9._/-]+$/.test(name)) invalid("fwCfg", `fw_cfg names must start with opt/: ${name}`);
    if (!file.startsWith("/")) invalid("fwCfg", `fw_cfg file must be absolute: ${file}`);
  }
  if (c.security.policy === "Shielded") {
    if (!c.firmware.secureBoot) invalid("firmware.secureBoot", "forced on by the Shielded policy");
    if (!c.tpm.enabled) invalid("tpm.enabled", "forced on by the Shielded policy");
    if (!c.security.encryptStateAndMigration)
      invalid("security.encryptStateAndMigration", "forced on by the Shielded policy");
    if (c.console || c.guestAgent || c.shares.length > 0 || c.debugStub) {
      invalid("security.policy", "a shielded VM has no console, guest agent, shares or debug stub");
    }
  }
}

/** Applies the Shielded policy: forces and locks Secure Boot, vTPM, encryption; removes ways in. */
export function shield(c: VmConfig): VmConfig {
  return {
    ...c,
    firmware: { ...c.firmware, secureBoot: true },
    tpm: { enabled: true },
    security: { encryptStateAndMigration: true, policy: "Shielded" },
    console: false,
    guestAgent: false,
    shares: [],
    debugStub: false,
  };
}

/** Leaving Shielded keeps the settings but restores the console (as Hyper-V restores VMConnect). */
export function unshield(c: VmConfig, policy: Exclude<SecurityPolicy, "Shielded">): VmConfig {
  return { ...c, security: { ...c.security, policy }, console: true };
}

export function isShielded(c: VmConfig): boolean {
  return c.security.policy === "Shielded";
}

/** Refuses a change to a setting that Shielded forces. */
export function assertNotLockedByShielding(c: VmConfig, setting: string): void {
  if (isShielded(c)) {
    throw vmError("VM_ERR_POLICY_LOCKED", `${setting} is forced and locked while the VM is shielded`, {
      setting,
    });
  }
}
