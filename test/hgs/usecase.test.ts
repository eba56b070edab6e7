/**
 * The HGS use cases as plain functions: the status table keyed by finding id, the key-release
 * judgement and decision (pure), the diagnostics messages each attestation and release
 * publishes, and the caches each context owns. In process, real keys, a real SQLite store.
 */
import assert from "node:assert/strict";
import diagnostics_channel from "node:diagnostics_channel";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { isFindingId } from "../../src/core/verdict.js";
import { PublicKeyCache, spkiDer } from "../../src/attest/host-key.js";
import { POLICIES } from "../../src/attest/policies.js";
import {
  HealthVerifier,
  issueHealthCertificate,
  signerId,
  type HealthClaims,
} from "../../src/attest/health.js";
import { attestationVerdict, error, STATUS_BY_FINDING } from "../../src/attest/verdict.js";
import { ATTESTATION_CHANNEL, RELEASE_CHANNEL } from "../../src/hgs/attestation.js";
import { attestHostKey } from "../../src/hgs/attest-key.js";
import { decideRelease, judgeRelease, releaseKey, type ReleaseFacts } from "../../src/hgs/release.js";
import type { HostRow } from "../../src/hgs/store/repo.js";
import { releaseRequestBody } from "../../src/host/guarded/hgs-client.js";
import {
  admin,
  ecKey,
  injectClient,
  pem,
  protectorFor,
  startHgs,
  type HgsFixture,
} from "../helpers/hgs-fixture.js";

describe("attestation statuses come from the finding ids", () => {
  it("every id in the table and every policy's finding id follows the one grammar", () => {
    for (const id of Object.keys(STATUS_BY_FINDING)) assert.ok(isFindingId(id), id);
    for (const p of POLICIES) {
      assert.ok(isFindingId(p.findingId), p.findingId);
      assert.equal(STATUS_BY_FINDING[p.findingId], "InsecureHostConfiguration", p.id);
    }
  });

  it("host outranks nonce, nonce outranks evidence, evidence outranks configuration", () => {
    const host = error("host.revoked", "m");
    const nonce = error("nonce.replayed", "m");
    const quote = error("quote.signature", "m");
    const policy = error("hgs.iommu-enabled", "m", { policy: "Hgs_IommuEnabled", subStatus: "Iommu" });
    assert.equal(attestationVerdict([policy, quote, nonce, host]).status, "UnauthorizedHost");
    assert.equal(attestationVerdict([policy, quote, nonce]).status, "NonceInvalid");
    assert.equal(attestationVerdict([policy, quote]).status, "InvalidEvidence");
    const insecure = attestationVerdict([policy]);
    assert.equal(insecure.status, "InsecureHostConfiguration");
    assert.deepEqual(insecure.subStatuses, ["Iommu"]);
    assert.equal(insecure.ok, false);
    const warned = attestationVerdict([{ ...quote, severity: "warning" }], ["nonce"]);
    assert.equal(warned.status, "Passed");
    assert.equal(warned.ok, true);
    assert.deepEqual(warned.passed, ["nonce"]);
  });
});

describe("key release: a pure judgement, then a decision", () => {
  const claims: HealthClaims = {
    v: 1,
    iss: "a".repeat(64),
    sub: "b".repeat(64),
    name: "h",
    mode: "key",
    krk: "AA==",
    iat: 0,
    nbf: 0,
    exp: 1,
    jti: "c".repeat(32),
  };
  const host: HostRow = {
    id: claims.sub,
    name: "h",
    kind: "key",
    publicKey: null,
    ekPublic: null,
    ekCertificate: null,
    akPublic: null,
    revokedAt: null,
    certificatesNotBefore: null,
    createdAt: 0,
  };
  const good: ReleaseFacts = {
    certificate: { claims, krk: createPublicKey(ecKey()) },
    mode: "key",
    host,
    requestId: "d".repeat(32),
    timestamp: 1_000_000,
    now: 1_000_000,
    proofVerified: true,
    alreadyAnswered: false,
    keyReleaseKeyIsRegistered: false,
  };

  it("releases when every check passed", () => {
    const v = judgeRelease(good);
    assert.equal(v.ok, true);
    assert.ok(v.passed.includes("request.replayed"));
    assert.deepEqual(decideRelease(v), { release: true });
  });

  it("refuses with the first failing check's code, finding and values", () => {
    const v = judgeRelease({ ...good, timestamp: 0, proofVerified: false, host: { ...host, revokedAt: 5 } });
    assert.deepEqual(
      v.findings.map((f) => f.id),
      ["host.revoked", "request.stale", "request.bad-proof"],
    );
    const d = decideRelease(v);
    assert.equal(d.release, false);
    if (d.release) return;
    assert.equal(d.refusal.code, "HGS_ERR_UNAUTHORIZED_HOST");
    assert.equal(d.refusal.details.finding, "host.revoked");
    const stale = decideRelease(judgeRelease({ ...good, timestamp: 0 }));
    assert.ok(!stale.release && stale.refusal.details.got === "0");
  });

  it("a refused certificate is the verdict's only finding, with its details", () => {
    const d = decideRelease(
      judgeRelease({
        certificate: {
          id: "health-certificate.expired",
          severity: "error",
          message: "the health certificate has expired",
          code: "HGS_ERR_HEALTH_CERTIFICATE",
          details: { exp: 1, now: 2 },
        },
      }),
    );
    assert.ok(!d.release);
    if (d.release) return;
    assert.deepEqual(d.refusal.details, { finding: "health-certificate.expired", exp: 1, now: 2 });
  });
});

describe("diagnostics messages and per-context caches", () => {
  let fx: HgsFixture;
  let other: HgsFixture;
  const messages: { channel: string; m: Record<string, unknown> }[] = [];
  const onAttest = (m: unknown) =>
    messages.push({ channel: ATTESTATION_CHANNEL, m: m as Record<string, unknown> });
  const onRelease = (m: unknown) =>
    messages.push({ channel: RELEASE_CHANNEL, m: m as Record<string, unknown> });
  before(async () => {
    [fx, other] = await Promise.all([startHgs({ tls: false }), startHgs({ tls: false })]);
    assert.equal((await admin(fx, "PATCH", "/admin/v1/settings", { mode: "key" })).status, 200);
    diagnostics_channel.subscribe(ATTESTATION_CHANNEL, onAttest);
    diagnostics_channel.subscribe(RELEASE_CHANNEL, onRelease);
  });
  after(async () => {
    diagnostics_channel.unsubscribe(ATTESTATION_CHANNEL, onAttest);
    diagnostics_channel.unsubscribe(RELEASE_CHANNEL, onRelease);
    await Promise.all([fx.close(), other.close()]);
  });

  it("publishes one message per attestation and per release, with exactly the agreed fields", async () => {
    const hostKey = ecKey();
    const krk = ecKey();
    messages.length = 0;
    const refused = await attestHostKey(fx.ctx, {
      hostId: "e".repeat(64),
      nonce: "f".repeat(64),
      keyReleaseKey: spkiDer(krk).toString("base64"),
      signature: "",
    });
    assert.equal(refused.verdict.status, "UnauthorizedHost");
    assert.equal(
      (await admin(fx, "POST", "/admin/v1/hosts/key", { name: "h", publicKey: pem(hostKey) })).status,
      200,
    );
    const a = await injectClient(fx).attestHostKey({ hostKey, keyReleaseKey: krk });
    const { keyProtector } = protectorFor(fx.ctx.dir.guardianPublicPem);
    const body = releaseRequestBody(a.healthCertificate, krk, keyProtector);
    await releaseKey(fx.ctx, body);
    await assert.rejects(
      releaseKey(fx.ctx, body),
      (e: { code?: string }) => e.code === "HGS_ERR_HEALTH_CERTIFICATE",
    );

    assert.deepEqual(
      messages.map(({ channel, m }) => [channel, Object.keys(m).sort()]),
      [
        [ATTESTATION_CHANNEL, ["durationMs", "mode", "status"]],
        [ATTESTATION_CHANNEL, ["durationMs", "mode", "status"]],
        [RELEASE_CHANNEL, ["durationMs", "outcome"]],
        [RELEASE_CHANNEL, ["code", "durationMs", "outcome"]],
      ],
    );
    assert.deepEqual(
      messages.map(({ m }) => [m.mode ?? m.outcome, m.status ?? m.code]),
      [
        ["key", "UnauthorizedHost"],
        ["key", "Passed"],
        ["released", undefined],
        ["refused", "HGS_ERR_HEALTH_CERTIFICATE"],
      ],
    );
    for (const { m } of messages) assert.ok(typeof m.durationMs === "number" && m.durationMs >= 0);
  });

  it("each context owns its caches: a key or certificate memoised in one is unknown to another", () => {
    assert.notEqual(fx.ctx.caches.keys, other.ctx.caches.keys);
    const der = spkiDer(ecKey());
    const k = fx.ctx.caches.keys.fromSpki(der);
    assert.equal(fx.ctx.caches.keys.fromSpki(der), k, "a hit returns the memoised KeyObject");
    assert.notEqual(other.ctx.caches.keys.fromSpki(der), k);
    assert.notEqual(new PublicKeyCache().fromSpki(der), k);

    // A verifier re-checks a certificate's signature under another key claiming the same id;
    // two verifiers keep separate memos, so neither sees the other's successes.
    const signer = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const { text } = issueHealthCertificate({
      signer: signer.privateKey,
      hostId: "ab".repeat(32),
      name: "h",
      mode: "key",
      keyReleaseKey: createPublicKey(ecKey()),
      lifetimeSeconds: 600,
    });
    const o = { signerPublic: signer.publicKey, signerId: signerId(signer.publicKey) };
    const a = new HealthVerifier();
    const b = new HealthVerifier();
    assert.equal(a.verify(text, o).signingInput, a.verify(text, o).signingInput, "memoised in a");
    assert.notEqual(b.verify(text, o).signingInput, a.verify(text, o).signingInput, "not shared with b");
  });
});
