/**
 * HGS on PostgreSQL: the attack suites in process, then two `bulwark hgs serve` processes
 * sharing one database with requests spread across both (nonces, replays, revocations and the
 * audit chain are fabric-wide), and a restart of both nodes.
 */
import assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import {
  HgsClient,
  releaseRequestBody,
  tpmEvidence,
  type HgsRefusal,
} from "../../src/host/guarded/hgs-client.js";
import { attestKeyMessage, keyId, signWithHostKey, spkiDer } from "../../src/attest/host-key.js";
import { defineAttackSuites } from "../helpers/hgs-attack-suite.js";
import { ecKey, pem, protectorFor } from "../helpers/hgs-fixture.js";
import { captureBaselines, startSimHost, type SimHost } from "../helpers/hgs-host.js";
import { startPostgres, type PgCluster } from "../helpers/hgs-postgres.js";
import { hgsCli, startServe, type ServeProcess } from "../helpers/hgs-proc.js";

let cluster: PgCluster | undefined;
function pgCluster(): PgCluster {
  cluster ??= startPostgres();
  return cluster;
}
after(() => cluster?.stop());

async function database(name: string): Promise<string> {
  const c = pgCluster();
  const client = new pg.Client({ connectionString: c.url });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  return c.url.replace("/postgres?", `/${name}?`);
}

defineAttackSuites("postgres", database);

describe("two HGS nodes sharing one PostgreSQL database", () => {
  let root: string;
  let dir: string;
  let nodes: ServeProcess[] = [];
  let a: HgsClient;
  let b: HgsClient;
  let ca: string;
  let cred: string;
  const hosts: SimHost[] = [];

  async function adminCall<T>(node: number, method: string, p: string, body?: unknown): Promise<T> {
    const r = await fetchJson(nodes[node]?.url as string, method, p, body);
    assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${JSON.stringify(r.json)}`);
    return r.json as T;
  }

  async function fetchJson(
    base: string,
    method: string,
    p: string,
    body?: unknown,
  ): Promise<{ status: number; json: unknown }> {
    const { request } = await import("node:https");
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        new URL(p, base),
        {
          method,
          ca,
          headers: {
            authorization: `Bearer ${cred}`,
            ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}),
          },
        },
        (res) => {
          let s = "";
          res.on("data", (d: Buffer) => (s += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(s) }));
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
  }

  const startNodes = async () => {
    nodes = [await startServe(dir), await startServe(dir)];
    a = new HgsClient({ urls: [nodes[0]?.url as string], ca });
    b = new HgsClient({ urls: [nodes[1]?.url as string], ca });
  };
  const stopNodes = async () => {
    a?.close();
    b?.close();
    for (const n of nodes) await n.stop();
    nodes = [];
  };

  before(async () => {
    root = mkdtempSync(path.join(tmpdir(), "bulwark-hgs-2nodes-"));
    dir = path.join(root, "hgs");
    const init = hgsCli(["init", "--dir", dir, "--db", await database("fabric"), "--json"]);
    assert.equal(init.status, 0, init.stderr);
    ca = readFileSync(path.join(dir, "tls.crt"), "utf8");
    cred = readFileSync(path.join(dir, "admin-credential"), "utf8").trim();
    await startNodes();
  });
  after(async () => {
    await stopNodes();
    for (const h of hosts) await h.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it("host-key mode: challenge on one node, attest and release on the other; replays refused fabric-wide", async () => {
    await adminCall(0, "PATCH", "/admin/v1/settings", { mode: "key" });
    const hostKey = ecKey();
    const krk = ecKey();
    await adminCall(1, "POST", "/admin/v1/hosts/key", { name: "h1", publicKey: pem(hostKey) });
    const hostId = keyId(hostKey);
    const { nonce } = await a.challenge(hostId);
    const body = {
      hostId,
      nonce,
      keyReleaseKey: spkiDer(krk).toString("base64"),
      signature: signWithHostKey(
        hostKey,
        attestKeyMessage(Buffer.from(nonce, "hex"), createPublicKey(krk), hostId),
      ).toString("base64"),
    };
    const att = await b.request<{ healthCertificate: string }>("POST", "/host/v1/attest/key", body);
    await assert.rejects(
      a.request("POST", "/host/v1/attest/key", body),
      (e: HgsRefusal) =>
        e.details.finding === undefined &&
        e.verdict?.findings.some((f) => f.id === "nonce.replayed") === true,
    );

    const info = await a.info();
    for (let i = 0; i < 6; i++) {
      const c = i % 2 === 0 ? a : b;
      const { keyProtector, transportKey } = protectorFor(info.guardian);
      const r = await c.releaseKey({
        healthCertificate: att.healthCertificate,
        keyReleaseKey: krk,
        keyProtector,
      });
      assert.deepEqual(Buffer.from(r.oldKey.key), Buffer.from(transportKey.key));
    }
    const once = releaseRequestBody(att.healthCertificate, krk, protectorFor(info.guardian).keyProtector);
    await a.request("POST", "/host/v1/keys/release", once);
    await assert.rejects(
      b.request("POST", "/host/v1/keys/release", once),
      (e: HgsRefusal) => e.details.finding === "request.replayed",
    );

    await adminCall(0, "POST", `/admin/v1/hosts/${hostId}/revoke`);
    await assert.rejects(
      b.releaseKey({
        healthCertificate: att.healthCertificate,
        keyReleaseKey: krk,
        keyProtector: protectorFor(info.guardian).keyProtector,
      }),
      (e: HgsRefusal) => e.details.finding === "host.revoked",
    );
  });

  it("TPM mode across both nodes with a real swtpm host", async () => {
    await adminCall(1, "PATCH", "/admin/v1/settings", { mode: "tpm" });
    const h = await startSimHost();
    hosts.push(h);
    await adminCall(0, "POST", "/admin/v1/hosts/tpm", {
      name: "tpm-1",
      ekPublic: h.ekPublic.toString("base64"),
    });
    const bl = await captureBaselines(h);
    await adminCall(1, "POST", "/admin/v1/baselines", bl.secureboot);
    await adminCall(0, "POST", "/admin/v1/baselines", bl.codeintegrity);
    await b.enrollAk({ hostId: h.hostId, tpm: h.tpm, ek: h.ek, ak: h.ak });
    for (let i = 0; i < 4; i++) {
      const krk = ecKey();
      const { nonce } = await (i % 2 ? a : b).challenge(h.hostId);
      const ev = await tpmEvidence(h.tpm, h.ak, Buffer.from(nonce, "hex"), createPublicKey(krk));
      const r = await (i % 2 ? b : a).request<{ verdict: { status: string }; healthCertificate: string }>(
        "POST",
        "/host/v1/attest/tpm",
        {
          hostId: h.hostId,
          nonce,
          keyReleaseKey: spkiDer(krk).toString("base64"),
          ...ev,
          eventLog: Buffer.from(h.eventLog()).toString("base64"),
        },
      );
      assert.equal(r.verdict.status, "Passed");
      const info = await a.info();
      await (i % 2 ? a : b).releaseKey({
        healthCertificate: r.healthCertificate,
        keyReleaseKey: krk,
        keyProtector: protectorFor(info.guardian).keyProtector,
      });
    }
  });

  it("concurrent releases on both nodes keep one unforked audit chain; a restart keeps everything", async () => {
    const h = hosts[0] as SimHost;
    const krk = ecKey();
    const att = await a.attestTpm({
      hostId: h.hostId,
      tpm: h.tpm,
      ak: h.ak,
      keyReleaseKey: krk,
      eventLog: h.eventLog(),
    });
    const info = await a.info();
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? a : b).releaseKey({
          healthCertificate: att.healthCertificate,
          keyReleaseKey: krk,
          keyProtector: protectorFor(info.guardian).keyProtector,
        }),
      ),
    );
    const v1 = await adminCall<{ ok: boolean; entries: number; head: string }>(
      1,
      "GET",
      "/admin/v1/audit/verify",
    );
    assert.equal(v1.ok, true);
    await stopNodes();
    await startNodes();
    const v2 = await adminCall<{ ok: boolean; entries: number; head: string }>(
      0,
      "GET",
      "/admin/v1/audit/verify",
    );
    assert.deepEqual(v2, v1);
    const hostsNow = await adminCall<{ hosts: { name: string }[] }>(1, "GET", "/admin/v1/hosts");
    assert.deepEqual(hostsNow.hosts.map((x) => x.name).sort(), ["h1", "tpm-1"]);
    const bls = await adminCall<{ baselines: unknown[] }>(0, "GET", "/admin/v1/baselines");
    assert.equal(bls.baselines.length, 2);
    // The certificate issued before the restart still works on either node.
    await b.releaseKey({
      healthCertificate: att.healthCertificate,
      keyReleaseKey: krk,
      keyProtector: protectorFor(info.guardian).keyProtector,
    });
  });
});
