/**
 * Key release across key-protector format versions, over the real routes (in process, SQLite):
 * an HGS initialised before the X25519 suite (P-256 guardian, the golden v1 fixture's own
 * guardian) still releases the golden version-1 protector written then, and the rolled one stays
 * version 1; a fabric made by today's `hgs init` (X25519 encryption key) releases version-2
 * protectors. Both answers open with the host's key-release key to the expected keys.
 */
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { openHgs } from "../../src/hgs/context.js";
import { buildServer } from "../../src/hgs/http/server.js";
import { openReleaseResponse, releaseRequestBody } from "../../src/host/guarded/hgs-client.js";
import type { WrappedKeysJson } from "../../src/attest/release.js";
import {
  createGuardian,
  exportGuardianPem,
  exportGuardianPublicPem,
  importGuardianPem,
} from "../../src/protector/guardian.js";
import {
  createKeyProtector,
  parseKeyProtector,
  unwrapKeyProtector,
} from "../../src/protector/key-protector.js";
import { admin, ecKey, host, injectClient, pem, startHgs, type HgsFixture } from "../helpers/hgs-fixture.js";
import { repoPath } from "../helpers/paths.js";

interface ReleaseAnswer {
  keyProtector: string;
  oldKeyGeneration: number;
  newKeyGeneration: number;
  keys: WrappedKeysJson;
}

const fixture = (f: string) => readFileSync(repoPath("test/fixtures/key-protector/v1-hgs-release", f));
const version = (kp: Uint8Array) => Buffer.from(kp).readUInt16BE(4);

/** Registers a key-mode host and attests it; returns its key-release key and certificate. */
async function attestedHost(fx: HgsFixture) {
  assert.equal((await admin(fx, "PATCH", "/admin/v1/settings", { mode: "key" })).status, 200);
  const hostKey = ecKey();
  const reg = await admin(fx, "POST", "/admin/v1/hosts/key", { name: "h", publicKey: pem(hostKey) });
  assert.equal(reg.status, 200);
  const krk = ecKey();
  const { healthCertificate } = await injectClient(fx).attestHostKey({ hostKey, keyReleaseKey: krk });
  return { krk, healthCertificate };
}

async function release(fx: HgsFixture, certificate: string, krk: ReturnType<typeof ecKey>, kp: Uint8Array) {
  const r = await host<ReleaseAnswer>(fx, "/host/v1/keys/release", releaseRequestBody(certificate, krk, kp));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return openReleaseResponse(krk, r.body);
}

describe("an HGS initialised before X25519 (P-256 guardian) releases version-1 protectors", () => {
  let fx: HgsFixture;
  before(async () => {
    // `hgs init` today, then the guardian files replaced by the golden fixture's HGS guardian:
    // the directory an older Bulwark's `hgs init` left behind.
    const made = await startHgs({ tls: false });
    await made.app.close();
    await made.ctx.close();
    const hgs = importGuardianPem(fixture("hgs.guardian.pem").toString());
    writeFileSync(path.join(made.dir, "guardian.pem"), exportGuardianPem(hgs), { mode: 0o600 });
    writeFileSync(path.join(made.dir, "guardian-public.pem"), exportGuardianPublicPem(hgs));
    const ctx = await openHgs(made.dir);
    const app = await buildServer(ctx, { tls: false });
    fx = {
      ...made,
      ctx,
      app,
      async close() {
        await app.close();
        await ctx.close();
        rmSync(made.root, { recursive: true, force: true });
      },
    };
  });
  after(() => fx.close());

  it("releases the golden version-1 protector: the old key is the recorded one, the roll stays version 1", async () => {
    const { krk, healthCertificate } = await attestedHost(fx);
    const kp = fixture("key-protector.bin");
    const expected = JSON.parse(fixture("expected.json").toString()) as { transportKey: string };
    const out = await release(fx, healthCertificate, krk, kp);
    assert.equal(out.oldKey.key.toString("hex"), expected.transportKey);
    assert.equal(version(out.keyProtector), 1);
    assert.deepEqual(
      parseKeyProtector(out.keyProtector).wraps.map((w) => w.scheme),
      ["hpke-p256-sha256-aes256gcm", "hpke-p256-sha256-aes256gcm"],
    );
    const owner = importGuardianPem(fixture("owner.guardian.pem").toString());
    assert.deepEqual(unwrapKeyProtector(out.keyProtector, [owner]).key, out.newKey.key);
    // And the rolled one is released again (generation 2 presented after 1).
    const again = await release(fx, healthCertificate, krk, out.keyProtector);
    assert.deepEqual(again.oldKey.key, out.newKey.key);
    assert.equal(version(again.keyProtector), 1);
  });
});

describe("an HGS made by today's `hgs init` (X25519 guardian) releases version-2 protectors", () => {
  let fx: HgsFixture;
  before(async () => {
    fx = await startHgs({ tls: false });
  });
  after(() => fx.close());

  it("wraps with DHKEM(X25519); the owner (default guardian) and the host both open the result", async () => {
    const { krk, healthCertificate } = await attestedHost(fx);
    const owner = createGuardian("Owner", { signingKeyType: "p256" });
    const { keyProtector, transportKey } = createKeyProtector({ owner, guardians: [fx.ctx.dir.guardian] });
    assert.equal(version(keyProtector), 2);
    const out = await release(fx, healthCertificate, krk, keyProtector);
    assert.deepEqual(out.oldKey.key, transportKey.key);
    assert.equal(version(out.keyProtector), 2);
    assert.deepEqual(
      parseKeyProtector(out.keyProtector).wraps.map((w) => w.scheme),
      ["hpke-x25519-sha256-aes256gcm", "hpke-x25519-sha256-aes256gcm"],
    );
    assert.deepEqual(unwrapKeyProtector(out.keyProtector, [owner]).key, out.newKey.key);
    // A tampered wrap of the HGS guardian is refused, not released.
    const bad = Buffer.from(out.keyProtector);
    bad[bad.length - 40] = (bad[bad.length - 40] as number) ^ 1;
    const r = await host<{ error?: { code: string } }>(
      fx,
      "/host/v1/keys/release",
      releaseRequestBody(healthCertificate, krk, bad),
    );
    assert.equal(r.status, 403, JSON.stringify(r.body));
    assert.equal(r.body.error?.code, "HGS_ERR_KEY_PROTECTOR");
  });
});
