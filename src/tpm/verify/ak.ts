/**
 * Attestation-key and endorsement-key checks on a TPMT_PUBLIC (TCG TPM 2.0 Library Part 2,
 * section 8.3 TPMA_OBJECT), following google/go-attestation (attest/activation.go,
 * checkAKParameters): an AK must be fixedTPM, fixedParent, sensitiveDataOrigin, restricted
 * and sign, must not decrypt, and be RSA >= 2048 bits or ECC on a supported curve.
 *
 * Does NOT check: that the AK lives in the same TPM as an EK (that is what credential
 * activation proves), its creation data or certification, or who may use it (authPolicy).
 */
import { algName, CURVES, TPM_ALG, HASHES } from "../alg.js";
import { TPMA_OBJECT, objectAttributeNames, type TpmaObjectName } from "../constants.js";
import { EK_POLICY_A_SHA256 } from "../templates.js";
import { bytesEqual, toHex } from "../../core/bytes.js";
import { eccParms, rsaParms, type TpmtPublic } from "../structures.js";
import { VerdictBuilder, type Verdict } from "../../core/verdict.js";

const attrs = (a: number): string => objectAttributeNames(a).join("|") || "(none)";

function requireAttrs(
  v: VerdictBuilder,
  prefix: string,
  pub: TpmtPublic,
  set: TpmaObjectName[],
  clear: TpmaObjectName[],
): void {
  for (const name of set) {
    v.check(
      `${prefix}.attributes.${name}`,
      (pub.objectAttributes & TPMA_OBJECT[name]) !== 0,
      `${name} set`,
      attrs(pub.objectAttributes),
      `${prefix.toUpperCase()} must have ${name}`,
    );
  }
  for (const name of clear) {
    v.check(
      `${prefix}.attributes.${name}`,
      (pub.objectAttributes & TPMA_OBJECT[name]) === 0,
      `${name} clear`,
      attrs(pub.objectAttributes),
      `${prefix.toUpperCase()} must not have ${name}`,
    );
  }
}

function checkKeyStrength(v: VerdictBuilder, prefix: string, pub: TpmtPublic): void {
  const rsa = rsaParms(pub);
  const ecc = eccParms(pub);
  if (rsa)
    v.check(
      `${prefix}.keySize`,
      rsa.keyBits >= 2048,
      ">= 2048 bits",
      `${rsa.keyBits} bits`,
      "RSA key is too small",
    );
  else if (ecc)
    v.check(
      `${prefix}.curve`,
      CURVES.has(ecc.curveID),
      "NIST P-256, P-384 or P-521",
      `0x${ecc.curveID.toString(16)}`,
      "ECC curve is not supported",
    );
  else
    v.fail(
      `${prefix}.type`,
      "TPM_ALG_RSA or TPM_ALG_ECC",
      algName(pub.type),
      "key type cannot sign quotes or be an EK",
    );
  const nameAlg = HASHES.get(pub.nameAlg);
  v.check(
    `${prefix}.nameAlg`,
    nameAlg !== undefined && pub.nameAlg !== TPM_ALG.SHA1,
    "SHA-256 or stronger",
    algName(pub.nameAlg),
    "nameAlg is weak or unknown",
    "warning",
  );
}

/** AK checks as go-attestation makes them. */
export function checkAkPublic(pub: TpmtPublic): Verdict {
  const v = new VerdictBuilder();
  requireAttrs(
    v,
    "ak",
    pub,
    ["fixedTPM", "fixedParent", "sensitiveDataOrigin", "restricted", "sign"],
    ["decrypt"],
  );
  checkKeyStrength(v, "ak", pub);
  const scheme = (rsaParms(pub) ?? eccParms(pub))?.scheme;
  if (scheme && scheme.scheme !== TPM_ALG.NULL) {
    v.check(
      "ak.scheme.hash",
      scheme.hashAlg !== TPM_ALG.SHA1,
      "not SHA-1",
      algName(scheme.hashAlg ?? 0),
      "AK signs with SHA-1",
      "warning",
    );
  }
  return v.verdict();
}

/**
 * EK checks against the TCG EK Credential Profile templates (B.3.3-B.3.11): a restricted
 * decryption key with fixedTPM/fixedParent/sensitiveDataOrigin/adminWithPolicy, not a signing
 * key; for SHA-256 EKs, PolicyA as authPolicy (warning only: the high-range templates H-1..H-7
 * use PolicyB and set userWithAuth, so neither is an error). Does NOT check an EK certificate.
 */
export function checkEkPublic(pub: TpmtPublic): Verdict {
  const v = new VerdictBuilder();
  requireAttrs(
    v,
    "ek",
    pub,
    ["fixedTPM", "fixedParent", "sensitiveDataOrigin", "adminWithPolicy", "restricted", "decrypt"],
    ["sign"],
  );
  checkKeyStrength(v, "ek", pub);
  if (pub.nameAlg === TPM_ALG.SHA256) {
    v.check(
      "ek.authPolicy",
      bytesEqual(pub.authPolicy, EK_POLICY_A_SHA256),
      toHex(EK_POLICY_A_SHA256),
      toHex(pub.authPolicy),
      "EK authPolicy is not the profile's PolicyA",
      "warning",
    );
  }
  return v.verdict();
}
