/**
 * TPMT_SIGNATURE verification against a public key (TCG TPM 2.0 Library Part 2, section
 * 11.3.4, Table 179; Part 1, section 11.2.3 for RSASSA-PKCS1-v1_5 / RSAPSS and 11.2.4 for
 * ECDSA). The message is hashed with the hash the signature names; RSAPSS accepts any salt
 * length (TPMs differ: the reference implementation uses the largest that fits).
 */
import { constants, verify, type KeyObject } from "node:crypto";
import { algName, CURVES, HASHES, TPM_ALG, type CurveInfo } from "../alg.js";
import type { TpmsSignatureEcc, TpmsSignatureRsa, TpmtSignature } from "../structures.js";

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
      ok = verify(h.node, message, { key, padding, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, s.sig);
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
