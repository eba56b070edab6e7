/**
 * Quote verification decides as the definitions do: RSASSA-PKCS1-v1_5 signatures against
 * node's own `verify` and hand-built (and forged) encodings, the latin1 digest
 * helpers against a Hash object, and a QuoteVerifier's per-AK memo by content only.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  constants,
  createHash,
  generateKeyPairSync,
  privateEncrypt,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { decode } from "../../src/core/codec.js";
import { digestBytes, digestEquals, hashByName, latin1Equals, TPM_ALG } from "../../src/tpm/alg.js";
import { readPcrFile } from "../../src/tpm/files.js";
import { fromHex } from "../../src/tpm/names.js";
import { parsePcrSpec } from "../../src/tpm/pcr.js";
import { TPM2B_PUBLIC_RAW, type TpmtSignature } from "../../src/tpm/structures.js";
import { QuoteVerifier, verifyQuote, type QuoteToVerify } from "../../src/tpm/verify/quote.js";
import { verifyTpmSignature } from "../../src/tpm/verify/signature.js";
import { repoPath } from "../helpers/paths.js";

const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const message = randomBytes(150);

const rsassa = (hashAlg: number, sig: Uint8Array): TpmtSignature => ({
  sigAlg: TPM_ALG.RSASSA,
  signature: { hash: hashAlg, sig },
});

/** EMSA-PKCS1-v1_5 (RFC 8017 section 9.2) built by hand, then signed raw: forgeries to order. */
function rawSign(key: KeyObject, em: Uint8Array): Buffer {
  return privateEncrypt({ key, padding: constants.RSA_NO_PADDING }, em);
}
const SHA256_PREFIX = Buffer.from("3031300d060960864801650304020105000420", "hex");
function encoded(digest: Uint8Array, k = 256): Buffer {
  const t = Buffer.concat([SHA256_PREFIX, digest]);
  return Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(k - t.length - 3, 0xff), Buffer.from([0]), t]);
}

test("RSASSA accepts what node's verify accepts, for every hash with a DigestInfo", () => {
  for (const [alg, name] of [
    [TPM_ALG.SHA1, "sha1"],
    [TPM_ALG.SHA256, "sha256"],
    [TPM_ALG.SHA384, "sha384"],
    [TPM_ALG.SHA512, "sha512"],
  ] as const) {
    const sig = sign(name, message, privateKey);
    assert.equal(verifyTpmSignature(publicKey, rsassa(alg, sig), message).ok, true, name);
    // Every bit of the signature matters, as it does to node's verify.
    for (const i of [0, 1, 100, 255]) {
      const bad = Buffer.from(sig);
      bad[i]! ^= 0x01;
      const expected = verify(name, message, publicKey, bad);
      assert.equal(
        verifyTpmSignature(publicKey, rsassa(alg, bad), message).ok,
        expected,
        `${name} byte ${i}`,
      );
    }
  }
});

test("RSASSA refuses a signature over another hash, a bent padding, a short or oversized signature", () => {
  const digest = createHash("sha256").update(message).digest();
  // The hand-built encoding is the one the check expects: it verifies.
  assert.equal(
    verifyTpmSignature(publicKey, rsassa(TPM_ALG.SHA256, rawSign(privateKey, encoded(digest))), message).ok,
    true,
  );
  const cases: [string, Uint8Array][] = [
    ["signed with SHA-384, claimed SHA-256", sign("sha384", message, privateKey)],
    ["another message", sign("sha256", randomBytes(150), privateKey)],
    [
      "a padding byte other than 0xFF",
      rawSign(
        privateKey,
        (() => {
          const em = encoded(digest);
          em[50] = 0xfe;
          return em;
        })(),
      ),
    ],
    [
      "block type 2 instead of 1",
      rawSign(
        privateKey,
        (() => {
          const em = encoded(digest);
          em[1] = 0x02;
          return em;
        })(),
      ),
    ],
    [
      "no zero separator before the DigestInfo",
      rawSign(
        privateKey,
        (() => {
          const em = encoded(digest);
          em[256 - 51 - 1] = 0xff;
          return em;
        })(),
      ),
    ],
    [
      "DigestInfo of a bent OID",
      rawSign(
        privateKey,
        (() => {
          const em = encoded(digest);
          em[256 - 32 - 3]! ^= 0x01;
          return em;
        })(),
      ),
    ],
    ["one byte short", sign("sha256", message, privateKey).subarray(1)],
    ["as large as the modulus", Buffer.alloc(256, 0xff)],
  ];
  for (const [what, sig] of cases) {
    const r = verifyTpmSignature(publicKey, rsassa(TPM_ALG.SHA256, sig), message);
    assert.equal(r.ok, false, what);
    assert.equal(r.hashAlg, TPM_ALG.SHA256, what);
  }
});

test("latin1 digests equal a Hash object's, and compare byte for byte", () => {
  for (const len of [0, 1, 64, 1000]) {
    const data = randomBytes(len);
    for (const name of ["sha1", "sha256", "sha384", "sha512"]) {
      const expected = createHash(name).update(data).digest();
      assert.deepEqual(digestBytes(name, data), new Uint8Array(expected));
      assert.equal(digestEquals(name, data, expected), true);
      const other = Buffer.from(expected);
      other[other.length - 1]! ^= 0x80;
      assert.equal(digestEquals(name, data, other), false);
      assert.equal(digestEquals(name, data, expected.subarray(1)), false);
    }
  }
  assert.equal(latin1Equals("\x00\xff", Uint8Array.of(9, 0, 255), 1), true);
  assert.equal(latin1Equals("\x00\xff", Uint8Array.of(9, 0, 255, 1), 1), false, "must reach the end");
});

function vector(dir: string): QuoteToVerify & { akBytes: Uint8Array } {
  const d = repoPath("test/vectors/tpm", dir);
  const read = (n: string) => new Uint8Array(readFileSync(path.join(d, n)));
  const akBytes = read("ak.pub");
  return {
    akBytes,
    ak: decode(TPM2B_PUBLIC_RAW, akBytes),
    quoted: read("quote.msg"),
    signature: read("quote.sig"),
    nonce: fromHex(readFileSync(path.join(d, "nonce.hex"), "utf8")),
    pcrs: readPcrFile(read("quote.pcrs")).values,
    expectedSelection: parsePcrSpec(readFileSync(path.join(d, "pcr-list.txt"), "utf8").trim(), hashByName),
  };
}

test("a QuoteVerifier remembers AKs by their bytes: equal bytes share, other bytes never do", () => {
  const rsa = vector("quote-rsassa");
  const ecc = vector("quote-ecdsa");
  const verifier = new QuoteVerifier(1); // room for one AK: every switch evicts
  for (let round = 0; round < 2; round++) {
    // A fresh decode of the same bytes (a new object) is the same AK.
    assert.equal(verifier.verify({ ...rsa, ak: decode(TPM2B_PUBLIC_RAW, rsa.akBytes) }).ok, true);
    assert.equal(verifier.verify(ecc).ok, true);
    // The other AK's key never verifies this quote, whatever the verifier saw before.
    const crossed = verifier.verify({ ...rsa, ak: ecc.ak });
    assert.deepEqual(crossed, verifyQuote({ ...rsa, ak: ecc.ak }));
    assert.ok(crossed.findings.some((f) => f.id === "quote.signature"));
  }
  // Everything about the quote is still checked on a remembered AK.
  assert.equal(verifier.verify(rsa).ok, true);
  const nonce = Uint8Array.from(rsa.nonce);
  nonce[0]! ^= 1;
  assert.deepEqual(
    verifier.verify({ ...rsa, nonce }).findings.map((f) => f.id),
    ["quote.nonce"],
  );
  const [alg, bank] = [...rsa.pcrs!][0]!;
  const changed = new Map(bank);
  const [index] = [...changed.keys()];
  changed.set(index!, new Uint8Array(32).fill(0xaa));
  const pcrs = new Map(rsa.pcrs!);
  pcrs.set(alg, changed);
  const forged = verifier.verify({ ...rsa, pcrs });
  assert.deepEqual(
    forged.findings.map((f) => f.id),
    ["quote.pcrDigest"],
  );
  assert.match(forged.findings[0]!.got ?? "", /^[0-9a-f]{64}$/);
});
