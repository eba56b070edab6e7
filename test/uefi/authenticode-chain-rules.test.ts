/**
 * The chain rules of src/asn1/chain.ts on certificates our createCertificate did not make: they
 * are assembled here from @peculiar/asn1-x509's structures (which let a test write what a careful
 * issuer never would) or by `openssl ca`; openssl's own verifier and sbverify give the second
 * opinion, and Authenticode verdicts over a signed test vector (test/vectors/pe/hello.efi) show
 * the effect.
 *
 *   - RFC 5280 4.2: an unknown critical extension, or an extension twice, refuses the certificate;
 *   - RFC 5280 4.2.1.9: pathLenConstraint bounds the CA certificates below a CA;
 *   - UEFI ignores validity dates: a signer valid from 0001-01-01 (Go's zero time) is accepted.
 *
 * (@peculiar/x509's generator needs a reflect-metadata polyfill, which is not installed.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { AsnConvert, OctetString } from "@peculiar/asn1-schema";
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  BasicConstraints,
  Certificate as AsnCertificate,
  Extension,
  Extensions,
  Name,
  RelativeDistinguishedName,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
} from "@peculiar/asn1-x509";
import { anchorMatch, buildChain, certificateProblem, trusts } from "../../src/asn1/chain.js";
import { parseCertificate, pemToDer, type Certificate } from "../../src/asn1/x509.js";
import { signPe } from "../../src/uefi/authenticode-sign.js";
import { verifyImage, type SignatureDatabaseModel } from "../../src/uefi/authenticode.js";
import { Guids } from "../../src/uefi/guid.js";
import { describeEntry } from "../../src/uefi/siglist.js";
import { tempDir, tool, toolOk } from "../helpers/asn1-tools.js";
import { repoPath } from "../helpers/paths.js";

const none: SignatureDatabaseModel = { x509: [], sha256: [] };
const db = (...certs: Uint8Array[]): SignatureDatabaseModel => ({ x509: certs, sha256: [] });
const hello = new Uint8Array(readFileSync(repoPath("test/vectors/pe/hello.efi")));
const UNKNOWN_OID = "1.3.6.1.4.1.55555.7";
const NULL_DER = Uint8Array.of(0x05, 0x00);

interface Made {
  readonly der: Uint8Array;
  readonly key: KeyObject;
  readonly name: string;
}

const nameOf = (cn: string): Name =>
  new Name([
    new RelativeDistinguishedName([
      new AttributeTypeAndValue({ type: "2.5.4.3", value: new AttributeValue({ utf8String: cn }) }),
    ]),
  ]);
const ext = (oid: string, critical: boolean, value: Uint8Array): Extension =>
  new Extension({ extnID: oid, critical, extnValue: new OctetString(value) });
const basic = (cA: boolean, pathLenConstraint?: number): Extension =>
  ext(
    "2.5.29.19",
    true,
    new Uint8Array(
      AsnConvert.serialize(
        new BasicConstraints(pathLenConstraint === undefined ? { cA } : { cA, pathLenConstraint }),
      ),
    ),
  );

/** An RSA certificate for `cn`, issued by `issuer` (self-signed without), with exactly `extensions`. */
function make(cn: string, issuer: Made | undefined, extensions: Extension[]): Made {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const spki = createPublicKey(privateKey).export({ type: "spki", format: "der" });
  const sha256WithRSA = new AlgorithmIdentifier({ algorithm: "1.2.840.113549.1.1.11", parameters: null });
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: Uint8Array.of(0x01, 0x23).buffer,
    signature: sha256WithRSA,
    issuer: nameOf(issuer?.name ?? cn),
    validity: new Validity({
      notBefore: new Date(Date.UTC(2024, 0, 1)),
      notAfter: new Date(Date.UTC(2044, 0, 1)),
    }),
    subject: nameOf(cn),
    subjectPublicKeyInfo: AsnConvert.parse(spki, SubjectPublicKeyInfo),
    extensions: new Extensions(extensions),
  });
  const signature = sign("sha256", new Uint8Array(AsnConvert.serialize(tbs)), issuer?.key ?? privateKey);
  const der = new Uint8Array(
    AsnConvert.serialize(
      new AsnCertificate({
        tbsCertificate: tbs,
        signatureAlgorithm: sha256WithRSA,
        signatureValue: new Uint8Array(signature).buffer,
      }),
    ),
  );
  return { der, key: privateKey, name: cn };
}

const pem = (der: Uint8Array): string =>
  `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString("base64")}\n-----END CERTIFICATE-----\n`;

/** openssl's verdict on `leaf` with `anchor` trusted and `untrusted` intermediates ("OK" or its output). */
function opensslVerify(anchor: Uint8Array, leaf: Uint8Array, untrusted: Uint8Array[] = []): string {
  const t = tempDir();
  try {
    writeFileSync(t.file("anchor.pem"), pem(anchor));
    writeFileSync(t.file("leaf.pem"), pem(leaf));
    writeFileSync(t.file("untrusted.pem"), untrusted.map(pem).join(""));
    const args = ["verify", "-no_check_time", "-partial_chain", "-CAfile", t.file("anchor.pem")];
    if (untrusted.length) args.push("-untrusted", t.file("untrusted.pem"));
    const r = tool("openssl", [...args, t.file("leaf.pem")]);
    return r.status === 0 ? "OK" : r.stdout + r.stderr;
  } finally {
    t.cleanup();
  }
}

function chainOf(leaf: Uint8Array, pool: Uint8Array[]): Certificate[] {
  return buildChain(
    parseCertificate(leaf),
    pool.map((c) => parseCertificate(c)),
  );
}

test("RFC 5280 4.2: an unknown critical extension refuses the certificate in a chain and in Secure Boot; non-critical it is ignored", () => {
  const r = make("Rules Root", undefined, [basic(true)]);
  const critical = make("Unknown critical", r, [basic(false), ext(UNKNOWN_OID, true, NULL_DER)]);
  const plain = make("Unknown non-critical", r, [basic(false), ext(UNKNOWN_OID, false, NULL_DER)]);
  // It parses (a reader can show it), but it cannot take part in a chain.
  assert.match(certificateProblem(parseCertificate(critical.der)) ?? "", /unrecognised critical extension/);
  assert.equal(certificateProblem(parseCertificate(plain.der)), undefined);
  const m = anchorMatch(chainOf(critical.der, []), parseCertificate(r.der));
  assert.ok(m && !trusts(m), "matched, but not trusted");
  assert.match(
    opensslVerify(r.der, critical.der),
    /unhandled critical extension|unsupported certificate purpose|error 34/i,
  );
  assert.equal(opensslVerify(r.der, plain.der), "OK");

  const signedCritical = signPe(hello, { key: critical.key, certificate: critical.der });
  const refused = verifyImage(signedCritical, { db: db(r.der), dbx: none });
  assert.equal(refused.ok, false);
  assert.match(refused.reason, /invalid path: .*unrecognised critical extension 1\.3\.6\.1\.4\.1\.55555\.7/);
  assert.ok(refused.findings.some((f) => f.id === "authenticode.signature.0.chain"));
  // Even with the certificate itself in db: RFC 5280 refuses it wherever it stands.
  assert.equal(verifyImage(signedCritical, { db: db(critical.der), dbx: none }).ok, false);
  // dbx still revokes it: a broken chain does not weaken a revocation.
  assert.match(
    verifyImage(signedCritical, { db: db(r.der), dbx: db(r.der) }).reason,
    /Rules Root.*is in dbx/,
  );
  const signedPlain = signPe(hello, { key: plain.key, certificate: plain.der });
  const allowed = verifyImage(signedPlain, { db: db(r.der), dbx: none });
  assert.ok(allowed.ok, allowed.reason);
});

test("RFC 5280 4.2: a certificate with the same extension twice is refused", () => {
  const r = make("Dup Root", undefined, [basic(true)]);
  const twice = make("Twice", r, [
    basic(false),
    ext(UNKNOWN_OID, false, NULL_DER),
    ext(UNKNOWN_OID, false, NULL_DER),
  ]);
  const cert = parseCertificate(twice.der);
  assert.equal(cert.extensions.filter((e) => e.oid === UNKNOWN_OID).length, 2, "both kept as received");
  assert.match(certificateProblem(cert) ?? "", /appears twice/);
  const m = anchorMatch(chainOf(twice.der, []), parseCertificate(r.der));
  assert.ok(m && !trusts(m));
  const v = verifyImage(signPe(hello, { key: twice.key, certificate: twice.der }), {
    db: db(r.der),
    dbx: none,
  });
  assert.equal(v.ok, false);
  assert.match(v.reason, /appears twice/);
});

test("RFC 5280 4.2.1.9: pathLenConstraint bounds the CA certificates below a CA, as openssl counts them", () => {
  for (const [pathLength, ok] of [
    [0, false],
    [1, true],
    [undefined, true],
  ] as const) {
    const r = make("Path Root", undefined, [basic(true, pathLength)]);
    const inter = make("Path Intermediate", r, [basic(true)]);
    const leaf = make("Path Leaf", inter, [basic(false)]);
    const m = anchorMatch(chainOf(leaf.der, [inter.der]), parseCertificate(r.der));
    assert.equal(m?.how, "issuer");
    assert.equal(m !== undefined && trusts(m), ok, `pathLen ${String(pathLength)}: ${m?.problem ?? ""}`);
    if (!ok) assert.match(m?.problem ?? "", /pathLenConstraint 0/);
    const openssl = opensslVerify(r.der, leaf.der, [inter.der]);
    if (ok) assert.equal(openssl, "OK");
    else assert.match(openssl, /path length constraint exceeded|error 25/i);
    // The intermediate in db is a valid anchor either way: the path to it holds no constraint.
    const signed = signPe(hello, { key: leaf.key, certificate: leaf.der, chain: [inter.der] });
    assert.equal(verifyImage(signed, { db: db(r.der), dbx: none }).ok, ok);
    assert.ok(verifyImage(signed, { db: db(inter.der), dbx: none }).ok);
  }
});

test("a signer valid from 0001-01-01 (Go's zero time, made by `openssl ca`) signs an image that we and sbverify accept", () => {
  const t = tempDir("bulwark-zero-time-");
  try {
    writeFileSync(t.file("index.txt"), "");
    writeFileSync(t.file("serial"), "01\n");
    writeFileSync(
      t.file("ca.cnf"),
      [
        "[ ca ]",
        "default_ca = zero",
        "[ zero ]",
        `database = ${t.file("index.txt")}`,
        `serial = ${t.file("serial")}`,
        `new_certs_dir = ${t.dir}`,
        "default_md = sha256",
        "policy = any",
        "unique_subject = no",
        "[ any ]",
        "commonName = supplied",
        "[ ext ]",
        "basicConstraints = critical,CA:FALSE",
        "extendedKeyUsage = codeSigning",
        "",
      ].join("\n"),
    );
    toolOk("openssl", [
      "req",
      "-new",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      t.file("key.pem"),
      "-subj",
      "/CN=Go zero time signer",
      "-out",
      t.file("req.pem"),
    ]);
    // GeneralizedTime 00010101000000Z, as Go writes time.Time{} into a certificate.
    toolOk("openssl", [
      "ca",
      "-batch",
      "-config",
      t.file("ca.cnf"),
      "-selfsign",
      "-keyfile",
      t.file("key.pem"),
      "-in",
      t.file("req.pem"),
      "-startdate",
      "00010101000000Z",
      "-enddate",
      "20491231235959Z",
      "-extensions",
      "ext",
      "-out",
      t.file("cert.pem"),
    ]);
    const der = pemToDer(readFileSync(t.file("cert.pem"), "utf8"));
    writeFileSync(t.file("cert.crt"), pem(der));
    const cert = parseCertificate(der);
    assert.equal(cert.notBefore.toISOString(), "0001-01-01T00:00:00.000Z");
    assert.equal(cert.notAfter.toISOString(), "2049-12-31T23:59:59.000Z");
    // `template show` / `vars show` describe db entries with describeEntry: year 1, not 2001.
    const d = describeEntry(Guids.EFI_CERT_X509_GUID, { owner: Guids.EFI_GLOBAL_VARIABLE, data: der });
    assert.equal(d.kind === "x509" ? d.notBefore : d.kind, "0001-01-01T00:00:00.000Z");

    const key = createPrivateKey(readFileSync(t.file("key.pem")));
    const signed = signPe(hello, { key, certificate: der });
    writeFileSync(t.file("hello-signed.efi"), signed);
    const v = verifyImage(signed, { db: db(der), dbx: none });
    assert.ok(v.ok, v.reason);
    toolOk("sbverify", ["--cert", t.file("cert.crt"), t.file("hello-signed.efi")]);
    // And what sbsign makes with it verifies with us.
    writeFileSync(t.file("hello.efi"), hello);
    toolOk("sbsign", [
      "--key",
      t.file("key.pem"),
      "--cert",
      t.file("cert.crt"),
      "--output",
      t.file("hello-sbsign.efi"),
      t.file("hello.efi"),
    ]);
    const bySbsign = verifyImage(new Uint8Array(readFileSync(t.file("hello-sbsign.efi"))), {
      db: db(der),
      dbx: none,
    });
    assert.ok(bySbsign.ok, bySbsign.reason);
  } finally {
    t.cleanup();
  }
});
