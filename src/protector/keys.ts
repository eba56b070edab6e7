/**
 * Guardian key types, the owner signature and the transport-key wrapping schemes.
 *
 * Signatures (over the guardian set):
 * - RSA-3072/4096: RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32 octets (RFC 8017 §8.1)
 * - ECDSA P-256 with SHA-256, P-384 with SHA-384 (FIPS 186-5 §6), IEEE P1363 r||s encoding
 *
 * Wrapping (of the 256-bit transport key):
 * - RSA-3072/4096: RSAES-OAEP, SHA-256, MGF1-SHA-256, label = wrap context (RFC 8017 §7.1)
 * - ECDH P-256/P-384: HPKE base mode (RFC 9180), info = wrap context, see ./hpke.ts
 * - X25519 (encryption keys only: it cannot sign): HPKE base mode with DHKEM(X25519, HKDF-SHA256),
 *   the default for new guardians' encryption keys (about 3× cheaper than P-256 here, issue 12)
 */
import {
  constants,
  createPublicKey,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  sign,
  verify,
  type KeyObject,
} from "node:crypto";
import { parseDer, Tag } from "../asn1/der.js";
import { protectorError } from "./errors.js";
import {
  HPKE_P256_SHA256_AES256GCM,
  HPKE_P384_SHA384_AES256GCM,
  HPKE_X25519_SHA256_AES256GCM,
  openBase,
  sealBase,
  x25519KeyPair,
  type HpkeSuite,
} from "./hpke.js";
import { zeroize } from "./kdf.js";

/** Key types a guardian may hold: all for encryption, all but X25519 (a DH-only key) for signing. */
export type GuardianKeyType = "rsa-3072" | "rsa-4096" | "p256" | "p384" | "x25519";
export const GUARDIAN_KEY_TYPES: readonly GuardianKeyType[] = [
  "rsa-3072",
  "rsa-4096",
  "p256",
  "p384",
  "x25519",
];
export type SigningKeyType = Exclude<GuardianKeyType, "x25519">;
export const SIGNING_KEY_TYPES: readonly SigningKeyType[] = ["rsa-3072", "rsa-4096", "p256", "p384"];

export function isSigningKeyType(t: GuardianKeyType): t is SigningKeyType {
  return t !== "x25519";
}

/** Owner-signature algorithms, with their format identifiers (docs/formats/key-protector.md). */
export const SignatureAlgorithm = {
  "rsa-pss-sha256": 1,
  "ecdsa-p256-sha256": 2,
  "ecdsa-p384-sha384": 3,
} as const;
export type SignatureAlgorithmName = keyof typeof SignatureAlgorithm;

/** Wrapping schemes, with their format identifiers. */
export const WrapScheme = {
  "rsa-oaep-sha256": 1,
  "hpke-p256-sha256-aes256gcm": 2,
  "hpke-p384-sha384-aes256gcm": 3,
  /** Key-protector format version 2 and later (format.ts `KP_VERSION_OF_SCHEME`). */
  "hpke-x25519-sha256-aes256gcm": 4,
} as const;
export type WrapSchemeName = keyof typeof WrapScheme;

export function nameOf<T extends Record<string, number>>(table: T, id: number): keyof T | undefined {
  return (Object.keys(table) as (keyof T)[]).find((k) => table[k] === id);
}

function unsupported(message: string): never {
  throw protectorError("PROTECTOR_ERR_UNSUPPORTED_KEY", message);
}

/** Classifies a key (public or private) as one of the guardian key types. */
export function guardianKeyType(key: KeyObject): GuardianKeyType {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === "rsa") {
    if (d?.modulusLength === 3072) return "rsa-3072";
    if (d?.modulusLength === 4096) return "rsa-4096";
    return unsupported(`RSA-${d?.modulusLength ?? "?"} is not supported (use RSA-3072 or RSA-4096)`);
  }
  if (key.asymmetricKeyType === "ec") {
    if (d?.namedCurve === "prime256v1") return "p256";
    if (d?.namedCurve === "secp384r1") return "p384";
    return unsupported(`EC curve ${d?.namedCurve ?? "?"} is not supported (use P-256 or P-384)`);
  }
  if (key.asymmetricKeyType === "x25519") return "x25519";
  return unsupported(`key type ${key.asymmetricKeyType ?? "?"} is not supported (use RSA, EC or X25519)`);
}

export function generateGuardianKeyPair(type: GuardianKeyType): {
  publicKey: KeyObject;
  privateKey: KeyObject;
} {
  switch (type) {
    case "rsa-3072":
      return generateKeyPairSync("rsa", { modulusLength: 3072 });
    case "rsa-4096":
      return generateKeyPairSync("rsa", { modulusLength: 4096 });
    case "p256":
      return generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    case "p384":
      return generateKeyPairSync("ec", { namedCurve: "secp384r1" });
    case "x25519": {
      // Not generateKeyPairSync: see x25519KeyPair (hpke.ts) for node 20's lock hazard.
      const { privateKey } = x25519KeyPair();
      return { privateKey, publicKey: createPublicKey(privateKey) };
    }
  }
}

export function signatureAlgorithmFor(key: KeyObject): SignatureAlgorithmName {
  const t = guardianKeyType(key);
  if (t === "x25519") return unsupported("an X25519 key cannot sign (use it as an encryption key)");
  return t === "p256" ? "ecdsa-p256-sha256" : t === "p384" ? "ecdsa-p384-sha384" : "rsa-pss-sha256";
}

const WRAP_SCHEME_OF: Readonly<Record<GuardianKeyType, WrapSchemeName>> = {
  "rsa-3072": "rsa-oaep-sha256",
  "rsa-4096": "rsa-oaep-sha256",
  p256: "hpke-p256-sha256-aes256gcm",
  p384: "hpke-p384-sha384-aes256gcm",
  x25519: "hpke-x25519-sha256-aes256gcm",
};

export function wrapSchemeFor(key: KeyObject): WrapSchemeName {
  return WRAP_SCHEME_OF[guardianKeyType(key)];
}

function signOptions(alg: SignatureAlgorithmName, key: KeyObject) {
  return alg === "rsa-pss-sha256"
    ? { hash: "sha256", opts: { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } }
    : {
        hash: alg === "ecdsa-p256-sha256" ? "sha256" : "sha384",
        opts: { key, dsaEncoding: "ieee-p1363" as const },
      };
}

export function signMessage(
  privateKey: KeyObject,
  message: Uint8Array,
): { algorithm: SignatureAlgorithmName; signature: Buffer } {
  const algorithm = signatureAlgorithmFor(privateKey);
  const { hash, opts } = signOptions(algorithm, privateKey);
  return { algorithm, signature: sign(hash, message, opts) };
}

/** Verifies; the algorithm must be the one the key's type implies (no algorithm substitution). */
export function verifyMessage(
  publicKey: KeyObject,
  algorithm: SignatureAlgorithmName,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (!isSigningKeyType(guardianKeyType(publicKey)) || signatureAlgorithmFor(publicKey) !== algorithm)
    return false;
  const { hash, opts } = signOptions(algorithm, publicKey);
  try {
    return verify(hash, message, opts, signature);
  } catch {
    return false;
  }
}

const HPKE_SUITES: Record<Exclude<WrapSchemeName, "rsa-oaep-sha256">, HpkeSuite> = {
  "hpke-p256-sha256-aes256gcm": HPKE_P256_SHA256_AES256GCM,
  "hpke-p384-sha384-aes256gcm": HPKE_P384_SHA384_AES256GCM,
  "hpke-x25519-sha256-aes256gcm": HPKE_X25519_SHA256_AES256GCM,
};

/** RFC 9180 §7.1.1 SerializePublicKey: the uncompressed SEC1 point, or the raw X25519 key. */
function serializedPublicKey(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: "jwk" });
  const x = Buffer.from(jwk.x ?? "", "base64url");
  if (publicKey.asymmetricKeyType === "x25519") return x;
  const y = Buffer.from(jwk.y ?? "", "base64url");
  return Buffer.concat([Uint8Array.of(0x04), x, y]);
}

/**
 * Serialized public keys (EC points, X25519 keys) by key object, owned by a service that wraps to
 * the same guardians again and again (the JWK export behind a point costs about half an ECDH key
 * generation). Held weakly: a key object the caller drops is forgotten. A private key object maps
 * to its public key's serialization (the recipient's pkRm when it unwraps).
 */
export class PublicPoints {
  private readonly byKey = new WeakMap<KeyObject, Buffer>();

  of(key: KeyObject): Buffer {
    let point = this.byKey.get(key);
    if (!point) {
      point = serializedPublicKey(key.type === "private" ? createPublicKey(key) : key);
      this.byKey.set(key, point);
    }
    return point;
  }
}

/**
 * The private scalar from the SEC 1 ECPrivateKey DER (RFC 5915 §3), kept in Buffers that are
 * zeroized (a JWK export would leave it in an immutable JS string).
 */
function ecPrivateScalar(privateKey: KeyObject): Buffer {
  const sec1 = privateKey.export({ format: "der", type: "sec1" });
  try {
    const [version, scalar] = parseDer(sec1, "ECPrivateKey").children;
    if (!version || !scalar || scalar.tag !== Tag.OCTET_STRING) {
      throw protectorError("PROTECTOR_ERR_UNSUPPORTED_KEY", "unexpected EC private key encoding");
    }
    return Buffer.from(scalar.content);
  } finally {
    zeroize(sec1);
  }
}

export interface Wrapped {
  readonly scheme: WrapSchemeName;
  /** HPKE encapsulated key; empty for RSA-OAEP. */
  readonly enc: Uint8Array;
  readonly ciphertext: Uint8Array;
}

/**
 * Wraps `secret` to an encryption public key; `context` is bound as OAEP label or HPKE info.
 * `points` remembers EC public points between calls (see {@link PublicPoints}).
 */
export function wrapSecret(
  encryptionKey: KeyObject,
  secret: Uint8Array,
  context: Uint8Array,
  points?: PublicPoints,
): Wrapped {
  const pub = encryptionKey.type === "private" ? createPublicKey(encryptionKey) : encryptionKey;
  const scheme = wrapSchemeFor(pub);
  if (scheme === "rsa-oaep-sha256") {
    const ciphertext = publicEncrypt(
      { key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256", oaepLabel: context },
      secret,
    );
    return { scheme, enc: new Uint8Array(0), ciphertext };
  }
  const raw = points ? points.of(pub) : serializedPublicKey(pub);
  const { enc, ciphertext } = sealBase(
    HPKE_SUITES[scheme],
    // An X25519 key goes in as its KeyObject too (no JWK import per wrap); NIST points as bytes.
    scheme === "hpke-x25519-sha256-aes256gcm" ? { raw, key: pub } : raw,
    context,
    new Uint8Array(0),
    secret,
  );
  return { scheme, enc, ciphertext };
}

/**
 * Unwraps; any failure (wrong key, altered bytes, scheme/key mismatch) is PROTECTOR_ERR_UNWRAP.
 * `points` (see {@link PublicPoints}) saves re-deriving the recipient's public key for HPKE.
 */
export function unwrapSecret(
  decryptionKey: KeyObject,
  wrapped: Wrapped,
  context: Uint8Array,
  points?: PublicPoints,
): Buffer {
  const scheme = wrapSchemeFor(decryptionKey);
  if (scheme !== wrapped.scheme) {
    throw protectorError(
      "PROTECTOR_ERR_UNWRAP",
      `wrapping scheme ${wrapped.scheme} does not match the guardian key`,
    );
  }
  try {
    if (scheme === "rsa-oaep-sha256") {
      return privateDecrypt(
        {
          key: decryptionKey,
          padding: constants.RSA_PKCS1_OAEP_PADDING,
          oaepHash: "sha256",
          oaepLabel: context,
        },
        wrapped.ciphertext,
      );
    }
    const suite = HPKE_SUITES[scheme];
    const pkRm = points?.of(decryptionKey);
    const open = (sk: KeyObject | Uint8Array) =>
      openBase(suite, wrapped.enc, sk, context, new Uint8Array(0), wrapped.ciphertext, pkRm);
    // An X25519 key stays inside its KeyObject; a NIST key's scalar is read out for node's ECDH.
    if (scheme === "hpke-x25519-sha256-aes256gcm") return open(decryptionKey);
    const sk = ecPrivateScalar(decryptionKey);
    try {
      return open(sk);
    } finally {
      zeroize(sk);
    }
  } catch (e) {
    throw protectorError(
      "PROTECTOR_ERR_UNWRAP",
      "the transport key could not be unwrapped",
      {},
      { cause: e },
    );
  }
}
