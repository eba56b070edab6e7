/**
 * Key release at VM start (Hyper-V: a guarded host asks the Key Protection Service for a shielded
 * VM's keys at every start): the HGS half of the host's key source, composed after the local
 * guardians in host/index.ts.
 *
 * The VM secrets blob says (in clear) which protector id and key generation it is sealed for;
 * the host posts the protector of that generation (current, or the last known good copy after
 * a crash mid-update), HGS rolls the transport key, and the host installs the new protector with
 * the secrets re-sealed under the new key in the one crash-safe order (vm/keys.ts
 * installKeyProtector), so the next start recovers from a crash anywhere.
 */
import { bytesEqual } from "../../core/bytes.js";
import { isBulwarkError } from "../../core/errors.js";
import {
  checkSuccessor,
  foreignProtector,
  parseKeyProtector,
  verifyOwnerSignature,
} from "../../protector/key-protector.js";
import { guardianThumbprint, importGuardianPublicPem } from "../../protector/guardian.js";
import { openVmSecrets, sealVmSecrets, vmSecretsHeader } from "../../protector/vm-secrets.js";
import { zeroize } from "../../protector/kdf.js";
import type { KeyProtectorCopy, UnlockRequest, VmSecrets } from "../vm/context.js";
import { checkNotForeign, installKeyProtector, rememberSealKey, sealedForCopies } from "../vm/keys.js";
import { HgsRefusal, type HgsClient } from "./hgs-client.js";
import { readConfig } from "./config.js";
import { attestNow, ensureHealthCertificate, openClient, readRecord, updateRecord } from "./attestation.js";
import { hostGuardError, isHostGuardError, type HostGuardError } from "./errors.js";
import { keyReleaseKey } from "./identity.js";

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
 * zeroizes them), after installing the rolled key protector and the re-sealed secrets.
 */
export async function unlockVmViaHgs(stateDir: string, vm: UnlockRequest): Promise<VmSecrets | undefined> {
  const c = await readConfig(stateDir);
  if (c.mode === "Local") return undefined;
  const { current, secrets: blob } = vm.files;
  if (!blob) return undefined;
  const header = vmSecretsHeader(blob);
  // The protector whose generation the secrets are sealed for; the last known good copy when the
  // current one does not match, or HGS refuses it as malformed or tampered.
  const candidates = sealedForCopies(vm.files, header);
  if (candidates.length === 0) {
    // Another VM's protector in place, with this VM's nowhere: refused before asking HGS.
    if (current.model && !bytesEqual(current.model.protectorId, header.protectorId)) {
      throw foreignProtector(header.protectorId, current.model.protectorId);
    }
    candidates.push(current);
  }
  const client = openClient(c);
  const say = vm.progress;
  try {
    const hgs = await hgsGuardianThumbprints(stateDir, client);
    const toSend = candidates.filter(
      (kp) => kp.model?.guardians.some((g) => hgs.has(guardianThumbprint(g))) === true,
    );
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
    let send = toSend[0] as KeyProtectorCopy;
    let r;
    for (let i = 0; ; i++) {
      send = toSend[i] as KeyProtectorCopy;
      try {
        r = await release(send.bytes);
        break;
      } catch (e) {
        const last = i === toSend.length - 1;
        if (last || !(e instanceof HgsRefusal && e.code === "HGS_ERR_KEY_PROTECTOR")) throw e;
        say("HGS refused the key protector; trying its last known good copy");
      }
    }
    try {
      let rolled;
      try {
        checkSuccessor(send.bytes, r.keyProtector);
        rolled = parseKeyProtector(r.keyProtector);
        verifyOwnerSignature(rolled);
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
      checkNotForeign(vm.files, header, secrets);
      await installKeyProtector(vm.paths, r.keyProtector, sealVmSecrets(r.newKey, secrets));
      say(`keys released; key protector rolled to generation ${rolled.keyGeneration}`);
      return rememberSealKey(secrets, r.newKey);
    } finally {
      zeroize(r.oldKey.key, r.newKey.key);
    }
  } catch (e) {
    throw releaseError(e);
  } finally {
    client.close();
  }
}
