/**
 * TPMT_SIGNATURE verification against a public key (TCG TPM 2.0 Library Part 2, section
 * 11.3.4, Table 179; Part 1, section 11.2.3 for RSASSA-PKCS1-v1_5 / RSAPSS and 11.2.4 for
 * ECDSA). The message is hashed with the hash the signature names; RSAPSS accepts any salt
 * length (TPMs differ: the reference implementation uses the largest that fits).
 *
 * RSASSA-PKCS1-v1_5 is checked as RFC 8017 section 8.2.2 describes it: the signature is opened
 * with the public key (RSAVP1) and the result compared byte for byte with the one encoding
 * EMSA-PKCS1-v1_5 gives for the message's hash. That is the check OpenSSL's verify makes; done
 * this way node skips its per-call digest-context setup (about 6 % of a 2048-bit verification,
 * bench/quote.ts). Hashes without a DigestInfo prefix below go through node's `verify`.
 */
import { constants, publicDecrypt, verify, type KeyObject } from "node:crypto";
import { algName, CURVES, digestLatin1, HASHES, latin1Equals, TPM_ALG, type CurveInfo } from "../alg.js";
import type { TpmsSignatureEcc, TpmsSignatureRsa, TpmtSignature } from "../structures.js";

/**
 * DER of DigestInfo up to the digest (RFC 8017 section 9.2, note 1), per TPM hash algorithm.
 */
const DIGEST_INFO_PREFIX: ReadonlyMap<number, Uint8Array> = new Map(
  (
    [
      [TPM_ALG.SHA1, "3021300906052b0e03021a05000414"],
      [TPM_ALG.SHA256, "3031300d060960864801650304020105000420"],
      [TPM_ALG.SHA384, "3041300d060960864801650304020205000430"],
      [TPM_ALG.SHA512, "3051300d060960864801650304020305000440"],
    ] as const
  ).map(([alg, hex]) => [alg, new Uint8Array(Buffer.from(hex, "hex"))]),
);

/**
 * RSASSA-PKCS1-v1_5 verification (RFC 8017 section 8.2.2) of `sig` over `message`: RSAVP1 by
 * OpenSSL without padding, then a comparison with EMSA-PKCS1-v1_5-ENCODE(message, k) =
 * 0x00 0x01 PS(0xFF...) 0x00 DigestInfo. Undefined when `hashAlg` has no DigestInfo here.
 */
function verifyRsassa(
  key: KeyObject,
  hashAlg: number,
  nodeHash: string,
  message: Uint8Array,
  sig: Uint8Array,
): boolean | undefined {
  const prefix = DIGEST_INFO_PREFIX.get(hashAlg);
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (!prefix || !bits) return undefined;
  const k = (bits + 7) >>> 3;
  const digest = digestLatin1(nodeHash, message);
  const tLen = prefix.length + digest.length;
  // Step 1 (length) and EMSA's "intended encoded message length too short".
  if (sig.length !== k || k < tLen + 11) return false;
  // RSAVP1 refuses a representative >= n (OpenSSL: "data too large for modulus") by throwing.
  const em = publicDecrypt({ key, padding: constants.RSA_NO_PADDING }, sig);
  if (em.length !== k || em[0] !== 0x00 || em[1] !== 0x01) return false;
  const separator = k - tLen - 1;
  for (let i = 2; i < separator; i++) if (em[i] !== 0xff) return false;
  return (
    em[separator] === 0x00 &&
    em.compare(prefix, 0, prefix.length, separator + 1, k - digest.length) === 0 &&
    latin1Equals(digest, em, k - digest.length)
  );
}

export interface SignatureCheck {
  readonly ok: boolean;
  /** Why it failed, for a finding. */
  readonly reason?: string;
  /** The hash algorithm the signature used (for the quote's PCR digest). */
  readonly hashAlg?: number;
}

const CURVE_BY_NODE_NAME: ReadonlyMap<string, CurveInfo> = new Map(
  [...CURVES.values()].map((c) => [c.node, c]),
);

function leftPad(b: Uint8Array, n: number): Uint8Array {
  if (b.length >= n) return b;
  const out = new Uint8Array(n);
  out.set(b, n - b.length);
  return out;
}

export function verifyTpmSignature(key: KeyObject, sig: TpmtSignature, message: Uint8Array): SignatureCheck {
  const keyType = key.asymmetricKeyType;
  if (sig.sigAlg === TPM_ALG.RSASSA || sig.sigAlg === TPM_ALG.RSAPSS) {
    const s = sig.signature as TpmsSignatureRsa;
    const h = HASHES.get(s.hash);
    if (!h) return { ok: false, reason: `unsupported signature hash ${algName(s.hash)}` };
    if (keyType !== "rsa")
      return {
        ok: false,
        reason: `${algName(sig.sigAlg)} signature but the key is ${keyType ?? "unknown"}`,
        hashAlg: s.hash,
      };
    const padding =
      sig.sigAlg === TPM_ALG.RSASSA ? constants.RSA_PKCS1_PADDING : constants.RSA_PKCS1_PSS_PADDING;
    let ok = false;
    try {
      ok =
        (sig.sigAlg === TPM_ALG.RSASSA ? verifyRsassa(key, s.hash, h.node, message, s.sig) : undefined) ??
        verify(h.node, message, { key, padding, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, s.sig);
    } catch (e) {
      return {
        ok: false,
        reason: `signature could not be checked: ${(e as Error).message}`,
        hashAlg: s.hash,
      };
    }
    return ok
      ? { ok, hashAlg: s.hash }
      : { ok, reason: "signature does not verify with the key", hashAlg: s.hash };
  }
  if (sig.sigAlg === TPM_ALG.ECDSA) {
    const s = sig.signature as TpmsSignatureEcc;
    const h = HASHES.get(s.hash);
    if (!h) return { ok: false, reason: `unsupported signature hash ${algName(s.hash)}` };
    if (keyType !== "ec")
      return { ok: false, reason: `ECDSA signature but the key is ${keyType ?? "unknown"}`, hashAlg: s.hash };
    const curveName = key.asymmetricKeyDetails?.namedCurve;
    const curve = curveName === undefined ? undefined : CURVE_BY_NODE_NAME.get(curveName);
    if (!curve) return { ok: false, reason: `unsupported curve ${curveName ?? "unknown"}`, hashAlg: s.hash };
    if (s.signatureR.length > curve.size || s.signatureS.length > curve.size) {
      return { ok: false, reason: "ECDSA r or s is longer than the curve order", hashAlg: s.hash };
    }
    const rs = new Uint8Array(curve.size * 2);
    rs.set(leftPad(s.signatureR, curve.size));
    rs.set(leftPad(s.signatureS, curve.size), curve.size);
    let ok = false;
    try {
      ok = verify(h.node, message, { key, dsaEncoding: "ieee-p1363" }, rs);
    } catch (e) {
      return {
        ok: false,
        reason: `signature could not be checked: ${(e as Error).message}`,
        hashAlg: s.hash,
      };
    }
    return ok
      ? { ok, hashAlg: s.hash }
      : { ok, reason: "signature does not verify with the key", hashAlg: s.hash };
  }
  return {
    ok: false,
    reason: `signature scheme ${algName(sig.sigAlg)} is not supported (RSASSA, RSAPSS, ECDSA are)`,
  };
}
