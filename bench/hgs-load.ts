/**
 * HGS load: attestations/s (TPM and host-key mode) and key releases/s with p50/p99 latency,
 * driven by autocannon over HTTPS on loopback against a `bulwark hgs serve` process (SQLite
 * store), beside the same verification in a tight in-process loop (the limit), as a ratio.
 * Beside each rate: the server's CPU time per request (all its processes, from /proc), which
 * stays meaningful when other work shares the CPUs, and its in-process counterpart (1000/limit).
 *
 * Phases:
 *   - empty database: TPM attestations, host-key attestations, key releases;
 *   - at scale (--scale or not --quick): 10,000 registered hosts, 1,000 baselines and 200,000
 *     audit entries seeded through the repository (serve stopped meanwhile), then TPM
 *     attestations and key releases again, as a ratio of the empty database's rates;
 *     `hgs audit verify` on that log (entries/s, in-process and as the CLI), and the peak RSS
 *     (VmHWM) of every server process after the load;
 *   - HA (--pg or not --quick; needs PostgreSQL 15): two `hgs serve` nodes on one PostgreSQL
 *     (fsync on), key releases split over both, aggregate beside the one SQLite node's rate.
 *
 * Every request is a real, distinct, valid one: TPM attestations carry a fresh HGS nonce and a
 * swtpm quote made for it (generated before the run, nonce lifetime raised so they stay valid),
 * host-key attestations a fresh signed nonce, key releases a unique signed request id; each is
 * fully verified and audited by the server. All load comes from one source address (127.0.0.1):
 * the per-source nonce cap is raised with --nonces-per-source (the bench holds thousands of
 * challenges at once); the failure limiter stays at its defaults, which every phase passes
 * because it counts only answers of 400 and more and every request here succeeds (an error
 * column above 0 says otherwise). Bounded: a fixed request count per phase and a 60 s cap each.
 *
 * Run: node dist/bench/hgs-load.js [--quick] [--workers=N] [--scale] [--pg] [--profile=DIR]
 * (--profile: CPU profiles of the server processes). Prints a table, then ONE JSON line.
 */
import { createPublicKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import { HgsClient, releaseRequestBody, tpmEvidence } from "../src/host/guarded/hgs-client.js";
import { HealthVerifier, issueHealthCertificate, signerId } from "../src/attest/health.js";
import {
  attestKeyMessage,
  keyId,
  signWithHostKey,
  spkiDer,
  verifyHostSignature,
} from "../src/attest/host-key.js";
import { POLICIES } from "../src/attest/policies.js";
import { keysContext, releaseMessage, verifyRelease, wrapKeys } from "../src/attest/release.js";
import { EventLogJudge, judgeTpmEvidence, parseTpm2bPublic } from "../src/attest/tpm-judge.js";
import { QuoteVerifier } from "../src/tpm/verify/quote.js";
import { baselineId, BASELINE_FORMAT, parseBaseline, type Baseline } from "../src/attest/baseline.js";
import { appendAudit, verifyAuditChain } from "../src/hgs/audit.js";
import { openHgs } from "../src/hgs/context.js";
import { importGuardianPem } from "../src/protector/guardian.js";
import { ProtectorMemo, rollTransportKey } from "../src/protector/key-protector.js";
import { zeroize } from "../src/protector/kdf.js";
import { ecKey, pem, protectorFor } from "../test/helpers/hgs-fixture.js";
import { captureBaselines, startSimHost, type SimHost } from "../test/helpers/hgs-host.js";
import { startPostgres } from "../test/helpers/hgs-postgres.js";
import { hgsCli, startServe, type ServeProcess } from "../test/helpers/hgs-proc.js";

const quick = process.argv.includes("--quick");
const withScale = process.argv.includes("--scale") || !quick;
const withPg = process.argv.includes("--pg") || !quick;
const N_TPM = quick ? 300 : 1500;
const N_KEY = quick ? 500 : 3000;
const N_REL = quick ? 500 : 4000;
const CONNECTIONS = 32;
const LIMIT_MS = quick ? 500 : 2000;
const SCALE = { hosts: 10_000, baselines: 1000, auditEntries: 200_000 };
const PG_BIN = "/usr/lib/postgresql/15/bin/initdb";
const CLK_TCK = 100;

interface Load {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
  readonly non2xx: number;
  /** Server CPU (user + system, all its processes) per answered request, ms. */
  readonly cpuMsPerReq: number;
}

interface Phase extends Load {
  readonly name: string;
  readonly limit: number;
  /** What the rate is compared with when not the in-process limit (scale, HA rows). */
  readonly reference?: { readonly name: string; readonly rps: number; readonly minRatio: number };
  readonly goal?: { rps: number; p99?: number };
}

/** The server's processes: the serve process and, under --workers, its cluster workers. */
function serverPids(pid: number): number[] {
  let kids: number[] = [];
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    kids = [];
  }
  return [pid, ...kids];
}

/** User + system CPU of processes, ms (from /proc/PID/stat; the command name may hold spaces). */
function cpuMs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // exited
    }
  }
  return (ticks * 1000) / CLK_TCK;
}

/** Peak resident set (VmHWM, MB) of each process. */
function peakRssMb(pids: readonly number[]): number[] {
  return pids.map((pid) => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      return m ? Number(m[1]) / 1024 : 0;
    } catch {
      return 0;
    }
  });
}

/**
 * Sends every body once, over CONNECTIONS connections split between the targets (two nodes in
 * the HA phase). Rate = answers / (last answer - first request), over all targets; p50 is the
 * targets' mean, p99 their worst.
 */
async function load(
  targets: readonly { readonly url: string; readonly bodies: readonly string[] }[],
  p: string,
  servers: readonly ServeProcess[],
): Promise<Load> {
  // Throughput from the first request sent to the last response received: autocannon notices
  // that `amount` is reached only on its 1 s tick, so its own duration would quantize the rate.
  let first = Number.POSITIVE_INFINITY;
  let last = 0;
  let answered = 0;
  const pids = servers.flatMap((s) => serverPids(s.proc.pid ?? 0));
  const cpu0 = cpuMs(pids);
  const runs = await Promise.all(
    targets.map(({ url, bodies }) => {
      let i = 0;
      return autocannon({
        url,
        connections: Math.max(1, Math.floor(CONNECTIONS / targets.length)),
        amount: bodies.length,
        timeout: 30,
        requests: [
          {
            method: "POST",
            path: p,
            headers: { "content-type": "application/json" },
            setupRequest: (req) => {
              if (i === 0) first = Math.min(first, performance.now());
              return { ...req, body: bodies[i++ % bodies.length] };
            },
            onResponse: () => {
              last = performance.now();
              answered++;
            },
          },
        ],
      });
    }),
  );
  const cpu = cpuMs(pids) - cpu0;
  return {
    rps: answered / ((last - first) / 1000),
    p50: runs.reduce((a, r) => a + r.latency.p50, 0) / runs.length,
    p99: Math.max(...runs.map((r) => r.latency.p99)),
    errors: runs.reduce((a, r) => a + r.errors + r.timeouts, 0),
    non2xx: runs.reduce((a, r) => a + r.non2xx, 0),
    cpuMsPerReq: cpu / Math.max(1, answered),
  };
}

function limitLoop(fn: (i: number) => void): number {
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < LIMIT_MS) fn(n++);
  return n / ((performance.now() - t0) / 1000);
}

interface Fabric {
  readonly root: string;
  readonly dir: string;
  readonly sim: SimHost;
  readonly hostKey: ReturnType<typeof ecKey>;
  readonly krk: ReturnType<typeof ecKey>;
  readonly eventLog: Uint8Array;
}

/** Every challenge made before the run (each quote needs its own nonce): N_TPM request bodies. */
async function tpmBodies(
  f: Fabric,
  client: HgsClient,
  keep?: { nonce: Buffer; quote: Buffer; signature: Buffer; pcrs: Map<number, Uint8Array> }[],
): Promise<string[]> {
  const krkB64 = spkiDer(f.krk).toString("base64");
  const out: string[] = [];
  for (let i = 0; i < N_TPM; i++) {
    const { nonce } = await client.challenge(f.sim.hostId);
    const ev = await tpmEvidence(f.sim.tpm, f.sim.ak, Buffer.from(nonce, "hex"), createPublicKey(f.krk));
    out.push(
      JSON.stringify({
        hostId: f.sim.hostId,
        nonce,
        keyReleaseKey: krkB64,
        ...ev,
        eventLog: Buffer.from(f.eventLog).toString("base64"),
      }),
    );
    if (keep && i < 50) {
      keep.push({
        nonce: Buffer.from(nonce, "hex"),
        quote: Buffer.from(ev.quote, "base64"),
        signature: Buffer.from(ev.signature, "base64"),
        pcrs: new Map(Object.entries(ev.pcrs).map(([k, v]) => [Number(k), Buffer.from(v, "hex")])),
      });
    }
  }
  return out;
}

/** N_REL release bodies for one health certificate of the host key (key mode). */
async function releaseBodies(f: Fabric, client: HgsClient): Promise<{ bodies: string[]; cert: string }> {
  const a = await client.attestHostKey({ hostKey: f.hostKey, keyReleaseKey: f.krk });
  const { keyProtector } = protectorFor((await client.info()).guardian);
  const bodies: string[] = [];
  for (let i = 0; i < N_REL; i++)
    bodies.push(JSON.stringify(releaseRequestBody(a.healthCertificate, f.krk, keyProtector)));
  return { bodies, cert: a.healthCertificate };
}

function cli(args: string[]): void {
  const r = hgsCli(args);
  if (r.status !== 0) throw new Error(`hgs ${args.join(" ")}: ${r.stderr}`);
}

function registerHosts(f: Fabric): void {
  writeFileSync(path.join(f.root, "ek.bin"), f.sim.ekPublic);
  cli(["host", "add-tpm", "--dir", f.dir, "--name", "tpm-host", "--ek-public", path.join(f.root, "ek.bin")]);
  writeFileSync(path.join(f.root, "host.pem"), pem(f.hostKey));
  cli([
    "host",
    "add-key",
    "--dir",
    f.dir,
    "--name",
    "key-host",
    "--public-key",
    path.join(f.root, "host.pem"),
  ]);
}

function serveArgs(workers: number): string[] {
  // Every quote is generated before the run, so the bench holds thousands of challenges at once.
  return ["--workers", String(workers), "--nonces-per-source", "8192"];
}

/**
 * The database at scale, through the repository (serve is stopped): 10,000 key hosts, 1,000
 * baselines of random PCRs (the real ones stay registered), audit entries up to 200,000. Closing
 * the context checkpoints the new head (re-linking the seeded entries once, as the server's
 * checkpoints do every 10,000 entries).
 */
async function seedScale(dir: string): Promise<{ seedSeconds: number; checkpointSeconds: number }> {
  const t0 = performance.now();
  const ctx = await openHgs(dir);
  const hostIds: string[] = [];
  await ctx.repo.transaction(async (tx) => {
    for (let i = 0; i < SCALE.hosts; i++) {
      const key = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).publicKey;
      const id = keyId(key);
      hostIds.push(id);
      await tx.insertHost({
        id,
        name: `seeded-${i}`,
        kind: "key",
        publicKey: spkiDer(key),
        ekPublic: null,
        ekCertificate: null,
        akPublic: null,
        createdAt: Date.now(),
      });
    }
    for (let i = 0; i < SCALE.baselines; i++) {
      const kind = i % 2 === 0 ? "secureboot" : "codeintegrity";
      const pcrs: Record<string, string> =
        kind === "secureboot"
          ? { "7": randomBytes(32).toString("hex") }
          : Object.fromEntries(["4", "8", "9"].map((k) => [k, randomBytes(32).toString("hex")]));
      const b: Baseline = { format: BASELINE_FORMAT, kind, name: `seeded-${i}`, bank: "sha256", pcrs };
      await tx.insertBaseline({
        id: baselineId(b),
        kind,
        name: b.name,
        body: JSON.stringify(b),
        createdAt: Date.now(),
      });
    }
  });
  const have = (await ctx.repo.auditHead())?.seq ?? 0;
  for (let done = have; done < SCALE.auditEntries;) {
    const n = Math.min(10_000, SCALE.auditEntries - done);
    await ctx.repo.transaction(async (tx) => {
      for (let i = 0; i < n; i++) {
        const hostId = hostIds[(done + i) % hostIds.length] ?? null;
        if ((done + i) % 2 === 0)
          await appendAudit(tx, "attestation.passed", hostId, {
            mode: "key",
            jti: randomBytes(16).toString("hex"),
            exp: Math.floor(Date.now() / 1000) + 3600,
          });
        else
          await appendAudit(tx, "key.released", hostId, {
            protectorId: randomBytes(16).toString("hex"),
            oldKeyGeneration: 1,
            newKeyGeneration: 2,
            jti: randomBytes(16).toString("hex"),
          });
      }
    });
    done += n;
  }
  const t1 = performance.now();
  await ctx.close();
  return { seedSeconds: (t1 - t0) / 1000, checkpointSeconds: (performance.now() - t1) / 1000 };
}

/** `hgs audit verify` on the seeded log: in-process (the verifier alone) and as the CLI. */
async function auditVerifyRates(
  dir: string,
): Promise<{ entries: number; ok: boolean; inProcess: number; cli: number; scan: number }> {
  const ctx = await openHgs(dir);
  let v;
  let inProcess: number;
  let scan: number;
  try {
    // The reference: reading the same rows, page by page, without checking them.
    const ts = performance.now();
    let read = 0;
    for (let after = 0; ;) {
      const rows = await ctx.repo.auditAfter(after, 5000);
      if (rows.length === 0) break;
      read += rows.length;
      after = rows[rows.length - 1]!.seq;
    }
    scan = read / ((performance.now() - ts) / 1000);
    const t0 = performance.now();
    v = await verifyAuditChain(ctx.repo, undefined, ctx.checkpoints.anchors());
    inProcess = v.entries / ((performance.now() - t0) / 1000);
  } finally {
    await ctx.close();
  }
  const t1 = performance.now();
  const r = hgsCli(["audit", "verify", "--dir", dir, "--json"]);
  const cliSeconds = (performance.now() - t1) / 1000;
  const j = r.json as { ok?: boolean; entries?: number } | undefined;
  return {
    entries: v.entries,
    ok: v.ok && j?.ok === true,
    inProcess,
    cli: (j?.entries ?? 0) / cliSeconds,
    scan,
  };
}

async function main(): Promise<void> {
  const root = mkdtempSync(path.join(tmpdir(), "bulwark-hgs-bench-"));
  const dir = path.join(root, "hgs");
  cli(["init", "--dir", dir, "--json"]);
  cli(["settings", "set", "--dir", dir, "--nonce-ttl", "3600"]);
  const sim = await startSimHost();
  const profile = process.argv.find((a) => a.startsWith("--profile="))?.slice("--profile=".length);
  const workers = Number(
    process.argv.find((a) => a.startsWith("--workers="))?.slice("--workers=".length) ?? 1,
  );
  const nodeArgs = profile ? ["--cpu-prof", `--cpu-prof-dir=${profile}`] : [];
  let serve = await startServe(dir, serveArgs(workers), nodeArgs);
  const ca = readFileSync(path.join(dir, "tls.crt"), "utf8");
  let client = new HgsClient({ urls: [serve.url], ca });
  const phases: Phase[] = [];
  const f: Fabric = { root, dir, sim, hostKey: ecKey(), krk: ecKey(), eventLog: sim.eventLog() };
  const rss: { phase: string; mb: number[] }[] = [];
  let audit: { ok: boolean; entries: number } = { ok: false, entries: 0 };
  let scaleInfo: { seedSeconds: number; checkpointSeconds: number } | undefined;
  let verifyRates: Awaited<ReturnType<typeof auditVerifyRates>> | undefined;
  let coldLimit = 0;
  const cleanups: (() => Promise<void> | void)[] = [];
  try {
    // ---- setup: TPM host, baselines, AK; host-key host ----
    registerHosts(f);
    const bl = await captureBaselines(sim);
    writeFileSync(path.join(root, "sb.json"), JSON.stringify(bl.secureboot));
    writeFileSync(path.join(root, "ci.json"), JSON.stringify(bl.codeintegrity));
    cli(["baseline", "add", path.join(root, "sb.json"), "--dir", dir]);
    cli(["baseline", "add", path.join(root, "ci.json"), "--dir", dir]);
    await client.enrollAk({ hostId: sim.hostId, tpm: sim.tpm, ek: sim.ek, ak: sim.ak });
    const krkPub = createPublicKey(f.krk);

    // ---- TPM mode ----
    const t0 = performance.now();
    const evidences: { nonce: Buffer; quote: Buffer; signature: Buffer; pcrs: Map<number, Uint8Array> }[] =
      [];
    const tpmReqs = await tpmBodies(f, client, evidences);
    const genSeconds = (performance.now() - t0) / 1000;
    const tpmLoad = await load([{ url: serve.url, bodies: tpmReqs }], "/host/v1/attest/tpm", [serve]);
    const signer = (await import("node:crypto")).createPrivateKey(
      readFileSync(path.join(dir, "attestation-signer.pem")),
    );
    const ak = parseTpm2bPublic(
      Buffer.concat([
        Buffer.from([sim.ak.public.raw.length >> 8, sim.ak.public.raw.length & 255]),
        sim.ak.public.raw,
      ]),
      "ak",
    );
    const enabled = new Set(POLICIES.map((p) => p.id));
    const baselines = [parseBaseline(bl.secureboot), parseBaseline(bl.codeintegrity)];
    // As `hgs serve` judges: the key-release key as its received SPKI bytes, and one quote
    // verifier and one event-log judge per context (src/hgs/attest-tpm.ts).
    const krkSpki = spkiDer(krkPub);
    const eventLogs = new EventLogJudge();
    const quotes = new QuoteVerifier();
    const attestationKid = signerId(signer); // the context's signer.id
    const judgeOnce = (i: number) => {
      const e = evidences[i % evidences.length]!;
      const j = judgeTpmEvidence({
        ak,
        nonce: e.nonce,
        keyReleaseKey: krkSpki,
        evidence: { quote: e.quote, signature: e.signature, pcrs: e.pcrs, eventLog: f.eventLog },
        enabledPolicies: enabled,
        baselines,
        eventLogs,
        quotes,
      });
      if (j.findings.length) throw new Error(JSON.stringify(j.findings));
      issueHealthCertificate({
        signer,
        hostId: sim.hostId,
        name: "tpm-host",
        mode: "tpm",
        keyReleaseKey: krkPub,
        lifetimeSeconds: 3600,
        kid: attestationKid,
        keyReleaseSpki: krkSpki,
      });
    };
    const tpmLimit = limitLoop(judgeOnce);
    phases.push({ name: "TPM attestations", ...tpmLoad, limit: tpmLimit, goal: { rps: 1500, p99: 50 } });
    // The first attestation after a boot: the event-log verdict is not memoised yet.
    coldLimit = limitLoop((i) => {
      eventLogs.clear();
      judgeOnce(i);
    });

    // ---- host-key mode ----
    cli(["mode", "set", "key", "--dir", dir]);
    const hostId = keyId(f.hostKey);
    const keyReqs: string[] = [];
    const sigs: { msg: Buffer; sig: Buffer }[] = [];
    const krkB64 = spkiDer(f.krk).toString("base64");
    for (let i = 0; i < N_KEY; i++) {
      const { nonce } = await client.challenge(hostId);
      const msg = attestKeyMessage(Buffer.from(nonce, "hex"), krkPub, hostId);
      const sig = signWithHostKey(f.hostKey, msg);
      if (i < 50) sigs.push({ msg, sig });
      keyReqs.push(
        JSON.stringify({ hostId, nonce, keyReleaseKey: krkB64, signature: sig.toString("base64") }),
      );
    }
    const keyLoad = await load([{ url: serve.url, bodies: keyReqs }], "/host/v1/attest/key", [serve]);
    const hostPub = createPublicKey(f.hostKey);
    const keyLimit = limitLoop((i) => {
      const s = sigs[i % sigs.length]!;
      if (!verifyHostSignature(hostPub, s.msg, s.sig)) throw new Error("bad sig");
      issueHealthCertificate({
        signer,
        hostId,
        name: "key-host",
        mode: "key",
        keyReleaseKey: krkPub,
        lifetimeSeconds: 3600,
      });
    });
    phases.push({ name: "host-key attestations", ...keyLoad, limit: keyLimit });

    // ---- key releases ----
    const rel = await releaseBodies(f, client);
    const relLoad = await load([{ url: serve.url, bodies: rel.bodies }], "/host/v1/keys/release", [serve]);
    const guardian = importGuardianPem(readFileSync(path.join(dir, "guardian.pem"), "utf8"));
    const sample = JSON.parse(rel.bodies[0] as string) as {
      requestId: string;
      timestamp: number;
      signature: string;
      keyProtector: string;
    };
    const kp = Buffer.from(sample.keyProtector, "base64");
    // As the server does: one signer public key and its id, computed once, one verifier (memo),
    // and one protector memo (the context's `caches.protector`: guardian certificates and owner
    // signatures already checked, public keys already serialized). Before, this loop re-checked
    // both guardians' certificates and the owner signature on every release, which the server
    // never does after its first release of a VM.
    const signerPublic = createPublicKey(signer);
    const signerKid = signerId(signerPublic);
    const verifier = new HealthVerifier();
    const memo = new ProtectorMemo();
    const relLimit = limitLoop(() => {
      const c = verifier.verify(rel.cert, { signerPublic, signerId: signerKid });
      if (
        !verifyRelease(
          c.krk,
          releaseMessage(Buffer.from(sample.requestId, "hex"), sample.timestamp, kp, c.claims.jti),
          Buffer.from(sample.signature, "base64"),
        )
      )
        throw new Error("proof");
      const roll = rollTransportKey(kp, guardian, { memo });
      wrapKeys(
        c.krk,
        roll.oldKey.key,
        roll.newKey.key,
        keysContext(
          roll.oldKey.protectorId,
          roll.oldKey.keyGeneration,
          roll.newKey.keyGeneration,
          roll.keyProtector,
        ),
        memo.points,
      );
      zeroize(roll.oldKey.key, roll.newKey.key);
    });
    const releases: Phase = {
      name: "key releases",
      ...relLoad,
      limit: relLimit,
      goal: { rps: 2000, p99: 50 },
    };
    phases.push(releases);
    rss.push({ phase: "empty database", mb: peakRssMb(serverPids(serve.proc.pid ?? 0)) });
    audit = hgsCli(["audit", "verify", "--dir", dir, "--json"]).json as { ok: boolean; entries: number };

    // ---- at scale ----
    if (withScale) {
      client.close();
      await serve.stop();
      scaleInfo = await seedScale(dir);
      verifyRates = await auditVerifyRates(dir);
      serve = await startServe(dir, serveArgs(workers), nodeArgs);
      client = new HgsClient({ urls: [serve.url], ca });
      cli(["mode", "set", "tpm", "--dir", dir]);
      const tpmScale = await load(
        [{ url: serve.url, bodies: await tpmBodies(f, client) }],
        "/host/v1/attest/tpm",
        [serve],
      );
      const tpmEmpty = phases[0]!;
      phases.push({
        name: "TPM attest. at scale",
        ...tpmScale,
        limit: tpmLimit,
        reference: { name: "empty database", rps: tpmEmpty.rps, minRatio: 0.9 },
      });
      cli(["mode", "set", "key", "--dir", dir]);
      const relScale = await load(
        [{ url: serve.url, bodies: (await releaseBodies(f, client)).bodies }],
        "/host/v1/keys/release",
        [serve],
      );
      phases.push({
        name: "releases at scale",
        ...relScale,
        limit: relLimit,
        reference: { name: "empty database", rps: releases.rps, minRatio: 0.9 },
      });
      rss.push({ phase: "at scale", mb: peakRssMb(serverPids(serve.proc.pid ?? 0)) });
    }
    client.close();
    await serve.stop();

    // ---- HA: two nodes on one PostgreSQL ----
    if (withPg) {
      if (!existsSync(PG_BIN))
        throw new Error("PostgreSQL 15 not found (apt-get install postgresql-15); run without --pg");
      const pg = startPostgres({ durable: true });
      cleanups.push(() => pg.stop());
      const pgDir = path.join(root, "hgs-pg");
      cli(["init", "--dir", pgDir, "--db", pg.url, "--json"]);
      cli(["mode", "set", "key", "--dir", pgDir]);
      const pf: Fabric = { ...f, dir: pgDir };
      writeFileSync(path.join(root, "host.pem"), pem(f.hostKey));
      cli([
        "host",
        "add-key",
        "--dir",
        pgDir,
        "--name",
        "key-host",
        "--public-key",
        path.join(root, "host.pem"),
      ]);
      const nodes = [
        await startServe(pgDir, serveArgs(1), nodeArgs),
        await startServe(pgDir, serveArgs(1), nodeArgs),
      ];
      cleanups.push(async () => {
        for (const n of nodes) await n.stop();
      });
      const pgCa = readFileSync(path.join(pgDir, "tls.crt"), "utf8");
      const c1 = new HgsClient({ urls: [nodes[0]!.url], ca: pgCa });
      const bodies = (await releaseBodies(pf, c1)).bodies;
      c1.close();
      const half = Math.ceil(bodies.length / 2);
      const ha = await load(
        [
          { url: nodes[0]!.url, bodies: bodies.slice(0, half) },
          { url: nodes[1]!.url, bodies: bodies.slice(half) },
        ],
        "/host/v1/keys/release",
        nodes,
      );
      phases.push({
        name: "releases, 2 nodes, PG",
        ...ha,
        limit: relLimit,
        reference: { name: "one SQLite node", rps: releases.rps, minRatio: 1 },
      });
      rss.push({
        phase: "PostgreSQL nodes",
        mb: nodes.flatMap((n) => peakRssMb(serverPids(n.proc.pid ?? 0))),
      });
    }

    // ---- report ----
    const met = (p: Phase): boolean | undefined =>
      p.reference
        ? p.rps >= p.reference.rps * p.reference.minRatio
        : p.goal
          ? p.rps >= p.goal.rps && (p.goal.p99 === undefined || p.p99 < p.goal.p99)
          : undefined;
    const rows = phases.map((p) =>
      [
        p.name.padEnd(22),
        p.rps.toFixed(0).padStart(7),
        `${p.p50.toFixed(1)}`.padStart(7),
        `${p.p99.toFixed(1)}`.padStart(7),
        String(p.errors + p.non2xx).padStart(6),
        p.cpuMsPerReq.toFixed(3).padStart(8),
        (1000 / p.limit).toFixed(3).padStart(8),
        p.limit.toFixed(0).padStart(8),
        (p.rps / p.limit).toFixed(2).padStart(6),
        p.reference
          ? `${(p.rps / p.reference.rps).toFixed(2)}x ${p.reference.name} (>= ${p.reference.minRatio}) ${met(p) ? "MET" : "NOT MET"}`
          : p.goal
            ? `>=${p.goal.rps}/s${p.goal.p99 ? `, p99<${p.goal.p99}ms` : ""} ${met(p) ? "MET" : "NOT MET"}`
            : "-",
      ].join("  "),
    );
    const maxRss = Math.max(0, ...rss.flatMap((r) => r.mb));
    process.stdout.write(
      [
        `HGS load over HTTPS loopback (autocannon, ${CONNECTIONS} connections, server = \`bulwark hgs serve --workers ${workers}\`, SQLite store unless said, ${availableParallelism()} CPUs shared with other work)`,
        `TPM requests pre-generated by swtpm: ${N_TPM} quotes in ${genSeconds.toFixed(1)} s; audit chain after the empty-database phases: ${audit.ok ? "intact" : "BROKEN"}, ${audit.entries} entries`,
        "",
        `${"phase".padEnd(22)}  ${"req/s".padStart(7)}  ${"p50 ms".padStart(7)}  ${"p99 ms".padStart(7)}  ${"errors".padStart(6)}  ${"cpu ms/r".padStart(8)}  ${"limit ms".padStart(8)}  ${"limit/s".padStart(8)}  ${"ratio".padStart(6)}  goal`,
        ...rows,
        "",
        `TPM attestation, first after a boot (event-log verdict not memoised yet): in-process limit ${coldLimit.toFixed(0)}/s; the HTTP rows re-attest one boot, as hosts do every few hours.`,
        "cpu ms/r = server CPU (user+system, every server process) per answered request; limit ms = the in-process cost of the same verification (1000/limit).",
        "limit/s = the same verification (and signing/wrapping) in a tight in-process loop on one thread, no HTTP, no database;",
        "ratio = HTTP / limit (above 1 with --workers > 1). The load generator shares the machine's CPUs with the server.",
        ...(scaleInfo && verifyRates
          ? [
              `at scale: ${SCALE.hosts} hosts, ${SCALE.baselines} baselines, ${verifyRates.entries} audit entries seeded in ${scaleInfo.seedSeconds.toFixed(1)} s (+ ${scaleInfo.checkpointSeconds.toFixed(1)} s to checkpoint the new head)`,
              `hgs audit verify: ${verifyRates.inProcess.toFixed(0)} entries/s in-process (${(verifyRates.inProcess / verifyRates.scan).toFixed(2)}x reading the rows alone, ${verifyRates.scan.toFixed(0)}/s), ${verifyRates.cli.toFixed(0)} entries/s as the CLI (process start included), chain ${verifyRates.ok ? "intact" : "BROKEN"}; goal >= 100000/s ${verifyRates.inProcess >= 100_000 ? "MET" : "NOT MET"}`,
            ]
          : []),
        `server peak RSS (VmHWM, MB per process): ${rss.map((r) => `${r.phase} ${r.mb.map((m) => m.toFixed(0)).join("/")}`).join("; ")}; goal <= 250 per worker ${maxRss <= 250 ? "MET" : "NOT MET"}`,
        "",
      ].join("\n"),
    );
    process.stdout.write(
      `${JSON.stringify({
        bench: "hgs-load",
        quick,
        connections: CONNECTIONS,
        workers,
        tpmColdLimitRps: Math.round(coldLimit),
        auditIntact: audit.ok,
        phases: phases.map((p) => ({
          name: p.name,
          rps: Math.round(p.rps),
          p50Ms: p.p50,
          p99Ms: p.p99,
          errors: p.errors + p.non2xx,
          cpuMsPerReq: Number(p.cpuMsPerReq.toFixed(3)),
          limitRps: Math.round(p.limit),
          ratio: Number((p.rps / p.limit).toFixed(3)),
          goal: p.goal ?? null,
          reference: p.reference
            ? { ...p.reference, ratio: Number((p.rps / p.reference.rps).toFixed(3)) }
            : null,
          met: met(p) ?? null,
        })),
        auditVerify: verifyRates
          ? {
              entries: verifyRates.entries,
              inProcessPerSecond: Math.round(verifyRates.inProcess),
              cliPerSecond: Math.round(verifyRates.cli),
              scanPerSecond: Math.round(verifyRates.scan),
              intact: verifyRates.ok,
              goal: 100_000,
            }
          : null,
        scaleSeedSeconds: scaleInfo ? Number(scaleInfo.seedSeconds.toFixed(1)) : null,
        peakRssMb: rss.map((r) => ({ phase: r.phase, mb: r.mb.map((m) => Math.round(m)) })),
        rssGoalMb: 250,
      })}\n`,
    );
  } finally {
    client.close();
    await serve.stop();
    for (const c of cleanups.reverse()) await c();
    await sim.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
