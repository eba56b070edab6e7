import { test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync, hkdfSync } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import fc from "fast-check";
import { hkdfExpand, hkdfExtract, type HashName } from "../../src/protector/kdf.js";
import {
  AEAD_AES128GCM,
  AEAD_AES256GCM,
  aeadOpen,
  aeadSeal,
  HPKE_P256_SHA256_AES256GCM,
  HPKE_P384_SHA384_AES256GCM,
  HPKE_X25519_SHA256_AES256GCM,
  KDF_SHA256,
  KDF_SHA384,
  KDF_SHA512,
  KEM_P256,
  KEM_P384,
  KEM_P521,
  KEM_X25519,
  openBase,
  sealBase,
  setupBaseR,
  setupBaseS,
  type HpkeSuite,
} from "../../src/protector/hpke.js";
import { repoPath } from "../helpers/paths.js";

const hex = (s: string) => Buffer.from(s, "hex");

interface HkdfVector {
  name: string;
  hash: HashName;
  ikm: string;
  salt: string;
  info: string;
  length: number;
  prk: string;
  okm: string;
}

test("HKDF: RFC 5869 appendix A vectors (test/vectors/protector/hkdf)", () => {
  const dir = repoPath("test/vectors/protector/hkdf");
  const files = readdirSync(dir).filter((f) => f.endsWith(".json"));
  assert.ok(files.length >= 2);
  for (const f of files) {
    const v = JSON.parse(readFileSync(`${dir}/${f}`, "utf8")) as HkdfVector;
    const prk = hkdfExtract(v.hash, hex(v.salt), hex(v.ikm));
    assert.equal(prk.toString("hex"), v.prk, v.name);
    assert.equal(hkdfExpand(v.hash, prk, hex(v.info), v.length).toString("hex"), v.okm, v.name);
  }
});

test("HKDF: extract+expand equals node's hkdfSync for random inputs", () => {
  fc.assert(
    fc.property(
      fc.constantFrom<HashName>("sha256", "sha384", "sha512"),
      fc.uint8Array({ minLength: 1, maxLength: 80 }),
      fc.uint8Array({ maxLength: 80 }),
      fc.uint8Array({ maxLength: 80 }),
      fc.integer({ min: 1, max: 255 * 32 }),
      (hash, ikm, salt, info, length) => {
        const ours = hkdfExpand(hash, hkdfExtract(hash, salt, ikm), info, length);
        assert.deepEqual(ours, Buffer.from(hkdfSync(hash, ikm, salt, info, length)));
      },
    ),
    { numRuns: 300 },
  );
  assert.throws(() => hkdfExpand("sha256", Buffer.alloc(32), Buffer.alloc(0), 255 * 32 + 1), {
    code: "PROTECTOR_ERR_INVALID_ARGUMENT",
  });
});

interface HpkeVector {
  mode: number;
  kem_id: number;
  kdf_id: number;
  aead_id: number;
  info: string;
  skRm: string;
  skEm: string;
  pkRm: string;
  enc: string;
  shared_secret: string;
  key: string;
  base_nonce: string;
  encryptions: { aad: string; plaintext: string; ciphertext: string }[];
}

function suiteOf(v: HpkeVector): HpkeSuite {
  const kem = { 16: KEM_P256, 17: KEM_P384, 18: KEM_P521, 32: KEM_X25519 }[v.kem_id];
  const kdf = { 1: KDF_SHA256, 2: KDF_SHA384, 3: KDF_SHA512 }[v.kdf_id];
  const aead = { 1: AEAD_AES128GCM, 2: AEAD_AES256GCM }[v.aead_id];
  assert.ok(kem && kdf && aead, `unsupported suite in vector ${v.kem_id}/${v.kdf_id}/${v.aead_id}`);
  return { kem, kdf, aead };
}

test("HPKE: RFC 9180 appendix A base-mode vectors (test/vectors/protector/hpke)", () => {
  const dir = repoPath("test/vectors/protector/hpke");
  const files = readdirSync(dir).filter((f) => f.endsWith(".json"));
  assert.ok(files.length >= 4);
  assert.ok(
    files.some((f) => f.includes("x25519")),
    "the X25519 vector (A.1.1) is among them",
  );
  for (const f of files) {
    const v = JSON.parse(readFileSync(`${dir}/${f}`, "utf8")) as HpkeVector;
    assert.equal(v.mode, 0);
    const suite = suiteOf(v);
    const s = setupBaseS(suite, hex(v.pkRm), hex(v.info), hex(v.skEm));
    assert.equal(s.enc.toString("hex"), v.enc, f);
    assert.equal(s.sharedSecret.toString("hex"), v.shared_secret, f);
    assert.equal(s.key.toString("hex"), v.key, f);
    assert.equal(s.baseNonce.toString("hex"), v.base_nonce, f);
    const e = v.encryptions[0];
    assert.ok(e);
    assert.equal(aeadSeal(suite, s, hex(e.aad), hex(e.plaintext)).toString("hex"), e.ciphertext, f);
    const r = setupBaseR(suite, hex(v.enc), hex(v.skRm), hex(v.info));
    assert.equal(r.key.toString("hex"), v.key, f);
    assert.equal(aeadOpen(suite, r, hex(e.aad), hex(e.ciphertext)).toString("hex"), e.plaintext, f);
  }
});

test("HPKE: RFC 9180 A.1.1 (X25519) opens with the recipient key as a KeyObject, with and without pkRm", () => {
  const v = JSON.parse(
    readFileSync(repoPath("test/vectors/protector/hpke/rfc9180-B.1.1-x25519-sha256-aes128gcm.json"), "utf8"),
  ) as HpkeVector;
  const suite = suiteOf(v);
  const sk = createPrivateKey({
    key: Buffer.concat([hex("302e020100300506032b656e04220420"), hex(v.skRm)]),
    format: "der",
    type: "pkcs8",
  });
  const e = v.encryptions[0];
  assert.ok(e);
  for (const pkRm of [undefined, hex(v.pkRm)]) {
    const pt = openBase(suite, hex(v.enc), sk, hex(v.info), hex(e.aad), hex(e.ciphertext), pkRm);
    assert.equal(pt.toString("hex"), e.plaintext);
  }
  // A wrong pkRm changes the KEM context (RFC 9180 §4.1 Decap): the tag no longer verifies.
  const wrongPk = hex(v.enc);
  assert.throws(() => openBase(suite, hex(v.enc), sk, hex(v.info), hex(e.aad), hex(e.ciphertext), wrongPk));
});

test("HPKE X25519: a small-order peer key (all-zero DH output) is refused on both sides", () => {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  const pk = Buffer.from(publicKey.export({ format: "jwk" }).x ?? "", "base64url");
  const suite = HPKE_X25519_SHA256_AES256GCM;
  // The zero point and the point of order 8 give the all-zero output (RFC 7748 §6.1).
  for (const bad of [
    Buffer.alloc(32),
    hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
  ]) {
    assert.throws(() => sealBase(suite, bad, Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(32)), {
      code: "PROTECTOR_ERR_UNSUPPORTED_KEY",
    });
    assert.throws(() => openBase(suite, bad, privateKey, Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(48)));
  }
  const { enc, ciphertext } = sealBase(suite, pk, Buffer.from("i"), Buffer.alloc(0), Buffer.from("k"));
  assert.equal(enc.length, 32);
  assert.equal(
    openBase(suite, enc, privateKey, Buffer.from("i"), Buffer.alloc(0), ciphertext).toString(),
    "k",
  );
  assert.throws(() =>
    openBase(suite, enc.subarray(1), privateKey, Buffer.from("i"), Buffer.alloc(0), ciphertext),
  );
  assert.throws(() =>
    openBase(
      suite,
      enc,
      generateKeyPairSync("x25519").privateKey,
      Buffer.from("i"),
      Buffer.alloc(0),
      ciphertext,
    ),
  );
});

function rawKeys(curve: "prime256v1" | "secp384r1" | "secp521r1") {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: curve });
  const jwk = privateKey.export({ format: "jwk" });
  const pub = Buffer.concat([
    Buffer.of(4),
    Buffer.from(jwk.x ?? "", "base64url"),
    Buffer.from(jwk.y ?? "", "base64url"),
  ]);
  return { sk: Buffer.from(jwk.d ?? "", "base64url"), pk: pub };
}

test("HPKE: P-256 and P-384 suites round-trip; wrong key, info, aad, enc or ciphertext fail", () => {
  for (const suite of [HPKE_P256_SHA256_AES256GCM, HPKE_P384_SHA384_AES256GCM]) {
    const curve = suite.kem.curve as "prime256v1" | "secp384r1";
    const r = rawKeys(curve);
    const other = rawKeys(curve);
    const info = Buffer.from("context");
    const aad = Buffer.from("aad");
    const msg = Buffer.from("a 32-byte transport key goes here");
    const { enc, ciphertext } = sealBase(suite, r.pk, info, aad, msg);
    assert.equal(enc.length, suite.kem.nPk);
    assert.deepEqual(openBase(suite, enc, r.sk, info, aad, ciphertext), msg);
    assert.throws(() => openBase(suite, enc, other.sk, info, aad, ciphertext));
    assert.throws(() => openBase(suite, enc, r.sk, Buffer.from("other"), aad, ciphertext));
    assert.throws(() => openBase(suite, enc, r.sk, info, Buffer.from("x"), ciphertext));
    const badEnc = Buffer.from(enc);
    badEnc[5] = (badEnc[5] as number) ^ 1;
    assert.throws(() => openBase(suite, badEnc, r.sk, info, aad, ciphertext));
    assert.throws(() => openBase(suite, enc.subarray(1), r.sk, info, aad, ciphertext));
    const badCt = Buffer.from(ciphertext);
    badCt[0] = (badCt[0] as number) ^ 1;
    assert.throws(() => openBase(suite, enc, r.sk, info, aad, badCt));
    assert.throws(() => openBase(suite, enc, r.sk, info, aad, ciphertext.subarray(0, 10)));
  }
});
