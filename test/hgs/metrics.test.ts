/**
 * GET /metrics: real attestations and key releases against a real HGS, then the counters and
 * histograms they must have moved; two servers in one process keep separate counts; the
 * exposition passes `promtool check metrics`; and under `--workers 2` every scrape answers with
 * the sum over the workers, whichever worker it reaches.
 */
import assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import diagnostics from "node:diagnostics_channel";
import { setImmediate as turn } from "node:timers/promises";
import { request } from "node:https";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { attestKeyMessage, keyId, signWithHostKey, spkiDer } from "../../src/attest/host-key.js";
import { releaseRequestBody } from "../../src/host/guarded/hgs-client.js";
import { HgsMetrics } from "../../src/hgs/metrics.js";
import { ATTESTATION_CHANNEL, RELEASE_CHANNEL } from "../../src/hgs/attestation.js";
import { observed } from "../../src/hgs/observe.js";
import { admin, ecKey, host, pem, protectorFor, startHgs, type HgsFixture } from "../helpers/hgs-fixture.js";
import { hgsCli, startServe, type ServeProcess } from "../helpers/hgs-proc.js";
import { promtoolProblems, sampleValue } from "../helpers/prometheus.js";

async function scrape(fx: HgsFixture): Promise<string> {
  const r = await fx.app.inject({ method: "GET", url: "/metrics" });
  assert.equal(r.statusCode, 200);
  assert.match(String(r.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
  return r.body;
}

async function attestKey(fx: HgsFixture, hostKey: ReturnType<typeof ecKey>, krk: ReturnType<typeof ecKey>) {
  const hostId = keyId(hostKey);
  const c = await host<{ nonce: string }>(fx, "/host/v1/challenge", { hostId });
  assert.equal(c.status, 200);
  const signature = signWithHostKey(
    hostKey,
    attestKeyMessage(Buffer.from(c.body.nonce, "hex"), createPublicKey(krk), hostId),
  );
  return host<{ healthCertificate?: string; verdict: { status: string } }>(fx, "/host/v1/attest/key", {
    hostId,
    nonce: c.body.nonce,
    keyReleaseKey: spkiDer(krk).toString("base64"),
    signature: signature.toString("base64"),
  });
}

describe("HGS use-case events (the channel contract)", () => {
  it("reach the metrics of the request that published them, and only those", async () => {
    const mine = new HgsMetrics();
    const theirs = new HgsMetrics();
    const attestation = diagnostics.channel(ATTESTATION_CHANNEL);
    const release = diagnostics.channel(RELEASE_CHANNEL);
    await observed([mine], async () => {
      // After awaits, as a use case publishes once its store has answered.
      await turn();
      attestation.publish({ mode: "tpm", status: "Passed", durationMs: 120 });
      await turn();
      release.publish({ outcome: "refused", code: "HGS_ERR_HEALTH_CERTIFICATE", durationMs: 3 });
      // Malformed messages are ignored, not thrown back at the publisher.
      attestation.publish({ mode: "neither", status: 1 });
      release.publish("released");
    });
    // Outside any request (the admin CLI on a node): heard by nobody.
    attestation.publish({ mode: "key", status: "Passed", durationMs: 1 });
    const text = await mine.exposition();
    assert.equal(sampleValue(text, "bulwark_hgs_attestations_total", { mode: "tpm", status: "Passed" }), 1);
    assert.equal(
      sampleValue(text, "bulwark_hgs_attestations_total", { mode: "key", status: "Passed" }),
      undefined,
    );
    assert.equal(
      sampleValue(text, "bulwark_hgs_attestation_duration_seconds_bucket", { mode: "tpm", le: "0.1" }),
      0,
    );
    assert.equal(
      sampleValue(text, "bulwark_hgs_attestation_duration_seconds_bucket", { mode: "tpm", le: "0.25" }),
      1,
    );
    assert.equal(sampleValue(text, "bulwark_hgs_key_releases_total", { outcome: "refused" }), 1);
    assert.equal(sampleValue(text, "bulwark_hgs_key_release_duration_seconds_count"), 1);
    const other = await theirs.exposition();
    assert.equal(sampleValue(other, "bulwark_hgs_key_release_duration_seconds_count"), 0);
  });
});

describe("HGS metrics, in process", () => {
  let fx: HgsFixture;
  let other: HgsFixture;
  before(async () => {
    fx = await startHgs();
    other = await startHgs();
    assert.equal((await admin(fx, "PATCH", "/admin/v1/settings", { mode: "key" })).status, 200);
  });
  after(async () => {
    await fx.close();
    await other.close();
  });

  it("counts attestations by mode and status and key releases by outcome", async () => {
    const hostKey = ecKey();
    const krk = ecKey();
    const reg = await admin(fx, "POST", "/admin/v1/hosts/key", { name: "metered", publicKey: pem(hostKey) });
    assert.equal(reg.status, 200);

    const passed = await attestKey(fx, hostKey, krk);
    assert.equal(passed.status, 200);
    const refused = await attestKey(fx, ecKey(), krk);
    assert.equal(refused.status, 403);
    const cert = passed.body.healthCertificate ?? "";

    const { keyProtector } = protectorFor(
      (await fx.app.inject({ method: "GET", url: "/host/v1/info" })).json<{ guardian: string }>().guardian,
    );
    const body = releaseRequestBody(cert, krk, keyProtector);
    assert.equal((await host(fx, "/host/v1/keys/release", body)).status, 200);
    // The same request again is a replay: refused.
    assert.equal((await host(fx, "/host/v1/keys/release", body)).status, 403);

    const text = await scrape(fx);
    assert.equal(sampleValue(text, "bulwark_hgs_attestations_total", { mode: "key", status: "Passed" }), 1);
    assert.equal(
      sampleValue(text, "bulwark_hgs_attestations_total", {
        mode: "key",
        status: refused.body.verdict.status,
      }),
      1,
    );
    assert.equal(sampleValue(text, "bulwark_hgs_attestation_duration_seconds_count", { mode: "key" }), 2);
    assert.equal(sampleValue(text, "bulwark_hgs_key_releases_total", { outcome: "released" }), 1);
    assert.equal(sampleValue(text, "bulwark_hgs_key_releases_total", { outcome: "refused" }), 1);
    assert.equal(sampleValue(text, "bulwark_hgs_key_release_duration_seconds_count"), 2);

    // The other server in this process saw none of it.
    const quiet = await scrape(other);
    assert.equal(
      sampleValue(quiet, "bulwark_hgs_attestation_duration_seconds_count", { mode: "key" }),
      undefined,
    );
    assert.equal(sampleValue(quiet, "bulwark_hgs_key_release_duration_seconds_count"), 0);
  });

  it("times HTTP requests by route pattern, method and status, never by URL", async () => {
    const hostId = "ab".repeat(32);
    const before = sampleValue(await scrape(fx), "bulwark_hgs_http_request_duration_seconds_count", {
      route: "/admin/v1/hosts/:id",
      method: "GET",
      status_code: "404",
    });
    const r = await admin(fx, "GET", `/admin/v1/hosts/${hostId}`);
    assert.equal(r.status, 404);
    const text = await scrape(fx);
    assert.equal(
      sampleValue(text, "bulwark_hgs_http_request_duration_seconds_count", {
        route: "/admin/v1/hosts/:id",
        method: "GET",
        status_code: "404",
      }),
      (before ?? 0) + 1,
    );
    assert.ok(!text.includes(hostId), "a host id in a URL never becomes a label");
    // prom-client's process metrics are there too.
    assert.ok(sampleValue(text, "process_cpu_user_seconds_total") !== undefined);
  });

  it("passes promtool check metrics", async () => {
    const r = promtoolProblems(await scrape(fx));
    assert.ok(r.parsed, "promtool reads the exposition");
    assert.deepEqual(r.problems, [], "promtool finds no problem beyond prom-client's own");
  });
});

function get(url: URL, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // A fresh connection each time (agent: false), so that the cluster spreads the requests.
    const req = request(url, { ca, agent: false }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("HGS metrics under --workers 2", () => {
  let root: string;
  let serve: ServeProcess | undefined;
  before(() => {
    root = mkdtempSync(path.join(tmpdir(), "bulwark-hgs-metrics-"));
  });
  after(async () => {
    await serve?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it("answers every scrape with the sum over the workers", async () => {
    const dir = path.join(root, "hgs");
    assert.equal(hgsCli(["init", "--dir", dir]).status, 0);
    serve = await startServe(dir, ["--workers", "2"]);
    const ca = readFileSync(path.join(dir, "tls.crt"), "utf8");
    const n = 8;
    for (let i = 0; i < n; i++) assert.equal((await get(new URL("/health", serve.url), ca)).status, 200);
    for (let scrapes = 0; scrapes < 4; scrapes++) {
      const m = await get(new URL("/metrics", serve.url), ca);
      assert.equal(m.status, 200, m.body);
      assert.equal(
        sampleValue(m.body, "bulwark_hgs_http_request_duration_seconds_count", {
          route: "/health",
          method: "GET",
          status_code: "200",
        }),
        n,
        "all workers' requests, whichever worker answered the scrape",
      );
      const check = promtoolProblems(m.body);
      assert.ok(check.parsed);
      assert.deepEqual(check.problems, []);
    }
    // SIGTERM stops the primary and its workers cleanly (stop() would SIGKILL after 5 s).
    const proc = serve.proc;
    await serve.stop();
    serve = undefined;
    assert.equal(proc.signalCode, null, "exited by itself, not killed");
    assert.equal(proc.exitCode, 0);
  });
});
