/**
 * Key release with its memoised verdicts (health-certificate signatures, guardian checks, owner
 * signatures): a certificate that was accepted once must still be refused as soon as the host is
 * revoked, the deny-before date passes it, the mode changes, or it expires; an altered
 * certificate or one checked against another signer is verified anew. In process, real keys.
 */
import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { isBulwarkError } from "../../src/core/errors.js";
import { HealthVerifier, issueHealthCertificate, signerId } from "../../src/attest/health.js";
import { auditVerdict, listAuditEntries } from "../../src/hgs/admin.js";
import { releaseRequestBody } from "../../src/host/guarded/hgs-client.js";
import { keyId } from "../../src/attest/host-key.js";
import {
  admin,
  ecKey,
  host,
  injectClient,
  pem,
  protectorFor,
  startHgs,
  type HgsFixture,
} from "../helpers/hgs-fixture.js";

function findingOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(isBulwarkError(e), `not a typed error: ${String(e)}`);
    return String(e.details.finding ?? e.code);
  }
  return "OK";
}

describe("health certificate verification with the signature memo", () => {
  const signer = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const otherSigner = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const kid = signerId(signer.publicKey);
  const krk = ecKey();
  const now = Date.now();
  const { text, claims } = issueHealthCertificate({
    signer: signer.privateKey,
    hostId: "ab".repeat(32),
    name: "h",
    mode: "key",
    keyReleaseKey: createPublicKey(krk),
    lifetimeSeconds: 600,
    now,
  });
  const ok = { signerPublic: signer.publicKey, signerId: kid };
  const verifier = new HealthVerifier();

  it("re-checks validity, deny-before and issuer on every call", () => {
    assert.equal(verifier.verify(text, ok).claims.jti, claims.jti);
    assert.equal(verifier.verify(text, ok).claims.jti, claims.jti); // memoised
    assert.equal(
      findingOf(() => verifier.verify(text, { ...ok, now: now + 3600_000 })),
      "health-certificate.expired",
    );
    assert.equal(
      findingOf(() => verifier.verify(text, { ...ok, now: now - 3600_000 })),
      "health-certificate.not-yet-valid",
    );
    assert.equal(
      findingOf(() => verifier.verify(text, { ...ok, denyBefore: now + 5000 })),
      "health-certificate.issued-before-deny-date",
    );
    assert.equal(
      findingOf(() => verifier.verify(text, { signerPublic: otherSigner.publicKey })),
      "health-certificate.unknown-issuer",
    );
  });

  it("verifies the signature again under another key, and for altered text", () => {
    verifier.verify(text, ok);
    // Another signer key claiming the same id: the memo is per key, so the signature is checked.
    assert.equal(
      findingOf(() => verifier.verify(text, { signerPublic: otherSigner.publicKey, signerId: kid })),
      "health-certificate.bad-signature",
    );
    const [h, p, s] = text.split(".") as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, "base64url").toString()) as Record<string, unknown>;
    const edited = `${h}.${Buffer.from(JSON.stringify({ ...payload, exp: claims.exp + 86400 })).toString("base64url")}.${s}`;
    assert.equal(
      findingOf(() => verifier.verify(edited, ok)),
      "health-certificate.bad-signature",
    );
    assert.equal(
      findingOf(() => verifier.verify(edited, ok)),
      "health-certificate.bad-signature",
    );
  });
});

describe("key release after a memoised success", () => {
  let fx: HgsFixture;
  const hostKey = ecKey();
  const krk = ecKey();
  let hostId: string;
  let certificate: string;
  let keyProtector: Uint8Array;

  async function release(kp = keyProtector) {
    return host<{ keyProtector?: string; error?: { details: { finding?: string } } }>(
      fx,
      "/host/v1/keys/release",
      releaseRequestBody(certificate, krk, kp),
    );
  }

  before(async () => {
    fx = await startHgs({ tls: false });
    assert.equal((await admin(fx, "PATCH", "/admin/v1/settings", { mode: "key" })).status, 200);
    const reg = await admin<{ id: string }>(fx, "POST", "/admin/v1/hosts/key", {
      name: "h",
      publicKey: pem(hostKey),
    });
    assert.equal(reg.status, 200);
    hostId = keyId(hostKey);
    const a = await injectClient(fx).attestHostKey({ hostKey, keyReleaseKey: krk });
    certificate = a.healthCertificate;
    keyProtector = protectorFor(fx.ctx.dir.guardianPublicPem).keyProtector;
  });
  after(() => fx.close());

  it("refuses the same certificate once the host is revoked, and still after it is restored (issue 11)", async () => {
    const r1 = await release();
    assert.equal(r1.status, 200, JSON.stringify(r1.body));
    keyProtector = Buffer.from(r1.body.keyProtector as string, "base64");
    assert.equal((await release()).status, 200);
    assert.equal((await admin(fx, "POST", `/admin/v1/hosts/${hostId}/revoke`)).status, 200);
    const r2 = await release();
    assert.equal(r2.status, 403);
    assert.equal(r2.body.error?.details.finding, "host.revoked");
    assert.equal((await admin(fx, "POST", `/admin/v1/hosts/${hostId}/restore`)).status, 200);
    // A restore does not revive a certificate issued before it, memoised or not: attest again.
    const r3 = await release();
    assert.equal(r3.status, 403);
    assert.equal(r3.body.error?.details.finding, "health-certificate.issued-before-restore");
    certificate = (await injectClient(fx).attestHostKey({ hostKey, keyReleaseKey: krk })).healthCertificate;
    assert.equal((await release()).status, 200);
  });

  it("answers a request id once, also when copies arrive together (claim committed with the audit entry)", async () => {
    const body = releaseRequestBody(certificate, krk, keyProtector);
    const answers = await Promise.all(
      Array.from({ length: 6 }, () =>
        host<{ error?: { details: { finding?: string } } }>(fx, "/host/v1/keys/release", body),
      ),
    );
    assert.deepEqual(
      answers.map((a) => a.status).sort(),
      [200, 403, 403, 403, 403, 403],
      JSON.stringify(answers.map((a) => a.body)),
    );
    for (const a of answers.filter((x) => x.status === 403))
      assert.equal(a.body.error?.details.finding, "request.replayed");
    const later = await host<{ error?: { details: { finding?: string } } }>(
      fx,
      "/host/v1/keys/release",
      body,
    );
    assert.equal(later.body.error?.details.finding, "request.replayed");
    const audit = await listAuditEntries(fx.ctx, 0, 10_000);
    const released = audit.filter((e) => e.event === "key.released").length;
    const refused = audit.filter((e) => e.event === "key.refused" && e.detail.finding === "request.replayed");
    assert.ok(released >= 1);
    assert.equal(refused.length, 6);
    assert.ok((await auditVerdict(fx.ctx)).ok);
  });

  it("refuses a tampered protector after the genuine one was rolled", async () => {
    const tampered = new Uint8Array(keyProtector);
    tampered[40] = (tampered[40] as number) ^ 0x01;
    const r = await release(tampered);
    assert.equal(r.status, 403);
    assert.match(String(r.body.error?.details.finding), /^key-protector\./);
  });

  it("refuses the same certificate after a deny-before date and after a mode switch", async () => {
    assert.equal((await release()).status, 200);
    assert.equal((await admin(fx, "PATCH", "/admin/v1/settings", { mode: "tpm" })).status, 200);
    const m = await release();
    assert.equal(m.body.error?.details.finding, "health-certificate.mode-mismatch");
    assert.equal((await admin(fx, "PATCH", "/admin/v1/settings", { mode: "key" })).status, 200);
    assert.equal((await release()).status, 200);
    assert.equal(
      (await admin(fx, "PATCH", "/admin/v1/settings", { denyBefore: Date.now() + 2000 })).status,
      200,
    );
    const d = await release();
    assert.equal(d.body.error?.details.finding, "health-certificate.issued-before-deny-date");
  });
});
