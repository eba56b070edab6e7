/** src/uefi/pkcs7.ts: PKCS #7 for EFI_VARIABLE_AUTHENTICATION_2 (UEFI 2.10 section 8.2.2), against sbvarsign and openssl. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { buildSignedData } from "../../src/asn1/cms.js";
import { parseDer } from "../../src/asn1/der.js";
import { OID } from "../../src/asn1/oid.js";
import { createCertificate, derToPem } from "../../src/asn1/x509.js";
import { isUefiPeError } from "../../src/uefi/errors-pe.js";
import { signDetachedForUefiVariable, verifyDetached } from "../../src/uefi/pkcs7.js";
import { derOf, tempDir, toolOk } from "../helpers/asn1-tools.js";

const kek = generateKeyPairSync("rsa", { modulusLength: 2048 });
const kekCert = createCertificate({
  subject: "CN=Test KEK",
  publicKey: kek.publicKey,
  signingKey: kek.privateKey,
  ca: true,
});
const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
const otherCert = createCertificate({
  subject: "CN=Other",
  publicKey: other.publicKey,
  signingKey: other.privateKey,
});

/** UEFI 2.10 8.2.2 step 1 serialisation: VariableName (UTF-16LE, no NUL) || VendorGuid || Attributes || TimeStamp || Data. */
function serialise(
  name: string,
  guid: Uint8Array,
  attrs: number,
  time: Uint8Array,
  data: Uint8Array,
): Uint8Array {
  const n = Buffer.from(name, "utf16le");
  const a = Buffer.alloc(4);
  a.writeUInt32LE(attrs);
  return new Uint8Array(Buffer.concat([n, guid, a, time, data]));
}

test("sbvarsign's CertData verifies with verifyDetached over the 8.2.2 serialisation", () => {
  const t = tempDir();
  try {
    writeFileSync(t.file("kek.key"), kek.privateKey.export({ type: "pkcs1", format: "pem" }));
    writeFileSync(t.file("kek.crt"), derToPem(kekCert));
    const data = new Uint8Array(Buffer.from("an EFI_SIGNATURE_LIST would go here"));
    writeFileSync(t.file("db.bin"), data);
    toolOk("sbvarsign", [
      "--key",
      t.file("kek.key"),
      "--cert",
      t.file("kek.crt"),
      "--output",
      t.file("db.auth"),
      "db",
      t.file("db.bin"),
    ]);
    const auth = new Uint8Array(readFileSync(t.file("db.auth")));
    // EFI_VARIABLE_AUTHENTICATION_2: EFI_TIME (16) || WIN_CERTIFICATE_UEFI_GUID { dwLength, wRevision, wCertificateType, CertType (16), CertData }.
    const time = auth.subarray(0, 16);
    const dwLength = Buffer.from(auth).readUInt32LE(16);
    const certData = auth.subarray(16 + 24, 16 + dwLength);
    assert.deepEqual(auth.subarray(16 + dwLength), data);
    const dbGuid = new Uint8Array(Buffer.from("cbb219d73a3d9645a3bcdad00e67656f", "hex")); // EFI_IMAGE_SECURITY_DATABASE_GUID d719b2cb-3d3a-4596-a3bc-dad00e67656f
    const attrs = 0x01 | 0x02 | 0x04 | 0x20 | 0x40; // sbvarsign default: NV | BS | RT | TIME_BASED_AUTHENTICATED_WRITE_ACCESS | APPEND_WRITE
    const signed = serialise("db", dbGuid, attrs, time, data);
    const v = verifyDetached(certData, signed, { trusted: [kekCert] });
    assert.ok(v.ok, JSON.stringify(v.findings));
    assert.equal(v.trustedBy?.how, "member");
    assert.equal(verifyDetached(certData, signed, { trusted: [otherCert] }).ok, false);
    const changed = signed.slice();
    changed[changed.length - 1] = (changed[changed.length - 1] as number) ^ 1;
    assert.equal(verifyDetached(certData, changed).ok, false);
  } finally {
    t.cleanup();
  }
});

test("signDetachedForUefiVariable follows 8.2.2 and verifies with openssl cms and with us", () => {
  const t = tempDir();
  try {
    const data = new Uint8Array(Buffer.from("payload to authenticate"));
    const bare = signDetachedForUefiVariable(data, kek.privateKey, kekCert);
    const root = parseDer(bare);
    assert.equal(root.children[0]?.tag, 0x02, "bare SignedData starts with its version INTEGER");
    const v = verifyDetached(bare, data, { trusted: [kekCert] });
    assert.ok(v.ok);
    assert.deepEqual(v.findings, [], "no finding, not even a warning");
    const wrapped = signDetachedForUefiVariable(data, kek.privateKey, kekCert, { contentInfo: true });
    assert.deepEqual(
      wrapped,
      derOf.sequence(derOf.oid(OID.signedData), derOf.explicit(0, bare)),
      "RSA PKCS#1 v1.5 is deterministic",
    );
    writeFileSync(t.file("sig.der"), wrapped);
    writeFileSync(t.file("data"), data);
    writeFileSync(t.file("kek.pem"), derToPem(kekCert));
    toolOk("openssl", [
      "cms",
      "-verify",
      "-binary",
      "-inform",
      "DER",
      "-in",
      t.file("sig.der"),
      "-content",
      t.file("data"),
      "-CAfile",
      t.file("kek.pem"),
      "-purpose",
      "any",
      "-out",
      "/dev/null",
    ]);
    const printed = toolOk("openssl", [
      "cms",
      "-cmsout",
      "-print",
      "-inform",
      "DER",
      "-in",
      t.file("sig.der"),
    ]).stdout;
    assert.match(printed, /signedAttrs:\s*<ABSENT>/);
    assert.match(printed, /eContent: <ABSENT>/);
    assert.match(printed, /algorithm: rsaEncryption/);
    // Attached content does not stand in for the data the caller asks about.
    const attached = buildSignedData({
      contentType: OID.data,
      content: derOf.octetString(new Uint8Array(Buffer.from("other data"))),
      signers: [{ key: kek.privateKey, certificate: kekCert, signedAttributes: false }],
    });
    assert.equal(verifyDetached(attached, data, { trusted: [kekCert] }).ok, false);
    assert.equal(
      verifyDetached(attached, new Uint8Array(Buffer.from("other data")), { trusted: [kekCert] }).ok,
      true,
    );
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
    assert.throws(
      () => signDetachedForUefiVariable(data, ec.privateKey, kekCert),
      (e: unknown) => isUefiPeError(e) && e.code === "UEFI_ERR_PKCS7_UNSUPPORTED_KEY",
    );
    assert.throws(
      () => verifyDetached(new Uint8Array([0x30, 0x80]), data),
      (e: unknown) => isUefiPeError(e) && e.code === "UEFI_ERR_PKCS7_INVALID",
    );
  } finally {
    t.cleanup();
  }
});
