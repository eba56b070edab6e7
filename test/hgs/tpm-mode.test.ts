import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { HgsRefusal } from "../../src/host/guarded/hgs-client.js";
import {
  admin,
  ecKey,
  injectClient,
  protectorFor,
  startHgs,
  type HgsFixture,
} from "../helpers/hgs-fixture.js";
import { captureBaselines, startSimHost, type SimHost } from "../helpers/hgs-host.js";

describe("HGS TPM mode with a real swtpm host", () => {
  let fx: HgsFixture;
  let good: SimHost;
  before(async () => {
    fx = await startHgs();
    good = await startSimHost();
    const reg = await admin(fx, "POST", "/admin/v1/hosts/tpm", {
      name: "good",
      ekPublic: good.ekPublic.toString("base64"),
    });
    assert.equal(reg.status, 200, JSON.stringify(reg.body));
    const b = await captureBaselines(good);
    assert.equal((await admin(fx, "POST", "/admin/v1/baselines", b.secureboot)).status, 200);
    assert.equal((await admin(fx, "POST", "/admin/v1/baselines", b.codeintegrity)).status, 200);
  });
  after(async () => {
    await good?.stop();
    await fx?.close();
  });

  it("refuses attestation before the AK is bound to the EK", async () => {
    const c = injectClient(fx);
    await assert.rejects(
      c.attestTpm({
        hostId: good.hostId,
        tpm: good.tpm,
        ak: good.ak,
        keyReleaseKey: ecKey(),
        eventLog: good.eventLog(),
      }),
      (e: HgsRefusal) => e.verdict?.findings.some((f) => f.id === "host.ak-not-bound") === true,
    );
  });

  it("binds the AK by credential activation, attests, and releases keys", async () => {
    const c = injectClient(fx);
    const enrolled = await c.enrollAk({ hostId: good.hostId, tpm: good.tpm, ek: good.ek, ak: good.ak });
    assert.match(enrolled.akName, /^000b[0-9a-f]{64}$/);
    const krk = ecKey();
    const a = await c.attestTpm({
      hostId: good.hostId,
      tpm: good.tpm,
      ak: good.ak,
      keyReleaseKey: krk,
      eventLog: good.eventLog(),
    });
    assert.equal(a.verdict.status, "Passed", JSON.stringify(a.verdict));
    const { keyProtector, transportKey } = protectorFor(fx.ctx.dir.guardianPublicPem);
    const r = await c.releaseKey({
      healthCertificate: a.healthCertificate,
      keyReleaseKey: krk,
      keyProtector,
    });
    assert.deepEqual(Buffer.from(r.oldKey.key), Buffer.from(transportKey.key));
  });

  it("applies policy changes at once, also to a boot whose log verdict is memoised", async () => {
    const off = await startSimHost({ kernelCmdline: "root=/dev/vda2 ro intel_iommu=off" });
    try {
      assert.equal(
        (
          await admin(fx, "POST", "/admin/v1/hosts/tpm", {
            name: "iommu-off",
            ekPublic: off.ekPublic.toString("base64"),
          })
        ).status,
        200,
      );
      const c = injectClient(fx);
      await c.enrollAk({ hostId: off.hostId, tpm: off.tpm, ek: off.ek, ak: off.ak });
      // Same boot chain as `good` except the command line: register its code-integrity baseline.
      const b = await captureBaselines(off, "iommu-off");
      assert.equal((await admin(fx, "POST", "/admin/v1/baselines", b.codeintegrity)).status, 200);
      const attest = () =>
        c.attestTpm({
          hostId: off.hostId,
          tpm: off.tpm,
          ak: off.ak,
          keyReleaseKey: ecKey(),
          eventLog: off.eventLog(),
        });
      const refused = (e: HgsRefusal) => e.verdict?.findings.map((f) => f.id).join() === "hgs.iommu-enabled";
      await assert.rejects(attest(), refused);
      await assert.rejects(attest(), refused, "the memoised verdict says the same");
      assert.equal(
        (await admin(fx, "PUT", "/admin/v1/policies/Hgs_IommuEnabled", { enabled: false })).status,
        200,
      );
      assert.equal((await attest()).verdict.status, "Passed");
      assert.equal(
        (await admin(fx, "PUT", "/admin/v1/policies/Hgs_IommuEnabled", { enabled: true })).status,
        200,
      );
      await assert.rejects(attest(), refused);
    } finally {
      await off.stop();
    }
  });
});
