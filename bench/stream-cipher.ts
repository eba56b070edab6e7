/**
 * Saved-state stream encryption throughput beside `openssl speed -evp aes-256-gcm -bytes <chunk>`
 * (one core, CPU time as divisor like `openssl speed`). Run: node dist/bench/stream-cipher.js
 * [--quick]. Prints a table, then ONE JSON line of figures.
 *
 * Ours is measured three ways per chunk size:
 *   core-enc / core-dec: the synchronous sealer/opener fed 64 KiB pieces (the size QEMU's
 *     migration stream and node's pipes deliver), output discarded;
 *   stream-enc: the node Transform in a pipeline (Readable → EncryptStream → Writable).
 *   node GCM: node's crypto alone, one cipher per chunk and no framing: the ceiling for any
 *     pure-node implementation, shown so the gap can be split into ours and node's.
 * openssl speed encrypts one hot buffer in place; node's Cipher.update allocates every output
 * buffer, which is most of the remaining gap.
 */
import { spawnSync } from "node:child_process";
import { createCipheriv, randomBytes } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { DEFAULT_CHUNK_SIZE, EncryptStream, StreamOpener, StreamSealer } from "../src/protector/stream.js";

const quick = process.argv.includes("--quick");
const CHUNK_SIZES = [64 * 1024, 256 * 1024, 1024 * 1024];
const PIECE = 64 * 1024;
const TOTAL = (quick ? 64 : 256) * 1024 * 1024;
const REPS = quick ? 2 : 3;

function openssl(args: string[]): number {
  const r = spawnSync("openssl", ["speed", ...args], { encoding: "utf8" });
  if (r.error) {
    throw new Error(
      `openssl is needed for the reference figures (apt-get install openssl): ${r.error.message}`,
    );
  }
  // "The 'numbers' are in 1000s of bytes per second processed." then "AES-256-GCM  5314183.17k"
  const m = /^aes-256-gcm\s+([\d.]+)k\s*$/im.exec(r.stdout);
  if (!m?.[1]) throw new Error(`cannot parse openssl speed output:\n${r.stdout}\n${r.stderr}`);
  return Number(m[1]) * 1000;
}

function opensslBest(chunk: number, decrypt: boolean): number {
  const args = [
    ...(decrypt ? ["-decrypt"] : []),
    "-evp",
    "aes-256-gcm",
    "-bytes",
    String(chunk),
    "-seconds",
    "1",
  ];
  let best = 0;
  for (let i = 0; i < REPS; i++) best = Math.max(best, openssl(args));
  return best;
}

/** Bytes per CPU second (user + system) of `fn`, best of REPS after one untimed warm-up run. */
function cpuRate(bytes: number, fn: () => void): number {
  fn(); // JIT, allocator and page warm-up: the first run is ~20 % slower and not what a restore sees
  let best = 0;
  for (let i = 0; i < REPS; i++) {
    const c0 = process.cpuUsage();
    fn();
    const c = process.cpuUsage(c0);
    best = Math.max(best, bytes / ((c.user + c.system) / 1e6));
  }
  return best;
}

const key = randomBytes(32);
// A ring of distinct input pieces (1 MiB), so the input is not one hot 64 KiB buffer.
const ring = Array.from({ length: 16 }, () => randomBytes(PIECE));

function coreEncrypt(chunkSize: number): number {
  return cpuRate(TOTAL, () => {
    const s = new StreamSealer(key, { chunkSize });
    let out = 0;
    const sink = (b: Buffer) => {
      out += b.length;
    };
    for (let n = 0, i = 0; n < TOTAL; n += PIECE, i++) s.write(ring[i % ring.length] as Buffer, sink);
    s.end(sink);
    if (out < TOTAL) throw new Error("short output");
  });
}

/** The same work with node's crypto alone (one cipher per chunk, no framing): our ceiling. */
function nodeGcm(chunkSize: number): number {
  const iv = randomBytes(12);
  const aad = randomBytes(44);
  return cpuRate(TOTAL, () => {
    let c = createCipheriv("aes-256-gcm", key, iv);
    c.setAAD(aad);
    for (let n = 0, i = 0; n < TOTAL; n += PIECE, i++) {
      if (n > 0 && n % chunkSize === 0) {
        c.final();
        c.getAuthTag();
        c = createCipheriv("aes-256-gcm", key, iv);
        c.setAAD(aad);
      }
      c.update(ring[i % ring.length] as Buffer);
    }
    c.final();
  });
}

function sealed(chunkSize: number, bytes: number): Buffer {
  const parts: Buffer[] = [];
  const s = new StreamSealer(key, { chunkSize });
  for (let n = 0, i = 0; n < bytes; n += PIECE, i++)
    s.write(ring[i % ring.length] as Buffer, (b) => parts.push(b));
  s.end((b) => parts.push(b));
  return Buffer.concat(parts);
}

function coreDecrypt(chunkSize: number): number {
  const bytes = TOTAL / 2;
  const ct = sealed(chunkSize, bytes);
  return cpuRate(bytes, () => {
    const o = new StreamOpener(key);
    let out = 0;
    for (let n = 0; n < ct.length; n += PIECE) o.write(ct.subarray(n, n + PIECE), (b) => (out += b.length));
    o.end();
    if (out !== bytes) throw new Error("short output");
  });
}

async function streamEncrypt(chunkSize: number): Promise<{ cpu: number; wall: number }> {
  let bestCpu = 0;
  let bestWall = 0;
  for (let rep = 0; rep < REPS; rep++) {
    let i = 0;
    let sent = 0;
    const source = new Readable({
      highWaterMark: PIECE * 4,
      read() {
        while (sent < TOTAL) {
          sent += PIECE;
          if (!this.push(ring[i++ % ring.length])) return;
        }
        this.push(null);
      },
    });
    let out = 0;
    const sink = new Writable({
      highWaterMark: chunkSize * 2,
      write(b: Buffer, _e, cb) {
        out += b.length;
        cb();
      },
      writev(bs, cb) {
        for (const b of bs) out += (b.chunk as Buffer).length;
        cb();
      },
    });
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await pipeline(source, new EncryptStream(key, { chunkSize }), sink);
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(c0);
    if (out < TOTAL) throw new Error("short output");
    bestCpu = Math.max(bestCpu, TOTAL / ((c.user + c.system) / 1e6));
    bestWall = Math.max(bestWall, TOTAL / wall);
  }
  return { cpu: bestCpu, wall: bestWall };
}

const mb = (x: number) => (x / 1e6).toFixed(0).padStart(6);
const ratio = (a: number, b: number) => (a / b).toFixed(2).padStart(5);

interface Row {
  chunkSize: number;
  opensslEncryptBps: number;
  opensslDecryptBps: number;
  nodeGcmBps: number;
  coreEncryptBps: number;
  coreDecryptBps: number;
  streamEncryptCpuBps: number;
  streamEncryptWallBps: number;
  encryptRatio: number;
  decryptRatio: number;
  streamEncryptRatio: number;
  nodeCeilingRatio: number;
}

const rows: Row[] = [];
for (const chunkSize of CHUNK_SIZES) {
  const opensslEncryptBps = opensslBest(chunkSize, false);
  const nodeGcmBps = nodeGcm(chunkSize);
  const coreEncryptBps = coreEncrypt(chunkSize);
  const opensslDecryptBps = opensslBest(chunkSize, true);
  const coreDecryptBps = coreDecrypt(chunkSize);
  const s = await streamEncrypt(chunkSize);
  rows.push({
    chunkSize,
    opensslEncryptBps,
    opensslDecryptBps,
    nodeGcmBps,
    coreEncryptBps,
    coreDecryptBps,
    streamEncryptCpuBps: s.cpu,
    streamEncryptWallBps: s.wall,
    encryptRatio: coreEncryptBps / opensslEncryptBps,
    decryptRatio: coreDecryptBps / opensslDecryptBps,
    streamEncryptRatio: s.cpu / opensslEncryptBps,
    nodeCeilingRatio: nodeGcmBps / opensslEncryptBps,
  });
}

console.log(
  `AES-256-GCM state stream vs openssl speed -evp aes-256-gcm (MB/s = 10^6 B per CPU second; ${TOTAL >> 20} MiB per run, best of ${REPS})`,
);
console.log(
  "chunk    | openssl enc | node GCM  ratio | core enc  ratio | openssl dec | core dec  ratio | Transform enc (cpu)  ratio | (wall)",
);
for (const r of rows) {
  console.log(
    `${String(r.chunkSize >> 10).padStart(5)} KiB |     ${mb(r.opensslEncryptBps)}  |   ${mb(r.nodeGcmBps)} ${ratio(r.nodeGcmBps, r.opensslEncryptBps)} |   ${mb(r.coreEncryptBps)} ${ratio(r.coreEncryptBps, r.opensslEncryptBps)} |     ${mb(r.opensslDecryptBps)}  |  ${mb(r.coreDecryptBps)} ${ratio(r.coreDecryptBps, r.opensslDecryptBps)} |               ${mb(r.streamEncryptCpuBps)} ${ratio(r.streamEncryptCpuBps, r.opensslEncryptBps)} | ${mb(r.streamEncryptWallBps)}`,
  );
}
const atDefault = rows.find((r) => r.chunkSize === DEFAULT_CHUNK_SIZE);
console.log(
  JSON.stringify({
    bench: "stream-cipher",
    defaultChunkSize: DEFAULT_CHUNK_SIZE,
    totalBytes: TOTAL,
    reps: REPS,
    goalRatio: 0.8,
    atDefault: atDefault
      ? {
          encryptRatio: Number(atDefault.encryptRatio.toFixed(3)),
          decryptRatio: Number(atDefault.decryptRatio.toFixed(3)),
          streamEncryptRatio: Number(atDefault.streamEncryptRatio.toFixed(3)),
          nodeCeilingRatio: Number(atDefault.nodeCeilingRatio.toFixed(3)),
        }
      : null,
    rows: rows.map((r) =>
      Object.fromEntries(
        Object.entries(r).map(([k, v]) => [k, k.endsWith("Ratio") ? Number(v.toFixed(3)) : Math.round(v)]),
      ),
    ),
  }),
);
