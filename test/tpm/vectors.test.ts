/**
 * Real tpm2-tools artifacts from test/vectors/tpm/ (see its README): byte-identical round trips
 * and quote verification, iterating the folder.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { decode, encode } from "../../src/core/codec.js";
import { hashByName } from "../../src/tpm/alg.js";
import { readCredentialFile, readPcrFile, writeCredentialFile, writePcrFile } from "../../src/tpm/files.js";
import { objectName, fromHex } from "../../src/tpm/names.js";
import { parsePcrSpec } from "../../src/tpm/pcr.js";
import { TPM2B_PUBLIC_RAW, TPMS_ATTEST, TPMT_PUBLIC, TPMT_SIGNATURE } from "../../src/tpm/structures.js";
import { checkAkPublic, checkEkPublic } from "../../src/tpm/verify/ak.js";
import { loadPublicKey } from "../../src/tpm/verify/keys.js";
import { QuoteVerifier, verifyQuote } from "../../src/tpm/verify/quote.js";
import { repoPath } from "../helpers/paths.js";

const root = repoPath("test/vectors/tpm");
const read = (...p: string[]): Uint8Array => new Uint8Array(readFileSync(path.join(root, ...p)));
const quoteDirs = readdirSync(root).filter((d) => d.startsWith("quote-"));

test("the vector folder has the three quote schemes", () => {
  assert.deepEqual(quoteDirs.sort(), ["quote-ecdsa", "quote-rsapss", "quote-rsassa"]);
});

for (const d of quoteDirs) {
  test(`${d}: structures round-trip byte-identically, Names match, quote verifies`, () => {
    const akBytes = read(d, "ak.pub");
    const ak = decode(TPM2B_PUBLIC_RAW, akBytes);
    assert.deepEqual(encode(TPM2B_PUBLIC_RAW, ak), akBytes);
    assert.deepEqual(
      encode(TPMT_PUBLIC, ak.value),
      ak.raw,
      "re-encoding the decoded value reproduces the bytes",
    );
    assert.deepEqual(objectName(ak), read(d, "ak.name"));
    assert.equal(checkAkPublic(ak.value).ok, true);
    const ek = decode(TPM2B_PUBLIC_RAW, read(d, "ek.pub"));
    assert.deepEqual(encode(TPMT_PUBLIC, ek.value), ek.raw);
    const ekVerdict = checkEkPublic(ek.value);
    assert.deepEqual(ekVerdict.findings, []);
    assert.equal(checkAkPublic(ek.value).ok, false, "an EK is not an AK");
    assert.equal(checkEkPublic(ak.value).ok, false, "an AK is not an EK");

    const msg = read(d, "quote.msg");
    assert.deepEqual(encode(TPMS_ATTEST, decode(TPMS_ATTEST, msg)), msg);
    const sig = read(d, "quote.sig");
    assert.deepEqual(encode(TPMT_SIGNATURE, decode(TPMT_SIGNATURE, sig)), sig);
    const pcrsBytes = read(d, "quote.pcrs");
    const pcrs = readPcrFile(pcrsBytes);
    assert.deepEqual(writePcrFile(pcrs.selection, pcrs.values), pcrsBytes);

    const nonce = fromHex(new TextDecoder().decode(read(d, "nonce.hex")));
    const expectedSelection = parsePcrSpec(
      new TextDecoder().decode(read(d, "pcr-list.txt")).trim(),
      hashByName,
    );
    const v = verifyQuote({ ak, quoted: msg, signature: sig, nonce, pcrs: pcrs.values, expectedSelection });
    assert.equal(v.ok, true, JSON.stringify(v.findings));
    assert.deepEqual(v.findings, []);
    // A QuoteVerifier (the AK's key kept between calls) decides exactly as the one-shot form,
    // for the genuine quote and for one made for another nonce.
    const verifier = new QuoteVerifier();
    const quote = { ak, quoted: msg, signature: sig, nonce, pcrs: pcrs.values, expectedSelection };
    for (let i = 0; i < 2; i++) {
      assert.deepEqual(verifier.verify(quote), v);
      const other = { ...quote, nonce: new Uint8Array(nonce.length) };
      assert.deepEqual(verifier.verify(other), verifyQuote(other));
    }
    // The same with the AK as a bare key (PEM path): no scheme/attribute checks, still valid.
    const bare = verifyQuote({
      ak: loadPublicKey(akBytes).key,
      quoted: msg,
      signature: sig,
      nonce,
      pcrs: pcrs.values,
    });
    assert.equal(bare.ok, true);
    assert.ok(!bare.passed.includes("ak.attributes.fixedTPM"));
    assert.deepEqual(
      bare.findings.map((f) => `${f.severity}:${f.id}`),
      ["warning:ak.publicArea"],
    );
    // Every single-byte change of the signed bytes is refused.
    for (let i = 0; i < msg.length; i++) {
      const m = msg.slice();
      m[i]! ^= 0x01;
      const r = verifyQuote({ ak, quoted: m, signature: sig, nonce, pcrs: pcrs.values, expectedSelection });
      assert.equal(r.ok, false, `byte ${i}`);
      assert.ok(
        r.findings.some((f) => f.id === "quote.signature" || f.id === "quote.parse"),
        `byte ${i}`,
      );
    }
  });
}

test("credential/cred.blob round-trips and is a 2048-bit RSA-OAEP seed with a SHA-256 HMAC", () => {
  const bytes = read("credential", "cred.blob");
  const c = readCredentialFile(bytes);
  assert.deepEqual(writeCredentialFile(c), bytes);
  assert.equal(c.secret.length, 256);
  assert.equal(c.credentialBlob.length, 2 + 32 + 2 + 32);
  assert.throws(() => readCredentialFile(bytes.subarray(0, 40)), { code: "TPM_ERR_FILE_FORMAT" });
  const wrongMagic = bytes.slice();
  wrongMagic[0] = 0;
  assert.throws(() => readCredentialFile(wrongMagic), { code: "TPM_ERR_FILE_FORMAT" });
});
