/**
 * The TypeBox route schemas, as fastify applies them on the wire and as TypeScript reads them:
 * strict objects, no coercion, optional fields, strict query strings and path parameters, PCR
 * maps; the OpenAPI document carries exactly the table's routes and schemas; and the schemas'
 * static types are the types the handlers get (checked by the compiler below).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Static } from "@fastify/type-provider-typebox";
import { routes } from "../../src/hgs/http/server.js";
import type * as S from "../../src/hgs/http/schemas.js";
import { admin, host, startHgs, type HgsFixture } from "../helpers/hgs-fixture.js";

// Compile-time: the schemas are the types. Each line fails `tsc` if a schema drifts.
const patch: Static<typeof S.settingsPatch> = { mode: "tpm", nonceTtlSeconds: 30 };
// @ts-expect-error -- "maybe" is not an attestation mode
const badMode: Static<typeof S.settingsPatch> = { mode: "maybe" };
const badBank: Static<typeof S.baseline> = {
  format: "bulwark-hgs-baseline/v1",
  kind: "secureboot",
  name: "x",
  // @ts-expect-error -- the baseline's bank is sha256 only
  bank: "sha1",
  pcrs: {},
};
void [patch, badMode, badBank];

interface ErrorReply {
  error: { code: string; details: { finding?: string } };
}

describe("HGS route schemas on the wire", () => {
  let fx: HgsFixture;
  before(async () => {
    fx = await startHgs({ tls: false });
  });
  after(() => fx.close());

  const schemaRefusal = (r: { status: number; body: unknown }, what: string) => {
    assert.equal(r.status, 400, what);
    const b = r.body as ErrorReply;
    assert.equal(b.error.code, "HGS_ERR_BAD_REQUEST", what);
    // The schema finding, whichever id grammar names it (Request_Schema, request.schema).
    assert.match(b.error.details.finding ?? "", /^request[._]schema$/i, what);
  };

  it("refuses unknown properties and does not coerce types", async () => {
    const hostId = "ab".repeat(32);
    assert.equal((await host(fx, "/host/v1/challenge", { hostId })).status, 200);
    schemaRefusal(await host(fx, "/host/v1/challenge", { hostId, extra: 1 }), "extra property");
    schemaRefusal(
      await host(fx, "/host/v1/challenge", { hostId: hostId.toUpperCase() }),
      "hex is lower case",
    );
    schemaRefusal(
      await admin(fx, "PATCH", "/admin/v1/settings", { nonceTtlSeconds: "120" }),
      "string for integer",
    );
    schemaRefusal(
      await admin(fx, "PATCH", "/admin/v1/settings", { requireEkCertificate: "true" }),
      "string for boolean",
    );
    schemaRefusal(await admin(fx, "PATCH", "/admin/v1/settings", {}), "an empty patch");
    schemaRefusal(
      await admin(fx, "PATCH", "/admin/v1/settings", { nonceTtlSeconds: 1 }),
      "below the minimum",
    );
    const ok = await admin<{ nonceTtlSeconds: number }>(fx, "PATCH", "/admin/v1/settings", {
      nonceTtlSeconds: 90,
    });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.nonceTtlSeconds, 90);
  });

  it("accepts an optional field left out and checks it when given", async () => {
    const without = await admin<ErrorReply>(fx, "POST", "/admin/v1/hosts/tpm", {
      name: "t",
      ekPublic: "AAAA",
    });
    // Past the schema: the service itself refuses an EK public of three zero bytes.
    assert.doesNotMatch(without.body.error.details.finding ?? "", /schema/i);
    assert.notEqual(without.status, 200);
    schemaRefusal(
      await admin(fx, "POST", "/admin/v1/hosts/tpm", { name: "t", ekPublic: "AAAA", ekCertificate: 5 }),
      "a number for the optional certificate",
    );
  });

  it("checks query strings as strictly as bodies", async () => {
    assert.equal((await admin(fx, "GET", "/admin/v1/audit?after=0&limit=5")).status, 200);
    schemaRefusal(await admin(fx, "GET", "/admin/v1/audit?after=abc"), "non-digits");
    schemaRefusal(await admin(fx, "GET", "/admin/v1/audit?since=1"), "an unknown query parameter");
    schemaRefusal(await admin(fx, "GET", "/admin/v1/audit?limit=123456"), "more digits than allowed");
    schemaRefusal(await admin(fx, "PUT", "/admin/v1/policies/x", { enabled: 1 }), "a number for a boolean");
  });

  it("checks PCR maps by index pattern", async () => {
    const baseline = {
      format: "bulwark-hgs-baseline/v1",
      kind: "secureboot",
      name: "lab",
      bank: "sha256",
      pcrs: { "7": "ab".repeat(32) },
    };
    assert.equal((await admin(fx, "POST", "/admin/v1/baselines", baseline)).status, 200);
    schemaRefusal(
      await admin(fx, "POST", "/admin/v1/baselines", { ...baseline, pcrs: { "5": "ab".repeat(32) } }),
      "PCR 5 is not a baseline PCR",
    );
    schemaRefusal(await admin(fx, "POST", "/admin/v1/baselines", { ...baseline, pcrs: {} }), "no PCR");
  });
});

describe("the OpenAPI document and the route table", () => {
  let fx: HgsFixture;
  before(async () => {
    fx = await startHgs({ tls: false });
  });
  after(() => fx.close());

  it("lists exactly the table's routes with the table's own schemas", async () => {
    const doc = (await fx.app.inject({ method: "GET", url: "/openapi.json" })).json<{
      paths: Record<
        string,
        Record<string, { requestBody?: { content: Record<string, { schema: unknown }> } }>
      >;
    }>();
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
    );
    const table = routes.map((r) => `${r.method} ${r.url.replace(/:([A-Za-z]+)/g, "{$1}")}`);
    assert.deepEqual(documented.sort(), [...table].sort());
    for (const r of routes) {
      const op = doc.paths[r.url.replace(/:([A-Za-z]+)/g, "{$1}")]?.[r.method.toLowerCase()];
      assert.ok(op, `${r.method} ${r.url}`);
      // TypeBox schemas are plain JSON Schema: the document holds them unchanged.
      if (r.body)
        assert.deepEqual(
          op.requestBody?.content["application/json"]?.schema,
          JSON.parse(JSON.stringify(r.body)),
        );
      else assert.equal(op.requestBody, undefined);
    }
  });
});
