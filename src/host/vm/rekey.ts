/**
 * Re-keying a VM: `vm key-protector roll`, and revoking a guardian of a VM's protector
 * (`key-protector revoke --vm`), which rolls the transport key too. A revoked host may have kept
 * the old protector and the old VM secrets; a new transport key alone would not stop it, because
 * the old secrets still open what they held. So everything they held is replaced: the transport
 * key, the vTPM state key (the vTPM state is re-encrypted, ./vtpm-version.ts) and the saved-state
 * key. The VM must be off — not running, and not saved either: a saved state is sealed under the
 * old state key, and re-encrypting a whole memory image is a restore and a save; start it and shut
 * it down first. The versions sealed among the secrets carry over unchanged.
 *
 * All or nothing, by the order of the writes (each atomic, the VM's lock held):
 *   1. the re-keyed vTPM state, staged beside tpm/, marked with the digest of the new secrets;
 *   2. keys.ts installKeyProtector: the new protector's last-known-good copy, the new secrets
 *      (the commit point), the new protector;
 *   3. the staged vTPM state moved in.
 * A crash before the new secrets are in place leaves the old protector, secrets and vTPM state
 * (the staging is dropped at the next start or roll); after it, the new secrets open through the
 * new last-known-good copy and the staged state is moved in at the next start (vtpm.ts).
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";
import { guardianThumbprint } from "../../protector/guardian.js";
import {
  grantGuardian,
  inspectKeyProtector,
  revokeGuardian,
  rollTransportKey,
  unwrapKeyProtector,
  type KeyProtectorInfo,
} from "../../protector/key-protector.js";
import { zeroize } from "../../protector/kdf.js";
import { sealVmSecrets, vmSecretsHeader, VM_SECRET } from "../../protector/vm-secrets.js";
import type { GuardianPublic } from "../../protector/guardian.js";
import { writeFileAtomic } from "../../io/atomic.js";
import type { VmContext, VmSecrets } from "./context.js";
import { vmError } from "./errors.js";
import {
  installKeyProtector,
  localOwnerOf,
  openWithLocalGuardians,
  sealedForCopies,
  secret,
  zeroSecrets,
} from "./keys.js";
import { readVmKeyFiles } from "./key-files.js";
import { vmStatus } from "./lifecycle.js";
import { settleVtpmRekey, stageVtpmRekey } from "./vtpm-version.js";

export interface RekeyResult {
  readonly keyProtector: KeyProtectorInfo;
  /** Whether a vTPM state was re-encrypted under the new vTPM key. */
  readonly vtpmRekeyed: boolean;
}

async function requireOff(ctx: VmContext, name: string, what: string): Promise<void> {
  const s = await vmStatus(ctx, name);
  if (s.state !== "Off") {
    throw vmError(
      "VM_ERR_STATE",
      `${what} needs VM '${name}' off (it is ${s.state})` +
        (s.state === "Saved"
          ? ": its saved state is sealed under the old keys; start it and shut it down first"
          : ""),
    );
  }
}

/**
 * Rolls every key of a VM that is off (see the header); with `revoke`, first removes that
 * guardian (by name or thumbprint; needs the owner's private key on this host). This host must
 * be able to unwrap the result, or nothing is written.
 */
export async function rekeyVm(
  ctx: VmContext,
  name: string,
  opts: { revoke?: string } = {},
): Promise<RekeyResult> {
  return ctx.store.withLock(name, async () => {
    await ctx.store.load(name);
    await requireOff(ctx, name, opts.revoke === undefined ? "rolling the keys" : "revoking a guardian");
    const p = ctx.store.paths(name);
    await settleVtpmRekey(p);
    const files = await readVmKeyFiles(p);
    if (!files.secrets) throw vmError("VM_ERR_KEY_PROTECTOR_REQUIRED", "the VM's secrets blob is missing");
    const local = await ctx.guardians.localGuardians();
    let old: VmSecrets | undefined;
    let next: VmSecrets | undefined;
    try {
      old = await openWithLocalGuardians(ctx.guardians, p, files);
      // The protector the secrets are sealed for (current, or its last-known-good copy after a crash).
      const base = sealedForCopies(files, vmSecretsHeader(files.secrets))[0] ?? files.current;
      let keyProtector: Uint8Array;
      if (opts.revoke !== undefined) {
        const model = base.model;
        const owner = model ? await localOwnerOf(model, ctx.guardians) : undefined;
        if (!model || !owner) {
          throw vmError(
            "VM_ERR_OWNER_KEY_REQUIRED",
            `revoking a guardian needs the owner guardian's private key on this host` +
              (model ? ` ('${model.owner.name}' ${guardianThumbprint(model.owner)})` : ""),
          );
        }
        keyProtector = revokeGuardian(base.bytes, opts.revoke, { owner, unwrapWith: local });
      } else {
        const r = rollTransportKey(base.model ?? base.bytes, local);
        zeroize(r.oldKey.key, r.newKey.key);
        keyProtector = r.keyProtector;
      }
      const tk = unwrapKeyProtector(keyProtector, local);
      let sealed: Uint8Array;
      next = new Map([...old].map(([k, v]) => [k, new Uint8Array(v)]));
      next.set(VM_SECRET.vtpmStateKey, new Uint8Array(randomBytes(32)));
      next.set(VM_SECRET.stateKey, new Uint8Array(randomBytes(32)));
      try {
        sealed = sealVmSecrets(tk, next);
      } finally {
        tk.key.fill(0);
      }
      const vtpmRekeyed = existsSync(path.join(p.tpmDir, "tpm2-00.permall"));
      if (vtpmRekeyed) {
        await stageVtpmRekey(
          p,
          secret(old, VM_SECRET.vtpmStateKey),
          secret(next, VM_SECRET.vtpmStateKey),
          sealed,
        );
      }
      await installKeyProtector(p, keyProtector, sealed);
      if (vtpmRekeyed) await settleVtpmRekey(p);
      return { keyProtector: inspectKeyProtector(keyProtector), vtpmRekeyed };
    } finally {
      zeroSecrets(old);
      zeroSecrets(next);
    }
  });
}

/**
 * Grants a guardian access to a VM's protector (needs the owner's private key here). The
 * transport key does not change, so the VM's secrets stay sealed for the protector and a running
 * or saved VM is unaffected: only the VM's lock is needed, not that it is off.
 */
export async function grantVmGuardian(
  ctx: VmContext,
  name: string,
  guardian: GuardianPublic,
): Promise<KeyProtectorInfo> {
  return ctx.store.withLock(name, async () => {
    await ctx.store.load(name);
    const p = ctx.store.paths(name);
    const files = await readVmKeyFiles(p);
    const model = files.current.model;
    const owner = model ? await localOwnerOf(model, ctx.guardians) : undefined;
    if (!model || !owner) {
      throw vmError(
        "VM_ERR_OWNER_KEY_REQUIRED",
        "granting a guardian needs the owner guardian's private key on this host" +
          (model ? ` ('${model.owner.name}' ${guardianThumbprint(model.owner)})` : ""),
      );
    }
    const next = grantGuardian(files.current.bytes, guardian, {
      owner,
      unwrapWith: await ctx.guardians.localGuardians(),
    });
    await writeFileAtomic(p.keyProtector, next);
    return inspectKeyProtector(next);
  });
}
