/**
 * MakeCredential in software, and the check of what the TPM returns from ActivateCredential
 * (TCG TPM 2.0 Library Part 1, section 24 "Credential Protection", and Part 3, section 12.6).
 *
 *  seed         RSA EK: random, encrypted with RSA-OAEP(nameAlg, label "IDENTITY")  (Part 1, B.10.3)
 *               ECC EK: KDFe(nameAlg, Z, "IDENTITY", ephemeral.x, EK.x) of an ephemeral ECDH  (Part 1, C.6.4)
 *  symKey       KDFa(nameAlg, seed, "STORAGE", objectName, "", EK symmetric keyBits)   (Part 1, 24.4)
 *  encIdentity  CFB(symKey, IV = 0, TPM2B_DIGEST(credential))
 *  HMACkey      KDFa(nameAlg, seed, "INTEGRITY", "", "", digest bits)                  (Part 1, 24.5)
 *  outerHMAC    HMAC(HMACkey, encIdentity || objectName)
 *  blob         TPM2B_DIGEST(outerHMAC) || encIdentity  (TPMS_ID_OBJECT, Part 2 Table 199)
 *
 * Does NOT check that `ekPublic` is a genuine EK (verify its certificate chain first) nor that
 * `objectName` names an acceptable AK (check its public area with checkAkPublic and that its
 * Name is objectName(akPublic)).
 */
import { createCipheriv } from "node:crypto";
import { encode, Writer } from "../../core/codec.js";
import { hashInfo, hmac, TPM_ALG } from "../alg.js";
import { tpmError } from "../errors.js";
import { kdfa } from "../kdf.js";
import { objectName } from "../names.js";
import { defaultRandom, shareSecret, type Random } from "../secret.js";
import {
  eccParms,
  rsaParms,
  TPM2B_DIGEST,
  TPMS_ID_OBJECT,
  type PublicArea,
  type TpmtPublic,
} from "../structures.js";
import { checkAkPublic, checkEkPublic } from "./ak.js";
import { VerdictBuilder, type Verdict } from "../../core/verdict.js";
import { secretsEqual } from "../../core/bytes.js";

export interface Credential {
  /** TPM2B_ID_OBJECT contents (TPMS_ID_OBJECT bytes). */
  readonly credentialBlob: Uint8Array;
  /** TPM2B_ENCRYPTED_SECRET contents. */
  readonly secret: Uint8Array;
}

export type { Random };

/**
 * TPM2_MakeCredential in software: protects `credential` (at most the EK nameAlg digest size)
 * so only the TPM holding `ekPublic`'s private key, with the object named `objectName` loaded,
 * can recover it with TPM2_ActivateCredential.
 */
export function makeCredential(
  ekPublic: TpmtPublic,
  objectName: Uint8Array,
  credential: Uint8Array,
  random: Random = defaultRandom,
): Credential {
  const h = hashInfo(ekPublic.nameAlg);
  if (credential.length === 0 || credential.length > h.size) {
    throw tpmError(
      "TPM_ERR_INVALID_ARGUMENT",
      `credential must be 1..${h.size} bytes, got ${credential.length}`,
    );
  }
  const sym = (rsaParms(ekPublic) ?? eccParms(ekPublic))?.symmetric;
  if (!sym || sym.algorithm !== TPM_ALG.AES || sym.mode !== TPM_ALG.CFB || !sym.keyBits) {
    throw tpmError("TPM_ERR_INVALID_KEY", "EK must be a storage key with AES-CFB symmetric parameters");
  }
  if (![128, 192, 256].includes(sym.keyBits))
    throw tpmError("TPM_ERR_UNSUPPORTED_ALG", `AES-${sym.keyBits} is not supported`);
  const { seed, encrypted: secret } = shareSecret(ekPublic, "IDENTITY", random);
  const symKey = kdfa(ekPublic.nameAlg, seed, "STORAGE", objectName, new Uint8Array(0), sym.keyBits);
  const w = new Writer();
  TPM2B_DIGEST.encode(w, credential);
  const cipher = createCipheriv(`aes-${sym.keyBits}-cfb`, symKey, Buffer.alloc(16));
  const encIdentity = new Uint8Array(Buffer.concat([cipher.update(w.finish()), cipher.final()]));
  const hmacKey = kdfa(ekPublic.nameAlg, seed, "INTEGRITY", new Uint8Array(0), new Uint8Array(0), h.size * 8);
  const integrityHMAC = hmac(ekPublic.nameAlg, hmacKey, encIdentity, objectName);
  return { credentialBlob: encode(TPMS_ID_OBJECT, { integrityHMAC, encIdentity }), secret };
}

/**
 * Compares the secret a host returned from TPM2_ActivateCredential with the one issued, in
 * constant time. A match proves the AK named in makeCredential is loaded in the TPM holding
 * the EK. Does NOT check freshness: issue a new random secret per attempt.
 */
export function checkActivatedSecret(issued: Uint8Array, returned: Uint8Array): Verdict {
  const v = new VerdictBuilder();
  const same = secretsEqual(issued, returned);
  v.check(
    "credential.secret",
    same,
    `${issued.length} bytes issued`,
    same ? "match" : `mismatch (${returned.length} bytes)`,
    "activated secret differs from the issued one",
  );
  return v.verdict();
}

export interface CredentialChallenge {
  /** EK and AK checks; when not ok, no credential is issued. */
  readonly verdict: Verdict;
  /** The blob and encrypted seed to send to the host (absent when the verdict is not ok). */
  readonly credential?: Credential;
  /** The secret to expect back from TPM2_ActivateCredential; keep it server-side. */
  readonly secret?: Uint8Array;
  /** Name of the AK the credential is bound to. */
  readonly akName: Uint8Array;
}

/**
 * The server half of credential activation (go-attestation's ActivationParameters.Generate):
 * checks the EK and AK public areas, binds a fresh random secret to the AK's Name and encrypts
 * it to the EK. The host runs TPM2_ActivateCredential; compare its answer with
 * {@link checkActivatedSecret}. Does NOT check the EK certificate: do that before trusting ekPublic.
 */
export function credentialChallenge(
  ekPublic: PublicArea,
  akPublic: PublicArea,
  random: Random = defaultRandom,
): CredentialChallenge {
  const v = new VerdictBuilder();
  v.merge(checkEkPublic(ekPublic.value));
  v.merge(checkAkPublic(akPublic.value));
  const akName = objectName(akPublic);
  const verdict = v.verdict();
  if (!verdict.ok) return { verdict, akName };
  const secret = random(Math.min(32, hashInfo(ekPublic.value.nameAlg).size));
  return { verdict, credential: makeCredential(ekPublic.value, akName, secret, random), secret, akName };
}
