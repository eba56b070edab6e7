/**
 * OVMF variable store throughput on Debian's real stores, beside the floor of copying the same
 * bytes. Run: node dist/bench/uefi-varstore.js [--quick]. Prints a table, then ONE JSON line.
 *
 * Per store:
 *   parse        parseVarStore (FV header + checksum, every record, FTW working block + CRC);
 *   encode       encodeVarStore of the parsed model (byte-identical output);
 *   create       a full `vars create`: empty store, PK/KEK/db/dbx/SecureBootEnable/CustomMode set,
 *                encoded (MicrosoftUEFICertificateAuthority from the store's own certificates);
 *   copy floor   Uint8Array.prototype.slice of the file (one memcpy): the least any writer does.
 */
import { readFileSync } from "node:fs";
import { generateKeyPairSync } from "node:crypto";
import { createCertificate } from "../src/asn1/x509.js";
import { extractMicrosoftSet } from "../src/uefi/ms-certs.js";
import { findTemplate, resolveTemplate } from "../src/uefi/templates.js";
import { buildSecureBootVarStore } from "../src/uefi/varstore-build.js";
import { encodeVarStore, parseVarStore } from "../src/uefi/varstore.js";

const quick = process.argv.includes("--quick");
const runs = quick ? 50 : 500;

function median(fn: () => void): number {
  for (let i = 0; i < Math.min(20, runs); i++) fn();
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const s = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)]!;
}

const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const pk = createCertificate({ subject: "CN=bench PK", publicKey, signingKey: privateKey });
const rows: Record<string, unknown>[] = [];
for (const [file, size] of [
  ["OVMF_VARS_4M.ms.fd", "4m"],
  ["OVMF_VARS.ms.fd", "2m"],
] as const) {
  const bytes = new Uint8Array(readFileSync(`/usr/share/OVMF/${file}`));
  const model = parseVarStore(bytes);
  const ms = extractMicrosoftSet(bytes, file);
  const tpl = resolveTemplate(findTemplate("MicrosoftUEFICertificateAuthority"), pk, ms);
  const row = {
    file,
    bytes: bytes.length,
    records: model.records.length,
    parseMs: median(() => parseVarStore(bytes)),
    encodeMs: median(() => encodeVarStore(model)),
    createMs: median(() => buildSecureBootVarStore({ template: tpl, size })),
    copyFloorMs: median(() => bytes.slice()),
  };
  rows.push(row);
}
const f = (n: unknown) => (typeof n === "number" ? n.toFixed(3).padStart(8) : String(n));
process.stdout.write(`runs per figure: ${runs} (median, ms)\n`);
process.stdout.write("store                   bytes  records    parse   encode   create copy-floor\n");
for (const r of rows) {
  process.stdout.write(
    `${String(r["file"]).padEnd(22)} ${String(r["bytes"]).padStart(6)} ${String(r["records"]).padStart(8)} ${f(r["parseMs"])} ${f(r["encodeMs"])} ${f(r["createMs"])} ${f(r["copyFloorMs"])}\n`,
  );
}
process.stdout.write(`${JSON.stringify({ bench: "uefi-varstore", runs, rows })}\n`);
