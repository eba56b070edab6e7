/**
 * The host half of TPM attestation, as google/go-attestation's `attest.TPM` does it: an EK from
 * the TCG template, an AK under the EK (as tpm2_createak makes it) or under the SRK, credential
 * activation with the EK policy session, and quotes. The server half is in verify/.
 *
 * Handles of transient objects returned here stay loaded; callers flush them (FlushContext) or
 * make them persistent (EvictControl) as they need.
 */

import type { CreatedObject, KeyRef, QuoteResult, Tpm } from "./client.js";
import { TPM_RH, WELL_KNOWN } from "./constants.js";
import { isTpmError } from "./errors.js";
import type { TpmsPcrSelection } from "./structures.js";
import {
  akTemplateEccP256,
  akTemplateRsa2048,
  ekTemplateEccP256,
  ekTemplateRsa2048,
  srkTemplateRsa2048,
} from "./templates.js";

export type KeyAlgorithm = "rsa" | "ecc";

/**
 * The EK: the persistent RSA EK at 0x81010001 when `alg` is RSA and it exists, else
 * CreatePrimary with the profile template (L-1 or L-2) under TPM_RH_ENDORSEMENT.
 * `transient` tells whether the caller must flush it.
 */
export async function loadEk(
  tpm: Tpm,
  alg: KeyAlgorithm = "rsa",
): Promise<{ ek: KeyRef; transient: boolean }> {
  if (alg === "rsa") {
    try {
      return { ek: await tpm.readPublic(WELL_KNOWN.EK_RSA_PERSISTENT), transient: false };
    } catch (e) {
      if (!isTpmError(e) || e.code !== "TPM_ERR_RESPONSE_CODE") throw e;
    }
  }
  const ek = await tpm.createPrimary(
    TPM_RH.ENDORSEMENT,
    alg === "rsa" ? ekTemplateRsa2048() : ekTemplateEccP256(),
  );
  return { ek, transient: true };
}

/**
 * Creates and loads an attestation key under `parent` ("ek": as tpm2_createak; "srk": as
 * go-attestation). Under the EK each command is authorized by a fresh EK policy session.
 */
export async function createAttestationKey(
  tpm: Tpm,
  opts: { alg?: KeyAlgorithm; parent: KeyRef; parentIsEk: boolean },
): Promise<{ ak: KeyRef; object: CreatedObject }> {
  const template = (opts.alg ?? "rsa") === "rsa" ? akTemplateRsa2048() : akTemplateEccP256();
  const withSession = async <T>(
    fn: (s: Awaited<ReturnType<Tpm["ekPolicySession"]>> | undefined) => Promise<T>,
  ): Promise<T> => {
    if (!opts.parentIsEk) return fn(undefined);
    const s = await tpm.ekPolicySession();
    try {
      return await fn(s);
    } finally {
      await tpm.flushContext(s.handle).catch(() => undefined);
    }
  };
  const object = await withSession((s) => tpm.create(opts.parent, template, s ? { session: s } : {}));
  const ak = await withSession((s) => tpm.load(opts.parent, object, s ? { session: s } : {}));
  return { ak, object };
}

/** A transient SRK from the Provisioning Guidance template (RSA 2048). */
export function createSrk(tpm: Tpm): Promise<KeyRef> {
  return tpm.createPrimary(TPM_RH.OWNER, srkTemplateRsa2048());
}

/** TPM2_ActivateCredential with a fresh EK policy session, flushed afterwards. */
export async function activate(
  tpm: Tpm,
  ak: KeyRef,
  ek: KeyRef,
  credential: { credentialBlob: Uint8Array; secret: Uint8Array },
): Promise<Uint8Array> {
  const s = await tpm.ekPolicySession();
  try {
    return await tpm.activateCredential(ak, ek, credential.credentialBlob, credential.secret, { ek: s });
  } finally {
    await tpm.flushContext(s.handle).catch(() => undefined);
  }
}

/** A quote plus the PCR values it covers, read right after (what a host sends to HGS). */
export async function quoteWithPcrs(
  tpm: Tpm,
  ak: KeyRef,
  nonce: Uint8Array,
  selection: readonly TpmsPcrSelection[],
): Promise<QuoteResult & { pcrs: Awaited<ReturnType<Tpm["pcrRead"]>>["values"] }> {
  const q = await tpm.quote(ak, nonce, selection);
  const { values } = await tpm.pcrRead(selection);
  return { ...q, pcrs: values };
}
