/**
 * A VM's key protector on this host: reading its key files once, unwrapping with the host's
 * local guardians (falling back to the last known good copy), creating or importing a protector,
 * and the small VM-secrets blob (vTPM state key, saved-state key) sealed under the transport key
 * — so rolling the transport key re-encrypts only that blob, never the vTPM state.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { bytesEqual } from "../../core/bytes.js";
import { writeFileAtomic } from "../../io/atomic.js";
import { guardianThumbprint, type Guardian } from "../../protector/guardian.js";
import {
  createKeyProtector,
  inspectKeyProtector,
  parseKeyProtector,
  unwrapKeyProtector,
  unwrapWithLastKnownGood,
  type KeyProtector,
  type KeyProtectorInfo,
} from "../../protector/key-protector.js";
import type { TransportKey } from "../../protector/transport-key.js";
import { openVmSecrets, sealVmSecrets, VM_SECRET } from "../../protector/vm-secrets.js";
import { asFileError } from "../file-errors.js";
import type { GuardianStore } from "../guardians.js";
import type {
  KeyProtectorCopy,
  KeyUnlock,
  UnlockRequest,
  VmContext,
  VmKeyFiles,
  VmSecrets,
} from "./context.js";
import { vmError } from "./errors.js";
import { verifySettings } from "./security-statement.js";
import type { VmPaths } from "./store.js";

async function readOptional(file: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw asFileError(e, file);
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

function copyOf(bytes: Uint8Array): KeyProtectorCopy {
  let model;
  try {
    model = parseKeyProtector(bytes);
  } catch {
    model = undefined; // a copy that does not decode is still passed on: the unwrap says why
  }
  return { bytes, model };
}

/** Reads the VM's key protector, its last known good copy and the sealed secrets, decoding each once. */
export async function readVmKeyFiles(paths: VmPaths): Promise<VmKeyFiles> {
  const current = copyOf(await readKeyProtector(paths));
  const lkg = await readOptional(paths.keyProtectorLastKnownGood);
  return {
    current,
    lastKnownGood: lkg ? copyOf(lkg) : undefined,
    secrets: await readOptional(paths.vmSecrets),
  };
}

/** A request for the VM's secrets: its key files read and decoded once, for every key source. */
export async function unlockRequest(ctx: VmContext, name: string): Promise<UnlockRequest> {
  const paths = ctx.store.paths(name);
  return { name, paths, files: await readVmKeyFiles(paths), progress: ctx.progress ?? (() => undefined) };
}

/**
 * Asks the context's key source for a VM's secrets (the caller zeroizes them). Every key source
 * — this host's guardians, a Host Guardian Service — is asked only once config.json and nvram.fd
 * match the settings the VM's owner signed (security-statement.ts).
 */
export async function unlockVm(ctx: VmContext, name: string): Promise<VmSecrets> {
  await verifySettings(await ctx.store.load(name), ctx.store.paths(name));
  return ctx.unlock(await unlockRequest(ctx, name));
}

/**
 * Unwraps the key protector (or its last known good copy) with this host's guardians and opens
 * the VM secrets; a current protector that unwrapped becomes the new last known good. Throws
 * PROTECTOR_ERR_NOT_AUTHORIZED when no local guardian is in it.
 */
async function openWithLocalGuardians(
  guardians: GuardianStore,
  paths: VmPaths,
  files: VmKeyFiles,
): Promise<VmSecrets> {
  const local = await guardians.localGuardians();
  const lkg = files.lastKnownGood?.bytes;
  const r = unwrapWithLastKnownGood(files.current.bytes, lkg, local);
  try {
    if (r.used === "current" && (!lkg || !bytesEqual(lkg, files.current.bytes))) {
      await writeFileAtomic(paths.keyProtectorLastKnownGood, r.lastKnownGood);
    }
    if (!files.secrets) throw vmError("VM_ERR_KEY_PROTECTOR_REQUIRED", "the VM's secrets blob is missing");
    return openVmSecrets(r.transportKey, files.secrets);
  } finally {
    r.transportKey.key.fill(0);
  }
}

/** The key source of local mode: the host's own guardians. */
export function localGuardianUnlock(guardians: GuardianStore): KeyUnlock {
  return ({ paths, files }) => openWithLocalGuardians(guardians, paths, files);
}

/**
 * Installs a key protector with the VM secrets sealed for it. The order makes a crash anywhere
 * recoverable: the new protector's last-known-good copy first, then the secrets (unreadable with
 * the old protector), then the protector — so some protector on disk always matches the secrets.
 */
export async function installKeyProtector(
  paths: VmPaths,
  keyProtector: Uint8Array,
  sealedSecrets: Uint8Array,
): Promise<void> {
  await writeFileAtomic(paths.keyProtectorLastKnownGood, keyProtector);
  await writeFileAtomic(paths.vmSecrets, sealedSecrets);
  await writeFileAtomic(paths.keyProtector, keyProtector);
}

function freshSecrets(): VmSecrets {
  return new Map([
    [VM_SECRET.vtpmStateKey, new Uint8Array(randomBytes(32))],
    [VM_SECRET.stateKey, new Uint8Array(randomBytes(32))],
  ]);
}

export function zeroSecrets(s: VmSecrets | undefined): void {
  if (s) for (const v of s.values()) v.fill(0);
}

/** The current secrets if the VM has a protector this host can unwrap; fresh ones if it has none. */
async function currentOrFreshSecrets(paths: VmPaths, guardians: GuardianStore): Promise<VmSecrets> {
  if (!(await hasKeyProtector(paths))) return freshSecrets();
  const files = await readVmKeyFiles(paths);
  return files.secrets ? openWithLocalGuardians(guardians, paths, files) : freshSecrets();
}

async function install(
  paths: VmPaths,
  keyProtector: Uint8Array,
  tk: TransportKey,
  secrets: VmSecrets,
): Promise<void> {
  try {
    await installKeyProtector(paths, keyProtector, sealVmSecrets(tk, secrets));
  } finally {
    tk.key.fill(0);
    zeroSecrets(secrets);
  }
}

/** `vm key-protector set --new-local`: owner and guardian = this host's UntrustedGuardian. */
export async function setNewLocalKeyProtector(
  paths: VmPaths,
  guardians: GuardianStore,
): Promise<KeyProtectorInfo> {
  const owner = await guardians.untrustedGuardian();
  const secrets = await currentOrFreshSecrets(paths, guardians);
  const { keyProtector, transportKey } = createKeyProtector({ owner });
  await install(paths, keyProtector, transportKey, secrets);
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
  let secrets: VmSecrets;
  try {
    secrets = await currentOrFreshSecrets(paths, guardians);
  } catch (e) {
    tk.key.fill(0);
    throw e;
  }
  await install(paths, keyProtector, tk, secrets);
  return inspectKeyProtector(keyProtector);
}

/** Replaces the current protector with the last known good copy. */
export async function restoreLastKnownGood(paths: VmPaths): Promise<KeyProtectorInfo> {
  const lkg = await readOptional(paths.keyProtectorLastKnownGood);
  if (!lkg) throw vmError("VM_ERR_KEY_PROTECTOR_REQUIRED", "the VM has no last known good key protector");
  await writeFileAtomic(paths.keyProtector, lkg);
  return inspectKeyProtector(lkg);
}

/** The local guardian that owns a key protector, if its private key is on this host. */
export async function localOwnerOf(
  kp: KeyProtector,
  guardians: GuardianStore,
): Promise<Guardian | undefined> {
  const ownerThumb = guardianThumbprint(kp.owner);
  return (await guardians.localGuardians()).find((g) => guardianThumbprint(g) === ownerThumb);
}

/** The local guardian that owns the VM's key protector, if its private key is on this host. */
export async function localOwner(paths: VmPaths, guardians: GuardianStore): Promise<Guardian | undefined> {
  return localOwnerOf(parseKeyProtector(await readKeyProtector(paths)), guardians);
}

export function secret(secrets: VmSecrets, name: string): Uint8Array {
  const v = secrets.get(name);
  if (!v) throw vmError("VM_ERR_KEY_PROTECTOR_REQUIRED", `the VM secrets hold no '${name}'`);
  return v;
}
