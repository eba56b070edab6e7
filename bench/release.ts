/**
 * HGS key releases in process, and the public-key operations one release costs, beside the
 * reference they compete with: OpenSSL's own ECDH rate on this machine (`openssl speed
 * ecdhp256 ecdhx25519`) and node's `diffieHellman` rate for the same curves.
 *
 *   releaseKey            the real use case over a real HgsContext (SQLite in a temp directory):
 *                         health certificate verified, host read, request proof checked, nonce
 *                         looked up, key protector unwrapped and rolled, keys wrapped to the
 *                         host, rollback record and audit entry committed; 32 requests in flight;
 *   crypto of a release   what bench/hgs-load's limit column measures, with the service's memo
 *                         (HealthVerifier, ProtectorMemo) as the server holds them: certificate,
 *                         proof, unwrap + roll, wrap to the key-release key; no store.
 * Each is run for a key protector whose guardians (owner + HGS) have P-256 encryption keys (the
 * version-1 suites, an HGS initialised before X25519) and X25519 ones (the version-2 suite, what
 * `hgs init` and new owners make now). The host's key-release key is P-256 in both.
 *
 * Operation counts: node:crypto's ECDH, key generation, sign and verify entry points are
 * counted for ONE release of each kind (the bench wraps them; nothing else in the process does).
 *
 * Run: node dist/bench/release.js [--quick]. Prints a table, then ONE JSON line.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire, syncBuiltinESMExports } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { generateKeyPairSync } from "node:crypto";
import type * as NodeCrypto from "node:crypto";
import { HealthVerifier } from "../src/attest/health.js";
import { keysContext, releaseMessage, verifyRelease, wrapKeys } from "../src/attest/release.js";
import { initHgs, openHgs } from "../src/hgs/context.js";
import { buildServer } from "../src/hgs/http/server.js";
import { releaseKey, type ReleaseRequest } from "../src/hgs/release.js";
import { releaseRequestBody } from "../src/host/guarded/hgs-client.js";
import {
  createGuardian,
  exportGuardianPem,
  exportGuardianPublicPem,
  type CreateGuardianOptions,
  type Guardian,
} from "../src/protector/guardian.js";
import { createKeyProtector, ProtectorMemo, rollTransportKey } from "../src/protector/key-protector.js";
import { zeroize } from "../src/protector/kdf.js";
import { admin, ecKey, injectClient, pem, type HgsFixture } from "../test/helpers/hgs-fixture.js";

const quick = process.argv.includes("--quick");
const BUDGET_MS = quick ? 600 : 2500;
const IN_FLIGHT = 32;

// ---- operation counting: wraps node:crypto's public-key entry points for this process ----
const nodeCrypto = createRequire(import.meta.url)("node:crypto") as typeof NodeCrypto;
const counts = new Map<string, number>();
function counted<F extends (...a: never[]) => unknown>(label: string, f: F): F {
  return function (this: unknown, ...a: Parameters<F>) {
    counts.set(label, (counts.get(label) ?? 0) + 1);
    return f.apply(this, a);
  } as F;
}
const cryptoTable = nodeCrypto as unknown as Record<string, (...a: never[]) => unknown>;
for (const fn of ["diffieHellman", "generateKeyPairSync", "sign", "verify"]) {
  cryptoTable[fn] = counted(fn, cryptoTable[fn] as (...a: never[]) => unknown);
}
const ecdhProto = Object.getPrototypeOf(nodeCrypto.createECDH("prime256v1")) as Record<
  string,
  (...a: never[]) => unknown
>;
for (const m of ["computeSecret", "generateKeys", "setPrivateKey"]) {
  ecdhProto[m] = counted(`ECDH.${m}`, ecdhProto[m] as (...a: never[]) => unknown);
}
const x509Proto = nodeCrypto.X509Certificate.prototype as unknown as Record<
  string,
  (...a: never[]) => unknown
>;
x509Proto.verify = counted("X509Certificate.verify", x509Proto.verify as (...a: never[]) => unknown);
syncBuiltinESMExports();

function countOne(fn: () => unknown): Record<string, number> {
  counts.clear();
  fn();
  return Object.fromEntries([...counts].sort(([a], [b]) => a.localeCompare(b)));
}

function rate(fn: () => void): number {
  for (let i = 0; i < 20; i++) fn();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < BUDGET_MS) {
    fn();
    n++;
  }
  return n / ((performance.now() - t0) / 1000);
}

async function rateAsync(bodies: ReleaseRequest[], fn: (b: ReleaseRequest) => Promise<unknown>) {
  let i = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (performance.now() - t0 < BUDGET_MS && i < bodies.length) await fn(bodies[i++] as ReleaseRequest);
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return i / ((performance.now() - t0) / 1000);
}

function opensslEcdh(): { p256: number; x25519: number } {
  const r = spawnSync("openssl", ["speed", "-seconds", quick ? "1" : "3", "ecdhp256", "ecdhx25519"], {
    encoding: "utf8",
  });
  if (r.error)
    throw new Error(
      `openssl is needed for the reference figures (apt-get install openssl): ${r.error.message}`,
    );
  const opsOf = (re: RegExp) =>
    Number(
      r.stdout
        .split("\n")
        .find((l) => re.test(l))
        ?.trim()
        .split(/\s+/)
        .at(-1),
    );
  return { p256: opsOf(/ecdh \(nistp256\)/), x25519: opsOf(/ecdh \(X25519\)/) };
}

function nodeEcdh(type: "p256" | "x25519"): number {
  const gen = () =>
    type === "p256" ? generateKeyPairSync("ec", { namedCurve: "prime256v1" }) : generateKeyPairSync("x25519");
  const a = gen();
  const b = gen();
  return rate(() => nodeCrypto.diffieHellman({ privateKey: a.privateKey, publicKey: b.publicKey }));
}

interface Variant {
  readonly name: string;
  readonly guardianOptions: CreateGuardianOptions;
}

/**
 * An HGS made by `hgs init` whose guardian is then replaced by one of the variant's key types
 * (as an HGS initialised by an older Bulwark has a P-256 encryption key), opened again.
 */
async function hgsWith(guardian: Guardian): Promise<HgsFixture> {
  const root = mkdtempSync(path.join(tmpdir(), "bulwark-release-bench-"));
  const dir = path.join(root, "hgs");
  const init = await initHgs(dir);
  await init.ctx.close();
  writeFileSync(path.join(dir, "guardian.pem"), exportGuardianPem(guardian), { mode: 0o600 });
  writeFileSync(path.join(dir, "guardian-public.pem"), exportGuardianPublicPem(guardian));
  const ctx = await openHgs(dir);
  const app = await buildServer(ctx, { tls: false });
  return {
    root,
    dir,
    ctx,
    app,
    admin: init.adminCredential,
    async close() {
      await app.close();
      await ctx.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

async function main(): Promise<void> {
  const variants: Variant[] = [
    { name: "P-256 guardians (v1)", guardianOptions: { signingKeyType: "p256", encryptionKeyType: "p256" } },
    {
      name: "X25519 guardians (v2)",
      guardianOptions: { signingKeyType: "p256", encryptionKeyType: "x25519" },
    },
  ];
  const rows: {
    variant: string;
    releaseKeyRps: number;
    cryptoRps: number;
    ops: Record<string, number>;
  }[] = [];
  for (const v of variants) {
    const owner = createGuardian("BenchOwner", v.guardianOptions);
    const hgs = createGuardian("HGS", v.guardianOptions);
    const fx = await hgsWith(hgs);
    try {
      await admin(fx, "PATCH", "/admin/v1/settings", { mode: "key" });
      const hostKey = ecKey();
      await admin(fx, "POST", "/admin/v1/hosts/key", { name: "bench-host", publicKey: pem(hostKey) });
      const krk = ecKey();
      const certificate = (await injectClient(fx).attestHostKey({ hostKey, keyReleaseKey: krk }))
        .healthCertificate;
      const { ctx } = fx;
      const kp = createKeyProtector({ owner, guardians: [ctx.dir.guardian] }).keyProtector;

      // The crypto of a release, with a memo of its own as the server holds one.
      const sample = releaseRequestBody(certificate, krk, kp);
      const verifier = new HealthVerifier();
      const memo = new ProtectorMemo();
      const signerPublic = ctx.signer.publicKey;
      const oneRelease = () => {
        const c = verifier.verify(certificate, { signerPublic, signerId: ctx.signer.id });
        const msg = releaseMessage(Buffer.from(sample.requestId, "hex"), sample.timestamp, kp, c.claims.jti);
        if (!verifyRelease(c.krk, msg, Buffer.from(sample.signature, "base64"))) throw new Error("proof");
        const roll = rollTransportKey(kp, ctx.dir.guardian, { memo });
        const context = keysContext(
          roll.oldKey.protectorId,
          roll.oldKey.keyGeneration,
          roll.newKey.keyGeneration,
          roll.keyProtector,
        );
        wrapKeys(c.krk, roll.oldKey.key, roll.newKey.key, context, memo.points);
        zeroize(roll.oldKey.key, roll.newKey.key);
      };
      oneRelease(); // fills the memo, as the server's first release of a VM does
      const ops = countOne(oneRelease);
      const cryptoRps = rate(oneRelease);

      // The real use case, every request distinct (its own request id, signed by the host).
      const n = Math.ceil((BUDGET_MS / 1000) * 4000);
      const bodies = Array.from({ length: n }, () => releaseRequestBody(certificate, krk, kp));
      await releaseKey(ctx, bodies.pop() as ReleaseRequest);
      const releaseKeyRps = await rateAsync(bodies, (b) => releaseKey(ctx, b));
      rows.push({ variant: v.name, releaseKeyRps, cryptoRps, ops });
    } finally {
      await fx.close();
    }
  }

  const ssl = opensslEcdh();
  const node = { p256: nodeEcdh("p256"), x25519: nodeEcdh("x25519") };
  const lines = [
    `HGS key release in process (one thread; ${IN_FLIGHT} releaseKey calls in flight over SQLite)`,
    "",
    `${"protector".padEnd(24)}  ${"releaseKey/s".padStart(12)}  ${"crypto/s".padStart(9)}  public-key operations per release`,
    ...rows.map(
      (r) =>
        `${r.variant.padEnd(24)}  ${r.releaseKeyRps.toFixed(0).padStart(12)}  ${r.cryptoRps.toFixed(0).padStart(9)}  ${Object.entries(
          r.ops,
        )
          .map(([k, n]) => `${k} ${n}`)
          .join(", ")}`,
    ),
    "",
    "reference: ECDH derivations/s      node     openssl speed   ratio",
    `  P-256                        ${node.p256.toFixed(0).padStart(8)}  ${ssl.p256.toFixed(0).padStart(14)}   ${(node.p256 / ssl.p256).toFixed(2)}`,
    `  X25519                       ${node.x25519.toFixed(0).padStart(8)}  ${ssl.x25519.toFixed(0).padStart(14)}   ${(node.x25519 / ssl.x25519).toFixed(2)}`,
    "",
  ];
  process.stdout.write(lines.join("\n"));
  process.stdout.write(
    `${JSON.stringify({
      bench: "release",
      quick,
      inFlight: IN_FLIGHT,
      variants: rows.map((r) => ({
        name: r.variant,
        releaseKeyRps: Math.round(r.releaseKeyRps),
        cryptoRps: Math.round(r.cryptoRps),
        ops: r.ops,
      })),
      ecdh: {
        nodeP256: Math.round(node.p256),
        opensslP256: Math.round(ssl.p256),
        nodeX25519: Math.round(node.x25519),
        opensslX25519: Math.round(ssl.x25519),
      },
    })}\n`,
  );
}

await main();
