/**
 * A VM's key protector on this host: creating a local one, importing one, unwrapping it with the
 * host's local guardians (falling back to the last known good copy), and the small VM-secrets
 * blob (vTPM state key, saved-state key) sealed under the transport key — so rolling the transport
 * key re-encrypts only that blob, never the vTPM state.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { guardianThumbprint, type Guardian } from "../../protector/guardian.js";
import {
  createKeyProtector,
  inspectKeyProtector,
  parseKeyProtector,
  unwrapKeyProtector,
  unwrapWithLastKnownGood,
  type KeyProtectorInfo,
  type TransportKey,
} from "../../protector/key-protector.js";
import { openVmSecrets, sealVmSecrets, VM_SECRET } from "../../protector/vm-secrets.js";
import { writeFileAtomic } from "../../io/atomic.js";
import type { GuardianStore } from "../guardians.js";
import type { VmPaths } from "./store.js";
import { vmError } from "./errors.js";

export type VmSecrets = Map<string, Uint8Array>;

async function readOptional(p: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await readFile(p));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

export async function hasKeyProtector(paths: VmPaths): Promise<boolean> {
  return (await readOptional(paths.keyProtector)) !== undefined;
}

export async function readKeyProtector(paths: VmPaths): Promise<Uint8Array> {
  const kp = await readOptional(paths.keyProtector);
  if (!kp) {
    throw vmError(
      "VM_ERR_KEY_PROTECTOR_REQUIRED",
      "the VM has no key protector (bulwark vm key-protector set VM --new-local)",
    );
  }
  return kp;
}

function freshSecrets(): VmSecrets {
  return new Map([
    [VM_SECRET.vtpmStateKey, new Uint8Array(randomBytes(32))],
    [VM_SECRET.stateKey, new Uint8Array(randomBytes(32))],
  ]);
}

function zeroSecrets(s: VmSecrets): void {
  for (const v of s.values()) v.fill(0);
}

/** Unwraps the VM's key protector with this host's guardians and opens the VM secrets. */
export async function unlockVm(paths: VmPaths, guardians: GuardianStore): Promise<VmSecrets> {
  const kp = await readKeyProtector(paths);
  const lkg = await readOptional(paths.keyProtectorLastKnownGood);
  const local = await guardians.localGuardians();
  const r = unwrapWithLastKnownGood(kp, lkg, local);
  try {
    if (r.used === "current" && (!lkg || Buffer.compare(Buffer.from(lkg), Buffer.from(kp)) !== 0)) {
      await writeFileAtomic(paths.keyProtectorLastKnownGood, r.lastKnownGood);
    }
    const blob = await readOptional(paths.vmSecrets);
    if (!blob) throw vmError("VM_ERR_KEY_PROTECTOR_REQUIRED", "the VM's secrets blob is missing");
    return openVmSecrets(r.transportKey, blob);
  } finally {
    r.transportKey.key.fill(0);
  }
}

/** Opens the current secrets if the VM has a protector this host can unwrap; undefined if none. */
async function currentSecrets(paths: VmPaths, guardians: GuardianStore): Promise<VmSecrets | undefined> {
  if (!(await hasKeyProtector(paths)) || !(await readOptional(paths.vmSecrets))) return undefined;
  return unlockVm(paths, guardians);
}

async function install(
  paths: VmPaths,
  keyProtector: Uint8Array,
  tk: TransportKey,
  secrets: VmSecrets,
): Promise<void> {
  const blob = sealVmSecrets(tk, secrets);
  // Order matters for crash safety: secrets first would be unreadable with the old protector,
  // so write the new protector's last-known-good copy, the secrets, then the protector.
  await writeFileAtomic(paths.keyProtectorLastKnownGood, keyProtector);
  await writeFileAtomic(paths.vmSecrets, blob);
  await writeFileAtomic(paths.keyProtector, keyProtector);
}

/** `vm key-protector set --new-local`: owner and guardian = this host's UntrustedGuardian. */
export async function setNewLocalKeyProtector(
  paths: VmPaths,
  guardians: GuardianStore,
): Promise<KeyProtectorInfo> {
  const owner = await guardians.untrustedGuardian();
  const secrets = (await currentSecrets(paths, guardians)) ?? freshSecrets();
  const { keyProtector, transportKey } = createKeyProtector({ owner });
  try {
    await install(paths, keyProtector, transportKey, secrets);
  } finally {
    transportKey.key.fill(0);
    zeroSecrets(secrets);
  }
  return inspectKeyProtector(keyProtector);
}

/** `vm key-protector set --file KP`: this host must be able to unwrap the new protector. */
export async function setKeyProtectorFromBytes(
  paths: VmPaths,
  guardians: GuardianStore,
  keyProtector: Uint8Array,
): Promise<KeyProtectorInfo> {
  parseKeyProtector(keyProtector);
  const local = await guardians.localGuardians();
  const tk = unwrapKeyProtector(keyProtector, local);
  const secrets = (await currentSecrets(paths, guardians)) ?? freshSecrets();
  try {
    await install(paths, keyProtector, tk, secrets);
  } finally {
    tk.key.fill(0);
    zeroSecrets(secrets);
  }
  return inspectKeyProtector(keyProtector);
}

/** Replaces the current protector with the last known good copy. */
export async function restoreLastKnownGood(paths: VmPaths): Promise<KeyProtectorInfo> {
  const lkg = await readOptional(paths.keyProtectorLastKnownGood);
  if (!lkg) throw vmError("VM_ERR_KEY_PROTECTOR_REQUIRED", "the VM has no last known good key protector");
  await writeFileAtomic(paths.keyProtector, lkg);
  return inspectKeyProtector(lkg);
}

/** The local guardian that owns the VM's key protector, if its private key is on this host. */
export async function localOwner(paths: VmPaths, guardians: GuardianStore): Promise<Guardian | undefined> {
  const kp = parseKeyProtector(await readKeyProtector(paths));
  const ownerThumb = guardianThumbprint(kp.owner);
  return (await guardians.localGuardians()).find((g) => guardianThumbprint(g) === ownerThumb);
}

export function secret(secrets: VmSecrets, name: string): Uint8Array {
  const v = secrets.get(name);
  if (!v) throw vmError("VM_ERR_KEY_PROTECTOR_REQUIRED", `the VM secrets hold no '${name}'`);
  return v;
}
