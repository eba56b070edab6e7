import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { isAsn1Error } from "../../src/asn1/errors.js";
import { decodeName, encodeName, parseNameString } from "../../src/asn1/name.js";
import { parseDer } from "../../src/asn1/der.js";
import { buildChain, anchorMatch } from "../../src/asn1/chain.js";
import {
  createCertificate,
  derToPem,
  isIssuedBy,
  parseCertificate,
  pemToDer,
  verifyCertificateSignature,
} from "../../src/asn1/x509.js";
import { tempDir, tool, toolOk } from "../helpers/asn1-tools.js";

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const p256 = generateKeyPairSync("ec", { namedCurve: "P-256" });
const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" });
const notBefore = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
const notAfter = new Date(Date.UTC(2054, 0, 2, 3, 4, 5));

const root = createCertificate({
  subject: "CN=Bulwark Test Root, O=Bulwark, C=US",
  serialNumber: 0x1234n,
  notBefore,
  notAfter,
  publicKey: rsa.publicKey,
  signingKey: rsa.privateKey,
  ca: true,
});
const inter = createCertificate({
  subject: "CN=Bulwark Test Intermediate, O=Bulwark",
  serialNumber: new Uint8Array([0x80, 1]),
  notBefore,
  notAfter,
  publicKey: p384.publicKey,
  signingKey: rsa.privateKey,
  issuerCertificate: root,
  ca: true,
  pathLength: 0,
});
const leaf = createCertificate({
  subject: [
    { type: "CN", value: "leaf, with comma" },
    { type: "OU", value: "Secure Boot" },
  ],
  notBefore,
  notAfter,
  publicKey: p256.publicKey,
  signingKey: p384.privateKey,
  issuerCertificate: inter,
  ca: false,
  keyUsage: ["digitalSignature"],
  extKeyUsage: ["codeSigning", "serverAuth"],
  subjectAltNames: { dns: ["hgs.example"], ip: ["192.0.2.1"] },
});

test("openssl reads and verifies created certificates (RSA root, P-384 intermediate, P-256 leaf)", () => {
  const t = tempDir();
  try {
    for (const [n, c] of Object.entries({ root, inter, leaf }))
      writeFileSync(t.file(`${n}.pem`), derToPem(c));
    const text = toolOk("openssl", ["x509", "-in", t.file("inter.pem"), "-noout", "-text"]).stdout;
    assert.match(text, /Serial Number: 128 \(0x80\)|Serial Number:\s*\n\s*00:80:01|Serial Number: 32769/);
    assert.match(text, /Issuer: CN = Bulwark Test Root, O = Bulwark, C = US/);
    assert.match(text, /Not After : Jan {2}2 03:04:05 2054 GMT/);
    assert.match(text, /CA:TRUE, pathlen:0/);
    assert.match(text, /ecdsa|id-ecPublicKey/);
    const leafText = toolOk("openssl", ["x509", "-in", t.file("leaf.pem"), "-noout", "-text"]).stdout;
    assert.match(leafText, /Signature Algorithm: ecdsa-with-SHA384/);
    assert.match(leafText, /Code Signing, TLS Web Server Authentication/);
    assert.match(leafText, /DNS:hgs.example, IP Address:192.0.2.1/);
    assert.match(leafText, /Subject: CN = "leaf, with comma", OU = Secure Boot/);
    const v = toolOk("openssl", [
      "verify",
      "-CAfile",
      t.file("root.pem"),
      "-untrusted",
      t.file("inter.pem"),
      "-attime",
      String(Date.UTC(2030, 0, 1) / 1000),
      t.file("leaf.pem"),
    ]);
    assert.match(v.stdout, /leaf.pem: OK/);
    // A flipped signature bit makes openssl refuse, and us too.
    const bad = leaf.slice();
    bad[bad.length - 5] = (bad[bad.length - 5] as number) ^ 1;
    writeFileSync(t.file("bad.pem"), derToPem(bad));
    const r = tool("openssl", [
      "verify",
      "-CAfile",
      t.file("root.pem"),
      "-untrusted",
      t.file("inter.pem"),
      t.file("bad.pem"),
    ]);
    assert.notEqual(r.status, 0);
    assert.equal(verifyCertificateSignature(parseCertificate(bad), parseCertificate(inter)), false);
  } finally {
    t.cleanup();
  }
});

test("parseCertificate agrees with node:crypto and openssl on an openssl-made certificate", () => {
  const t = tempDir();
  try {
    toolOk("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      t.file("k.pem"),
      "-out",
      t.file("c.pem"),
      "-subj",
      "/C=GB/O=Example Org/CN=Example+serialNumber=42",
      "-days",
      "30",
      "-set_serial",
      "0x00ff01",
      "-addext",
      "extendedKeyUsage=codeSigning",
    ]);
    const pem = readFileSync(t.file("c.pem"), "utf8");
    const derBytes = pemToDer(pem);
    const c = parseCertificate(derBytes);
    const x = new X509Certificate(pem);
    assert.equal(c.serialNumber, 0xff01n);
    // Multi-valued RDN members come back in DER SET OF order.
    assert.equal(c.subject.text, "C=GB, O=Example Org, serialNumber=42+CN=Example");
    assert.equal(c.notAfter.getTime(), new Date(x.validTo).getTime());
    assert.equal(c.ca, true); // openssl req -x509 adds basicConstraints CA:TRUE
    assert.deepEqual(c.extKeyUsage, ["codeSigning"]);
    assert.ok(c.subjectKeyId && c.authorityKeyId);
    assert.ok(verifyCertificateSignature(c, c));
    assert.equal(x.checkIssued(x), true);
  } finally {
    t.cleanup();
  }
});

test("chains are built through the pool and anchored like OpenSSL's partial chains", () => {
  const [r, i, l] = [root, inter, leaf].map((b) => parseCertificate(b)) as [
    ReturnType<typeof parseCertificate>,
    ReturnType<typeof parseCertificate>,
    ReturnType<typeof parseCertificate>,
  ];
  assert.ok(isIssuedBy(l, i) && isIssuedBy(i, r) && isIssuedBy(r, r));
  const chain = buildChain(l, [r, i]);
  assert.deepEqual(
    chain.map((c) => c.subject.text),
    [l.subject.text, i.subject.text, r.subject.text],
  );
  const partial = buildChain(l, [i]);
  assert.equal(partial.length, 2);
  assert.deepEqual(anchorMatch(partial, r), { index: 1, how: "issuer", problem: undefined });
  assert.deepEqual(anchorMatch(partial, l), { index: 0, how: "member", problem: undefined });
  const other = parseCertificate(
    createCertificate({
      subject: "CN=Bulwark Test Root, O=Bulwark, C=US",
      publicKey: p256.publicKey,
      signingKey: p256.privateKey,
      ca: true,
    }),
  );
  assert.equal(anchorMatch(partial, other), undefined, "same name, different key: not an anchor");
  // A non-CA certificate cannot issue.
  const fakeIssued = createCertificate({
    subject: "CN=x",
    publicKey: rsa.publicKey,
    signingKey: p256.privateKey,
    issuerCertificate: leaf,
  });
  assert.equal(buildChain(parseCertificate(fakeIssued), [l]).length, 1);
});

test("names: parse, encode and decode round trip; escapes; key mismatch is typed", () => {
  const s = "CN=a\\, b+OU=x, O=Org \\+ Co, C=DE, DC=example, emailAddress=a@example.org";
  const rdns = parseNameString(s);
  assert.equal(rdns.length, 5);
  const n = decodeName(parseDer(encodeName(s)));
  assert.equal(n.text, "OU=x+CN=a\\, b, O=Org \\+ Co, C=DE, DC=example, emailAddress=a@example.org");
  assert.equal(decodeName(parseDer(encodeName(n.text))).text, n.text);
  assert.throws(
    () => encodeName("CN"),
    (e: unknown) => isAsn1Error(e) && e.code === "ASN1_ERR_INVALID_NAME",
  );
  assert.throws(
    () => encodeName("XX=1"),
    (e: unknown) => isAsn1Error(e) && e.code === "ASN1_ERR_INVALID_NAME",
  );
  assert.throws(
    () => createCertificate({ subject: "CN=x", publicKey: rsa.publicKey, signingKey: p256.privateKey }),
    (e: unknown) => isAsn1Error(e) && e.code === "ASN1_ERR_KEY_MISMATCH",
  );
  assert.throws(
    () =>
      createCertificate({
        subject: "CN=x",
        publicKey: rsa.publicKey,
        signingKey: p256.privateKey,
        issuerCertificate: root,
      }),
    (e: unknown) => isAsn1Error(e) && e.code === "ASN1_ERR_KEY_MISMATCH",
  );
  const ed = generateKeyPairSync("ed25519");
  assert.throws(
    () => createCertificate({ subject: "CN=x", publicKey: ed.publicKey, signingKey: ed.privateKey }),
    (e: unknown) => isAsn1Error(e) && e.code === "ASN1_ERR_UNSUPPORTED_ALGORITHM",
  );
});

test("creation is deterministic for RSA with fixed serial and dates", () => {
  const a = createCertificate({
    subject: "CN=d",
    serialNumber: 7n,
    notBefore,
    notAfter,
    publicKey: rsa.publicKey,
    signingKey: rsa.privateKey,
  });
  const b = createCertificate({
    subject: "CN=d",
    serialNumber: 7n,
    notBefore,
    notAfter,
    publicKey: rsa.publicKey,
    signingKey: rsa.privateKey,
  });
  assert.deepEqual(a, b);
});
