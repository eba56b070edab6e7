/**
 * Hardening issue 11, item 7 (the HGS side): host names an operator reads, admin routes that
 * authenticate before they look at a request, a restored host's old health certificates, the
 * deny-before boundary, a key-release key that is the host key, and the TLS suites offered.
 * Everything runs against a real HGS (SQLite) in process; TLS over a real socket.
 */
import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import type { AddressInfo } from "node:net";
import { connect, getCiphers, type ConnectionOptions } from "node:tls";
import { after, before, describe, it } from "node:test";
import { createCertificate, derToPem } from "../../src/asn1/x509.js";
import { keyId } from "../../src/attest/host-key.js";
import {
  issueHealthCertificate,
  parseHealthCertificate,
  verifyHealthCertificate,
  type HealthClaims,
} from "../../src/attest/health.js";
import { addKeyHost, addTpmHost, addBaseline, updateSettings } from "../../src/hgs/admin.js";
import { buildServer, routes } from "../../src/hgs/http/server.js";
import { printableName } from "../../src/hgs/names.js";
import { decideRelease, judgeRelease, type ReleaseFacts } from "../../src/hgs/release.js";
import type { HostRow } from "../../src/hgs/store/repo.js";
import { releaseRequestBody } from "../../src/host/guarded/hgs-client.js";
import {
  admin,
  attestOverRoutes,
  ecKey,
  host,
  pem,
  protectorFor,
  startHgs,
  type HgsFixture,
} from "../helpers/hgs-fixture.js";

type ErrorBody = { error: { code: string; message: string; details?: Record<string, unknown> } };

async function release(fx: HgsFixture, healthCertificate: string, krk: KeyObject) {
  const { keyProtector } = protectorFor(fx.ctx.dir.guardianPublicPem);
  return host<ErrorBody>(
    fx,
    "/host/v1/keys/release",
    releaseRequestBody(healthCertificate, krk, keyProtector),
  );
}

/** Names that must never be registered: they hide, reorder or forge what an operator reads. */
const BAD_NAMES: readonly [string, string][] = [
  ["empty", ""],
  ["too long", "h".repeat(257)],
  ["RLO bidi override", "host-\u202Egpj.exe"],
  ["LRE", "a\u202Ab"],
  ["PDF", "a\u202Cb"],
  ["LRI isolate", "a\u2066b"],
  ["PDI", "a\u2069b"],
  ["ALM / LRM / RLM marks", "a\u200Fb"],
  ["C0 escape (ANSI colours)", "a\u001b[31mred"],
  ["C0 newline (forged list line)", "a\nb"],
  ["tab", "a\tb"],
  ["DEL", "a\u007fb"],
  ["C1 CSI", "a\u009b31mb"],
  ["C1 NEL", "a\u0085b"],
  ["zero-width space", "ad\u200Bmin"],
  ["zero-width joiner", "a\u200Db"],
  ["zero-width non-joiner", "a\u200Cb"],
  ["word joiner", "a\u2060b"],
  ["byte-order mark", "\uFEFFhost"],
  ["soft hyphen", "ho\u00ADst"],
  ["line separator", "a\u2028b"],
  ["paragraph separator", "a\u2029b"],
  ["lone surrogate", "a\uD800b"],
  ["private use", "a\uE000b"],
  ["unassigned", "a\u0378b"],
  ["no-break space", "a\u00A0b"],
  ["ideographic space", "a\u3000b"],
  ["leading space", " host"],
  ["trailing space", "host "],
  ["tag characters", "a\u{E0041}b"],
  ["interlinear annotation", "a\uFFF9b"],
  ["not NFC (decomposed)", "cafe\u0301"],
];

describe("HGS hardening: smaller findings (issue 11 item 7)", () => {
  let fx: HgsFixture;
  before(async () => {
    // Every admin route is probed with bad requests from one source: far more failures than the
    // per-source limiter lets through (test/hgs/rate-limit.test.ts tests that limit).
    fx = await startHgs({ limits: { failureBurst: 1_000_000 } });
    assert.equal((await admin(fx, "PATCH", "/admin/v1/settings", { mode: "key" })).status, 200);
  });
  after(() => fx.close());

  describe("1. host names", () => {
    it("refuses names with controls, bidi overrides, invisible characters or bad length (HGS_ERR_INVALID_NAME)", async () => {
      for (const [what, name] of BAD_NAMES) {
        const r = await admin<ErrorBody>(fx, "POST", "/admin/v1/hosts/key", {
          name,
          publicKey: pem(ecKey()),
        });
        assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error.code, "HGS_ERR_INVALID_NAME", what);
        assert.doesNotMatch(
          r.body.error.message,
          /[\p{C}\p{Zl}\p{Zp}]/u,
          `${what}: the name is not echoed raw`,
        );
        await assert.rejects(addKeyHost(fx.ctx, name, pem(ecKey())), { code: "HGS_ERR_INVALID_NAME" }, what);
        // TPM registration checks the name before anything else.
        await assert.rejects(
          addTpmHost(fx.ctx, name, Buffer.alloc(4)),
          { code: "HGS_ERR_INVALID_NAME" },
          what,
        );
      }
      assert.equal((await admin<{ hosts: unknown[] }>(fx, "GET", "/admin/v1/hosts")).body.hosts.length, 0);
    });

    it("accepts ordinary names in any script", async () => {
      for (const name of ["node-1", "Hyper-V Host 07", "nœud-Zürich", "東京-ホスト", "h".repeat(256)]) {
        const r = await admin<{ name: string }>(fx, "POST", "/admin/v1/hosts/key", {
          name,
          publicKey: pem(ecKey()),
        });
        assert.equal(r.status, 200, `${name}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.name, name);
      }
    });

    it("baseline names follow the same rule", async () => {
      const base = {
        format: "bulwark-hgs-baseline/v1",
        kind: "secureboot",
        bank: "sha256",
        pcrs: { "7": "ab".repeat(32) },
      };
      await assert.rejects(addBaseline(fx.ctx, { ...base, name: "lab\u202Edab" }), {
        code: "HGS_ERR_INVALID_NAME",
      });
      await assert.rejects(addBaseline(fx.ctx, { ...base, name: "lab\u0085" }), {
        code: "HGS_ERR_INVALID_NAME",
      });
    });

    it("prints any stored name with every non-printable character escaped", () => {
      assert.equal(printableName("node-1"), "node-1");
      assert.equal(printableName("東京-ホスト"), "東京-ホスト");
      for (const [what, name] of BAD_NAMES) {
        // These are refused for their shape, not for a character a terminal would act on.
        if (["empty", "too long", "leading space", "trailing space", "not NFC (decomposed)"].includes(what))
          continue;
        const shown = printableName(name);
        assert.match(shown, /\\u\{[0-9a-f]+\}/, `${what}: ${JSON.stringify(shown)}`);
        // Nothing left that a terminal would act on or hide.
        assert.doesNotMatch(shown, /[\p{C}\u2028\u2029]/u, what);
      }
      // A backslash is escaped too, so an escape in the output cannot be forged by the name.
      assert.equal(printableName("a\\u{202e}"), "a\\\\u{202e}");
    });
  });

  describe("2. admin routes authenticate before they validate", () => {
    const adminRoutes = routes.filter((r) => r.admin || r.url.startsWith("/admin"));

    it("the list comes from the server and covers every /admin path it documents", async () => {
      const doc = (await fx.app.inject({ method: "GET", url: "/openapi.json" })).json() as {
        paths: Record<string, Record<string, unknown>>;
      };
      const documented = Object.entries(doc.paths)
        .filter(([p]) => p.startsWith("/admin"))
        .flatMap(([p, ops]) =>
          Object.keys(ops).map((m) => `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ":$1")}`),
        );
      assert.deepEqual(documented.sort(), adminRoutes.map((r) => `${r.method} ${r.url}`).sort());
      for (const r of adminRoutes) assert.ok(fx.app.hasRoute({ method: r.method, url: r.url }), r.url);
      assert.ok(adminRoutes.length >= 15);
    });

    for (const credential of [undefined, "Bearer hgsadm_wrong", "Basic Zm9vOmJhcg=="]) {
      it(`answers 401 to every malformed admin request (${credential ?? "no credential"})`, async () => {
        for (const r of adminRoutes) {
          // A query the schema refuses, and bodies with wrong types, an unknown property, bad
          // JSON, the wrong content type or too many bytes. (A path parameter longer than the
          // router's 100 characters is answered 414 by the router for any route, before hooks.)
          const url = r.url.replace(/:(\w+)/g, "x");
          const variants: { url: string; payload?: string; headers?: Record<string, string> }[] = [
            { url },
            { url: `${url}?after=-1&limit=abc&extra=1` },
          ];
          if (r.method !== "GET" && r.method !== "DELETE") {
            const json = { "content-type": "application/json" };
            variants.push(
              { url, payload: JSON.stringify({ bogus: { nested: [1, 2, 3] }, name: 7 }), headers: json },
              { url, payload: "{not json", headers: json },
              { url, payload: "x".repeat(r.bodyLimit + 1024), headers: json },
              { url, payload: "text", headers: { "content-type": "text/plain" } },
            );
          }
          for (const v of variants) {
            const res = await fx.app.inject({
              method: r.method,
              url: v.url,
              headers: { ...(credential ? { authorization: credential } : {}), ...v.headers },
              ...(v.payload !== undefined ? { payload: v.payload } : {}),
            });
            const body = res.json() as ErrorBody;
            assert.equal(res.statusCode, 401, `${r.method} ${v.url.slice(0, 60)}: ${res.body.slice(0, 200)}`);
            assert.equal(body.error.code, "HGS_ERR_UNAUTHENTICATED");
            assert.doesNotMatch(
              res.body,
              /must|schema|property|json|body/i,
              "nothing about the request leaks",
            );
          }
        }
      });
    }

    it("still validates for the administrator", async () => {
      const r = await admin<ErrorBody>(fx, "POST", "/admin/v1/hosts/key", { bogus: 1 });
      assert.equal(r.status, 400);
      assert.equal(r.body.error.code, "HGS_ERR_BAD_REQUEST");
    });
  });

  describe("3. host restore does not revive certificates issued before it", () => {
    it("refuses a certificate from before the revocation after restore; a new attestation releases", async () => {
      const hostKey = ecKey();
      const krk = ecKey();
      assert.equal(
        (await admin(fx, "POST", "/admin/v1/hosts/key", { name: "restored", publicKey: pem(hostKey) }))
          .status,
        200,
      );
      const old = await attestOverRoutes(fx, hostKey, krk);
      const oldCert = old.body.healthCertificate as string;
      assert.equal((await release(fx, oldCert, krk)).status, 200, "released before the revocation");

      const id = keyId(hostKey);
      assert.equal((await admin(fx, "POST", `/admin/v1/hosts/${id}/revoke`)).status, 200);
      assert.equal((await release(fx, oldCert, krk)).status, 403);
      assert.equal((await admin(fx, "POST", `/admin/v1/hosts/${id}/restore`)).status, 200);

      const refused = await release(fx, oldCert, krk);
      assert.equal(refused.status, 403, JSON.stringify(refused.body));
      assert.equal(refused.body.error.code, "HGS_ERR_HEALTH_CERTIFICATE");
      assert.equal(refused.body.error.details?.finding, "health-certificate.issued-before-restore");

      const fresh = await attestOverRoutes(fx, hostKey, krk);
      assert.equal(fresh.status, 200, JSON.stringify(fresh.body));
      assert.equal((await release(fx, fresh.body.healthCertificate as string, krk)).status, 200);
      // A second revoke/restore cycle moves the line again.
      assert.equal((await admin(fx, "POST", `/admin/v1/hosts/${id}/revoke`)).status, 200);
      assert.equal((await admin(fx, "POST", `/admin/v1/hosts/${id}/restore`)).status, 200);
      assert.equal((await release(fx, fresh.body.healthCertificate as string, krk)).status, 403);
      // The host record says since when its certificates count.
      const h = await admin<{ certificatesNotBefore: string | null }>(fx, "GET", `/admin/v1/hosts/${id}`);
      assert.ok(h.body.certificatesNotBefore, JSON.stringify(h.body));
    });
  });

  describe("4. the deny-before date is exact to the millisecond", () => {
    const signer = ecKey();
    const krk = ecKey();
    const issue = (now: number) =>
      issueHealthCertificate({
        signer,
        hostId: "ab".repeat(32),
        name: "h",
        mode: "key",
        keyReleaseKey: createPublicKey(krk),
        lifetimeSeconds: 3600,
        now,
      }).text;
    const verifyAt = (text: string, denyBefore: number) =>
      verifyHealthCertificate(text, {
        signerPublic: createPublicKey(signer),
        denyBefore,
        now: denyBefore + 10,
      });

    it("accepts a certificate issued at or after the date, in the same second, and refuses one before", () => {
      const d = Math.floor(Date.now() / 1000) * 1000 + 500;
      assert.doesNotThrow(() => verifyAt(issue(d + 1), d), "issued 1 ms after, same second");
      assert.doesNotThrow(() => verifyAt(issue(d), d), "issued at the date");
      assert.doesNotThrow(() => verifyAt(issue(d + 499), d), "issued at the end of the same second");
      assert.throws(() => verifyAt(issue(d - 1), d), { code: "HGS_ERR_HEALTH_CERTIFICATE" });
      assert.throws(() => verifyAt(issue(d - 500), d), { code: "HGS_ERR_HEALTH_CERTIFICATE" });
    });

    it("`--deny-before now` then attest at once: the new certificate releases", async () => {
      const hostKey = ecKey();
      const hk = ecKey();
      assert.equal(
        (await admin(fx, "POST", "/admin/v1/hosts/key", { name: "deny", publicKey: pem(hostKey) })).status,
        200,
      );
      const before = await attestOverRoutes(fx, hostKey, hk);
      // Start early in a second so the date and the next attestation share it.
      while (Date.now() % 1000 > 300) await new Promise((r) => setTimeout(r, 20));
      await updateSettings(fx.ctx, { denyBefore: Date.now() });
      const after = await attestOverRoutes(fx, hostKey, hk);
      assert.equal(after.status, 200);
      const r = await release(fx, after.body.healthCertificate as string, hk);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal((await release(fx, before.body.healthCertificate as string, hk)).status, 403);
      await updateSettings(fx.ctx, { denyBefore: 0 });
    });
  });

  describe("5. the key-release key is never the host key", () => {
    it("refuses an attestation whose key-release key is the registered host key", async () => {
      const hostKey = ecKey();
      assert.equal(
        (await admin(fx, "POST", "/admin/v1/hosts/key", { name: "samekey", publicKey: pem(hostKey) })).status,
        200,
      );
      const r = await attestOverRoutes(fx, hostKey, hostKey);
      assert.equal(r.status, 403, JSON.stringify(r.body));
      assert.equal((r.body as unknown as ErrorBody).error.code, "HGS_ERR_ATTESTATION_FAILED");
      assert.ok(r.body.verdict.findings.some((f) => f.id === "key-release-key.is-host-key"));
      assert.equal((await attestOverRoutes(fx, hostKey, ecKey())).status, 200, "a separate key passes");
    });

    it("refuses a release under a certificate that binds the host key (issued before this check)", async () => {
      const hostKey = ecKey();
      assert.equal(
        (await admin(fx, "POST", "/admin/v1/hosts/key", { name: "oldcert", publicKey: pem(hostKey) })).status,
        200,
      );
      const { text } = issueHealthCertificate({
        signer: fx.ctx.signer.key,
        hostId: keyId(hostKey),
        name: "oldcert",
        mode: "key",
        keyReleaseKey: createPublicKey(hostKey),
        lifetimeSeconds: 3600,
      });
      const r = await release(fx, text, hostKey);
      assert.equal(r.status, 403, JSON.stringify(r.body));
      assert.equal(r.body.error.details?.finding, "key-release-key.is-host-key");
    });
  });
});

describe("3, 4, 5. the release judgement's new checks, pure", () => {
  const t = 1_700_000_000_500;
  const claims: HealthClaims = {
    v: 1,
    iss: "a".repeat(64),
    sub: "b".repeat(64),
    name: "h",
    mode: "key",
    krk: "AA==",
    iat: Math.floor(t / 1000),
    iatMs: t,
    nbf: 0,
    exp: 1,
    jti: "c".repeat(32),
  };
  const hostRow: HostRow = {
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
  const facts = (c: HealthClaims, notBefore: number | null, reused = false): ReleaseFacts => ({
    certificate: { claims: c, krk: createPublicKey(ecKey()) },
    mode: "key",
    host: { ...hostRow, certificatesNotBefore: notBefore },
    requestId: "d".repeat(32),
    timestamp: t,
    now: t,
    proofVerified: true,
    alreadyAnswered: false,
    keyReleaseKeyIsRegistered: reused,
  });
  const failing = (f: ReleaseFacts) => judgeRelease(f).findings.map((x) => x.id);

  it("restore line: issued at it passes, 1 ms before is refused; without iatMs the iat second's start counts", () => {
    assert.deepEqual(failing(facts(claims, null)), []);
    assert.deepEqual(failing(facts(claims, t)), []);
    assert.deepEqual(failing(facts(claims, t + 1)), ["health-certificate.issued-before-restore"]);
    const { iatMs: _dropped, ...old } = claims;
    assert.deepEqual(failing(facts(old, t - 500)), []);
    assert.deepEqual(failing(facts(old, t - 499)), ["health-certificate.issued-before-restore"]);
  });

  it("a key-release key that is a registered key is refused", () => {
    const d = decideRelease(judgeRelease(facts(claims, null, true)));
    assert.ok(!d.release && d.refusal.details.finding === "key-release-key.is-host-key");
  });

  it("a certificate whose iatMs is outside its iat second is malformed", () => {
    const signer = ecKey();
    const { text } = issueHealthCertificate({
      signer,
      hostId: "ab".repeat(32),
      name: "h",
      mode: "key",
      keyReleaseKey: createPublicKey(ecKey()),
      lifetimeSeconds: 3600,
    });
    const [h, p] = text.split(".") as [string, string];
    const payload = JSON.parse(Buffer.from(p, "base64url").toString()) as { iatMs: number };
    payload.iatMs += 1000;
    const forged = `${h}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${"A".repeat(86)}`;
    assert.throws(() => parseHealthCertificate(forged), /iatMs/);
  });
});

describe("8. HTTPS offers only AEAD ECDHE suites in TLS 1.2", () => {
  const ALLOWED = new Set([
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
  ]);
  const tls12 = getCiphers()
    .map((c) => c.toUpperCase())
    .filter((c) => !c.startsWith("TLS_"));

  function handshake(port: number, o: ConnectionOptions): Promise<string | undefined> {
    return new Promise((resolve) => {
      const s = connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...o }, () => {
        const name = s.getCipher().standardName ?? s.getCipher().name;
        const v = s.getProtocol();
        s.end();
        resolve(`${v} ${s.getCipher().name} ${name}`);
      });
      s.on("error", () => resolve(undefined));
    });
  }

  async function negotiated(fx: HgsFixture, ctxDir?: { tlsKeyPem: string; tlsCertPem: string }) {
    const app = ctxDir ? await buildServer({ ...fx.ctx, dir: { ...fx.ctx.dir, ...ctxDir } }) : fx.app;
    await app.listen({ host: "127.0.0.1", port: 0 });
    const port = (app.server.address() as AddressInfo).port;
    try {
      const accepted: string[] = [];
      for (const c of tls12) {
        const r = await handshake(port, { ciphers: c, maxVersion: "TLSv1.2" });
        if (r) accepted.push(c);
      }
      const v13 = await handshake(port, { minVersion: "TLSv1.3" });
      const cbc = await handshake(port, {
        ciphers: "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA",
        maxVersion: "TLSv1.2",
      });
      return { accepted, v13, cbc };
    } finally {
      await app.close();
    }
  }

  let fx: HgsFixture;
  before(async () => {
    fx = await startHgs();
  });
  after(() => fx.close());

  it("with the ECDSA identity made at init", async () => {
    const { accepted, v13, cbc } = await negotiated(fx);
    assert.equal(cbc, undefined, "a CBC-SHA1 suite is refused");
    assert.deepEqual(
      accepted.filter((c) => !ALLOWED.has(c)),
      [],
      `only AEAD ECDHE suites; offered ${accepted.join(" ")}`,
    );
    assert.ok(
      accepted.includes("ECDHE-ECDSA-AES128-GCM-SHA256") &&
        accepted.includes("ECDHE-ECDSA-CHACHA20-POLY1305"),
    );
    assert.match(v13 ?? "", /^TLSv1\.3 /, "TLS 1.3 with its default suites");
  });

  it("with an RSA identity put in place by the operator", async () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const cert = createCertificate({
      subject: [{ type: "CN", value: "rsa" }],
      publicKey: rsa.publicKey,
      signingKey: rsa.privateKey,
      keyUsage: ["digitalSignature", "keyEncipherment"],
    });
    const { accepted, cbc } = await negotiated(fx, {
      tlsKeyPem: rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      tlsCertPem: derToPem(cert),
    });
    assert.equal(cbc, undefined);
    assert.deepEqual(
      accepted.filter((c) => !ALLOWED.has(c)),
      [],
      accepted.join(" "),
    );
    assert.ok(accepted.includes("ECDHE-RSA-AES256-GCM-SHA384"));
  });
});
