import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  inspectKeyProtector,
  parseKeyProtector,
  unwrapKeyProtector,
} from "../../src/protector/key-protector.js";
import type { TransportKey } from "../../src/protector/transport-key.js";
import { openVmSecrets, sealVmSecrets } from "../../src/protector/vm-secrets.js";
import { keyId } from "../../src/attest/host-key.js";
import { HgsClient, openReleaseResponse, releaseRequestBody } from "../../src/host/guarded/hgs-client.js";
import {
  admin,
  attestOverRoutes,
  ecKey,
  host,
  owner,
  pem,
  protectorFor,
  rsaKey,
  startHgs,
  type HgsFixture,
} from "../helpers/hgs-fixture.js";

describe("HGS host-key mode, in process", () => {
  let fx: HgsFixture;
  before(async () => {
    fx = await startHgs();
    const r = await admin(fx, "PATCH", "/admin/v1/settings", { mode: "key" });
    assert.equal(r.status, 200);
  });
  after(() => fx.close());

  it("registers, attests, releases keys and rolls the transport key (EC and RSA host keys)", async () => {
    for (const hostKey of [ecKey(), ecKey("secp384r1"), rsaKey(2048)]) {
      const reg = await admin<{ id: string }>(fx, "POST", "/admin/v1/hosts/key", {
        name: "host-a",
        publicKey: pem(hostKey),
      });
      assert.equal(reg.status, 200, JSON.stringify(reg.body));
      assert.equal(reg.body.id, keyId(hostKey));
      const krk = ecKey();
      const a = await attestOverRoutes(fx, hostKey, krk);
      assert.equal(a.status, 200, JSON.stringify(a.body));
      assert.equal(a.body.verdict.status, "Passed");
      const hc = a.body.healthCertificate as string;

      const { keyProtector, transportKey } = protectorFor(fx.ctx.dir.guardianPublicPem);
      const secrets = sealVmSecrets(transportKey, new Map([["vtpm-state-key", Buffer.alloc(32, 7)]]));
      const rel = await host<Parameters<typeof openReleaseResponse>[1]>(
        fx,
        "/host/v1/keys/release",
        releaseRequestBody(hc, krk, keyProtector),
      );
      assert.equal(rel.status, 200, JSON.stringify(rel.body));
      const out = openReleaseResponse(krk, rel.body);
      assert.deepEqual(out.oldKey.key, transportKey.key);
      assert.notDeepEqual(out.newKey.key, transportKey.key);
      assert.equal(out.newKey.keyGeneration, transportKey.keyGeneration + 1);
      // The owner can still unwrap the rolled protector and gets the same new key.
      const before = parseKeyProtector(keyProtector);
      const after = parseKeyProtector(out.keyProtector);
      assert.deepEqual(
        Buffer.from(after.guardianSetRaw),
        Buffer.from(before.guardianSetRaw),
        "same guardian set, byte for byte",
      );
      assert.deepEqual(
        Buffer.from(after.signature),
        Buffer.from(before.signature),
        "the owner's signature is kept",
      );
      assert.equal(inspectKeyProtector(out.keyProtector).ownerSignature.valid, true);
      const ownerView = unwrapKeyProtector(out.keyProtector, [owner()]);
      assert.deepEqual(ownerView.key, out.newKey.key);
      assert.deepEqual(
        Buffer.from(openVmSecrets(out.oldKey as TransportKey, secrets).get("vtpm-state-key") ?? []),
        Buffer.alloc(32, 7),
      );
    }
  });

  it("serves an OpenAPI document listing every route with its schema", async () => {
    const r = await fx.app.inject({ method: "GET", url: "/openapi.json" });
    assert.equal(r.statusCode, 200);
    const doc = r.json() as {
      openapi: string;
      paths: Record<string, Record<string, { requestBody?: unknown }>>;
    };
    assert.equal(doc.openapi, "3.1.0");
    assert.ok(doc.paths["/host/v1/keys/release"]?.post?.requestBody);
    assert.ok(doc.paths["/admin/v1/hosts/{id}/revoke"]?.post);
  });

  it("gives every route schemas, a body limit and catalogue error responses", async () => {
    const { routes } = await import("../../src/hgs/http/server.js");
    for (const r of routes) {
      assert.ok(r.response[200], `${r.method} ${r.url}: 200 schema`);
      for (const code of [400, 403, 413]) assert.ok(r.response[code], `${r.method} ${r.url}: ${code} schema`);
      if (
        r.method !== "GET" &&
        r.method !== "DELETE" &&
        !r.url.endsWith("/revoke") &&
        !r.url.endsWith("/restore")
      ) {
        assert.ok(r.body, `${r.method} ${r.url}: body schema`);
        assert.equal(
          (r.body as { additionalProperties?: boolean }).additionalProperties,
          false,
          `${r.url} is strict`,
        );
        assert.ok(r.bodyLimit > 0 && r.bodyLimit <= 2 * 1024 * 1024, `${r.url} body limit`);
      }
      assert.equal(
        r.admin,
        r.url.startsWith("/admin/"),
        `${r.url}: admin routes and only they need the credential`,
      );
    }
    const unknown = await fx.app.inject({ method: "GET", url: "/nope" });
    assert.equal(unknown.statusCode, 404);
    assert.equal((unknown.json() as { error: { code: string } }).error.code, "HGS_ERR_NOT_FOUND");
    const wrongType = await fx.app.inject({
      method: "POST",
      url: "/host/v1/challenge",
      headers: { "content-type": "text/plain" },
      payload: "x",
    });
    assert.equal(wrongType.statusCode, 400);
  });

  it("keeps an audit chain that verifies", async () => {
    const v = await admin<{ ok: boolean; entries: number }>(fx, "GET", "/admin/v1/audit/verify");
    assert.equal(v.status, 200);
    assert.equal(v.body.ok, true);
    assert.ok(v.body.entries >= 5);
  });

  it("the client moves on when a node answers 503 or does not answer, and stays on the node that answered", async () => {
    const calls: string[] = [];
    const client = new HgsClient({
      urls: ["https://down.invalid", "https://busy.invalid", "https://up.invalid"],
      send: async (base, method, url, body) => {
        calls.push(base);
        if (base.includes("down")) throw Object.assign(new Error("refused"), { code: "ECONNREFUSED" });
        if (base.includes("busy"))
          return { status: 503, json: { error: { code: "HGS_ERR_STORE", message: "db down" } } };
        const r = await fx.app.inject({
          method: method as "GET",
          url,
          ...(body !== undefined ? { payload: body as object } : {}),
        });
        return { status: r.statusCode, json: r.json() as unknown };
      },
    });
    assert.equal((await client.info()).mode, "key");
    assert.deepEqual(calls, ["https://down.invalid", "https://busy.invalid", "https://up.invalid"]);
    assert.equal(client.current, 2);
    await client.info();
    assert.equal(calls.at(-1), "https://up.invalid");
    assert.equal(calls.length, 4);
    const none = new HgsClient({
      urls: ["https://a.invalid"],
      send: () => Promise.reject(Object.assign(new Error("reset"), { code: "ECONNRESET" })),
    });
    await assert.rejects(none.info(), (e: { code?: string }) => e.code === "HGS_ERR_UNAVAILABLE");
  });
});
