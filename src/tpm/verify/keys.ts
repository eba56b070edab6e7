/**
 * Public keys between TPM and node:crypto form.
 *
 * TPMT_PUBLIC (TCG TPM 2.0 Library Part 2, Table 197) to a KeyObject: RSA modulus from
 * TPM2B_PUBLIC_KEY_RSA and the exponent (0 means 65537, Part 2 Table 194); ECC point from
 * TPMS_ECC_POINT on the named curve. And an AK/EK given as a file in the formats tpm2-tools
 * writes: TPM2B_PUBLIC ("tss"), bare TPMT_PUBLIC, or PEM SubjectPublicKeyInfo.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { decode } from "../../core/codec.js";
import { isBulwarkError } from "../../core/errors.js";
import { algName, CURVES } from "../alg.js";
import { tpmError } from "../errors.js";
import {
  TPM2B_PUBLIC_RAW,
  TPMT_PUBLIC,
  eccParms,
  rsaParms,
  withRawPublic,
  type PublicArea,
  type TpmsEccPoint,
  type TpmtPublic,
} from "../structures.js";

const b64u = (b: Uint8Array): string => Buffer.from(b).toString("base64url");

function leftPad(b: Uint8Array, n: number): Uint8Array {
  if (b.length >= n) return b;
  const out = new Uint8Array(n);
  out.set(b, n - b.length);
  return out;
}

/** The node:crypto public key of an RSA or ECC TPMT_PUBLIC. */
export function publicKeyFromTpm(pub: TpmtPublic): KeyObject {
  const rsa = rsaParms(pub);
  if (rsa) {
    const n = pub.unique as Uint8Array;
    if (n.length === 0 || n.length * 8 !== rsa.keyBits) {
      throw tpmError(
        "TPM_ERR_INVALID_KEY",
        `RSA modulus of ${n.length} bytes does not match keyBits ${rsa.keyBits}`,
      );
    }
    const exp = rsa.exponent === 0 ? 65537 : rsa.exponent;
    const e = Uint8Array.of(exp >>> 24, (exp >>> 16) & 0xff, (exp >>> 8) & 0xff, exp & 0xff);
    let i = 0;
    while (i < 3 && e[i] === 0) i++;
    return wrap(() =>
      createPublicKey({ key: { kty: "RSA", n: b64u(n), e: b64u(e.subarray(i)) }, format: "jwk" }),
    );
  }
  const ecc = eccParms(pub);
  if (ecc) {
    const curve = CURVES.get(ecc.curveID);
    if (!curve)
      throw tpmError("TPM_ERR_UNSUPPORTED_ALG", `ECC curve 0x${ecc.curveID.toString(16)} is not supported`);
    const p = pub.unique as TpmsEccPoint;
    if (p.x.length > curve.size || p.y.length > curve.size || p.x.length === 0) {
      throw tpmError("TPM_ERR_INVALID_KEY", "ECC point coordinates do not fit the curve");
    }
    return wrap(() =>
      createPublicKey({
        key: {
          kty: "EC",
          crv: curve.jwk,
          x: b64u(leftPad(p.x, curve.size)),
          y: b64u(leftPad(p.y, curve.size)),
        },
        format: "jwk",
      }),
    );
  }
  throw tpmError("TPM_ERR_UNSUPPORTED_ALG", `${algName(pub.type)} keys have no public key to verify with`);
}

function wrap(fn: () => KeyObject): KeyObject {
  try {
    return fn();
  } catch (e) {
    throw tpmError(
      "TPM_ERR_INVALID_KEY",
      `not a valid public key: ${(e as Error).message}`,
      {},
      { cause: e },
    );
  }
}

/** A public key as read from a file: always a KeyObject, and the TPM public area when known. */
export interface LoadedPublicKey {
  readonly key: KeyObject;
  readonly public?: PublicArea;
  readonly format: "TPM2B_PUBLIC" | "TPMT_PUBLIC" | "PEM";
}

/** Parses an AK/EK public file: TPM2B_PUBLIC (tpm2-tools "tss"), TPMT_PUBLIC, or PEM/DER SPKI. */
export function loadPublicKey(bytes: Uint8Array): LoadedPublicKey {
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes.subarray(0, 64));
  if (text.includes("-----BEGIN")) {
    const pem = new TextDecoder().decode(bytes);
    return { key: wrap(() => createPublicKey({ key: pem, format: "pem" })), format: "PEM" };
  }
  const attempts: [LoadedPublicKey["format"], () => PublicArea][] = [
    ["TPM2B_PUBLIC", () => decode(TPM2B_PUBLIC_RAW, bytes)],
    ["TPMT_PUBLIC", () => withRawPublic(decode(TPMT_PUBLIC, bytes), bytes)],
  ];
  for (const [format, parse] of attempts) {
    let pub: PublicArea;
    try {
      pub = parse();
    } catch (e) {
      if (isBulwarkError(e)) continue;
      throw e;
    }
    return { key: publicKeyFromTpm(pub.value), public: pub, format };
  }
  try {
    return { key: createPublicKey({ key: Buffer.from(bytes), format: "der", type: "spki" }), format: "PEM" };
  } catch {
    throw tpmError(
      "TPM_ERR_FILE_FORMAT",
      "public key is neither TPM2B_PUBLIC, TPMT_PUBLIC nor PEM/DER SubjectPublicKeyInfo",
    );
  }
}
