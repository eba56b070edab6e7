/**
 * Secret sharing with a TPM key (TCG TPM 2.0 Library Part 1, section 24 and Annexes B.10.3 /
 * C.6.4): a random seed encrypted to an RSA key with OAEP (hash = the key's nameAlg, label
 * `"IDENTITY"` for credentials, `"SECRET"` for session salts), or for an ECC key, an ephemeral
 * ECDH whose shared x-coordinate Z gives seed = KDFe(nameAlg, Z, label, ephemeral.x, key.x).
 * The encrypted form is the TPM2B_ENCRYPTED_SECRET contents.
 */
import { constants, createECDH, publicEncrypt, randomBytes } from "node:crypto";
import { encode } from "../core/codec.js";
import { algName, CURVES, hashInfo } from "./alg.js";
import { tpmError, isTpmError } from "./errors.js";
import { kdfe } from "./kdf.js";
import { concat } from "./names.js";
import { eccParms, rsaParms, TPMS_ECC_POINT, type TpmsEccPoint, type TpmtPublic } from "./structures.js";
import { publicKeyFromTpm } from "./verify/keys.js";

export type Random = (n: number) => Uint8Array;
export const defaultRandom: Random = (n) => new Uint8Array(randomBytes(n));

function leftPad(b: Uint8Array, n: number): Uint8Array {
  if (b.length >= n) return b;
  const out = new Uint8Array(n);
  out.set(b, n - b.length);
  return out;
}

/** A fresh seed and its encryption to `key`; crypto failures are TPM_ERR_INVALID_KEY. */
export function shareSecret(
  key: TpmtPublic,
  label: "IDENTITY" | "SECRET" | "DUPLICATE",
  random: Random = defaultRandom,
): { seed: Uint8Array; encrypted: Uint8Array } {
  try {
    return shareSecretUnchecked(key, label, random);
  } catch (e) {
    if (isTpmError(e)) throw e;
    throw tpmError(
      "TPM_ERR_INVALID_KEY",
      `public key is unusable: ${(e as Error).message}`,
      {},
      { cause: e },
    );
  }
}

function shareSecretUnchecked(
  key: TpmtPublic,
  label: string,
  random: Random,
): { seed: Uint8Array; encrypted: Uint8Array } {
  const h = hashInfo(key.nameAlg);
  if (rsaParms(key)) {
    const seed = random(h.size);
    const encrypted = publicEncrypt(
      {
        key: publicKeyFromTpm(key),
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: h.node,
        oaepLabel: Buffer.from(`${label}\0`, "latin1"),
      },
      seed,
    );
    return { seed, encrypted: new Uint8Array(encrypted) };
  }
  const ecc = eccParms(key);
  if (ecc) {
    const curve = CURVES.get(ecc.curveID);
    if (!curve)
      throw tpmError("TPM_ERR_UNSUPPORTED_ALG", `ECC curve 0x${ecc.curveID.toString(16)} is not supported`);
    publicKeyFromTpm(key); // validates the point is on the curve
    const point = key.unique as TpmsEccPoint;
    const x = leftPad(point.x, curve.size);
    const y = leftPad(point.y, curve.size);
    const ecdh = createECDH(curve.node);
    ecdh.generateKeys();
    const ephemeral = new Uint8Array(ecdh.getPublicKey());
    const ephX = ephemeral.subarray(1, 1 + curve.size);
    const ephY = ephemeral.subarray(1 + curve.size);
    const z = new Uint8Array(ecdh.computeSecret(Buffer.from(concat(Uint8Array.of(4), x, y))));
    const seed = kdfe(key.nameAlg, z, label, ephX, x, h.size * 8);
    return { seed, encrypted: encode(TPMS_ECC_POINT, { x: ephX, y: ephY }) };
  }
  throw tpmError("TPM_ERR_INVALID_KEY", `cannot share a secret with a ${algName(key.type)} key`);
}
