/**
 * HGS refuses an older key-protector generation (hardening issue 11, item 5): per protector id it
 * remembers the newest generation a host presented, and releases only that one or newer — so a
 * host that died between a release and installing the rolled protector still gets its keys with
 * the protector it has, while a copy older than one a host has since presented is refused.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { releaseKey } from "../../src/hgs/release.js";
import { releaseRequestBody } from "../../src/host/guarded/hgs-client.js";
import { parseKeyProtector } from "../../src/protector/key-protector.js";
import { startPostgres, type PgCluster } from "../helpers/hgs-postgres.js";
import {
  admin,
  ecKey,
  injectClient,
  pem,
  protectorFor,
  startHgs,
  type HgsFixture,
} from "../helpers/hgs-fixture.js";

for (const db of ["sqlite", "postgres"] as const)
  describe(`key release: generations never go back (${db})`, () => {
    let fx: HgsFixture;
    let cluster: PgCluster | undefined;
    before(async () => {
      if (db === "postgres") cluster = startPostgres();
      fx = await startHgs({ tls: false, ...(cluster ? { db: cluster.url } : {}) });
      assert.equal((await admin(fx, "PATCH", "/admin/v1/settings", { mode: "key" })).status, 200);
    });
    after(async () => {
      await fx.close();
      cluster?.stop();
    });

    it("releases the newest presented generation (host died before installing) and refuses older ones", async () => {
      const hostKey = ecKey();
      const krk = ecKey();
      assert.equal(
        (await admin(fx, "POST", "/admin/v1/hosts/key", { name: "h", publicKey: pem(hostKey) })).status,
        200,
      );
      const { healthCertificate } = await injectClient(fx).attestHostKey({ hostKey, keyReleaseKey: krk });
      const release = async (kp: Uint8Array) => {
        const r = await releaseKey(fx.ctx, releaseRequestBody(healthCertificate, krk, kp));
        return Buffer.from(r.keyProtector, "base64");
      };
      const { keyProtector: g1 } = protectorFor(fx.ctx.dir.guardianPublicPem);
      const g2 = await release(g1);
      assert.equal(parseKeyProtector(g2).keyGeneration, 2);
      // The host died before writing g2: generation 1 is still the newest presented, and releases.
      const g2b = await release(g1);
      assert.equal(parseKeyProtector(g2b).keyGeneration, 2);
      // The host installed g2b and presents it at its next start: generation 1 is now a rollback.
      const g3 = await release(g2b);
      assert.equal(parseKeyProtector(g3).keyGeneration, 3);
      await assert.rejects(release(g1), (e: { code?: string; details?: Record<string, unknown> }) => {
        assert.equal(e.code, "HGS_ERR_KEY_PROTECTOR");
        assert.equal(e.details?.["finding"], "key-protector.rollback");
        assert.equal(e.details?.["got"], "1");
        return true;
      });
      // The other generation-2 copy (issued, never presented) is as old as the presented one: released.
      assert.equal(parseKeyProtector(await release(g2)).keyGeneration, 3);
      // After g3 is presented, neither generation 2 copy is.
      await release(g3);
      await assert.rejects(release(g2b), { code: "HGS_ERR_KEY_PROTECTOR" });
      assert.deepEqual(
        await fx.ctx.repo.keyGenerations(Buffer.from(parseKeyProtector(g1).protectorId).toString("hex")),
        {
          presented: 3,
          released: 4,
        },
      );
    });
  });
