/**
 * The VM's security settings (Hyper-V's Security page: Set-VMFirmware, Enable-VMTPM,
 * Set-VMKeyProtector, Set-VMSecurity, Set-VMSecurityPolicy) and the locks on them, in one place
 * so every front end — the CLI, the Manager, the agent API — refuses the same things:
 * - settings change only while the VM is off;
 * - Shielded forces Secure Boot, the vTPM and state encryption on: turning one off is refused;
 * - a VM with a key protector (every shielded VM) changes only on a host holding the owner
 *   guardian's private key, and each change is signed with it (security-statement.ts);
 * - the vTPM, state encryption and a security policy need a key protector first;
 * - turning Secure Boot on re-provisions the NVRAM from the VM's template;
 * - a shielded VM has no console.
 * Each setter takes the VM's lock, enforces every rule, persists (atomic writes, NVRAM before
 * config) and returns what changed with the equivalent `bulwark` command.
 */
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import type { KeyProtectorInfo } from "../../protector/key-protector.js";
import {
  assertNotLockedByShielding,
  isShielded,
  shield,
  unshield,
  validateConfig,
  type VmConfig,
} from "./config.js";
import type { VmContext } from "./context.js";
import { vmError } from "./errors.js";
import {
  hasKeyProtector,
  localOwner,
  restoreLastKnownGood,
  setKeyProtectorFromBytes,
  setNewLocalKeyProtector,
} from "./keys.js";
import { vmStatus } from "./lifecycle.js";
import { provisionNvram } from "./nvram.js";
import { qemuPidOf } from "./processes.js";
import { signSettingsFor, statementPaths } from "./security-statement.js";

export interface SettingChange {
  readonly setting: string;
  /** Absent when the previous value is not a setting of the config (a key protector). */
  readonly from?: unknown;
  readonly to: unknown;
}

export interface SettingResult {
  /** The VM's configuration as saved. */
  readonly config: VmConfig;
  /** The settings whose value changed (forced ones included, e.g. what shielding turned on). */
  readonly changes: readonly SettingChange[];
  /** The same request as a `bulwark` command line. */
  readonly command: readonly string[];
}

/** A key protector change also returns the protector now in place (never any secret of it). */
export interface KeyProtectorResult extends SettingResult {
  readonly keyProtector: KeyProtectorInfo;
}

/** The settings the Shielded policy forces and locks while it is in force (greyed out in a UI). */
export function lockedByShielding(c: VmConfig): string[] {
  return isShielded(c) ? ["secureBoot", "tpm", "encryptStateAndMigration"] : [];
}

/** The settings a front end shows, flat, for diffs. */
function securityView(c: VmConfig): Record<string, unknown> {
  return {
    secureBoot: c.firmware.secureBoot,
    template: c.firmware.template,
    tpm: c.tpm.enabled,
    encryptStateAndMigration: c.security.encryptStateAndMigration,
    policy: c.security.policy,
    console: c.console,
    guestAgent: c.guestAgent,
    shares: c.shares.length,
    debugStub: c.debugStub,
  };
}

function diff(before: VmConfig, after: VmConfig): SettingChange[] {
  const a = securityView(before);
  const b = securityView(after);
  return Object.keys(b)
    .filter((k) => a[k] !== b[k])
    .map((k) => ({ setting: k, from: a[k], to: b[k] }));
}

const onOff = (b: boolean): string => (b ? "on" : "off");

/**
 * Runs one settings change under the VM's lock, once the VM is known to be off; `change` gets
 * the current config and returns the result.
 */
async function whileOff<R extends SettingResult>(
  ctx: VmContext,
  name: string,
  change: (c: VmConfig) => Promise<R>,
): Promise<R> {
  return ctx.store.withLock(name, async () => {
    const c = await ctx.store.load(name);
    const s = await vmStatus(ctx, name);
    if (s.state !== "Off") {
      throw vmError("VM_ERR_STATE", `settings change only while the VM is off (VM '${name}' is ${s.state})`);
    }
    return change(c);
  });
}

/**
 * A VM with a key protector has settings its owner signed, so they change only where the owner
 * guardian's private key is present (a shielded VM's always did); elsewhere the change would
 * leave settings no key is released to.
 */
async function assertOwnerPresent(ctx: VmContext, c: VmConfig): Promise<void> {
  const p = ctx.store.paths(c.name);
  const protectedVm = await hasKeyProtector(p);
  if (!protectedVm && !isShielded(c)) return;
  const owner = protectedVm ? await localOwner(p, ctx.guardians) : undefined;
  if (!owner) {
    throw vmError(
      "VM_ERR_OWNER_KEY_REQUIRED",
      `VM '${c.name}' is ${isShielded(c) ? "shielded" : "protected by a key protector"}: its settings are signed by its owner and change only on a host holding the owner guardian's private key`,
    );
  }
}

/**
 * Saves a settings change and, for a VM with a key protector, signs the new settings with the
 * owner's key (present: assertOwnerPresent ran first). Config first, then the statement: a crash
 * between the two leaves settings that no key is released to until the verb is run again.
 */
async function saveAndSign(ctx: VmContext, next: VmConfig): Promise<void> {
  await ctx.store.save(next);
  await signIfOwner(ctx, next);
}

async function signIfOwner(ctx: VmContext, c: VmConfig): Promise<boolean> {
  const p = ctx.store.paths(c.name);
  if (!(await hasKeyProtector(p))) return false;
  const owner = await localOwner(p, ctx.guardians);
  if (!owner) return false;
  // A VM whose NVRAM was never written gets it from its template now, as its start would, so
  // the keys signed are the keys it boots with.
  if (!existsSync(p.nvram)) await provisionNvram(ctx.store.stateDir, c, p, { fresh: true });
  await signSettingsFor(c, p, owner);
  return true;
}

async function assertKeyProtector(ctx: VmContext, name: string, why: string): Promise<void> {
  if (!(await hasKeyProtector(ctx.store.paths(name)))) {
    throw vmError("VM_ERR_KEY_PROTECTOR_REQUIRED", `VM '${name}' needs a key protector ${why}`);
  }
}

/** Set-VMFirmware: Secure Boot on or off and the Secure Boot template; the NVRAM follows. */
export async function setFirmware(
  ctx: VmContext,
  name: string,
  want: { readonly secureBoot?: boolean; readonly template?: string },
): Promise<SettingResult> {
  return whileOff(ctx, name, async (c) => {
    if (want.secureBoot === false) assertNotLockedByShielding(c, "Secure Boot");
    await assertOwnerPresent(ctx, c);
    const next: VmConfig = {
      ...c,
      firmware: {
        secureBoot: want.secureBoot ?? c.firmware.secureBoot,
        template: want.template ?? c.firmware.template,
      },
    };
    validateConfig(next);
    await provisionNvram(ctx.store.stateDir, next, ctx.store.paths(name));
    await saveAndSign(ctx, next);
    return {
      config: next,
      changes: diff(c, next),
      command: [
        ...["bulwark", "vm", "firmware", "set", name],
        ...(want.secureBoot === undefined ? [] : ["--secure-boot", onOff(want.secureBoot)]),
        ...(want.template === undefined ? [] : ["--template", want.template]),
      ],
    };
  });
}

/** Enable-VMTPM / Disable-VMTPM. */
export async function setTpm(ctx: VmContext, name: string, enabled: boolean): Promise<SettingResult> {
  return whileOff(ctx, name, async (c) => {
    if (!enabled) assertNotLockedByShielding(c, "the TPM");
    if (enabled) {
      await assertKeyProtector(
        ctx,
        name,
        `before its TPM can be enabled (bulwark vm key-protector set ${name} --new-local)`,
      );
    }
    await assertOwnerPresent(ctx, c);
    const next: VmConfig = { ...c, tpm: { enabled } };
    await saveAndSign(ctx, next);
    return {
      config: next,
      changes: diff(c, next),
      command: ["bulwark", "vm", "tpm", enabled ? "enable" : "disable", name],
    };
  });
}

export type KeyProtectorSource =
  /** A new protector whose owner and guardian is this host's UntrustedGuardian. */
  | { readonly kind: "new-local" }
  /** A protector made elsewhere (a file); this host must be able to unwrap it. */
  | { readonly kind: "bytes"; readonly keyProtector: Uint8Array; readonly file?: string };

/** Set-VMKeyProtector: the VM's secrets are kept (or created) and sealed for the new protector. */
export async function setKeyProtector(
  ctx: VmContext,
  name: string,
  source: KeyProtectorSource,
): Promise<KeyProtectorResult> {
  return whileOff(ctx, name, async (c) => {
    await assertOwnerPresent(ctx, c);
    const p = ctx.store.paths(name);
    const info =
      source.kind === "new-local"
        ? await setNewLocalKeyProtector(p, ctx.guardians)
        : await setKeyProtectorFromBytes(p, ctx.guardians, source.keyProtector);
    // The statement is bound to the old protector's id: sign for the new one, or drop it so
    // the VM says it is unsigned rather than tampered.
    if (!(await signIfOwner(ctx, c))) await rm(statementPaths(p).file, { force: true });
    return {
      config: c,
      changes: [{ setting: "keyProtector", to: protectorSummary(info) }],
      keyProtector: info,
      command: [
        ...["bulwark", "vm", "key-protector", "set", name],
        ...(source.kind === "new-local" ? ["--new-local"] : ["--file", source.file ?? "KP"]),
      ],
    };
  });
}

/** Puts the last known good key protector back in place (after a bad update). */
export async function restoreKeyProtector(ctx: VmContext, name: string): Promise<KeyProtectorResult> {
  return whileOff(ctx, name, async (c) => {
    const info = await restoreLastKnownGood(ctx.store.paths(name));
    return {
      config: c,
      changes: [{ setting: "keyProtector", to: protectorSummary(info) }],
      keyProtector: info,
      command: ["bulwark", "vm", "key-protector", "restore-last-known-good", name],
    };
  });
}

function protectorSummary(info: KeyProtectorInfo) {
  return {
    owner: info.owner.name,
    guardians: info.guardians.map((g) => g.name),
    keyGeneration: info.keyGeneration,
  };
}

/** Set-VMSecurity -EncryptStateAndVmMigrationTraffic. */
export async function setSecurity(
  ctx: VmContext,
  name: string,
  want: { readonly encryptStateAndMigration: boolean },
): Promise<SettingResult> {
  const enc = want.encryptStateAndMigration;
  return whileOff(ctx, name, async (c) => {
    if (!enc) assertNotLockedByShielding(c, "state and migration encryption");
    if (enc) await assertKeyProtector(ctx, name, "to encrypt its state");
    await assertOwnerPresent(ctx, c);
    const next: VmConfig = { ...c, security: { ...c.security, encryptStateAndMigration: enc } };
    await saveAndSign(ctx, next);
    return {
      config: next,
      changes: diff(c, next),
      command: ["bulwark", "vm", "security", "set", name, "--encrypt-state-and-migration", onOff(enc)],
    };
  });
}

/**
 * Set-VMSecurityPolicy: Shielded on forces and locks Secure Boot, the vTPM and encryption and
 * removes the ways in; Shielded off keeps them and restores the console, to EncryptionSupported
 * (or None when `encryptionSupported` is false). Without `shielded`, only a VM that is not
 * shielded moves between None and EncryptionSupported.
 */
export async function setSecurityPolicy(
  ctx: VmContext,
  name: string,
  want: { readonly shielded?: boolean; readonly encryptionSupported?: boolean },
): Promise<SettingResult> {
  return whileOff(ctx, name, async (c) => {
    await assertKeyProtector(ctx, name, "before a security policy can be set");
    await assertOwnerPresent(ctx, c);
    let next: VmConfig;
    if (want.shielded === true) next = shield(c);
    else if (want.shielded === false) {
      next = unshield(c, want.encryptionSupported === false ? "None" : "EncryptionSupported");
    } else {
      assertNotLockedByShielding(c, "the security policy");
      next = {
        ...c,
        security: { ...c.security, policy: want.encryptionSupported ? "EncryptionSupported" : "None" },
      };
    }
    if (next.firmware.secureBoot && !c.firmware.secureBoot) {
      await provisionNvram(ctx.store.stateDir, next, ctx.store.paths(name));
    }
    await saveAndSign(ctx, next);
    return {
      config: next,
      changes: diff(c, next),
      command: [
        ...["bulwark", "vm", "security-policy", "set", name],
        ...(want.shielded === undefined ? [] : ["--shielded", onOff(want.shielded)]),
        ...(want.encryptionSupported === undefined
          ? []
          : ["--encryption-supported", onOff(want.encryptionSupported)]),
      ],
    };
  });
}

/**
 * `vm settings sign`: the owner signs the VM's current settings and NVRAM as they are on disk —
 * for a VM made by an older Bulwark (no statement), or after the guest changed its Secure Boot
 * databases. The owner's key must be here; the result lists what is now signed.
 */
export async function signSettings(ctx: VmContext, name: string): Promise<SettingResult> {
  return whileOff(ctx, name, async (c) => {
    await assertKeyProtector(ctx, name, "before its settings can be signed");
    await assertOwnerPresent(ctx, c);
    await signIfOwner(ctx, c);
    return { config: c, changes: [], command: ["bulwark", "vm", "settings", "sign", name] };
  });
}

/** The serial console's socket of a running VM; a shielded VM (or one without a console) has none. */
export async function consoleFor(ctx: VmContext, name: string): Promise<string> {
  const c = await ctx.store.load(name);
  const p = ctx.store.paths(name);
  if (!c.console || isShielded(c) || qemuPidOf(p) === null) {
    throw vmError("VM_ERR_CONSOLE_UNAVAILABLE", `VM '${name}' has no console available`);
  }
  return p.consoleSocket;
}
