/**
 * Host-key attestation (Hyper-V "TrustHostKey"): a host is registered by its public key; it
 * attests by signing a fresh, single-use HGS nonce together with the key-release key it wants
 * its health certificate bound to. Accepted host keys: RSA ≥ 2048 bits (RSASSA-PKCS1-v1_5 with
 * SHA-256, what `openssl dgst -sha256 -sign` makes), ECDSA P-256/SHA-256, P-384/SHA-384 (DER
 * signatures). A host's id is the SHA-256 of its SPKI DER, hex.
 *
 *   message = "BULWARK-HGS-ATTEST-KEY-V1\0" ‖ nonce (32 bytes) ‖ SHA-256(key-release SPKI DER) ‖ hostId (ASCII)
 *
 * What this mode does not check: anything about the host's boot (no policies apply).
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import { hgsError } from "./errors.js";
import { BoundedMap } from "../core/memo.js";

export const ATTEST_KEY_LABEL = Buffer.from("BULWARK-HGS-ATTEST-KEY-V1\0", "ascii");
export const MAX_KEY_TEXT = 16 * 1024;

export function spkiDer(key: KeyObject): Buffer {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  return pub.export({ type: "spki", format: "der" });
}

export function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
}

export function keyId(key: KeyObject): string {
  return sha256(spkiDer(key)).toString("hex");
}

/** A KeyObject for SPKI DER bytes (throws when they are not one). */
export function publicKeyFromSpki(der: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.from(der), format: "der", type: "spki" });
}

/**
 * KeyObjects by their SPKI DER bytes, memoised: hosts send the same key-release and host keys
 * over and over, and building a KeyObject costs more than verifying a signature with it. One
 * cache belongs to one service (the HGS context), bounded, least recently used out first.
 */
export class PublicKeyCache {
  private readonly keys: BoundedMap<string, KeyObject>;

  constructor(max = 10_000) {
    this.keys = new BoundedMap(max);
  }

  fromSpki(der: Uint8Array): KeyObject {
    const k = Buffer.from(der).toString("base64");
    let key = this.keys.get(k);
    if (!key) {
      key = publicKeyFromSpki(der);
      this.keys.set(k, key);
    }
    return key;
  }
}

/** Reads a public key from PEM (SPKI) or base64 SPKI DER (through `keys` when given). */
export function readPublicKey(text: string, what: string, keys?: PublicKeyCache): KeyObject {
  if (text.length > MAX_KEY_TEXT) throw hgsError("HGS_ERR_INVALID", `${what} is too long`);
  try {
    if (text.includes("-----BEGIN")) return createPublicKey({ key: text, format: "pem" });
    if (!/^[A-Za-z0-9+/=\s]+$/.test(text)) throw new Error("not base64");
    const der = Buffer.from(text, "base64");
    return keys ? keys.fromSpki(der) : publicKeyFromSpki(der);
  } catch (e) {
    throw hgsError(
      "HGS_ERR_INVALID",
      `${what} is not a public key (PEM or base64 SPKI DER)`,
      {},
      { cause: e },
    );
  }
}

/** Host keys: RSA ≥ 2048 or EC P-256/P-384. Returns the hash name the signature uses. */
export function checkHostKey(key: KeyObject): "sha256" | "sha384" {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === "rsa" && (d?.modulusLength ?? 0) >= 2048) return "sha256";
  if (key.asymmetricKeyType === "ec" && d?.namedCurve === "prime256v1") return "sha256";
  if (key.asymmetricKeyType === "ec" && d?.namedCurve === "secp384r1") return "sha384";
  throw hgsError(
    "HGS_ERR_INVALID",
    `host keys must be RSA >= 2048 bits or ECDSA P-256/P-384 (got ${key.asymmetricKeyType ?? "?"} ${d?.modulusLength ?? d?.namedCurve ?? ""})`,
  );
}

/** Key-release keys: what the protector library can wrap to (RSA-3072/4096, EC P-256/P-384). */
export function checkKeyReleaseKey(key: KeyObject): void {
  const d = key.asymmetricKeyDetails;
  const ok =
    (key.asymmetricKeyType === "rsa" && (d?.modulusLength === 3072 || d?.modulusLength === 4096)) ||
    (key.asymmetricKeyType === "ec" && (d?.namedCurve === "prime256v1" || d?.namedCurve === "secp384r1"));
  if (!ok) {
    throw hgsError("HGS_ERR_INVALID", "the key-release key must be RSA-3072/4096 or EC P-256/P-384", {
      finding: "key-release-key.unsupported",
    });
  }
}

/** `keyReleaseKey` may be given as its SPKI DER bytes (as received) to avoid a re-encoding. */
export function attestKeyMessage(
  nonce: Uint8Array,
  keyReleaseKey: KeyObject | Uint8Array,
  hostId: string,
): Buffer {
  return Buffer.concat([
    ATTEST_KEY_LABEL,
    nonce,
    sha256(keyReleaseKey instanceof Uint8Array ? keyReleaseKey : spkiDer(keyReleaseKey)),
    Buffer.from(hostId, "ascii"),
  ]);
}

export function signWithHostKey(privateKey: KeyObject, message: Uint8Array): Buffer {
  return sign(checkHostKey(createPublicKey(privateKey)), message, privateKey);
}

export function verifyHostSignature(
  publicKey: KeyObject,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  try {
    return verify(checkHostKey(publicKey), message, publicKey, signature);
  } catch {
    return false;
  }
}
