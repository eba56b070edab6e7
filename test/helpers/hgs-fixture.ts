/**
 * HGS test fixtures: a fresh HGS in a temp directory (SQLite or a given PostgreSQL URL), an
 * owner guardian and key protectors that list the HGS guardian, host keys. Everything real:
 * no mocks. Call `close()` in teardown.
 */
import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { createGuardian, importGuardianPublicPem, type Guardian } from "../../src/protector/guardian.js";
import { createKeyProtector } from "../../src/protector/key-protector.js";
import type { TransportKey } from "../../src/protector/transport-key.js";
import { initHgs, type HgsContext } from "../../src/hgs/context.js";
import { buildServer } from "../../src/hgs/http/server.js";
import type { SourceLimits } from "../../src/hgs/http/rate-limit.js";
import { HgsClient } from "../../src/host/guarded/hgs-client.js";
import { attestKeyMessage, keyId, signWithHostKey, spkiDer } from "../../src/attest/host-key.js";

export interface HgsFixture {
  readonly root: string;
  readonly dir: string;
  readonly ctx: HgsContext;
  readonly app: FastifyInstance;
  readonly admin: string;
  close(): Promise<void>;
}

export async function startHgs(
  opts: { db?: string; tls?: boolean; limits?: Partial<SourceLimits> } = {},
): Promise<HgsFixture> {
  const root = mkdtempSync(path.join(tmpdir(), "bulwark-hgs-"));
  const dir = path.join(root, "hgs");
  const init = await initHgs(dir, opts.db ? { db: opts.db } : {});
  const app = await buildServer(init.ctx, {
    tls: opts.tls ?? true,
    ...(opts.limits ? { limits: opts.limits } : {}),
  });
  return {
    root,
    dir,
    ctx: init.ctx,
    app,
    admin: init.adminCredential,
    async close() {
      await app.close();
      await init.ctx.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export function ecKey(curve: "prime256v1" | "secp384r1" = "prime256v1"): KeyObject {
  return generateKeyPairSync("ec", { namedCurve: curve }).privateKey;
}

export function rsaKey(bits = 2048): KeyObject {
  return generateKeyPairSync("rsa", { modulusLength: bits }).privateKey;
}

export function pem(k: KeyObject): string {
  return createPublicKey(k).export({ type: "spki", format: "pem" }).toString();
}

let ownerCache: Guardian | undefined;
/** One owner guardian per test process (key generation is the slow part). */
export function owner(): Guardian {
  ownerCache ??= createGuardian("Owner", { signingKeyType: "p256" });
  return ownerCache;
}

/** A key protector owned by `owner()` listing the HGS guardian (from its public PEM). */
export function protectorFor(guardianPublicPem: string): {
  keyProtector: Uint8Array;
  transportKey: TransportKey;
} {
  return createKeyProtector({ owner: owner(), guardians: [importGuardianPublicPem(guardianPublicPem)] });
}

export async function admin<T = unknown>(
  fx: HgsFixture,
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
  url: string,
  payload?: unknown,
): Promise<{ status: number; body: T }> {
  const r = await fx.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${fx.admin}` },
    ...(payload !== undefined ? { payload: payload as object } : {}),
  });
  return { status: r.statusCode, body: r.json() as T };
}

export async function host<T = unknown>(
  fx: HgsFixture,
  url: string,
  payload: unknown,
): Promise<{ status: number; body: T }> {
  const r = await fx.app.inject({ method: "POST", url, payload: payload as object });
  return { status: r.statusCode, body: r.json() as T };
}

/** Host-key attestation over the routes: challenge, then the signed attestation. */
export async function attestOverRoutes(fx: HgsFixture, hostKey: KeyObject, krk: KeyObject) {
  const hostId = keyId(hostKey);
  const c = await host<{ nonce: string }>(fx, "/host/v1/challenge", { hostId });
  assert.equal(c.status, 200);
  const sig = signWithHostKey(
    hostKey,
    attestKeyMessage(Buffer.from(c.body.nonce, "hex"), createPublicKey(krk), hostId),
  );
  return host<{ healthCertificate?: string; verdict: { status: string; findings: { id: string }[] } }>(
    fx,
    "/host/v1/attest/key",
    {
      hostId,
      nonce: c.body.nonce,
      keyReleaseKey: spkiDer(krk).toString("base64"),
      signature: sig.toString("base64"),
    },
  );
}

/** An HgsClient whose requests go through fastify `inject` (no sockets). */
export function injectClient(fx: HgsFixture): HgsClient {
  return new HgsClient({
    urls: ["https://hgs.invalid"],
    send: async (_base, method, url, body) => {
      const r = await fx.app.inject({
        method: method as "GET" | "POST",
        url,
        ...(body !== undefined ? { payload: body as object } : {}),
      });
      return { status: r.statusCode, json: r.json() as unknown };
    },
  });
}
