/**
 * Signature algorithms shared by X.509 (RFC 5280 4.1.1.2) and CMS (RFC 5652 10.1.2):
 * RSASSA-PKCS1-v1_5 (RFC 8017 8.2, OIDs RFC 4055/8017 A.2.4) and ECDSA (RFC 5758 3.2,
 * signature value DER `Ecdsa-Sig-Value`). Signing and verification go through node:crypto.
 */
import { createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import { AlgorithmIdentifier } from "@peculiar/asn1-x509";
import { asn1Error } from "./errors.js";
import { DIGEST_BY_OID, OID, type HashName } from "./oid.js";

export interface SignatureScheme {
  /** RSA signatures carry NULL parameters, ECDSA none (RFC 4055 5, RFC 5758 3.2). */
  readonly algorithmIdentifier: AlgorithmIdentifier;
  readonly oid: string;
  readonly hash: HashName;
  readonly keyType: "rsa" | "ec";
}

const RSA_BY_HASH: Record<HashName, string> = {
  sha1: OID.sha1WithRSAEncryption,
  sha256: OID.sha256WithRSAEncryption,
  sha384: OID.sha384WithRSAEncryption,
  sha512: OID.sha512WithRSAEncryption,
};
const ECDSA_BY_HASH: Record<HashName, string> = {
  sha1: OID.ecdsaWithSHA1,
  sha256: OID.ecdsaWithSHA256,
  sha384: OID.ecdsaWithSHA384,
  sha512: OID.ecdsaWithSHA512,
};

function unsupported(message: string): never {
  throw asn1Error("ASN1_ERR_UNSUPPORTED_ALGORITHM", message);
}

/** The hash a key signs with by default: SHA-256 for RSA and P-256, SHA-384 for P-384. */
export function defaultHashFor(key: KeyObject): HashName {
  if (key.asymmetricKeyType === "rsa") return "sha256";
  if (key.asymmetricKeyType === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === "prime256v1") return "sha256";
    if (curve === "secp384r1") return "sha384";
    return unsupported(`EC curve ${curve ?? "?"} (supported: P-256, P-384)`);
  }
  return unsupported(`key type ${key.asymmetricKeyType ?? "?"} (supported: rsa, ec)`);
}

/** The X.509/CMS signature scheme for a signing key and hash. */
export function schemeFor(key: KeyObject, hash: HashName = defaultHashFor(key)): SignatureScheme {
  if (key.asymmetricKeyType === "rsa") {
    const oid = RSA_BY_HASH[hash];
    return {
      oid,
      hash,
      keyType: "rsa",
      algorithmIdentifier: new AlgorithmIdentifier({ algorithm: oid, parameters: null }),
    };
  }
  if (key.asymmetricKeyType === "ec") {
    defaultHashFor(key); // curve check
    const oid = ECDSA_BY_HASH[hash];
    return { oid, hash, keyType: "ec", algorithmIdentifier: new AlgorithmIdentifier({ algorithm: oid }) };
  }
  return unsupported(`key type ${key.asymmetricKeyType ?? "?"} (supported: rsa, ec)`);
}

/** Signs `data` (hashing it with `hash`); ECDSA signatures are DER Ecdsa-Sig-Value. */
export function signBytes(key: KeyObject, hash: HashName, data: Uint8Array): Uint8Array {
  return new Uint8Array(sign(hash, data, key));
}

/**
 * Resolves a signature AlgorithmIdentifier's OID (X.509 signatureAlgorithm or CMS
 * signatureAlgorithm) plus an optional separate digest OID (CMS digestAlgorithm) to a hash and
 * key type. `rsaEncryption` / `idEcPublicKey` as a CMS signature algorithm take the hash from the digest OID.
 */
export function resolveSignatureAlgorithm(
  sigOid: string,
  digestOid?: string,
): { hash: HashName; keyType: "rsa" | "ec" } {
  for (const [h, o] of Object.entries(RSA_BY_HASH))
    if (o === sigOid) return { hash: h as HashName, keyType: "rsa" };
  for (const [h, o] of Object.entries(ECDSA_BY_HASH))
    if (o === sigOid) return { hash: h as HashName, keyType: "ec" };
  if (sigOid === OID.rsaEncryption || sigOid === OID.idEcPublicKey) {
    const hash = digestOid ? DIGEST_BY_OID[digestOid] : undefined;
    if (!hash) return unsupported(`digest algorithm ${digestOid ?? "(none)"}`);
    return { hash, keyType: sigOid === OID.rsaEncryption ? "rsa" : "ec" };
  }
  return unsupported(`signature algorithm ${sigOid}`);
}

/** Verifies a signature; a wrong key type for the algorithm is `false`, not an exception. */
export function verifyBytes(
  publicKey: KeyObject | Uint8Array,
  alg: { hash: HashName; keyType: "rsa" | "ec" },
  data: Uint8Array,
  signature: Uint8Array,
): boolean {
  try {
    const key =
      publicKey instanceof Uint8Array
        ? createPublicKey({ key: Buffer.from(publicKey), format: "der", type: "spki" })
        : publicKey;
    if (key.asymmetricKeyType !== alg.keyType) return false;
    return verify(alg.hash, data, key, signature);
  } catch {
    // node:crypto throws on unloadable keys, malformed ECDSA DER or oversized RSA signatures:
    // a failed verification.
    return false;
  }
}
