/**
 * Named attacks on HGS: each must be refused with a precise finding (or error code), never a
 * generic failure. Host-key mode and key release run in-process (fastify inject); TPM mode uses
 * real swtpm hosts whose boot is the real event log of our guest's boot, or a variant of it
 * edited as the changed boot would have been measured (hgs-boot.ts).
 */
import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { createCertificate } from "../../src/asn1/x509.js";
import { HgsRefusal, releaseRequestBody, tpmEvidence } from "../../src/host/guarded/hgs-client.js";
import { issueHealthCertificate } from "../../src/attest/health.js";
import { auditVerdict, listAuditEntries, verifyAudit } from "../../src/hgs/admin.js";
import { attestKeyMessage, keyId, signWithHostKey, spkiDer } from "../../src/attest/host-key.js";
import { quoteQualifyingData, tpm2bPublicBytes } from "../../src/attest/tpm-wire.js";
import { TPM_ALG } from "../../src/tpm/alg.js";
import { TPM_RH, TPM_SU } from "../../src/tpm/constants.js";
import { pcrSelection } from "../../src/tpm/pcr.js";
import { akTemplateEccP256 } from "../../src/tpm/templates.js";
import { publicKeyFromTpm } from "../../src/tpm/verify/keys.js";
import { objectAttributes } from "../../src/tpm/constants.js";
import {
  admin,
  ecKey,
  host,
  injectClient,
  pem,
  protectorFor,
  rsaKey,
  startHgs,
  type HgsFixture,
} from "./hgs-fixture.js";
import {
  captureBaselines,
  realKernelArgs,
  startSimHost,
  withGrubText,
  type BootConfig,
  type SimHost,
} from "./hgs-host.js";
import type { KeyObject } from "node:crypto";

type Body = {
  error?: { code: string; details?: { finding?: string } };
  verdict?: { status: string; subStatuses: string[]; findings: { id: string }[] };
};

function findingIds(b: Body): string[] {
  return [
    ...(b.verdict?.findings.map((f) => f.id) ?? []),
    ...(b.error?.details?.finding ? [b.error.details.finding] : []),
  ];
}

function expectRefused(r: { status: number; body: unknown }, status: number, finding: string): void {
  const b = r.body as Body;
  assert.equal(r.status, status, JSON.stringify(b));
  assert.ok(
    findingIds(b).includes(finding),
    `expected finding ${finding}, got ${JSON.stringify(findingIds(b))} ${JSON.stringify(b)}`,
  );
}

async function keyAttestBody(
  fx: HgsFixture,
  hostKey: KeyObject,
  krk: KeyObject,
  o: { signer?: KeyObject; hostId?: string; nonce?: string } = {},
) {
  const hostId = o.hostId ?? keyId(hostKey);
  const nonce = o.nonce ?? (await host<{ nonce: string }>(fx, "/host/v1/challenge", { hostId })).body.nonce;
  const sig = signWithHostKey(
    o.signer ?? hostKey,
    attestKeyMessage(Buffer.from(nonce, "hex"), createPublicKey(krk), hostId),
  );
  return { hostId, nonce, keyReleaseKey: spkiDer(krk).toString("base64"), signature: sig.toString("base64") };
}

/**
 * Defines both attack suites; `db(name)` gives a fresh database spec for each HGS the suites
 * start (undefined = the default embedded SQLite), so the same cases run against PostgreSQL.
 */
export function defineAttackSuites(label: string, db: (name: string) => Promise<string | undefined>): void {
  describe(`${label}: attacks on host-key attestation and key release`, () => {
    let fx: HgsFixture;
    let other: HgsFixture;
    const hostKey = ecKey();
    const krk = ecKey();
    let cert = "";

    before(async () => {
      fx = await startHgs(await dbOpt(db, "attacks_a"));
      other = await startHgs(await dbOpt(db, "attacks_b"));
      for (const f of [fx, other])
        assert.equal((await admin(f, "PATCH", "/admin/v1/settings", { mode: "key" })).status, 200);
      assert.equal(
        (await admin(fx, "POST", "/admin/v1/hosts/key", { name: "h", publicKey: pem(hostKey) })).status,
        200,
      );
      assert.equal(
        (await admin(other, "POST", "/admin/v1/hosts/key", { name: "h", publicKey: pem(hostKey) })).status,
        200,
      );
      const a = await host<{ healthCertificate: string }>(
        fx,
        "/host/v1/attest/key",
        await keyAttestBody(fx, hostKey, krk),
      );
      assert.equal(a.status, 200);
      cert = a.body.healthCertificate;
    });
    after(async () => {
      await fx?.close();
      await other?.close();
    });

    const release = (f: HgsFixture, body: unknown) => host(f, "/host/v1/keys/release", body);

    it("A01 replayed attestation nonce", async () => {
      const body = await keyAttestBody(fx, hostKey, krk);
      assert.equal((await host(fx, "/host/v1/attest/key", body)).status, 200);
      expectRefused(await host(fx, "/host/v1/attest/key", body), 403, "nonce.replayed");
    });

    it("A02 nonce issued to another host", async () => {
      const otherKey = ecKey();
      const { nonce } = (await host<{ nonce: string }>(fx, "/host/v1/challenge", { hostId: keyId(otherKey) }))
        .body;
      expectRefused(
        await host(fx, "/host/v1/attest/key", await keyAttestBody(fx, hostKey, krk, { nonce })),
        403,
        "nonce.other-host",
      );
    });

    it("A03 nonce never issued", async () => {
      expectRefused(
        await host(
          fx,
          "/host/v1/attest/key",
          await keyAttestBody(fx, hostKey, krk, { nonce: randomBytes(32).toString("hex") }),
        ),
        403,
        "nonce.unknown",
      );
    });

    it("A04 expired nonce", async () => {
      const { nonce } = (await host<{ nonce: string }>(fx, "/host/v1/challenge", { hostId: keyId(hostKey) }))
        .body;
      await fx.ctx.repo.driver.run(`UPDATE nonces SET expires_at = ? WHERE nonce = ?`, [
        Date.now() - 1,
        nonce,
      ]);
      expectRefused(
        await host(fx, "/host/v1/attest/key", await keyAttestBody(fx, hostKey, krk, { nonce })),
        403,
        "nonce.expired",
      );
    });

    it("A05 unregistered host key", async () => {
      expectRefused(
        await host(fx, "/host/v1/attest/key", await keyAttestBody(fx, ecKey(), krk)),
        403,
        "host.not-registered",
      );
    });

    it("A06 challenge signed by another key (forged host identity)", async () => {
      const b = await keyAttestBody(fx, hostKey, krk, { signer: ecKey() });
      const r = await host<Body>(fx, "/host/v1/attest/key", b);
      expectRefused(r, 403, "host-key.bad-signature");
      assert.equal(r.body.verdict?.status, "UnauthorizedHost");
    });

    it("A07 key-release key swapped after signing", async () => {
      const b = await keyAttestBody(fx, hostKey, krk);
      expectRefused(
        await host(fx, "/host/v1/attest/key", { ...b, keyReleaseKey: spkiDer(ecKey()).toString("base64") }),
        403,
        "host-key.bad-signature",
      );
    });

    it("A08 unsupported key-release key (RSA-2048)", async () => {
      expectRefused(
        await host(fx, "/host/v1/attest/key", await keyAttestBody(fx, hostKey, rsaKey(2048))),
        403,
        "key-release-key.unsupported",
      );
    });

    it("A09 weak host key refused at registration (RSA-1024, P-521)", async () => {
      for (const k of [rsaKey(1024), generateKeyPairSync("ec", { namedCurve: "secp521r1" }).privateKey]) {
        const r = await admin<Body>(fx, "POST", "/admin/v1/hosts/key", { name: "weak", publicKey: pem(k) });
        assert.equal(r.status, 400);
        assert.equal(r.body.error?.code, "HGS_ERR_INVALID");
      }
    });

    it("A10 admin API without or with a wrong credential", async () => {
      const none = await fx.app.inject({ method: "GET", url: "/admin/v1/hosts" });
      assert.equal(none.statusCode, 401);
      const wrong = await fx.app.inject({
        method: "GET",
        url: "/admin/v1/hosts",
        headers: { authorization: `Bearer ${other.admin}` },
      });
      assert.equal(wrong.statusCode, 401);
      assert.equal((wrong.json() as Body).error?.code, "HGS_ERR_UNAUTHENTICATED");
    });

    it("A11 expired health certificate", async () => {
      const old = issueHealthCertificate({
        signer: fx.ctx.dir.attestationSigner,
        hostId: keyId(hostKey),
        name: "h",
        mode: "key",
        keyReleaseKey: createPublicKey(krk),
        lifetimeSeconds: 3600,
        now: Date.now() - 2 * 3600_000,
      }).text;
      expectRefused(
        await release(
          fx,
          releaseRequestBody(old, krk, protectorFor(fx.ctx.dir.guardianPublicPem).keyProtector),
        ),
        403,
        "health-certificate.expired",
      );
    });

    it("A12 forged health certificate (right issuer id, wrong signing key)", async () => {
      const forged = issueHealthCertificate({
        signer: ecKey(),
        hostId: keyId(hostKey),
        name: "h",
        mode: "key",
        keyReleaseKey: createPublicKey(krk),
        lifetimeSeconds: 3600,
      }).text;
      const [, p, s] = forged.split(".");
      const [h] = cert.split(".");
      const payload = JSON.parse(Buffer.from(p as string, "base64url").toString()) as Record<string, unknown>;
      payload.iss = fx.ctx.signer.id;
      const withOurIssuer = `${h}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${s}`;
      expectRefused(
        await release(
          fx,
          releaseRequestBody(withOurIssuer, krk, protectorFor(fx.ctx.dir.guardianPublicPem).keyProtector),
        ),
        403,
        "health-certificate.bad-signature",
      );
    });

    it("A13 health certificate from another HGS", async () => {
      const a = await host<{ healthCertificate: string }>(
        other,
        "/host/v1/attest/key",
        await keyAttestBody(other, hostKey, krk),
      );
      assert.equal(a.status, 200);
      expectRefused(
        await release(
          fx,
          releaseRequestBody(
            a.body.healthCertificate,
            krk,
            protectorFor(fx.ctx.dir.guardianPublicPem).keyProtector,
          ),
        ),
        403,
        "health-certificate.unknown-issuer",
      );
    });

    it("A14 health certificate edited to name the attacker's key", async () => {
      const attacker = ecKey();
      const [h, p, s] = cert.split(".");
      const payload = JSON.parse(Buffer.from(p as string, "base64url").toString()) as Record<string, unknown>;
      payload.krk = spkiDer(attacker).toString("base64");
      const edited = `${h}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${s}`;
      expectRefused(
        await release(
          fx,
          releaseRequestBody(edited, attacker, protectorFor(fx.ctx.dir.guardianPublicPem).keyProtector),
        ),
        403,
        "health-certificate.bad-signature",
      );
    });

    it("A15 replayed key release request", async () => {
      const body = releaseRequestBody(cert, krk, protectorFor(fx.ctx.dir.guardianPublicPem).keyProtector);
      assert.equal((await release(fx, body)).status, 200);
      expectRefused(await release(fx, body), 403, "request.replayed");
    });

    it("A16 stolen health certificate used without the key-release key", async () => {
      expectRefused(
        await release(
          fx,
          releaseRequestBody(cert, ecKey(), protectorFor(fx.ctx.dir.guardianPublicPem).keyProtector),
        ),
        403,
        "request.bad-proof",
      );
    });

    it("A17 stale key release request (timestamp outside the window)", async () => {
      const body = releaseRequestBody(
        cert,
        krk,
        protectorFor(fx.ctx.dir.guardianPublicPem).keyProtector,
        Date.now() - 3600_000,
      );
      expectRefused(await release(fx, body), 403, "request.stale");
    });

    it("A18 key protector wrapped for another fabric", async () => {
      expectRefused(
        await release(
          fx,
          releaseRequestBody(cert, krk, protectorFor(other.ctx.dir.guardianPublicPem).keyProtector),
        ),
        403,
        "key-protector.not-a-guardian",
      );
    });

    it("A19 tampered key protector (MAC byte, owner signature byte, truncated)", async () => {
      const kp = Buffer.from(protectorFor(fx.ctx.dir.guardianPublicPem).keyProtector);
      const macFlip = Buffer.from(kp);
      macFlip.writeUInt8((macFlip.at(-1) ?? 0) ^ 1, macFlip.length - 1);
      expectRefused(await release(fx, releaseRequestBody(cert, krk, macFlip)), 403, "key-protector.mac");
      const truncated = kp.subarray(0, kp.length - 40);
      expectRefused(
        await release(fx, releaseRequestBody(cert, krk, truncated)),
        403,
        "key-protector.malformed",
      );
    });

    it("A20 oversized and malformed bodies", async () => {
      const big = await fx.app.inject({
        method: "POST",
        url: "/host/v1/challenge",
        headers: { "content-type": "application/json" },
        payload: JSON.stringify({ hostId: "a".repeat(4000) }),
      });
      assert.equal(big.statusCode, 413);
      assert.equal((big.json() as Body).error?.details?.finding, "request.too-large");
      const bad = await fx.app.inject({
        method: "POST",
        url: "/host/v1/challenge",
        headers: { "content-type": "application/json" },
        payload: "{not json",
      });
      assert.equal(bad.statusCode, 400);
      const extra = await host<Body>(fx, "/host/v1/challenge", { hostId: keyId(hostKey), admin: true });
      expectRefused(extra, 400, "request.schema");
      const wrongType = await host<Body>(fx, "/host/v1/attest/key", {
        hostId: 5,
        nonce: [],
        keyReleaseKey: {},
        signature: null,
      });
      expectRefused(wrongType, 400, "request.schema");
    });

    it("A21 host revoked after its certificate was issued", async () => {
      const k2 = ecKey();
      const reg = await admin<{ id: string }>(fx, "POST", "/admin/v1/hosts/key", {
        name: "soon-revoked",
        publicKey: pem(k2),
      });
      const a = await host<{ healthCertificate: string }>(
        fx,
        "/host/v1/attest/key",
        await keyAttestBody(fx, k2, krk),
      );
      assert.equal((await admin(fx, "POST", `/admin/v1/hosts/${reg.body.id}/revoke`)).status, 200);
      expectRefused(
        await release(
          fx,
          releaseRequestBody(
            a.body.healthCertificate,
            krk,
            protectorFor(fx.ctx.dir.guardianPublicPem).keyProtector,
          ),
        ),
        403,
        "host.revoked",
      );
      expectRefused(
        await host(fx, "/host/v1/attest/key", await keyAttestBody(fx, k2, krk)),
        403,
        "host.revoked",
      );
    });

    it("A22 certificate issued before the deny-before date", async () => {
      const a = await host<{ healthCertificate: string }>(
        fx,
        "/host/v1/attest/key",
        await keyAttestBody(fx, hostKey, krk),
      );
      assert.equal(
        (await admin(fx, "PATCH", "/admin/v1/settings", { denyBefore: Date.now() + 2000 })).status,
        200,
      );
      try {
        expectRefused(
          await release(
            fx,
            releaseRequestBody(
              a.body.healthCertificate,
              krk,
              protectorFor(fx.ctx.dir.guardianPublicPem).keyProtector,
            ),
          ),
          403,
          "health-certificate.issued-before-deny-date",
        );
      } finally {
        await admin(fx, "PATCH", "/admin/v1/settings", { denyBefore: 0 });
      }
    });

    it("A23 host-key certificate after the fabric switched to TPM mode", async () => {
      assert.equal((await admin(fx, "PATCH", "/admin/v1/settings", { mode: "tpm" })).status, 200);
      try {
        expectRefused(
          await release(
            fx,
            releaseRequestBody(cert, krk, protectorFor(fx.ctx.dir.guardianPublicPem).keyProtector),
          ),
          403,
          "health-certificate.mode-mismatch",
        );
        expectRefused(
          await host(fx, "/host/v1/attest/key", await keyAttestBody(fx, hostKey, krk)),
          409,
          "mode.mismatch",
        );
      } finally {
        await admin(fx, "PATCH", "/admin/v1/settings", { mode: "key" });
      }
    });

    it("every refusal above is in the audit chain, and an edited entry is detected", async () => {
      const v = await auditVerdict(fx.ctx);
      assert.equal(v.ok, true);
      const refused = (await listAuditEntries(fx.ctx, 0, 10_000)).filter((e) => e.event === "key.refused");
      assert.ok(refused.length >= 10, `refusals audited: ${refused.length}`);
      const target = refused[0]!;
      // The table refuses edits; an attacker who owns the database drops the guard first.
      await assert.rejects(
        fx.ctx.repo.driver.run(`DELETE FROM audit WHERE seq = ?`, [target.seq]),
        /append-only/,
      );
      await fx.ctx.repo.driver.run(
        fx.ctx.repo.driver.kind === "sqlite"
          ? `DROP TRIGGER audit_no_update`
          : `DROP TRIGGER audit_no_update ON audit`,
      );
      await fx.ctx.repo.driver.run(`UPDATE audit SET detail = ? WHERE seq = ?`, [
        JSON.stringify({ ...target.detail, code: "forged" }),
        target.seq,
      ]);
      const broken = await auditVerdict(fx.ctx);
      assert.equal(broken.ok, false);
      await assert.rejects(verifyAudit(fx.ctx), (e: { code?: string }) => e.code === "HGS_ERR_AUDIT_BROKEN");
      assert.ok(broken.findings.some((f) => f.seq === target.seq && f.id === "audit.hash-mismatch"));
    });
  });

  describe(`${label}: attacks on TPM attestation (real swtpm hosts)`, () => {
    let fx: HgsFixture;
    let good: SimHost;
    const hosts: SimHost[] = [];

    async function registeredHost(boot: BootConfig = {}, enroll = true): Promise<SimHost> {
      const h = await startSimHost(boot);
      hosts.push(h);
      const r = await admin(fx, "POST", "/admin/v1/hosts/tpm", {
        name: `host-${hosts.length}`,
        ekPublic: h.ekPublic.toString("base64"),
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      if (enroll) await injectClient(fx).enrollAk({ hostId: h.hostId, tpm: h.tpm, ek: h.ek, ak: h.ak });
      return h;
    }

    /** Fresh nonce, real quote; `tamper` edits the body before it is posted. */
    async function attest(
      h: SimHost,
      tamper: (b: Record<string, unknown>) => void | Promise<void> = () => undefined,
      krk = ecKey(),
    ) {
      const { nonce } = (await host<{ nonce: string }>(fx, "/host/v1/challenge", { hostId: h.hostId })).body;
      const ev = await tpmEvidence(h.tpm, h.ak, Buffer.from(nonce, "hex"), createPublicKey(krk));
      const body: Record<string, unknown> = {
        hostId: h.hostId,
        nonce,
        keyReleaseKey: spkiDer(krk).toString("base64"),
        ...ev,
        eventLog: Buffer.from(h.eventLog()).toString("base64"),
      };
      await tamper(body);
      return host<Body>(fx, "/host/v1/attest/tpm", body);
    }

    before(async () => {
      fx = await startHgs(await dbOpt(db, "attacks_tpm"));
      good = await registeredHost();
      const b = await captureBaselines(good);
      assert.equal((await admin(fx, "POST", "/admin/v1/baselines", b.secureboot)).status, 200);
      assert.equal((await admin(fx, "POST", "/admin/v1/baselines", b.codeintegrity)).status, 200);
      assert.equal((await attest(good)).status, 200);
    });
    after(async () => {
      for (const h of hosts) await h.stop();
      await fx?.close();
    });

    it("T01 replayed quote (an old quote against a fresh nonce)", async () => {
      let old: Record<string, unknown> = {};
      await attest(good, (b) => {
        old = { ...b };
      });
      const r = await attest(good, (b) => {
        b.quote = old.quote;
        b.signature = old.signature;
      });
      expectRefused(r, 403, "quote.nonce");
    });

    it("T02 quote for another key-release key (nonce binding)", async () => {
      const r = await attest(good, (b) => {
        b.keyReleaseKey = spkiDer(ecKey()).toString("base64");
      });
      expectRefused(r, 403, "quote.nonce");
    });

    it("T03 trimmed PCR selection (PCRs 0..7 only)", async () => {
      const krk = ecKey();
      const r = await attest(
        good,
        async (b) => {
          const q = await good.tpm.quote(
            good.ak,
            quoteQualifyingData(Buffer.from(b.nonce as string, "hex"), createPublicKey(krk)),
            [pcrSelection(TPM_ALG.SHA256, [0, 1, 2, 3, 4, 5, 6, 7])],
          );
          const { encode } = await import("../../src/core/codec.js");
          const { TPMT_SIGNATURE } = await import("../../src/tpm/structures.js");
          b.quote = Buffer.from(q.quoted).toString("base64");
          b.signature = Buffer.from(encode(TPMT_SIGNATURE, q.signature)).toString("base64");
        },
        krk,
      );
      expectRefused(r, 403, "quote.pcrSelection");
    });

    it("T04 PCR values that are not the quoted ones", async () => {
      const r = await attest(good, (b) => {
        (b.pcrs as Record<string, string>)["8"] = "11".repeat(32);
      });
      expectRefused(r, 403, "quote.pcrDigest");
    });

    const isKernelCmdline = (e: { pcr: number; data: Uint8Array }) =>
      e.pcr === 8 && Buffer.from(e.data).toString("latin1").startsWith("kernel_cmdline: ");
    /** The real kernel command line with `nokaslr` added (what a tampered boot would show). */
    const editedCmdline = () => `/bulwark/vmlinuz ${realKernelArgs()} nokaslr`;

    it("T05 event log edited (kernel command line changed)", async () => {
      const r = await attest(good, (b) => {
        const evs = good.events.map((e) =>
          isKernelCmdline(e)
            ? { ...e, data: new Uint8Array(Buffer.from(`kernel_cmdline: ${editedCmdline()}\0`, "latin1")) }
            : e,
        );
        b.eventLog = Buffer.from(good.eventLog(evs)).toString("base64");
      });
      expectRefused(r, 403, "eventlog.grub-string-mismatch");
      assert.equal(r.body.verdict?.status, "InvalidEvidence");
    });

    it("T05b event log edited with a matching digest (replay no longer equals the TPM)", async () => {
      const r = await attest(good, (b) => {
        // Digests recomputed in every bank as grub computes them: the string is proven, PCR 8 is not.
        const evs = good.events.map((e) => (isKernelCmdline(e) ? withGrubText(e, editedCmdline()) : e));
        b.eventLog = Buffer.from(good.eventLog(evs)).toString("base64");
      });
      expectRefused(r, 403, "eventlog.pcr-mismatch");
      assert.ok(!findingIds(r.body).includes("eventlog.grub-string-mismatch"), "the string itself is proven");
      assert.equal(r.body.verdict?.status, "InvalidEvidence");
    });

    it("T06 event log with an event removed", async () => {
      const r = await attest(good, (b) => {
        b.eventLog = Buffer.from(
          good.eventLog(
            good.events.filter((e) => e.pcr !== 9 || !Buffer.from(e.data).toString().includes("/initrd")),
          ),
        ).toString("base64");
      });
      expectRefused(r, 403, "eventlog.pcr-mismatch");
    });

    it("T07 AK not bound to the EK (AK of another TPM presented under this host's id)", async () => {
      const rogue = await startSimHost();
      hosts.push(rogue);
      const c = await host<{ challengeId: string }>(fx, "/host/v1/tpm/ak/challenge", {
        hostId: good.hostId,
        akPublic: tpm2bPublicBytes(rogue.ak.public).toString("base64"),
      });
      assert.equal(c.status, 200);
      // The rogue TPM cannot activate a credential made to good's EK; it guesses the secret.
      const r = await host(fx, "/host/v1/tpm/ak/activate", {
        hostId: good.hostId,
        challengeId: c.body.challengeId,
        secret: randomBytes(32).toString("base64"),
      });
      expectRefused(r, 403, "credential.secret-mismatch");
    });

    it("T08 another EK: quotes of a different TPM under a registered host id", async () => {
      const rogue = await startSimHost();
      hosts.push(rogue);
      const r = await attest(good, async (b) => {
        const ev = await tpmEvidence(
          rogue.tpm,
          rogue.ak,
          Buffer.from(b.nonce as string, "hex"),
          createPublicKey(ecKey()),
        );
        Object.assign(b, ev);
      });
      expectRefused(r, 403, "quote.signature");
    });

    it("T09 EK certificate from an untrusted root", async () => {
      const h = await startSimHost();
      hosts.push(h);
      const ca = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
      const caCert = createCertificate({
        subject: [{ type: "CN", value: "Evil TPM CA" }],
        publicKey: ca.publicKey,
        signingKey: ca.privateKey,
        ca: true,
      });
      const ekCert = createCertificate({
        subject: [{ type: "CN", value: "EK" }],
        issuerCertificate: caCert,
        publicKey: publicKeyFromTpm(h.ek.public.value),
        signingKey: ca.privateKey,
      });
      const r = await admin<Body>(fx, "POST", "/admin/v1/hosts/tpm", {
        name: "untrusted-ek",
        ekPublic: h.ekPublic.toString("base64"),
        ekCertificate: Buffer.from(ekCert).toString("base64"),
      });
      expectRefused(r, 400, "ek-certificate.untrusted-root");
      // Once the admin trusts that CA, the same registration passes.
      assert.equal(
        (
          await admin(fx, "POST", "/admin/v1/tpm-roots", {
            certificate: Buffer.from(caCert).toString("base64"),
          })
        ).status,
        200,
      );
      const ok = await admin(fx, "POST", "/admin/v1/hosts/tpm", {
        name: "trusted-ek",
        ekPublic: h.ekPublic.toString("base64"),
        ekCertificate: Buffer.from(ekCert).toString("base64"),
      });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
    });

    it("T10 AK that is not a restricted signing key", async () => {
      const tmpl = akTemplateEccP256();
      const loose = await good.tpm.createPrimary(TPM_RH.ENDORSEMENT, {
        ...tmpl,
        objectAttributes: objectAttributes(
          "fixedTPM",
          "fixedParent",
          "sensitiveDataOrigin",
          "userWithAuth",
          "sign",
        ),
      });
      const r = await host<Body>(fx, "/host/v1/tpm/ak/challenge", {
        hostId: good.hostId,
        akPublic: tpm2bPublicBytes(loose.public).toString("base64"),
      });
      await good.tpm.flushContext(loose.handle);
      assert.equal(r.status, 400);
      assert.match(r.body.error?.details?.finding ?? "", /^ak\.attributes/);
    });

    it("T11 Secure Boot disabled", async () => {
      const r = await attest(await registeredHost({ secureBoot: false }));
      expectRefused(r, 403, "eventlog.secure-boot-disabled");
      assert.equal(r.body.verdict?.status, "InsecureHostConfiguration");
      assert.ok(r.body.verdict?.subStatuses.includes("SecureBoot"));
    });

    it("T12 firmware in debug mode", async () => {
      const r = await attest(await registeredHost({ debugMode: true }));
      expectRefused(r, 403, "hgs.uefi-debug-disabled");
      assert.ok(r.body.verdict?.subStatuses.includes("FirmwareDebug"));
    });

    it("T13 Secure Boot settings differ from the baseline (another db)", async () => {
      const r = await attest(await registeredHost({ db: "a db that trusts everything" }));
      expectRefused(r, 403, "hgs.secure-boot-settings");
      assert.ok(r.body.verdict?.subStatuses.includes("SecureBootSettings"));
    });

    it("T14 boot chain differs from the baseline", async () => {
      const r = await attest(await registeredHost({ bootChain: "unsigned-custom-kernel" }));
      expectRefused(r, 403, "hgs.code-integrity-policy");
      assert.ok(r.body.verdict?.subStatuses.includes("CodeIntegrityPolicy"));
    });

    it("T15 IOMMU off on the kernel command line", async () => {
      const args = realKernelArgs().replace(/\bintel_iommu=on\b/, "intel_iommu=off");
      assert.match(args, /intel_iommu=off/);
      const r = await attest(await registeredHost({ kernelCmdline: args }));
      expectRefused(r, 403, "hgs.iommu-enabled");
      assert.ok(r.body.verdict?.subStatuses.includes("Iommu"));
    });

    it("T15b no IOMMU option on the kernel command line", async () => {
      const r = await attest(await registeredHost({ iommu: false }));
      expectRefused(r, 403, "hgs.iommu-enabled");
      assert.ok(r.body.verdict?.subStatuses.includes("Iommu"));
    });

    it("T16 resumed host, not a full boot (TPM Shutdown(STATE) then Startup(STATE))", async () => {
      const h = await registeredHost();
      await h.tpm.shutdown(TPM_SU.STATE);
      await h.control.init();
      await h.tpm.startup(TPM_SU.STATE);
      // The resumed TPM keeps PCRs and objects? Primary keys are transient: recreate the AK
      // deterministically (same template, same seed → same key) and use it.
      const ak = await h.tpm.createPrimary(TPM_RH.ENDORSEMENT, akTemplateEccP256());
      const resumed: SimHost = { ...h, ak };
      const r = await attest(resumed);
      expectRefused(r, 403, "hgs.full-boot");
      assert.ok(r.body.verdict?.subStatuses.includes("FullBoot"));
    });

    it("T17 revoked TPM host", async () => {
      const h = await registeredHost();
      assert.equal((await admin(fx, "POST", `/admin/v1/hosts/${h.hostId}/revoke`)).status, 200);
      expectRefused(await attest(h), 403, "host.revoked");
    });

    it("T18 event log that is not a TCG log", async () => {
      expectRefused(
        await attest(good, (b) => {
          b.eventLog = randomBytes(200).toString("base64");
        }),
        403,
        "eventlog.parse",
      );
    });

    it("a healthy host still passes after all of the above", async () => {
      const c = injectClient(fx);
      const a = await c.attestTpm({
        hostId: good.hostId,
        tpm: good.tpm,
        ak: good.ak,
        keyReleaseKey: ecKey(),
        eventLog: good.eventLog(),
      });
      assert.equal(a.verdict.status, "Passed");
      assert.ok(a.healthCertificate.length > 0);
      assert.ok(HgsRefusal);
    });
  });
}

async function dbOpt(
  db: (name: string) => Promise<string | undefined>,
  name: string,
): Promise<{ db?: string }> {
  const spec = await db(name);
  return spec ? { db: spec } : {};
}
