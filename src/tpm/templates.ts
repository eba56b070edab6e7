/**
 * Key templates (TPMT_PUBLIC values) Bulwark creates.
 *
 * - EK templates L-1 (RSA 2048) and L-2 (ECC NIST P-256) of the TCG EK Credential Profile for
 *   TPM Family 2.0, version 2.3, section B.3.3 and B.3.4 (Tables 2-3 of Annex B): restricted
 *   decryption keys, AES-128-CFB, authPolicy = PolicySecret(TPM_RH_ENDORSEMENT) ("PolicyA").
 * - SRK templates of the TCG TPM v2.0 Provisioning Guidance, section 7.5.1.
 * - AK templates as google/go-attestation and tpm2_createak make them: restricted signing keys.
 * - A sealed data object (TPM_ALG_KEYEDHASH, scheme NULL) whose authPolicy is a PCR policy.
 */
import { TPM_ALG, TPM_ECC } from "./alg.js";
import { objectAttributes } from "./constants.js";
import { fromHex } from "./names.js";
import type { TpmtPublic, TpmtSymDef } from "./structures.js";

/** PolicyA_SHA256 = PolicySecret(TPM_RH_ENDORSEMENT) (EK Credential Profile, B.6.1). */
export const EK_POLICY_A_SHA256 = fromHex("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa");

const AES128_CFB: TpmtSymDef = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB };
const SYM_NULL: TpmtSymDef = { algorithm: TPM_ALG.NULL, keyBits: null, mode: null };
const SCHEME_NULL = { scheme: TPM_ALG.NULL, hashAlg: null, extra: null };

const EK_ATTRIBUTES = objectAttributes(
  "fixedTPM",
  "fixedParent",
  "sensitiveDataOrigin",
  "adminWithPolicy",
  "restricted",
  "decrypt",
);

/** EK Credential Profile template L-1: RSA 2048, SHA-256, AES-128-CFB (value 0x000300B2 attributes). */
export function ekTemplateRsa2048(): TpmtPublic {
  return {
    type: TPM_ALG.RSA,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: EK_ATTRIBUTES,
    authPolicy: EK_POLICY_A_SHA256,
    parameters: { symmetric: AES128_CFB, scheme: SCHEME_NULL, keyBits: 2048, exponent: 0 },
    unique: new Uint8Array(256),
  };
}

/** EK Credential Profile template L-2: ECC NIST P-256, SHA-256, AES-128-CFB. */
export function ekTemplateEccP256(): TpmtPublic {
  return {
    type: TPM_ALG.ECC,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: EK_ATTRIBUTES,
    authPolicy: EK_POLICY_A_SHA256,
    parameters: { symmetric: AES128_CFB, scheme: SCHEME_NULL, curveID: TPM_ECC.NIST_P256, kdf: SCHEME_NULL },
    unique: { x: new Uint8Array(32), y: new Uint8Array(32) },
  };
}

const SRK_ATTRIBUTES = objectAttributes(
  "fixedTPM",
  "fixedParent",
  "sensitiveDataOrigin",
  "userWithAuth",
  "noDA",
  "restricted",
  "decrypt",
);

/** Provisioning Guidance SRK: RSA 2048 storage key, AES-128-CFB. */
export function srkTemplateRsa2048(): TpmtPublic {
  return {
    type: TPM_ALG.RSA,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: SRK_ATTRIBUTES,
    authPolicy: new Uint8Array(0),
    parameters: { symmetric: AES128_CFB, scheme: SCHEME_NULL, keyBits: 2048, exponent: 0 },
    unique: new Uint8Array(0),
  };
}

/** Provisioning Guidance SRK: ECC P-256 storage key, AES-128-CFB. */
export function srkTemplateEccP256(): TpmtPublic {
  return {
    type: TPM_ALG.ECC,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: SRK_ATTRIBUTES,
    authPolicy: new Uint8Array(0),
    parameters: { symmetric: AES128_CFB, scheme: SCHEME_NULL, curveID: TPM_ECC.NIST_P256, kdf: SCHEME_NULL },
    unique: { x: new Uint8Array(0), y: new Uint8Array(0) },
  };
}

/** The attributes every attestation key must have (go-attestation's AK checks). */
export const AK_ATTRIBUTES = objectAttributes(
  "fixedTPM",
  "fixedParent",
  "sensitiveDataOrigin",
  "userWithAuth",
  "restricted",
  "sign",
);

/** Restricted RSA 2048 signing key, RSASSA (or RSAPSS) with SHA-256. */
export function akTemplateRsa2048(scheme: number = TPM_ALG.RSASSA): TpmtPublic {
  return {
    type: TPM_ALG.RSA,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: AK_ATTRIBUTES,
    authPolicy: new Uint8Array(0),
    parameters: {
      symmetric: SYM_NULL,
      scheme: { scheme, hashAlg: TPM_ALG.SHA256, extra: null },
      keyBits: 2048,
      exponent: 0,
    },
    unique: new Uint8Array(0),
  };
}

/** Restricted ECC P-256 signing key, ECDSA with SHA-256. */
export function akTemplateEccP256(): TpmtPublic {
  return {
    type: TPM_ALG.ECC,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: AK_ATTRIBUTES,
    authPolicy: new Uint8Array(0),
    parameters: {
      symmetric: SYM_NULL,
      scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256, extra: null },
      curveID: TPM_ECC.NIST_P256,
      kdf: SCHEME_NULL,
    },
    unique: { x: new Uint8Array(0), y: new Uint8Array(0) },
  };
}

/**
 * A sealed data object: KEYEDHASH with scheme NULL. With an authPolicy and no userWithAuth
 * it can only be unsealed through a policy session satisfying that policy.
 */
export function sealedObjectTemplate(authPolicy: Uint8Array, nameAlg: number = TPM_ALG.SHA256): TpmtPublic {
  return {
    type: TPM_ALG.KEYEDHASH,
    nameAlg,
    objectAttributes: objectAttributes(
      "fixedTPM",
      "fixedParent",
      ...(authPolicy.length ? [] : (["userWithAuth"] as const)),
    ),
    authPolicy,
    parameters: { scheme: SCHEME_NULL },
    unique: new Uint8Array(0),
  };
}
