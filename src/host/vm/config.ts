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
  /**
   * When this VM's vTPM was manufactured (its EK made). Set once, by the start that made it; while
   * it is set, a missing vTPM state is refused instead of silently making a new vTPM (a new EK
   * would lose everything the guest sealed to the old one). `vm tpm reset` clears it.
   */
  readonly vtpmManufacturedAt?: string;
}

export const MICROSOFT_UEFI_CA = "MicrosoftUEFICertificateAuthority";

export function validateVmName(name: string): void {
  if (typeof name !== "string" || !/^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/.test(name)) {
    throw vmError("VM_ERR_INVALID_NAME", `invalid VM name ${JSON.stringify(String(name).slice(0, 80))}`);
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

/** The networks QEMU's command line is generated for (qemu-args.ts); nothing else is stored. */
export const networkModes: readonly VmConfig["network"][] = ["user", "none"];

export function isNetworkMode(v: unknown): v is VmConfig["network"] {
  return typeof v === "string" && (networkModes as readonly string[]).includes(v);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Hyper-V template names (MicrosoftWindows, custom names) and template IDs (GUIDs). */
const TEMPLATE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** 9p mount tags: QEMU allows 31 bytes; no ',' or '=' (they would start a new QEMU option). */
const SHARE_TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}$/;

/** Prints a value for a message without letting it run on or carry control characters. */
function shown(v: unknown): string {
  const s = typeof v === "string" ? v : (JSON.stringify(v) ?? String(v));
  const cut = JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
  // eslint-disable-next-line no-control-regex
  return cut.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?");
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function bool(v: unknown, field: string): void {
  if (typeof v !== "boolean") invalid(field, `must be true or false, not ${shown(v)}`);
}

/**
 * A host path QEMU is given inside an option string (`file=PATH,...`): absolute, normalised, and
 * free of ',' (QEMU's option separator: `disk.img,file.locking=off` would add an option) and of
 * control characters.
 */
function hostPath(v: unknown, field: string): void {
  if (typeof v !== "string" || !v.startsWith("/"))
    invalid(field, `must be an absolute path, not ${shown(v)}`);
  // eslint-disable-next-line no-control-regex
  if (v.includes(",") || /[\u0000-\u001f\u007f]/.test(v) || v.length > 4096) {
    invalid(field, `path ${shown(v)} holds ',' or a control character (QEMU would read them as options)`);
  }
}

/**
 * Checks a configuration read from disk or built by a command: every field has its type, every
 * string one of the values QEMU's command line is made for (a config.json edited by hand is
 * refused at load with the field named, not passed on to QEMU).
 */
export function validateConfig(c: VmConfig): void {
  const raw: unknown = c;
  if (!isRecord(raw)) invalid("config", "must be a JSON object");
  if (c.version !== CONFIG_VERSION) invalid("version", `unsupported config version ${shown(c.version)}`);
  if (typeof c.name !== "string") invalid("name", "must be a string");
  validateVmName(c.name);
  if (typeof c.id !== "string" || !UUID.test(c.id)) invalid("id", `must be a UUID, not ${shown(c.id)}`);
  if (typeof c.createdAt !== "string" || Number.isNaN(Date.parse(c.createdAt)) || c.createdAt.length > 40) {
    invalid("createdAt", `must be an ISO 8601 time, not ${shown(c.createdAt)}`);
  }
  if (!Number.isInteger(c.cpus) || c.cpus < 1 || c.cpus > 64) invalid("cpus", "must be 1-64");
  if (!Number.isInteger(c.memoryMiB) || c.memoryMiB < 64 || c.memoryMiB > 1024 * 1024) {
    invalid("memoryMiB", "must be 64 MiB - 1 TiB");
  }
  if (!Array.isArray(c.disks) || c.disks.length > 16) invalid("disks", "must be a list of at most 16 disks");
  for (const d of c.disks as readonly unknown[]) {
    if (!isRecord(d)) invalid("disks", "each disk must be an object {path, format}");
    hostPath(d["path"], "disks");
    if (d["format"] !== "raw" && d["format"] !== "qcow2") invalid("disks", `format must be raw or qcow2`);
    if (d["snapshot"] !== undefined) bool(d["snapshot"], "disks.snapshot");
  }
  if (!isNetworkMode(c.network)) {
    invalid("network", `must be one of ${networkModes.join(", ")}, not ${shown(c.network)}`);
  }
  if (!isRecord(c.firmware)) invalid("firmware", "must be an object {secureBoot, template}");
  bool(c.firmware.secureBoot, "firmware.secureBoot");
  if (typeof c.firmware.template !== "string" || !TEMPLATE.test(c.firmware.template)) {
    invalid("firmware.template", `not a template name or ID: ${shown(c.firmware.template)}`);
  }
  if (!isRecord(c.tpm)) invalid("tpm", "must be an object {enabled}");
  bool(c.tpm.enabled, "tpm.enabled");
  if (c.vtpmManufacturedAt !== undefined) {
    if (typeof c.vtpmManufacturedAt !== "string" || Number.isNaN(Date.parse(c.vtpmManufacturedAt))) {
      invalid("vtpmManufacturedAt", `must be an ISO 8601 time, not ${shown(c.vtpmManufacturedAt)}`);
    }
  }
  if (!isRecord(c.security)) invalid("security", "must be an object {encryptStateAndMigration, policy}");
  bool(c.security.encryptStateAndMigration, "security.encryptStateAndMigration");
  if (!securityPolicies.includes(c.security.policy))
    invalid("security.policy", `must be one of ${securityPolicies.join(", ")}`);
  bool(c.console, "console");
  bool(c.guestAgent, "guestAgent");
  bool(c.debugStub, "debugStub");
  if (!Array.isArray(c.shares)) invalid("shares", "must be a list");
  for (const sh of c.shares as readonly unknown[]) {
    if (!isRecord(sh)) invalid("shares", "each share must be an object {tag, path}");
    if (typeof sh["tag"] !== "string" || !SHARE_TAG.test(sh["tag"])) {
      invalid("shares", `mount tag ${shown(sh["tag"])}: letters, digits, '_', '.', '-', at most 31`);
    }
    hostPath(sh["path"], "shares");
  }
  if (!isRecord(c.fwCfg)) invalid("fwCfg", "must be an object (name → host path)");
  for (const [name, file] of Object.entries(c.fwCfg)) {
    if (!/^opt\/[A-Za-z0-9._/-]{1,50}$/.test(name))
      invalid("fwCfg", `fw_cfg names must start with opt/: ${shown(name)}`);
    hostPath(file, "fwCfg");
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
