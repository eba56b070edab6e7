import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import fc from "fast-check";
import { isBulwarkError } from "../../src/core/errors.js";
import { createGuardian, guardianThumbprint, UNTRUSTED_GUARDIAN } from "../../src/protector/guardian.js";
import { createKeyProtector, unwrapKeyProtector } from "../../src/protector/key-protector.js";
import { exportGuardianPkcs12, importGuardianPkcs12, readPkcs12 } from "../../src/protector/pkcs12.js";
import { codeOf } from "../helpers/errors.js";

const g = createGuardian(UNTRUSTED_GUARDIAN, { signingKeyType: "p256", host: "h1" });
const rsa = createGuardian("RsaOwner", { signingKeyType: "rsa-3072" });
const P12 = exportGuardianPkcs12(g, "s3cret");

function openssl(args: string[], input?: string) {
  const r = spawnSync("openssl", args, { encoding: "utf8", ...(input !== undefined ? { input } : {}) });
  assert.ok(!r.error, "openssl is needed for this test (apt-get install openssl)");
  return r;
}

const spki = (k: Parameters<typeof createPublicKey>[0]) =>
  createPublicKey(k).export({ type: "spki", format: "der" }).toString("hex");

test("PKCS#12 round trip: the imported guardian has the same certificates and working keys", () => {
  for (const guardian of [g, rsa]) {
    const back = importGuardianPkcs12(exportGuardianPkcs12(guardian, "pw", { iterations: 2048 }), "pw");
    assert.equal(back.name, guardian.name);
    assert.equal(guardianThumbprint(back), guardianThumbprint(guardian));
    assert.deepEqual(Buffer.from(back.encryptionCertificate), Buffer.from(guardian.encryptionCertificate));
    assert.equal(spki(back.signingKey), spki(guardian.signingKey));
    assert.equal(spki(back.encryptionKey), spki(guardian.encryptionKey));
  }
  const { keyProtector, transportKey } = createKeyProtector({ owner: rsa, guardians: [g] });
  assert.deepEqual(
    unwrapKeyProtector(keyProtector, [importGuardianPkcs12(P12, "s3cret")]).key,
    transportKey.key,
  );
  assert.equal(importGuardianPkcs12(P12, "s3cret", { name: "Renamed" }).name, "Renamed");
});

test("the real openssl reads our PKCS#12 (MAC, PBES2 keys) and refuses a wrong password", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "bulwark-p12-"));
  try {
    const file = path.join(dir, "g.p12");
    writeFileSync(file, P12);
    const r = openssl(["pkcs12", "-in", file, "-passin", "pass:s3cret", "-nodes"]);
    assert.equal(r.status, 0, r.stderr);
    const keys = [...r.stdout.matchAll(/-----BEGIN PRIVATE KEY-----[\s\S]*?-----END PRIVATE KEY-----/g)].map(
      (m) => spki(createPrivateKey(m[0])),
    );
    assert.deepEqual(keys.sort(), [spki(g.signingKey), spki(g.encryptionKey)].sort());
    const certs = [...r.stdout.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)].map(
      (m) => new X509Certificate(m[0]).fingerprint256,
    );
    assert.deepEqual(
      certs.sort(),
      [
        new X509Certificate(g.signingCertificate).fingerprint256,
        new X509Certificate(g.encryptionCertificate).fingerprint256,
      ].sort(),
    );
    assert.match(r.stdout, /friendlyName: UntrustedGuardian/);
    const bad = openssl(["pkcs12", "-in", file, "-passin", "pass:wrong", "-nodes"]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /mac verify/i);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a PKCS#12 written by openssl (certificates in PBES2 EncryptedData) is read", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "bulwark-p12-"));
  try {
    const keyFile = path.join(dir, "sign.key");
    const certFile = path.join(dir, "sign.pem");
    const caFile = path.join(dir, "enc.pem");
    writeFileSync(keyFile, g.signingKey.export({ type: "pkcs8", format: "pem" }));
    writeFileSync(certFile, new X509Certificate(g.signingCertificate).toString());
    writeFileSync(caFile, new X509Certificate(g.encryptionCertificate).toString());
    const out = path.join(dir, "openssl.p12");
    const r = openssl([
      "pkcs12",
      "-export",
      "-inkey",
      keyFile,
      "-in",
      certFile,
      "-certfile",
      caFile,
      "-name",
      "FromOpenSSL",
      "-passout",
      "pass:pw",
      "-out",
      out,
    ]);
    assert.equal(r.status, 0, r.stderr);
    const info = openssl(["pkcs12", "-in", out, "-passin", "pass:pw", "-info", "-noout"]);
    assert.match(info.stderr + info.stdout, /PKCS7 Encrypted data: PBES2/);
    const c = readPkcs12(readFileSync(out), "pw");
    assert.equal(c.certificates.length, 2);
    assert.equal(c.privateKeys.length, 1);
    assert.equal(spki(c.privateKeys[0] as Parameters<typeof createPublicKey>[0]), spki(g.signingKey));
    assert.ok(c.certificates.some((x) => x.friendlyName === "FromOpenSSL"));
    // One key only: not a guardian.
    assert.equal(
      codeOf(() => importGuardianPkcs12(readFileSync(out), "pw")),
      "PROTECTOR_ERR_PKCS12",
    );
    assert.equal(
      codeOf(() => readPkcs12(readFileSync(out), "wrong")),
      "PROTECTOR_ERR_PKCS12",
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("wrong password, altered bytes and garbage are PROTECTOR_ERR_PKCS12", () => {
  assert.equal(
    codeOf(() => importGuardianPkcs12(P12, "wrong")),
    "PROTECTOR_ERR_PKCS12",
  );
  for (let i = 0; i < P12.length; i += 97) {
    const t = Buffer.from(P12);
    t[i] = (t[i] as number) ^ 0x10;
    assert.equal(
      codeOf(() => importGuardianPkcs12(t, "s3cret")),
      "PROTECTOR_ERR_PKCS12",
      `byte ${i}`,
    );
  }
  assert.equal(
    codeOf(() => importGuardianPkcs12(Buffer.from("not der"), "x")),
    "PROTECTOR_ERR_PKCS12",
  );
  assert.equal(
    codeOf(() => exportGuardianPkcs12(g, "x", { iterations: 0 })),
    "PROTECTOR_ERR_INVALID_ARGUMENT",
  );
});

test("property: random and mutated PKCS#12 input gives a value or a typed error (2 x 10,000 runs)", () => {
  const small = exportGuardianPkcs12(g, "pw", { iterations: 16 });
  const check = (input: Uint8Array) => {
    try {
      importGuardianPkcs12(input, "pw");
    } catch (e) {
      if (!isBulwarkError(e)) throw e;
      assert.match(e.code, /^PROTECTOR_ERR_/);
    }
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (b) => check(b)),
    { numRuns: 10_000 },
  );
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.record({ at: fc.nat(small.length - 1), xor: fc.integer({ min: 1, max: 255 }) }), {
        minLength: 1,
        maxLength: 3,
        selector: (f) => f.at,
      }),
      fc.option(fc.nat(small.length), { nil: undefined }),
      (flips, cut) => {
        const t = Buffer.from(small);
        for (const f of flips) t[f.at] = (t[f.at] as number) ^ f.xor;
        check(cut === undefined ? t : t.subarray(0, cut));
      },
    ),
    { numRuns: 10_000 },
  );
});
