/**
 * Authenticode verification of Debian's signed shim, grub and kernel, in-process, beside
 * `openssl dgst -sha256` over the same bytes and `sbverify` on the same files.
 * Run: node dist/bench/authenticode.js [--quick]. Prints a table, then ONE JSON line.
 *
 * Per file:
 *   ours verify: verifyImage() with a db that allows it (OVMF_VARS_4M.ms.fd's db for shim,
 *     shim's vendor certificate for grub and the kernel): PE parse, Authenticode digest,
 *     PKCS #7 signature(s), chain building and the db/dbx decision; median of N runs;
 *   ours digest: the Authenticode SHA-256 digest alone (MB/s = bytes hashed / time);
 *   openssl dgst: `openssl dgst -sha256 FILE` wall time (process start included, as a user sees it);
 *   sbverify: `sbverify --cert CA FILE` wall time (same: a process per file).
 * Ratios > 1 mean ours takes longer.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { derToPem } from "../src/asn1/x509.js";
import {
  authenticodeDigest,
  authenticodeRanges,
  verifyImage,
  type SignatureDatabaseModel,
} from "../src/uefi/authenticode.js";
import { parsePe } from "../src/uefi/pe.js";
import { tempDir } from "../test/helpers/asn1-tools.js";
import {
  findByCommonName,
  ovmfMsDatabases,
  readBootChain,
  shimVendorCertificate,
} from "../test/helpers/uefi-bootchain.js";

const quick = process.argv.includes("--quick");
const RUNS = quick ? 5 : 15;
const PROC_RUNS = quick ? 3 : 7;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function timeMs(fn: () => void, runs: number): number {
  fn(); // warm-up
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    fn();
    out.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return median(out);
}

function procMs(cmd: string, args: string[], pkg: string): { ms: number; stdout: string; status: number } {
  let last = { stdout: "", status: 0 };
  const ms = timeMs(() => {
    const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 16 << 20 });
    if (r.error)
      throw new Error(
        `${cmd} is needed for the reference figures (apt-get install ${pkg}): ${r.error.message}`,
      );
    last = { stdout: r.stdout + r.stderr, status: r.status ?? -1 };
  }, PROC_RUNS);
  return { ms, ...last };
}

const bc = await readBootChain();
const ms = ovmfMsDatabases();
const debianCa = shimVendorCertificate(bc.shim);
const none: SignatureDatabaseModel = { x509: [], sha256: [] };
const t = tempDir("bulwark-bench-");
const rows: Record<string, number | string | boolean>[] = [];
try {
  const ca2011 = findByCommonName(ms.dbCertificates, "Microsoft Corporation UEFI CA 2011");
  writeFileSync(t.file("ms.pem"), derToPem(ca2011));
  writeFileSync(t.file("debian.pem"), derToPem(debianCa));
  const cases = [
    { name: "shim", bytes: bc.shim, db: ms.db, caPem: t.file("ms.pem") },
    { name: "grub", bytes: bc.grub, db: { x509: [debianCa], sha256: [] }, caPem: t.file("debian.pem") },
    { name: "kernel", bytes: bc.kernel, db: { x509: [debianCa], sha256: [] }, caPem: t.file("debian.pem") },
  ];
  for (const c of cases) {
    const file = t.file(`${c.name}.efi`);
    writeFileSync(file, c.bytes);
    const pe = parsePe(c.bytes);
    const hashed = authenticodeRanges(pe).reduce((n, r) => n + r.length, 0);
    let allowed = false;
    const verifyMs = timeMs(() => {
      allowed = verifyImage(c.bytes, { db: c.db, dbx: none }).ok;
    }, RUNS);
    const digestMs = timeMs(() => void authenticodeDigest(parsePe(c.bytes)), RUNS);
    const nodeShaMs = timeMs(() => void createHash("sha256").update(c.bytes).digest(), RUNS);
    const dgst = procMs("openssl", ["dgst", "-sha256", file], "openssl");
    const sb = procMs("sbverify", ["--cert", c.caPem, file], "sbsigntool");
    rows.push({
      file: c.name,
      bytes: c.bytes.length,
      hashedBytes: hashed,
      allowed,
      sbverifyOk: sb.status === 0,
      oursVerifyMs: verifyMs,
      oursDigestMs: digestMs,
      oursDigestMBps: hashed / 1e6 / (digestMs / 1000),
      nodeSha256Ms: nodeShaMs,
      opensslDgstMs: dgst.ms,
      opensslDgstMBps: c.bytes.length / 1e6 / (dgst.ms / 1000),
      sbverifyMs: sb.ms,
      verifyVsOpensslRatio: verifyMs / dgst.ms,
      verifyVsSbverifyRatio: verifyMs / sb.ms,
      digestVsInProcessShaRatio: digestMs / nodeShaMs,
    });
  }
} finally {
  t.cleanup();
}

const f = (n: unknown, d = 1): string => (typeof n === "number" ? n.toFixed(d) : String(n));
const header = [
  "file",
  "MB",
  "allowed",
  "ours verify ms",
  "ours digest MB/s",
  "openssl dgst ms",
  "sbverify ms",
  "vs openssl",
  "vs sbverify",
];
const table = rows.map((r) => [
  String(r["file"]),
  f(Number(r["bytes"]) / 1e6, 2),
  `${String(r["allowed"])}/${r["sbverifyOk"] ? "ok" : "FAIL"}`,
  f(r["oursVerifyMs"], 2),
  f(r["oursDigestMBps"], 0),
  f(r["opensslDgstMs"], 2),
  f(r["sbverifyMs"], 2),
  `${f(r["verifyVsOpensslRatio"], 2)}x`,
  `${f(r["verifyVsSbverifyRatio"], 2)}x`,
]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => (row[i] as string).length)));
const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i] as number)).join("  ");
console.log(
  `Authenticode verification (median of ${RUNS} in-process runs, ${PROC_RUNS} process runs; "allowed" = ours/sbverify)`,
);
console.log(line(header));
for (const row of table) console.log(line(row));
console.log(
  "openssl/sbverify times include process start; 'vs' = ours verify time / reference time (lower is better).",
);
console.log(
  JSON.stringify({
    bench: "authenticode",
    runs: RUNS,
    processRuns: PROC_RUNS,
    files: rows.map((r) =>
      Object.fromEntries(
        Object.entries(r).map(([k, v]) => [
          k,
          typeof v === "number" && !Number.isInteger(v) ? Number(v.toFixed(3)) : v,
        ]),
      ),
    ),
  }),
);
