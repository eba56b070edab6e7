/**
 * HPKE, RFC 9180, base mode (mode_base = 0x00), single-shot Seal/Open (§6.1) with DHKEM
 * (§4.1) over NIST curves (§7.1.1: SEC1 uncompressed points) and over X25519 (§7.1.1: raw
 * 32-octet keys, RFC 7748): the wrapping used for ECDH and X25519 guardians.
 *
 * Suites used by key protectors (RFC 9180 §7 identifiers):
 * - DHKEM(P-256, HKDF-SHA256) 0x0010, HKDF-SHA256 0x0001, AES-256-GCM 0x0002
 * - DHKEM(P-384, HKDF-SHA384) 0x0011, HKDF-SHA384 0x0002, AES-256-GCM 0x0002
 * - DHKEM(X25519, HKDF-SHA256) 0x0020, HKDF-SHA256 0x0001, AES-256-GCM 0x0002 (format version 2)
 * AES-128-GCM (0x0001), HKDF-SHA512 (0x0003) and DHKEM(P-521) (0x0012) exist only so the
 * RFC's published test vectors (Appendix A.1, A.3, A.4, A.6) can be checked against this code.
 *
 * Speed (a key service wraps and unwraps on every release): NIST DH goes through node's ECDH
 * objects on raw points (KeyObject-based `diffieHellman` re-validates the peer key with a full
 * public-key check, about a second scalar multiplication); X25519 goes through `diffieHellman`
 * on KeyObjects, public keys made from and read to raw bytes by JWK (OpenSSL's SPKI decoder and
 * encoder cost about as much as the DH itself). A recipient's public key can be passed in so it
 * is not re-derived from the private key.
 */
import {
  createCipheriv,
  createDecipheriv,
  createECDH,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomBytes,
  type KeyObject,
} from "node:crypto";
import { protectorError } from "./errors.js";
import { hkdfExpand, hkdfExtract, zeroize, type HashName } from "./kdf.js";

export interface HpkeKem {
  readonly id: number;
  /** The DH group: a NIST curve (node's name) or X25519. */
  readonly curve: "prime256v1" | "secp384r1" | "secp521r1" | "x25519";
  readonly hash: HashName;
  /** Nsecret (RFC 9180 Table 2). */
  readonly nSecret: number;
  /** Npk = Nenc: an uncompressed SEC1 point, or the raw X25519 public key. */
  readonly nPk: number;
}
export interface HpkeKdf {
  readonly id: number;
  readonly hash: HashName;
}
export interface HpkeAead {
  readonly id: number;
  readonly cipher: "aes-128-gcm" | "aes-256-gcm";
  readonly nK: number;
}
export interface HpkeSuite {
  readonly kem: HpkeKem;
  readonly kdf: HpkeKdf;
  readonly aead: HpkeAead;
}

export const KEM_P256: HpkeKem = { id: 0x0010, curve: "prime256v1", hash: "sha256", nSecret: 32, nPk: 65 };
export const KEM_P384: HpkeKem = { id: 0x0011, curve: "secp384r1", hash: "sha384", nSecret: 48, nPk: 97 };
/** Only for checking RFC 9180 A.6 (the one published vector with AES-256-GCM); guardians do not use P-521. */
export const KEM_P521: HpkeKem = { id: 0x0012, curve: "secp521r1", hash: "sha512", nSecret: 64, nPk: 133 };
export const KEM_X25519: HpkeKem = { id: 0x0020, curve: "x25519", hash: "sha256", nSecret: 32, nPk: 32 };
export const KDF_SHA256: HpkeKdf = { id: 0x0001, hash: "sha256" };
export const KDF_SHA384: HpkeKdf = { id: 0x0002, hash: "sha384" };
export const KDF_SHA512: HpkeKdf = { id: 0x0003, hash: "sha512" };
export const AEAD_AES128GCM: HpkeAead = { id: 0x0001, cipher: "aes-128-gcm", nK: 16 };
export const AEAD_AES256GCM: HpkeAead = { id: 0x0002, cipher: "aes-256-gcm", nK: 32 };

export const HPKE_P256_SHA256_AES256GCM: HpkeSuite = { kem: KEM_P256, kdf: KDF_SHA256, aead: AEAD_AES256GCM };
export const HPKE_P384_SHA384_AES256GCM: HpkeSuite = { kem: KEM_P384, kdf: KDF_SHA384, aead: AEAD_AES256GCM };
export const HPKE_X25519_SHA256_AES256GCM: HpkeSuite = {
  kem: KEM_X25519,
  kdf: KDF_SHA256,
  aead: AEAD_AES256GCM,
};

const NN = 12; // Nn for both GCM AEADs
const NT = 16; // Nt
const HPKE_V1 = Buffer.from("HPKE-v1");

function i2osp(n: number, w: number): Buffer {
  const b = Buffer.alloc(w);
  b.writeUIntBE(n, 0, w);
  return b;
}

/** RFC 9180 §4: LabeledExtract(salt, label, ikm). */
function labeledExtract(
  hash: HashName,
  suiteId: Buffer,
  salt: Uint8Array,
  label: string,
  ikm: Uint8Array,
): Buffer {
  return hkdfExtract(hash, salt, Buffer.concat([HPKE_V1, suiteId, Buffer.from(label), ikm]));
}

/** RFC 9180 §4: LabeledExpand(prk, label, info, L). */
function labeledExpand(
  hash: HashName,
  suiteId: Buffer,
  prk: Uint8Array,
  label: string,
  info: Uint8Array,
  length: number,
): Buffer {
  return hkdfExpand(
    hash,
    prk,
    Buffer.concat([i2osp(length, 2), HPKE_V1, suiteId, Buffer.from(label), info]),
    length,
  );
}

/** RFC 9180 §4.1 ExtractAndExpand for DHKEM. */
function kemSharedSecret(kem: HpkeKem, dh: Uint8Array, kemContext: Uint8Array): Buffer {
  const suiteId = Buffer.concat([Buffer.from("KEM"), i2osp(kem.id, 2)]);
  const eaePrk = labeledExtract(kem.hash, suiteId, new Uint8Array(0), "eae_prk", dh);
  const ss = labeledExpand(kem.hash, suiteId, eaePrk, "shared_secret", kemContext, kem.nSecret);
  zeroize(eaePrk);
  return ss;
}

export interface HpkeContext {
  readonly key: Buffer;
  readonly baseNonce: Buffer;
  readonly sharedSecret: Buffer;
}

function suiteIdOf(suite: HpkeSuite): Buffer {
  return Buffer.concat([
    Buffer.from("HPKE"),
    i2osp(suite.kem.id, 2),
    i2osp(suite.kdf.id, 2),
    i2osp(suite.aead.id, 2),
  ]);
}

/** psk_id_hash in mode_base: a constant of the suite, since its psk_id is empty. */
function pskIdHashOf(suite: HpkeSuite): Buffer {
  const empty = new Uint8Array(0);
  return labeledExtract(suite.kdf.hash, suiteIdOf(suite), empty, "psk_id_hash", empty);
}

/** The constant for the suites key protectors use, computed at load (a key service wraps often). */
const PSK_ID_HASH: ReadonlyMap<HpkeSuite, Buffer> = new Map(
  [HPKE_P256_SHA256_AES256GCM, HPKE_P384_SHA384_AES256GCM, HPKE_X25519_SHA256_AES256GCM].map((s) => [
    s,
    pskIdHashOf(s),
  ]),
);

/** RFC 9180 §5.1 KeySchedule for mode_base (empty psk and psk_id). */
function keySchedule(suite: HpkeSuite, sharedSecret: Buffer, info: Uint8Array): HpkeContext {
  const suiteId = suiteIdOf(suite);
  const h = suite.kdf.hash;
  const empty = new Uint8Array(0);
  const pskIdHash = PSK_ID_HASH.get(suite) ?? pskIdHashOf(suite);
  const infoHash = labeledExtract(h, suiteId, empty, "info_hash", info);
  const context = Buffer.concat([Uint8Array.of(0x00), pskIdHash, infoHash]);
  const secret = labeledExtract(h, suiteId, sharedSecret, "secret", empty);
  const key = labeledExpand(h, suiteId, secret, "key", context, suite.aead.nK);
  const baseNonce = labeledExpand(h, suiteId, secret, "base_nonce", context, NN);
  zeroize(secret);
  return { key, baseNonce, sharedSecret };
}

// ---- the DH group: RFC 9180 §4.1 GenerateKeyPair, DH, SerializePublicKey ----

function x25519Public(raw: Uint8Array): KeyObject {
  return createPublicKey({
    key: { kty: "OKP", crv: "X25519", x: Buffer.from(raw).toString("base64url") },
    format: "jwk",
  });
}

/** The X25519 base point u = 9 (RFC 7748 §4.1): DH(sk, base) is sk's public key. */
const X25519_BASE = x25519Public(Uint8Array.of(9, ...new Uint8Array(31)));

/**
 * The raw public key of an X25519 private key, as DH with the base point. Not through a key
 * export: node 20's JWK export of a key node generated holds the key's lock while it allocates,
 * and a garbage collection that frees the generating job then takes the same lock — the process
 * hangs (seen under load in `hgs serve`; test/protector/hpke-x25519-gc.test.ts).
 */
function x25519PublicRaw(privateKey: KeyObject): Buffer {
  return diffieHellman({ privateKey, publicKey: X25519_BASE });
}

/**
 * A fresh X25519 key pair from 32 random octets (RFC 7748 §5: any 32 octets are a private key;
 * X25519 clamps them). Not `generateKeyPairSync`, for the lock hazard above.
 */
export function x25519KeyPair(): { privateKey: KeyObject; raw: Buffer } {
  const seed = randomBytes(32);
  const privateKey = x25519Private(seed);
  zeroize(seed);
  return { privateKey, raw: x25519PublicRaw(privateKey) };
}

/**
 * X25519 DH (RFC 7748 §5) with the all-zero check RFC 9180 §7.1.4 requires (a small-order
 * peer key); a throw here is mapped by the callers like any invalid key.
 */
function x25519(privateKey: KeyObject, publicKey: KeyObject): Buffer {
  const dh = diffieHellman({ privateKey, publicKey });
  if (dh.every((b) => b === 0)) throw new Error("X25519 produced the all-zero shared secret");
  return dh;
}

/**
 * A recipient private key: an X25519 KeyObject, or raw bytes (the NIST scalar; the raw X25519
 * key of a test vector).
 */
export type HpkePrivateKey = KeyObject | Uint8Array;

function x25519Private(sk: HpkePrivateKey): KeyObject {
  if (!(sk instanceof Uint8Array)) return sk;
  if (sk.length !== 32) throw new Error("an X25519 private key is 32 octets");
  // As a JWK: node builds the key from `d` alone (OpenSSL's raw private key import) and its JWK
  // reader only wants `x` to be a string. PKCS#8 DER through OpenSSL 3's decoders costs ~9x more
  // (1,400/s against 12,700/s here), more than the DH itself.
  return createPrivateKey({
    key: { kty: "OKP", crv: "X25519", d: Buffer.from(sk).toString("base64url"), x: "" },
    format: "jwk",
  });
}

/**
 * A recipient public key: its serialization pkRm (RFC 9180 §7.1.1), optionally with the
 * KeyObject it came from (an X25519 guardian's certificate key: no re-import per wrap).
 */
export type HpkePublicKey = Uint8Array | { readonly raw: Uint8Array; readonly key: KeyObject };

const rawOf = (pk: HpkePublicKey): Uint8Array => (pk instanceof Uint8Array ? pk : pk.raw);

/** Encap's DH (§4.1): a fresh (or given) ephemeral key, its serialization `enc`, and DH(skE, pkR). */
function encapDh(
  kem: HpkeKem,
  pkR: HpkePublicKey,
  ephemeral: Uint8Array | undefined,
): { enc: Buffer; dh: Buffer } {
  const pkRm = rawOf(pkR);
  if (kem.curve === "x25519") {
    if (pkRm.length !== kem.nPk) throw new Error("an X25519 public key is 32 octets");
    const peer = pkR instanceof Uint8Array ? x25519Public(pkRm) : pkR.key;
    if (peer.asymmetricKeyType !== "x25519") throw new Error("the recipient key is not an X25519 key");
    if (!ephemeral) {
      const e = x25519KeyPair();
      return { enc: e.raw, dh: x25519(e.privateKey, peer) };
    }
    const skE = x25519Private(ephemeral);
    return { enc: x25519PublicRaw(skE), dh: x25519(skE, peer) };
  }
  const ecdh = createECDH(kem.curve);
  if (ephemeral) ecdh.setPrivateKey(ephemeral);
  else ecdh.generateKeys();
  return { enc: ecdh.getPublicKey(null, "uncompressed"), dh: ecdh.computeSecret(pkRm) };
}

/** Decap's DH (§4.1): DH(skR, pkE), and pkRm (given, or derived from skR). */
function decapDh(
  kem: HpkeKem,
  enc: Uint8Array,
  skR: HpkePrivateKey,
  pkRm: Uint8Array | undefined,
): { dh: Buffer; pkRm: Uint8Array } {
  if (kem.curve === "x25519") {
    const sk = x25519Private(skR);
    return { dh: x25519(sk, x25519Public(enc)), pkRm: pkRm ?? x25519PublicRaw(sk) };
  }
  // NIST private keys come as their scalar (keys.ts reads it from SEC1 DER into a Buffer it wipes).
  if (!(skR instanceof Uint8Array)) throw new Error("a NIST-curve HPKE private key is passed as its scalar");
  const ecdh = createECDH(kem.curve);
  ecdh.setPrivateKey(skR);
  return { dh: ecdh.computeSecret(enc), pkRm: pkRm ?? ecdh.getPublicKey(null, "uncompressed") };
}

/**
 * RFC 9180 §5.1.1 SetupBaseS. `ephemeralPrivateKey` is for test vectors only; normally a
 * fresh ephemeral key is generated (§4.1 Encap).
 */
export function setupBaseS(
  suite: HpkeSuite,
  recipientPublicKey: HpkePublicKey,
  info: Uint8Array,
  ephemeralPrivateKey?: Uint8Array,
): HpkeContext & { readonly enc: Buffer } {
  let e: { enc: Buffer; dh: Buffer };
  try {
    e = encapDh(suite.kem, recipientPublicKey, ephemeralPrivateKey);
  } catch (cause) {
    throw protectorError(
      "PROTECTOR_ERR_UNSUPPORTED_KEY",
      "HPKE recipient public key is not a valid point",
      {},
      { cause },
    );
  }
  const shared = kemSharedSecret(suite.kem, e.dh, Buffer.concat([e.enc, rawOf(recipientPublicKey)]));
  zeroize(e.dh);
  return { ...keySchedule(suite, shared, info), enc: e.enc };
}

/**
 * RFC 9180 §5.1.1 SetupBaseR; throws a plain Error on an invalid `enc` (callers map it).
 * `recipientPublicKey` (pkRm) saves deriving it from the private key when the caller knows it.
 */
export function setupBaseR(
  suite: HpkeSuite,
  enc: Uint8Array,
  recipientPrivateKey: HpkePrivateKey,
  info: Uint8Array,
  recipientPublicKey?: Uint8Array,
): HpkeContext {
  if (enc.length !== suite.kem.nPk) throw new Error("HPKE enc has the wrong length");
  const { dh, pkRm } = decapDh(suite.kem, enc, recipientPrivateKey, recipientPublicKey);
  const shared = kemSharedSecret(suite.kem, dh, Buffer.concat([enc, pkRm]));
  zeroize(dh);
  return keySchedule(suite, shared, info);
}

/** RFC 9180 §5.2 ContextS.Seal for sequence number 0 (nonce = base_nonce). */
export function aeadSeal(suite: HpkeSuite, ctx: HpkeContext, aad: Uint8Array, plaintext: Uint8Array): Buffer {
  const c = createCipheriv(suite.aead.cipher, ctx.key, ctx.baseNonce, { authTagLength: NT });
  c.setAAD(aad);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

/** RFC 9180 §5.2 ContextR.Open for sequence number 0; throws a plain Error when the tag fails. */
export function aeadOpen(
  suite: HpkeSuite,
  ctx: HpkeContext,
  aad: Uint8Array,
  ciphertext: Uint8Array,
): Buffer {
  if (ciphertext.length < NT) throw new Error("HPKE ciphertext shorter than its tag");
  const d = createDecipheriv(suite.aead.cipher, ctx.key, ctx.baseNonce, { authTagLength: NT });
  d.setAAD(aad);
  d.setAuthTag(ciphertext.subarray(ciphertext.length - NT));
  const pt = d.update(ciphertext.subarray(0, ciphertext.length - NT));
  try {
    return Buffer.concat([pt, d.final()]);
  } finally {
    zeroize(pt);
  }
}

/** RFC 9180 §6.1 single-shot SealBase: returns the encapsulated key and the ciphertext. */
export function sealBase(
  suite: HpkeSuite,
  recipientPublicKey: HpkePublicKey,
  info: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
): { enc: Buffer; ciphertext: Buffer } {
  const ctx = setupBaseS(suite, recipientPublicKey, info);
  try {
    return { enc: ctx.enc, ciphertext: aeadSeal(suite, ctx, aad, plaintext) };
  } finally {
    zeroize(ctx.key, ctx.baseNonce, ctx.sharedSecret);
  }
}

/** RFC 9180 §6.1 single-shot OpenBase; throws a plain Error on any failure (callers map it). */
export function openBase(
  suite: HpkeSuite,
  enc: Uint8Array,
  recipientPrivateKey: HpkePrivateKey,
  info: Uint8Array,
  aad: Uint8Array,
  ciphertext: Uint8Array,
  recipientPublicKey?: Uint8Array,
): Buffer {
  const ctx = setupBaseR(suite, enc, recipientPrivateKey, info, recipientPublicKey);
  try {
    return aeadOpen(suite, ctx, aad, ciphertext);
  } finally {
    zeroize(ctx.key, ctx.baseNonce, ctx.sharedSecret);
  }
}
