/**
 * Hardening issue 11, item 7, TPM mode with a real swtpm host: the key-release key is never the
 * host's AK or EK, at attestation and at release (a certificate binding one, as issued before
 * this check), and a restore does not revive a TPM host's certificates either.
 */
import assert from "node:assert/strict";
import type { KeyObject } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { issueHealthCertificate } from "../../src/attest/health.js";
import { spkiDer } from "../../src/attest/host-key.js";
import { tpmEvidence, type HgsRefusal } from "../../src/host/guarded/hgs-client.js";
import { loadPublicKey, publicKeyFromTpm } from "../../src/tpm/verify/keys.js";
import {
  admin,
  ecKey,
  host,
  injectClient,
  protectorFor,
  startHgs,
  type HgsFixture,
} from "../helpers/hgs-fixture.js";
import { captureBaselines, startSimHost, type SimHost } from "../helpers/hgs-host.js";

describe("HGS TPM mode: key-release key and restore (issue 11 item 7)", () => {
  let fx: HgsFixture;
  let sim: SimHost;
  before(async () => {
    fx = await startHgs();
    sim = await startSimHost();
    const reg = await admin(fx, "POST", "/admin/v1/hosts/tpm", {
      name: "tpm-host",
      ekPublic: sim.ekPublic.toString("base64"),
    });
    assert.equal(reg.status, 200, JSON.stringify(reg.body));
    const b = await captureBaselines(sim);
    assert.equal((await admin(fx, "POST", "/admin/v1/baselines", b.secureboot)).status, 200);
    assert.equal((await admin(fx, "POST", "/admin/v1/baselines", b.codeintegrity)).status, 200);
    await injectClient(fx).enrollAk({ hostId: sim.hostId, tpm: sim.tpm, ek: sim.ek, ak: sim.ak });
  });
  after(async () => {
    await sim?.stop();
    await fx?.close();
  });

  const attest = (keyReleaseKey: KeyObject) =>
    injectClient(fx).attestTpm({
      hostId: sim.hostId,
      tpm: sim.tpm,
      ak: sim.ak,
      keyReleaseKey,
      eventLog: sim.eventLog(),
    });

  it("refuses the AK or the EK as key-release key", async () => {
    const ak = publicKeyFromTpm(sim.ak.public.value);
    const ek = loadPublicKey(sim.ekPublic).key;
    for (const [what, key] of [
      ["AK", ak],
      ["EK", ek],
    ] as const) {
      // By hand: the client takes a private key-release key, and the AK's never leaves the TPM.
      const { nonce } = await injectClient(fx).challenge(sim.hostId);
      const evidence = await tpmEvidence(sim.tpm, sim.ak, Buffer.from(nonce, "hex"), key);
      const r = await host<{ verdict: { findings: { id: string }[] }; error: { code: string } }>(
        fx,
        "/host/v1/attest/tpm",
        {
          hostId: sim.hostId,
          nonce,
          keyReleaseKey: spkiDer(key).toString("base64"),
          ...evidence,
          eventLog: Buffer.from(sim.eventLog()).toString("base64"),
        },
      );
      assert.equal(r.status, 403, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, "HGS_ERR_ATTESTATION_FAILED");
      assert.ok(
        r.body.verdict.findings.some((f) => f.id === "key-release-key.is-host-key"),
        what,
      );
    }
    assert.equal((await attest(ecKey())).verdict.status, "Passed");
  });

  it("refuses a release under a certificate that binds the AK", async () => {
    const ak = publicKeyFromTpm(sim.ak.public.value);
    const { text } = issueHealthCertificate({
      signer: fx.ctx.signer.key,
      hostId: sim.hostId,
      name: "tpm-host",
      mode: "tpm",
      keyReleaseKey: ak,
      lifetimeSeconds: 3600,
    });
    const { keyProtector } = protectorFor(fx.ctx.dir.guardianPublicPem);
    // The proof is signed by some key; the certificate's key-release key is refused first.
    const r = await fx.app.inject({
      method: "POST",
      url: "/host/v1/keys/release",
      payload: {
        healthCertificate: text,
        keyProtector: Buffer.from(keyProtector).toString("base64"),
        requestId: "ab".repeat(16),
        timestamp: Date.now(),
        signature: Buffer.alloc(64).toString("base64"),
      },
    });
    assert.equal(r.statusCode, 403);
    assert.equal(
      (r.json() as { error: { details: { finding: string } } }).error.details.finding,
      "key-release-key.is-host-key",
    );
  });

  it("a restored TPM host attests again before its keys are released", async () => {
    const krk = ecKey();
    const a = await attest(krk);
    const { keyProtector } = protectorFor(fx.ctx.dir.guardianPublicPem);
    const c = injectClient(fx);
    await c.releaseKey({ healthCertificate: a.healthCertificate, keyReleaseKey: krk, keyProtector });
    assert.equal((await admin(fx, "POST", `/admin/v1/hosts/${sim.hostId}/revoke`)).status, 200);
    assert.equal((await admin(fx, "POST", `/admin/v1/hosts/${sim.hostId}/restore`)).status, 200);
    await assert.rejects(
      c.releaseKey({ healthCertificate: a.healthCertificate, keyReleaseKey: krk, keyProtector }),
      (e: HgsRefusal) => e.code === "HGS_ERR_HEALTH_CERTIFICATE",
    );
    const again = await attest(krk);
    const r = await c.releaseKey({
      healthCertificate: again.healthCertificate,
      keyReleaseKey: krk,
      keyProtector,
    });
    assert.ok(r.newKey.keyGeneration > 0);
  });
});
