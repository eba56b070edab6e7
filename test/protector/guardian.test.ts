import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { generateKeyPairSync, randomBytes, X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import fc from "fast-check";
import { createCertificate } from "../../src/asn1/x509.js";
import { isBulwarkError } from "../../src/core/errors.js";
import {
  checkGuardian,
  checkGuardianPublic,
  createGuardian,
  exportGuardianPem,
  exportGuardianPublicPem,
  guardianThumbprint,
  importGuardianPem,
  importGuardianPublicPem,
  summarizeGuardian,
  UNTRUSTED_GUARDIAN,
  type Guardian,
} from "../../src/protector/guardian.js";
import { createKeyProtector, unwrapKeyProtector } from "../../src/protector/key-protector.js";
import { unwrapSecret, wrapSecret } from "../../src/protector/keys.js";
import { codeOf } from "../helpers/errors.js";

const local = createGuardian(UNTRUSTED_GUARDIAN, { host: "host-a" });
const rsa = createGuardian("RsaGuardian", { signingKeyType: "rsa-3072", encryptionKeyType: "rsa-4096" });

test("created guardians: Hyper-V style subjects, supported key types, consistent checks", () => {
  const s = summarizeGuardian(local);
  assert.equal(s.signingKeyType, "p384");
  // New guardians' encryption keys are X25519 beside an EC signing key (issue 12).
  assert.equal(s.encryptionKeyType, "x25519");
  assert.equal(s.thumbprint, guardianThumbprint(local));
  const sign = new X509Certificate(local.signingCertificate);
  const enc = new X509Certificate(local.encryptionCertificate);
  assert.equal(sign.subject, "CN=Shielded VM Signing Certificate (UntrustedGuardian) (host-a)");
  assert.equal(enc.subject, "CN=Shielded VM Encryption Certificate (UntrustedGuardian) (host-a)");
  assert.equal(enc.issuer, sign.subject);
  assert.ok(enc.verify(sign.publicKey));
  const r = checkGuardian(rsa);
  assert.equal(r.signingKeyType, "rsa-3072");
  assert.equal(r.encryptionKeyType, "rsa-4096");
  // RSA-4096 wraps with OAEP and unwraps.
  const secret = randomBytes(32);
  const w = wrapSecret(r.encryption.publicKey, secret, Buffer.from("ctx"));
  assert.equal(w.scheme, "rsa-oaep-sha256");
  assert.equal(w.ciphertext.length, 512);
  assert.deepEqual(unwrapSecret(rsa.encryptionKey, w, Buffer.from("ctx")), secret);
  assert.equal(
    codeOf(() => unwrapSecret(rsa.encryptionKey, w, Buffer.from("other"))),
    "PROTECTOR_ERR_UNWRAP",
  );
});

test("X25519 is an encryption key type only: a guardian cannot sign with it", () => {
  assert.equal(
    codeOf(() => createGuardian("X", { signingKeyType: "x25519" })),
    "PROTECTOR_ERR_INVALID_ARGUMENT",
  );
  // RSA signing keeps RSA encryption by default; an explicit X25519 encryption key is allowed.
  assert.equal(summarizeGuardian(rsa).encryptionKeyType, "rsa-4096");
  const p256 = createGuardian("P", { signingKeyType: "p256" });
  assert.equal(checkGuardian(p256).encryptionKeyType, "x25519");
  // A guardian whose "signing" certificate carries the X25519 key is refused, not half-accepted.
  const swapped = {
    name: "Swapped",
    signingCertificate: p256.encryptionCertificate,
    encryptionCertificate: p256.encryptionCertificate,
  };
  assert.equal(
    codeOf(() => summarizeGuardian(swapped)),
    "PROTECTOR_ERR_CERTIFICATE",
  );
  // X25519 wraps (HPKE DHKEM(X25519)) and unwraps.
  const secret = randomBytes(32);
  const w = wrapSecret(checkGuardian(p256).encryption.publicKey, secret, Buffer.from("ctx"));
  assert.equal(w.scheme, "hpke-x25519-sha256-aes256gcm");
  assert.equal(w.enc.length, 32);
  assert.deepEqual(unwrapSecret(p256.encryptionKey, w, Buffer.from("ctx")), secret);
  assert.equal(
    codeOf(() => unwrapSecret(p256.encryptionKey, w, Buffer.from("other"))),
    "PROTECTOR_ERR_UNWRAP",
  );
  assert.equal(
    codeOf(() => unwrapSecret(local.encryptionKey, w, Buffer.from("ctx"))),
    "PROTECTOR_ERR_UNWRAP",
  );
});

test("the real openssl accepts the guardian's certificates (encryption issued by signing)", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "bulwark-guardian-"));
  try {
    for (const g of [local, rsa]) {
      writeFileSync(path.join(dir, "sign.pem"), new X509Certificate(g.signingCertificate).toString());
      writeFileSync(path.join(dir, "enc.pem"), new X509Certificate(g.encryptionCertificate).toString());
      const r = spawnSync(
        "openssl",
        ["verify", "-CAfile", path.join(dir, "sign.pem"), path.join(dir, "enc.pem")],
        {
          encoding: "utf8",
        },
      );
      assert.ok(!r.error, "openssl is needed for this test (apt-get install openssl)");
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /enc\.pem: OK/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("PEM export/import round trip, public and private, with and without passphrase", () => {
  const pub = importGuardianPublicPem(exportGuardianPublicPem(local));
  assert.equal(pub.name, UNTRUSTED_GUARDIAN);
  assert.deepEqual(pub.signingCertificate, new Uint8Array(local.signingCertificate));
  assert.deepEqual(pub.encryptionCertificate, new Uint8Array(local.encryptionCertificate));
  assert.ok(!("signingKey" in pub));

  const text = exportGuardianPem(local);
  assert.match(text, /^Bulwark guardian: UntrustedGuardian$/m);
  assert.equal((text.match(/-----BEGIN PRIVATE KEY-----/g) ?? []).length, 2);
  const back = importGuardianPem(text);
  // The imported guardian can unwrap what was wrapped to the original.
  const { keyProtector, transportKey } = createKeyProtector({ owner: rsa, guardians: [local] });
  assert.deepEqual(unwrapKeyProtector(keyProtector, [back]).key, transportKey.key);

  const locked = exportGuardianPem(local, { passphrase: "correct horse" });
  assert.ok(!locked.includes("BEGIN PRIVATE KEY"));
  assert.equal((locked.match(/-----BEGIN ENCRYPTED PRIVATE KEY-----/g) ?? []).length, 2);
  assert.ok(!locked.includes("correct horse"));
  assert.equal(
    guardianThumbprint(importGuardianPem(locked, { passphrase: "correct horse" })),
    guardianThumbprint(local),
  );
  assert.equal(
    codeOf(() => importGuardianPem(locked)),
    "PROTECTOR_ERR_PEM",
  );
  try {
    importGuardianPem(locked, { passphrase: "wrong horse" });
    assert.fail("wrong passphrase accepted");
  } catch (e) {
    assert.ok(isBulwarkError(e) && e.code === "PROTECTOR_ERR_PEM");
    assert.ok(!e.message.includes("wrong horse"), "the passphrase never appears in errors");
  }
  // Without the name line, the name comes from the signing certificate's subject.
  const unnamed = exportGuardianPublicPem(local).replace(/^Bulwark guardian: .*$/m, "");
  assert.equal(importGuardianPublicPem(unnamed).name, UNTRUSTED_GUARDIAN);
});

test("malformed guardian files and certificates are typed errors", () => {
  const text = exportGuardianPublicPem(local);
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n/g) ?? [];
  assert.equal(blocks.length, 2);
  assert.equal(
    codeOf(() => importGuardianPublicPem(`Bulwark guardian: x\n${blocks[0]}`)),
    "PROTECTOR_ERR_PEM",
  );
  // Swapped order: the "signing" certificate is then not self-signed.
  assert.equal(
    codeOf(() => importGuardianPublicPem(`Bulwark guardian: x\n${blocks[1]}${blocks[0]}`)),
    "PROTECTOR_ERR_CERTIFICATE",
  );
  assert.equal(
    codeOf(() => importGuardianPublicPem(text.replace(/MII/g, "MIJ"))),
    "PROTECTOR_ERR_CERTIFICATE",
  );
  assert.equal(
    codeOf(() => importGuardianPublicPem("nothing here")),
    "PROTECTOR_ERR_PEM",
  );
  assert.equal(
    codeOf(() => importGuardianPem(text)),
    "PROTECTOR_ERR_PEM",
  ); // no private keys
  // Recombining one guardian's signing certificate with another's encryption certificate.
  const other = createGuardian("Other", { signingKeyType: "p256" });
  const mixed = { ...local, encryptionCertificate: other.encryptionCertificate };
  assert.equal(
    codeOf(() => checkGuardianPublic(mixed)),
    "PROTECTOR_ERR_CERTIFICATE",
  );
  const wrongKey: Guardian = { ...local, encryptionKey: other.encryptionKey };
  assert.equal(
    codeOf(() => checkGuardian(wrongKey)),
    "PROTECTOR_ERR_CERTIFICATE",
  );
  for (const name of ["", " lead", "a\nb", "x".repeat(257)]) {
    assert.equal(
      codeOf(() => createGuardian(name)),
      "PROTECTOR_ERR_INVALID_ARGUMENT",
      JSON.stringify(name),
    );
  }
});

test("unsupported guardian keys (RSA-2048, P-521) are PROTECTOR_ERR_UNSUPPORTED_KEY", () => {
  let checked = 0;
  for (const kp of [
    generateKeyPairSync("rsa", { modulusLength: 2048 }),
    generateKeyPairSync("ec", { namedCurve: "secp521r1" }),
  ]) {
    const cert = (() => {
      try {
        return createCertificate({ subject: "CN=Weak", publicKey: kp.publicKey, signingKey: kp.privateKey });
      } catch {
        return undefined; // the certificate builder may itself refuse the curve
      }
    })();
    if (!cert) continue;
    assert.equal(
      codeOf(() =>
        checkGuardianPublic({ name: "Weak", signingCertificate: cert, encryptionCertificate: cert }),
      ),
      "PROTECTOR_ERR_UNSUPPORTED_KEY",
    );
    checked++;
  }
  assert.ok(checked >= 1);
});

test("property: random and mutated guardian PEM text gives a guardian or a typed error (2 x 10,000 runs)", () => {
  const pub = exportGuardianPublicPem(local);
  const priv = exportGuardianPem(local);
  const check = (text: string, isPrivate: boolean) => {
    try {
      if (isPrivate) importGuardianPem(text);
      else importGuardianPublicPem(text);
    } catch (e) {
      if (!isBulwarkError(e)) throw e;
      assert.match(e.code, /^PROTECTOR_ERR_/);
    }
  };
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), fc.boolean(), (s, isPrivate) => {
      check(`-----BEGIN CERTIFICATE-----\n${s}\n-----END CERTIFICATE-----\n${s}`, isPrivate);
    }),
    { numRuns: 10_000 },
  );
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.array(fc.record({ at: fc.nat(), ch: fc.constantFrom("A", "/", "+", "=", "\n", "-", "x", "0") }), {
        minLength: 1,
        maxLength: 3,
      }),
      (isPrivate, edits) => {
        const chars = [...(isPrivate ? priv : pub)];
        for (const e of edits) chars[e.at % chars.length] = e.ch;
        check(chars.join(""), isPrivate);
      },
    ),
    { numRuns: 10_000 },
  );
});
