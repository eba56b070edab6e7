/**
 * Key release at VM start (Hyper-V: a guarded host asks the Key Protection Service for a shielded
 * VM's keys at every start). Called by the runtime when the host's own guardians cannot unwrap
 * the VM's key protector.
 *
 * The VM secrets blob says (in clear) which protector id and key generation it is sealed for;
 * the host posts the protector of that generation (current, or the last known good copy after
 * a crash mid-update), HGS rolls the transport key, and the host writes — each atomically, in
 * this order — the new protector as last known good, the secrets re-sealed under the new key,
 * then the new protector. A crash anywhere leaves a protector whose generation matches the
 * secrets on disk, so the next start recovers.
 */
import {
  inspectKeyProtector,
  checkSuccessor,
  parseKeyProtector,
  verifyOwnerSignature,
} from "../../protector/key-protector.js";
import { guardianThumbprint, importGuardianPublicPem } from "../../protector/guardian.js";
import { openVmSecrets, sealVmSecrets, vmSecretsHeader } from "../../protector/vm-secrets.js";
import { zeroize } from "../../protector/kdf.js";
import { isBulwarkError } from "../../core/errors.js";
import { HgsRefusal, type HgsClient } from "./hgs-client.js";
import { readFile } from "node:fs/promises";
import { writeFileAtomic } from "../../io/atomic.js";
import { unlockVm, type VmSecrets } from "../vm/keys.js";
import type { HostContext } from "../vm/runtime.js";
import { readConfig, type HgsClientConfig } from "./config.js";
import { attestNow, ensureHealthCertificate, openClient, readRecord, updateRecord } from "./attestation.js";
import { hostGuardError, isHostGuardError, type HostGuardError } from "./errors.js";
import { keyReleaseKey } from "./identity.js";

async function readOptional(p: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await readFile(p));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/** Signing thumbprints of this fabric's HGS guardians (cached from /host/v1/info). */
async function hgsGuardianThumbprints(stateDir: string, client: HgsClient): Promise<Set<string>> {
  const r = await readRecord(stateDir);
  if (r.hgsGuardians?.length) return new Set(r.hgsGuardians.map((g) => g.thumbprint));
  let info;
  try {
    info = await client.info();
  } catch (e) {
    throw hostGuardError(
      "HOSTGUARD_ERR_HGS_UNAVAILABLE",
      `cannot reach HGS to learn its guardian: ${e instanceof Error ? e.message : String(e)}`,
      {},
      { cause: e },
    );
  }
  const g = importGuardianPublicPem(info.guardian);
  const hgsGuardians = [{ name: g.name, thumbprint: guardianThumbprint(g) }];
  await updateRecord(stateDir, (x) => ({ ...x, hgsGuardians }));
  return new Set(hgsGuardians.map((x) => x.thumbprint));
}

function releaseError(e: unknown): HostGuardError {
  if (isHostGuardError(e)) return e;
  if (e instanceof HgsRefusal) {
    return hostGuardError(
      "HOSTGUARD_ERR_KEY_RELEASE_REFUSED",
      `HGS refused to release the VM's keys: ${e.code}: ${e.message}`,
      {
        hgsCode: e.code,
        ...(typeof e.details["finding"] === "string" ? { finding: e.details["finding"] } : {}),
      },
      { cause: e },
    );
  }
  if (isBulwarkError(e) && e.code === "HGS_ERR_UNAVAILABLE") {
    return hostGuardError("HOSTGUARD_ERR_HGS_UNAVAILABLE", e.message, e.details, { cause: e });
  }
  throw e;
}

/**
 * Asks HGS for a VM's keys. Returns undefined when the host is in local mode or the VM's key
 * protector names no guardian of the configured HGS; otherwise the opened VM secrets (the caller
 * zeroizes them), after storing the rolled key protector and the re-sealed secrets.
 */
export async function unlockVmViaHgs(ctx: HostContext, name: string): Promise<VmSecrets | undefined> {
  const stateDir = ctx.store.stateDir;
  const c: HgsClientConfig = await readConfig(stateDir);
  if (c.mode === "Local") return undefined;
  const p = ctx.store.paths(name);
  const current = await readOptional(p.keyProtector);
  const blob = await readOptional(p.vmSecrets);
  if (!current || !blob) return undefined;
  const lkg = await readOptional(p.keyProtectorLastKnownGood);
  const header = vmSecretsHeader(blob);
  const matches = (kp: Uint8Array | undefined): kp is Uint8Array => {
    if (!kp) return false;
    try {
      const k = parseKeyProtector(kp);
      return (
        k.keyGeneration === header.keyGeneration &&
        Buffer.compare(Buffer.from(k.protectorId), Buffer.from(header.protectorId)) === 0
      );
    } catch {
      return false;
    }
  };
  // The protector whose generation the secrets are sealed for; the last known good copy when the
  // current one does not match, or HGS refuses it as malformed or tampered.
  const candidates = [current, lkg].filter(matches);
  if (candidates.length === 2 && Buffer.compare(Buffer.from(current), Buffer.from(lkg as Uint8Array)) === 0)
    candidates.pop();
  if (candidates.length === 0) candidates.push(current);
  const client = openClient(c);
  const say = ctx.progress ?? (() => undefined);
  try {
    const hgs = await hgsGuardianThumbprints(stateDir, client);
    const namesHgs = (kp: Uint8Array) => {
      try {
        return parseKeyProtector(kp).guardians.some((g) => hgs.has(guardianThumbprint(g)));
      } catch {
        return false;
      }
    };
    const toSend = candidates.filter(namesHgs);
    if (toSend.length === 0) return undefined;
    const krk = await keyReleaseKey(stateDir);
    say("attesting to the Host Guardian Service");
    let cert = await ensureHealthCertificate(stateDir, c, client);
    say("asking the Host Guardian Service for the VM's keys");
    const release = async (keyProtector: Uint8Array) => {
      try {
        return await client.releaseKey({ healthCertificate: cert, keyReleaseKey: krk, keyProtector });
      } catch (e) {
        // HGS no longer takes the cached certificate (host revoked, deny-before date, new signer):
        // attest once more, which records the host's real status (and drops the certificate when refused).
        const stale =
          e instanceof HgsRefusal &&
          (e.code === "HGS_ERR_HEALTH_CERTIFICATE" || e.code === "HGS_ERR_UNAUTHORIZED_HOST");
        if (!stale) throw e;
        cert = await attestNow(stateDir, c, client);
        return client.releaseKey({ healthCertificate: cert, keyReleaseKey: krk, keyProtector });
      }
    };
    let send = toSend[0] as Uint8Array;
    let r;
    for (let i = 0; ; i++) {
      send = toSend[i] as Uint8Array;
      try {
        r = await release(send);
        break;
      } catch (e) {
        const last = i === toSend.length - 1;
        if (last || !(e instanceof HgsRefusal && e.code === "HGS_ERR_KEY_PROTECTOR")) throw e;
        say("HGS refused the key protector; trying its last known good copy");
      }
    }
    try {
      try {
        checkSuccessor(send, r.keyProtector);
        verifyOwnerSignature(parseKeyProtector(r.keyProtector));
      } catch (e) {
        throw hostGuardError(
          "HOSTGUARD_ERR_KEY_PROTECTOR",
          `the key protector HGS returned is not a successor of the VM's: ${e instanceof Error ? e.message : String(e)}`,
          {},
          { cause: e },
        );
      }
      let secrets: VmSecrets;
      try {
        secrets = openVmSecrets(r.oldKey, blob);
      } catch (e) {
        throw hostGuardError(
          "HOSTGUARD_ERR_KEY_PROTECTOR",
          `the VM secrets do not open with the key HGS released: ${isBulwarkError(e) ? e.code : String(e)}`,
          {},
          { cause: e },
        );
      }
      const sealed = sealVmSecrets(r.newKey, secrets);
      await writeFileAtomic(p.keyProtectorLastKnownGood, r.keyProtector);
      await writeFileAtomic(p.vmSecrets, sealed);
      await writeFileAtomic(p.keyProtector, r.keyProtector);
      say(
        `keys released; key protector rolled to generation ${inspectKeyProtector(r.keyProtector).keyGeneration}`,
      );
      return secrets;
    } finally {
      zeroize(r.oldKey.key, r.newKey.key);
    }
  } catch (e) {
    throw releaseError(e);
  } finally {
    client.close();
  }
}

/**
 * The runtime's way in: the host's own guardians first (local mode, or a VM this host guards
 * itself); when none of them is in the key protector, HGS; when HGS is not a guardian of this VM
 * either (or the host is in local mode), the local refusal stands.
 */
export async function unlockVmLocallyOrViaHgs(ctx: HostContext, name: string): Promise<VmSecrets> {
  try {
    return await unlockVm(ctx.store.paths(name), ctx.guardians);
  } catch (e) {
    if (!isBulwarkError(e) || e.code !== "PROTECTOR_ERR_NOT_AUTHORIZED") throw e;
    const viaHgs = await unlockVmViaHgs(ctx, name);
    if (!viaHgs) throw e;
    return viaHgs;
  }
}
