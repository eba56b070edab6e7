/**
 * EK certificates as a TPM vendor ships them: swtpm_setup manufactures the TPM and swtpm_localca
 * issues the EK certificates. HGS accepts the RSA EK once the issuing CA is trusted, refuses it
 * before, refuses a certificate of another key, enforces requireEkCertificate, and attests the
 * host end to end (credential activation to an RSA EK).
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { after, before, describe, it } from "node:test";
import {
  admin,
  ecKey,
  injectClient,
  protectorFor,
  startHgs,
  type HgsFixture,
} from "../helpers/hgs-fixture.js";
import {
  captureBaselines,
  manufactureTpm,
  startSimHost,
  type Manufactured,
  type SimHost,
} from "../helpers/hgs-host.js";

type Body = { id?: string; error?: { code: string; details?: { finding?: string } } };

describe("EK certificates from a manufactured swtpm", () => {
  let fx: HgsFixture;
  let mfg: Manufactured;
  let h: SimHost;
  before(async () => {
    fx = await startHgs();
    mfg = manufactureTpm();
    h = await startSimHost({}, { stateFrom: mfg.stateDir, ek: "rsa" });
  });
  after(async () => {
    await h?.stop();
    mfg?.remove();
    await fx?.close();
  });

  const register = (cert: Buffer | undefined) =>
    admin<Body>(fx, "POST", "/admin/v1/hosts/tpm", {
      name: "manufactured",
      ekPublic: h.ekPublic.toString("base64"),
      ...(cert ? { ekCertificate: cert.toString("base64") } : {}),
    });

  it("refuses the vendor's EK certificate until its CA is trusted, and a certificate of another key", async () => {
    const untrusted = await register(mfg.ekCertRsa);
    assert.equal(untrusted.status, 400);
    assert.equal(untrusted.body.error?.details?.finding, "ek-certificate.untrusted-root");
    const issuer = Buffer.from(new X509Certificate(mfg.issuerPem).raw).toString("base64");
    assert.equal((await admin(fx, "POST", "/admin/v1/tpm-roots", { certificate: issuer })).status, 200);
    const wrongKey = await register(mfg.ekCertEcc);
    assert.equal(wrongKey.status, 400);
    assert.equal(wrongKey.body.error?.details?.finding, "ek-certificate.key-mismatch");
  });

  it("requireEkCertificate refuses a host without one", async () => {
    assert.equal(
      (await admin(fx, "PATCH", "/admin/v1/settings", { requireEkCertificate: true })).status,
      200,
    );
    const r = await register(undefined);
    assert.equal(r.status, 400);
    assert.equal(r.body.error?.details?.finding, "ek-certificate.missing");
  });

  it("registers with the certificate and attests end to end with the RSA EK", async () => {
    const r = await register(mfg.ekCertRsa);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const b = await captureBaselines(h);
    await admin(fx, "POST", "/admin/v1/baselines", b.secureboot);
    await admin(fx, "POST", "/admin/v1/baselines", b.codeintegrity);
    const c = injectClient(fx);
    await c.enrollAk({ hostId: h.hostId, tpm: h.tpm, ek: h.ek, ak: h.ak });
    const krk = ecKey("secp384r1");
    const a = await c.attestTpm({
      hostId: h.hostId,
      tpm: h.tpm,
      ak: h.ak,
      keyReleaseKey: krk,
      eventLog: h.eventLog(),
    });
    assert.equal(a.verdict.status, "Passed");
    const { keyProtector, transportKey } = protectorFor(fx.ctx.dir.guardianPublicPem);
    const rel = await c.releaseKey({
      healthCertificate: a.healthCertificate,
      keyReleaseKey: krk,
      keyProtector,
    });
    assert.deepEqual(Buffer.from(rel.oldKey.key), Buffer.from(transportKey.key));
  });
});
