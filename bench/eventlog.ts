/**
 * Event-log throughput on the real logs in test/vectors/eventlog, beside references on the same
 * machine. Run: node dist/bench/eventlog.js [--quick]. Prints a table, then ONE JSON line.
 *
 * Per log:
 *   parse        parseEventLog (bounded decode of every event, digests kept as views);
 *   replay       replayEventLog on a parsed log, every bank read (PCR := H(PCR || digest));
 *   parse+replay both, i.e. "event-log replays per second" from bytes;
 *   verify       parse + replay of the compared banks + facts + per-event proofs (every bank)
 *                + comparison with the TPM's PCRs;
 *   tpm2_eventlog  `tpm2_eventlog FILE > /dev/null` wall time (it parses, prints YAML and
 *                replays; process start included, as a user or a service shelling out sees it);
 *   hash floor   node:crypto (OpenSSL) hashing the log's bytes once per bank: the least work
 *                any replay that touches every byte could do.
 * Ratios: tpm2_eventlog time / our parse+replay time (>1 = ours faster); our parse+replay time /
 * hash-floor time (how far above raw hashing we are).
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import {
  parseEventLog,
  parsePcrValues,
  replayEventLog,
  verifyEventLog,
  type EventLog,
} from "../src/eventlog/index.js";
import { nodeHashName } from "../src/eventlog/replay.js";
import { repoPath } from "../test/helpers/paths.js";

const quick = process.argv.includes("--quick");
const BUDGET_MS = quick ? 150 : 600;
const PROC_RUNS = quick ? 3 : 9;

/** Replays every bank (replayEventLog computes a bank when it is first read). */
function replayEveryBank(log: EventLog): void {
  for (const b of replayEventLog(log).banks) void b.pcrs;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Operations per second of `fn`, run repeatedly for about BUDGET_MS after a warm-up. */
function rate(fn: () => void): number {
  for (let i = 0; i < 20; i++) fn();
  let n = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < BUDGET_MS) {
    for (let i = 0; i < 10; i++) fn();
    n += 10;
    elapsed = Number(process.hrtime.bigint() - start) / 1e6;
  }
  return (n * 1000) / elapsed;
}

function toolMs(file: string): number | null {
  const probe = spawnSync("tpm2_eventlog", ["--version"], { encoding: "utf8" });
  if (probe.error) return null;
  const times: number[] = [];
  for (let i = 0; i < PROC_RUNS; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync("tpm2_eventlog", [file], { stdio: ["ignore", "ignore", "ignore"] });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) return null;
    times.push(ms);
  }
  return median(times);
}

const root = repoPath("test/vectors/eventlog");
const files: { name: string; file: string; pcrs: string | null }[] = [];
for (const d of readdirSync(root).sort()) {
  const dir = path.join(root, d);
  const pcrs = ["pcrs.json", "pcrs.yaml"].map((f) => path.join(dir, f)).find((f) => existsSync(f)) ?? null;
  for (const f of ["binary_bios_measurements", "tcg12.bin"]) {
    if (existsSync(path.join(dir, f))) files.push({ name: `${d}/${f}`, file: path.join(dir, f), pcrs });
  }
}
const wanted = quick
  ? files.filter((f) => f.name.startsWith("debian") || f.name.includes("snakeoil"))
  : files;

interface Row {
  log: string;
  bytes: number;
  events: number;
  banks: number;
  parsePerSec: number;
  replayPerSec: number;
  parseReplayPerSec: number;
  verifyPerSec: number;
  tpm2EventlogMs: number | null;
  hashFloorPerSec: number;
  vsTpm2Eventlog: number | null;
  vsHashFloor: number;
}

const rows: Row[] = [];
for (const w of wanted) {
  const bytes = new Uint8Array(readFileSync(w.file));
  const log = parseEventLog(bytes);
  let pcrs = w.pcrs ? parsePcrValues(readFileSync(w.pcrs, "utf8")) : undefined;
  if (pcrs && log.format === "sha1") pcrs = new Map([["sha1", pcrs.get("sha1")!]]);
  const algs = log.banks.map((b) => nodeHashName(b.alg)).filter((x): x is string => !!x);
  const parsePerSec = rate(() => void parseEventLog(bytes));
  const replayPerSec = rate(() => replayEveryBank(log));
  const parseReplayPerSec = rate(() => replayEveryBank(parseEventLog(bytes)));
  const verifyPerSec = rate(() => void verifyEventLog(parseEventLog(bytes), pcrs ? { pcrs } : {}));
  const hashFloorPerSec = rate(() => {
    for (const a of algs) createHash(a).update(bytes).digest();
  });
  const tpm2EventlogMs = toolMs(w.file);
  const oursMs = 1000 / parseReplayPerSec;
  rows.push({
    log: w.name,
    bytes: bytes.length,
    events: log.events.length,
    banks: log.banks.length,
    parsePerSec,
    replayPerSec,
    parseReplayPerSec,
    verifyPerSec,
    tpm2EventlogMs,
    hashFloorPerSec,
    vsTpm2Eventlog: tpm2EventlogMs === null ? null : tpm2EventlogMs / oursMs,
    vsHashFloor: oursMs / (1000 / hashFloorPerSec),
  });
}

const f = (x: number | null, d = 0) => (x === null ? "n/a" : x.toFixed(d));
const header = [
  "log",
  "bytes",
  "events",
  "banks",
  "parse/s",
  "replay/s",
  "parse+replay/s",
  "verify/s",
  "tpm2_eventlog ms",
  "hash floor/s",
  "tpm2_eventlog÷ours",
  "ours÷hash floor",
];
const table = rows.map((r) => [
  r.log,
  String(r.bytes),
  String(r.events),
  String(r.banks),
  f(r.parsePerSec),
  f(r.replayPerSec),
  f(r.parseReplayPerSec),
  f(r.verifyPerSec),
  f(r.tpm2EventlogMs, 2),
  f(r.hashFloorPerSec),
  `${f(r.vsTpm2Eventlog, 1)}x`,
  `${f(r.vsHashFloor, 1)}x`,
]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
const line = (cells: string[]) =>
  cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
console.log(
  `Event-log replay throughput (${BUDGET_MS} ms per measurement; tpm2_eventlog median of ${PROC_RUNS} runs)`,
);
console.log(line(header));
for (const row of table) console.log(line(row));
console.log(
  "tpm2_eventlog includes process start and YAML printing; 'tpm2_eventlog÷ours' > 1 means ours is faster. " +
    "'ours÷hash floor' = our parse+replay time over hashing the raw log once per bank.",
);
const round = (x: number | null) => (x === null ? null : Number(x.toFixed(3)));
console.log(
  JSON.stringify({
    bench: "eventlog",
    budgetMs: BUDGET_MS,
    processRuns: PROC_RUNS,
    logs: rows.map((r) =>
      Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === "number" ? round(v) : v])),
    ),
  }),
);
