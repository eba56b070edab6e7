/**
 * A VM's key protector on this host: reading its key files once, unwrapping with the host's
 * local guardians, creating or importing a protector, and the small VM-secrets blob (vTPM state
 * key, saved-state key, the versions the vTPM state and saved state are bound to) sealed under
 * the transport key. A key-service roll re-encrypts only that blob; revoking a guardian or
 * `key-protector roll` also re-keys what the old blob opened (./rekey.ts).
 *
 * Which copy of the protector opens the secrets: the blob names (in clear) the protector id and
 * key generation it is sealed for, and every install writes the new protector's last-known-good
 * copy, then the secrets, then the protector. So the copy — current, or last known good after a
 * crash mid-install — whose id and generation the blob names is the one to unwrap; a current
 * protector of another id is another VM's (refused, PROTECTOR_ERR_FOREIGN_PROTECTOR) unless the
 * sealed secrets name it as the protector they replaced (a crash mid-replacement).
 */
import { randomBytes } from "node:crypto";
import { bytesEqual } from "../../core/bytes.js";
import { isBulwarkError } from "../../core/errors.js";
import { writeFileAtomic } from "../../io/atomic.js";
import { guardianThumbprint, type Guardian } from "../../protector/guardian.js";
import {
  createKeyProtector,
  foreignProtector,
  inspectKeyProtector,
  parseKeyProtector,
  unwrapKeyProtector,
  type KeyProtector,
  type KeyProtectorInfo,
  type UnwrappedTransportKey,
} from "../../protector/key-protector.js";
import type { TransportKey } from "../../protector/transport-key.js";
import {
  openVmSecrets,
  sealVmSecrets,
  vmSecretsHeader,
  VM_SECRET,
  type VmSecretsHeader,
} from "../../protector/vm-secrets.js";
import { readFileIfExists } from "../file-errors.js";
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
import { keyProtectorCopy, readVmKeyFiles } from "./key-files.js";
import { verifySettingsOver, type SettingsCheck } from "./security-statement.js";
import type { VmPaths } from "./store.js";

export async function hasKeyProtector(paths: VmPaths): Promise<boolean> {
  return (await readFileIfExists(paths.keyProtector)) !== undefined;
}

export async function readKeyProtector(paths: VmPaths): Promise<Uint8Array> {
  const kp = await readFileIfExists(paths.keyProtector);
  if (!kp) {
    throw vmError(
      "VM_ERR_KEY_PROTECTOR_REQUIRED",
      "the VM has no key protector (bulwark vm key-protector set VM --new-local)",
    );
  }
  return kp;
}

/** A request for the VM's secrets over key files already read (and checked) by the caller. */
function requestFor(ctx: VmContext, name: string, files: VmKeyFiles): UnlockRequest {
  return { name, paths: ctx.store.paths(name), files, progress: ctx.progress ?? (() => undefined) };
}

/** A request for the VM's secrets: its key files read and decoded once, for every key source. */
export async function unlockRequest(ctx: VmContext, name: string): Promise<UnlockRequest> {
  return requestFor(ctx, name, await readVmKeyFiles(ctx.store.paths(name)));
}

/**
 * Asks the context's key source for a VM's secrets (the caller zeroizes them). Every key source
 * — this host's guardians, a Host Guardian Service — is asked only once config.json and nvram.fd
 * match the settings the VM's owner signed (security-statement.ts).
 */
export async function unlockVm(ctx: VmContext, name: string): Promise<VmSecrets> {
  const c = await ctx.store.load(name);
  const paths = ctx.store.paths(name);
  const files = await readVmKeyFiles(paths);
  return unlockChecked(ctx, name, files, await verifySettingsOver(c, paths, files));
}

/**
 * {@link unlockVm} for a caller that already checked the settings (`check`) over these very
 * `files` (a start: one read, one check, and the key source gets the bytes that were checked).
 */
export async function unlockChecked(
  ctx: VmContext,
  name: string,
  files: VmKeyFiles | undefined,
  check: SettingsCheck,
): Promise<VmSecrets> {
  if (!files || check.kind !== "verified") {
    throw vmError(
      "VM_ERR_KEY_PROTECTOR_REQUIRED",
      "the VM has no key protector (bulwark vm key-protector set VM --new-local)",
    );
  }
  return ctx.unlock(requestFor(ctx, name, files));
}

/** Whether `copy` is the protector generation the secrets blob is sealed for. */
export function sealedFor(
  copy: KeyProtectorCopy | undefined,
  header: VmSecretsHeader,
): copy is KeyProtectorCopy {
  return (
    copy?.model !== undefined &&
    copy.model.keyGeneration === header.keyGeneration &&
    bytesEqual(copy.model.protectorId, header.protectorId)
  );
}

/**
 * After the secrets opened through the copy they are sealed for: a current protector of another
 * id is refused unless the secrets name it as the protector they replaced (a crash between
 * writing the secrets and the protector of `key-protector set`).
 */
export function checkNotForeign(files: VmKeyFiles, header: VmSecretsHeader, secrets: VmSecrets): void {
  const current = files.current.model;
  if (!current || bytesEqual(current.protectorId, header.protectorId)) return;
  const replaced = secrets.get(VM_SECRET.replacedProtectorId);
  if (replaced && bytesEqual(replaced, current.protectorId)) return;
  zeroSecrets(secrets);
  throw foreignProtector(header.protectorId, current.protectorId);
}

/**
 * Unwraps the protector copy the secrets are sealed for with this host's guardians and opens
 * them; the current copy, when it is that one, becomes the new last known good. A current copy
 * that is altered, corrupt or older is passed over for the last known good one when that is the
 * sealed-for copy; another VM's is refused. Throws PROTECTOR_ERR_NOT_AUTHORIZED when no local
 * guardian is in the copy used, PROTECTOR_ERR_VMSECRETS_BINDING when no copy matches the secrets
 * (an older protector put back: the secrets moved on).
 */
export async function openWithLocalGuardians(
  guardians: GuardianStore,
  paths: VmPaths,
  files: VmKeyFiles,
): Promise<VmSecrets> {
  if (!files.secrets) throw vmError("VM_ERR_KEY_PROTECTOR_REQUIRED", "the VM's secrets blob is missing");
  const blob = files.secrets;
  const header = vmSecretsHeader(blob);
  const local = await guardians.localGuardians();
  const { current, lastKnownGood: lkg } = files;
  const candidates = sealedForCopies(files, header);
  if (candidates.length === 0) {
    // No copy is sealed for: an older or another VM's protector put back, with the VM's gone.
    if (current.model && !bytesEqual(current.model.protectorId, header.protectorId)) {
      throw foreignProtector(header.protectorId, current.model.protectorId);
    }
    candidates.push(current); // its unwrap, or the secrets' binding, says why not
  }
  let lastError: unknown;
  for (const use of candidates) {
    let tk: UnwrappedTransportKey;
    try {
      tk = unwrapKeyProtector(use.model ?? use.bytes, local, { memo: files.checked });
    } catch (e) {
      // Altered or corrupt: the next sealed-for copy may still open. A revocation does not fall back.
      lastError = e;
      if (isBulwarkError(e) && e.code === "PROTECTOR_ERR_NOT_AUTHORIZED") throw e;
      if (!isBulwarkError(e)) throw e;
      continue;
    }
    try {
      const secrets = rememberSealKey(openVmSecrets(tk, blob), tk);
      checkNotForeign(files, header, secrets);
      if (use === current && (!lkg || !bytesEqual(lkg.bytes, current.bytes))) {
        await writeFileAtomic(paths.keyProtectorLastKnownGood, current.bytes);
      }
      return secrets;
    } finally {
      tk.key.fill(0);
    }
  }
  throw lastError;
}

/** The copies (current first, each once) whose protector id and key generation the secrets are sealed for. */
export function sealedForCopies(files: VmKeyFiles, header: VmSecretsHeader): KeyProtectorCopy[] {
  const out = [files.current, files.lastKnownGood].filter((c) => sealedFor(c, header));
  if (
    out.length === 2 &&
    bytesEqual((out[0] as KeyProtectorCopy).bytes, (out[1] as KeyProtectorCopy).bytes)
  ) {
    out.pop();
  }
  return out;
}

/** The transport key each opened secrets map is sealed under (see {@link resealVmSecrets}). */
const sealKeys = new WeakMap<VmSecrets, TransportKey>();

/**
 * Remembers (a copy of) the transport key `secrets` are sealed under, so a version updated among
 * them (the vTPM state's, the saved state's) can be sealed again without a second unwrap — which
 * in HGS mode would be a second release. {@link zeroSecrets} zeroizes the copy.
 */
export function rememberSealKey(secrets: VmSecrets, tk: TransportKey): VmSecrets {
  sealKeys.set(secrets, {
    key: Buffer.from(tk.key),
    protectorId: tk.protectorId,
    keyGeneration: tk.keyGeneration,
  });
  return secrets;
}

/**
 * Seals `secrets` (opened by a key source, then updated) again under the key they were opened
 * with, and replaces vm-secrets.bin atomically; the key protector does not change.
 */
export async function resealVmSecrets(paths: VmPaths, secrets: VmSecrets): Promise<void> {
  const tk = sealKeys.get(secrets);
  if (!tk) {
    throw vmError(
      "VM_ERR_KEY_PROTECTOR_REQUIRED",
      "these VM secrets were not opened by a key source that can seal them again",
    );
  }
  await writeFileAtomic(paths.vmSecrets, sealVmSecrets(tk, secrets));
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
  if (!s) return;
  for (const v of s.values()) v.fill(0);
  sealKeys.get(s)?.key.fill(0);
  sealKeys.delete(s);
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
    // A new protector id: the secrets remember the one they replace, so a crash before the
    // protector itself is written is told apart from another VM's protector put in place.
    const previous = await readFileIfExists(paths.keyProtector);
    const previousId = previous ? keyProtectorCopy(previous).model?.protectorId : undefined;
    if (previousId && !bytesEqual(previousId, tk.protectorId)) {
      secrets.set(VM_SECRET.replacedProtectorId, new Uint8Array(previousId));
    }
    await installKeyProtector(paths, keyProtector, sealVmSecrets(tk, secrets));
  } finally {
    tk.key.fill(0);
    zeroSecrets(secrets);
  }
}

/**
 * Installs a protector this host may not be able to unwrap (an owner provisioning a VM for HGS
 * only), with fresh VM secrets sealed under the transport key its creator still holds; zeroizes it.
 */
export async function installWithFreshSecrets(
  paths: VmPaths,
  keyProtector: Uint8Array,
  transportKey: TransportKey,
): Promise<KeyProtectorInfo> {
  await install(paths, keyProtector, transportKey, freshSecrets());
  return inspectKeyProtector(keyProtector);
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
  const lkg = await readFileIfExists(paths.keyProtectorLastKnownGood);
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
