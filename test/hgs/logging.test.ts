/**
 * The HGS log: `bulwark hgs serve --log-level debug` as a process, driven through attestations,
 * key releases and admin calls over HTTPS. Every line on stderr is JSON, every request has its
 * completion line (request id, method, route, status, latency), and none of the secrets the
 * test handled (admin credential, private keys, key protectors, transport keys, wrapped keys,
 * health certificates) appears anywhere in the log.
 */
import assert from "node:assert/strict";
import { request } from "node:https";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { KeyObject } from "node:crypto";
import { Writable } from "node:stream";
import { createLogger } from "../../src/hgs/log.js";
import {
  HgsClient,
  openReleaseResponse,
  releaseRequestBody,
  type HgsRefusal,
} from "../../src/host/guarded/hgs-client.js";
import type { WrappedKeysJson } from "../../src/attest/release.js";
import { ecKey, pem, protectorFor } from "../helpers/hgs-fixture.js";
import { hgsCli, startServe, type ServeProcess } from "../helpers/hgs-proc.js";

interface LogLine {
  level: number;
  msg: string;
  reqId?: string;
  method?: string;
  route?: string;
  statusCode?: number;
  responseTimeMs?: number;
}

/** The base64 body of a PEM, in the lines it is printed in (each long enough to be telling). */
function pemBodyLines(pemText: string): string[] {
  return pemText
    .split("\n")
    .filter((l) => l && !l.startsWith("-----"))
    .filter((l) => l.length >= 24);
}

function privatePem(k: KeyObject): string {
  return k.export({ type: "pkcs8", format: "pem" }).toString();
}

describe("HGS logs", () => {
  let root: string;
  let dir: string;
  let serve: ServeProcess | undefined;
  const secrets = new Map<string, string>();
  const expected: { method: string; route: string; statusCode: number }[] = [];

  before(() => {
    root = mkdtempSync(path.join(tmpdir(), "bulwark-hgs-log-"));
    dir = path.join(root, "hgs");
  });
  after(async () => {
    await serve?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it("serves attestations, releases and admin calls at log level debug", async () => {
    assert.equal(hgsCli(["init", "--dir", dir]).status, 0);
    assert.equal(hgsCli(["mode", "set", "key", "--dir", dir]).status, 0);
    const hostKey = ecKey();
    const krk = ecKey();
    writeFileSync(path.join(root, "host.pem"), pem(hostKey));
    assert.equal(
      hgsCli([
        "host",
        "add-key",
        "--dir",
        dir,
        "--name",
        "logged",
        "--public-key",
        path.join(root, "host.pem"),
      ]).status,
      0,
    );
    const cred = readFileSync(path.join(dir, "admin-credential"), "utf8").trim();
    secrets.set("admin credential", cred);
    for (const [what, k] of [
      ["host key", hostKey],
      ["key-release key", krk],
    ] as const) {
      pemBodyLines(privatePem(k)).forEach((l, i) => secrets.set(`${what} PEM line ${i}`, l));
    }
    for (const f of ["tls.key", "guardian.pem", "attestation-signer.pem"]) {
      pemBodyLines(readFileSync(path.join(dir, f), "utf8")).forEach((l, i) =>
        secrets.set(`${f} line ${i}`, l),
      );
    }

    const badLevel = hgsCli(["serve", "--dir", dir, "--log-level", "loud"]);
    assert.equal(badLevel.status, 2, "an unknown log level is a usage error");
    assert.match(
      badLevel.stderr,
      /CLI_ERR_USAGE: --log-level takes fatal, error, warn, info, debug, trace, silent/,
    );
    serve = await startServe(dir, ["--log-level", "debug"]);
    const ca = readFileSync(path.join(dir, "tls.crt"), "utf8");
    const client = new HgsClient({ urls: [serve.url], ca });
    const adminCall = (method: string, p: string, body?: unknown, credential = cred) =>
      new Promise<number>((resolve, reject) => {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const req = request(
          new URL(p, serve?.url),
          {
            method,
            ca,
            headers: {
              authorization: `Bearer ${credential}`,
              ...(payload ? { "content-type": "application/json" } : {}),
            },
          },
          (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          },
        );
        req.on("error", reject);
        req.end(payload);
      });
    try {
      assert.equal(await adminCall("GET", "/admin/v1/hosts"), 200);
      expected.push({ method: "GET", route: "/admin/v1/hosts", statusCode: 200 });
      assert.equal(await adminCall("PATCH", "/admin/v1/settings", { nonceTtlSeconds: 120 }), 200);
      expected.push({ method: "PATCH", route: "/admin/v1/settings", statusCode: 200 });
      assert.equal(await adminCall("GET", "/admin/v1/hosts", undefined, `hgsadm_${"0".repeat(43)}`), 401);
      expected.push({ method: "GET", route: "/admin/v1/hosts", statusCode: 401 });

      const info = await client.info();
      const a = await client.attestHostKey({ hostKey, keyReleaseKey: krk });
      assert.equal(a.verdict.status, "Passed");
      secrets.set("health certificate", a.healthCertificate);
      expected.push({ method: "POST", route: "/host/v1/attest/key", statusCode: 200 });
      await assert.rejects(
        client.attestHostKey({ hostKey: ecKey(), keyReleaseKey: krk }),
        (e: HgsRefusal) => e.status === 403,
      );
      expected.push({ method: "POST", route: "/host/v1/attest/key", statusCode: 403 });

      const { keyProtector, transportKey } = protectorFor(info.guardian);
      const body = releaseRequestBody(a.healthCertificate, krk, keyProtector);
      const r = await client.request<{
        keyProtector: string;
        oldKeyGeneration: number;
        newKeyGeneration: number;
        keys: WrappedKeysJson;
      }>("POST", "/host/v1/keys/release", body);
      expected.push({ method: "POST", route: "/host/v1/keys/release", statusCode: 200 });
      const opened = openReleaseResponse(krk, r);
      assert.deepEqual(Buffer.from(opened.oldKey.key), Buffer.from(transportKey.key));
      secrets.set("key protector (request)", body.keyProtector.slice(0, 200));
      secrets.set("key protector (response)", r.keyProtector.slice(0, 200));
      secrets.set("wrapped keys", r.keys.ciphertext);
      secrets.set("wrapped keys enc", r.keys.enc);
      for (const [what, k] of [
        ["old transport key", opened.oldKey.key],
        ["new transport key", opened.newKey.key],
      ] as const) {
        secrets.set(`${what} (hex)`, Buffer.from(k).toString("hex"));
        secrets.set(`${what} (base64)`, Buffer.from(k).toString("base64"));
      }
      // A replay is refused, and its refusal is logged too.
      await assert.rejects(
        client.request("POST", "/host/v1/keys/release", body),
        (e: HgsRefusal) => e.status === 403,
      );
      expected.push({ method: "POST", route: "/host/v1/keys/release", statusCode: 403 });
    } finally {
      client.close();
    }
    await serve.stop();
  });

  it("writes JSON lines only, one completion line per request, and no secret", () => {
    const text = serve?.stderr() ?? "";
    const lines = text.split("\n").filter(Boolean);
    assert.ok(lines.length > expected.length, "the service logged");
    const parsed = lines.map((l) => {
      assert.doesNotThrow(() => JSON.parse(l), `not JSON: ${l}`);
      return JSON.parse(l) as LogLine;
    });
    assert.ok(
      parsed.some((l) => l.msg === "request received" && l.level === 20),
      "debug lines are written at --log-level debug",
    );
    const completed = parsed.filter((l) => l.msg === "request completed");
    for (const e of expected) {
      const line = completed.find(
        (l) => l.method === e.method && l.route === e.route && l.statusCode === e.statusCode,
      );
      assert.ok(line, `a completion line for ${e.method} ${e.route} ${e.statusCode}`);
      assert.match(line.reqId ?? "", /^[0-9a-f-]{36}$/);
      assert.equal(typeof line.responseTimeMs, "number");
    }
    assert.equal(new Set(completed.map((l) => l.reqId)).size, completed.length, "request ids are unique");
    for (const [what, secret] of secrets) {
      assert.ok(secret.length >= 16, `${what} is a meaningful probe`);
      assert.ok(!text.includes(secret), `the log holds the ${what}`);
    }
    assert.ok(!/PRIVATE KEY/.test(text));
    assert.ok(!/Bearer /i.test(text), "no authorization header");
  });
});

describe("HGS log redaction", () => {
  it("blanks secret fields that reach a log call by mistake, at the top level and one level down", () => {
    let written = "";
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        written += chunk.toString();
        done();
      },
    });
    const log = createLogger("debug", sink);
    const secret = "s3cr3t-value-that-must-not-appear";
    log.info({ authorization: `Bearer ${secret}`, req: { headers: { authorization: secret } } }, "a");
    log.info(
      { request: { keyProtector: secret, keys: { ciphertext: secret } }, healthCertificate: secret },
      "b",
    );
    log.info({ body: { anything: secret }, credential: secret, transportKey: secret }, "c");
    const lines = written.split("\n").filter(Boolean);
    assert.equal(lines.length, 3);
    for (const l of lines) JSON.parse(l);
    assert.ok(!written.includes(secret), written);
    assert.ok(written.includes("[redacted]"));
  });
});
