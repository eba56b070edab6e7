/**
 * `bulwark eventlog show|replay|verify`: a thin layer over src/eventlog. This file is the
 * adapter that reads files; the library never does.
 */
import { readFileSync } from "node:fs";
import { Exit } from "../core/errors.js";
import {
  describeEvent,
  eventlogError,
  extractFacts,
  FactMemo,
  firstApplicationIndex,
  parseEventLog,
  parsePcrValues,
  quirkUses,
  replayEventLog,
  verifyEventLog,
  type EventLog,
  type EventLogFacts,
  type PcrValues,
  type QuirkUse,
} from "../eventlog/index.js";
import { parse, printJson, usageError } from "./args.js";

const help = `Usage: bulwark eventlog <show|replay|verify> FILE [options]

  show FILE      every event (PCR, type, digests, what its data says and whether a digest proves
                 it) and the facts extracted: Secure Boot state, PK/KEK/db/dbx, authorities,
                 boot applications, separators, EFI actions, grub commands, kernel command line,
                 shim's MokList/SbatLevel measurements
  replay FILE    the PCR values the log produces, per bank
  verify FILE --pcrs PCRFILE [--require-secure-boot] [--ignore-pcr LIST]
                 replay compared with PCR values read from the TPM (tpm2_pcrread output or
                 JSON {"sha256": {"0": "hex"}}), plus the checks in docs; exit 4 on any error.
                 Known firmware/shim quirks (docs/eventlog.md) are tried only after the strict
                 reading fails, and every one used is named (show and verify)

FILE is a TCG PC Client event log, e.g. /sys/kernel/security/tpm0/binary_bios_measurements
(crypto-agile or legacy SHA-1 format).

Options:
  --json         machine-readable output
  --bank NAME    replay: only this bank (sha1, sha256, ...)
  --ignore-pcr LIST
                 verify: PCRs the log does not cover, e.g. 10 (IMA, the kernel's own log)`;

function readInput(file: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(file));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "error";
    throw eventlogError("EVENTLOG_ERR_FILE", `cannot read ${what} '${file}': ${code}`, {
      file,
      reason: code,
    });
  }
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function proofMark(proven: boolean): string {
  return proven ? "proven" : "UNPROVEN";
}

/** One line per firmware/shim quirk the log was read through (quirks.ts). */
function quirkLines(quirks: readonly QuirkUse[]): string[] {
  return quirks.map(
    (q) =>
      `Quirk ${q.id} (PCR ${q.pcrs.join(", ")}${q.events.length ? `; events ${q.events.join(", ")}` : ""}): ${q.assumes}`,
  );
}

function showJson(log: EventLog, facts: EventLogFacts, memo: FactMemo, quirks: readonly QuirkUse[]): unknown {
  const first = firstApplicationIndex(log.events);
  return {
    format: log.format,
    banks: log.banks,
    specId: log.specId,
    trailingZeroBytes: log.trailingZeroBytes,
    events: log.events.map((e) => ({
      index: e.index,
      offset: e.offset,
      pcr: e.pcrIndex,
      type: e.typeName,
      eventType: e.eventType,
      digests: Object.fromEntries(e.digests.map((d) => [d.bank, hex(d.digest)])),
      size: e.data.length,
      summary: describeEvent(e, first),
      proof: memo.proof(e, first),
      data: e.data,
    })),
    facts,
    quirks,
  };
}

function factLines(f: EventLogFacts): string[] {
  const out: string[] = [];
  const p = (proven: boolean) => `[${proofMark(proven)}]`;
  out.push(
    f.secureBoot
      ? `Secure Boot: ${f.secureBoot.enabled ? "enabled" : "DISABLED"} ${p(f.secureBoot.proof.proven)} (event ${f.secureBoot.event})`
      : "Secure Boot: not measured",
  );
  for (const v of f.secureBootVariables) {
    const entries = v.entries
      ? v.entries
          .map((x) =>
            x.kind === "x509" ? `x509 ${x.subject}` : x.kind === "sha256" ? "sha256 hash" : x.kind,
          )
          .join("; ")
      : (v.entriesError ?? "");
    out.push(
      `  ${v.name.padEnd(10)} ${v.size} bytes sha256 ${v.sha256.slice(0, 16)}… ${p(v.proof.proven)} ${entries}`.slice(
        0,
        200,
      ),
    );
  }
  for (const a of f.authorities) {
    const what = a.entry?.kind === "x509" ? a.entry.subject : (a.entry?.kind ?? "undecoded");
    out.push(`Authority: ${a.variable} → ${what} ${p(a.proof.proven)} (event ${a.event})`);
  }
  if (f.shim.sbatLevel)
    out.push(
      `SbatLevel: ${f.shim.sbatLevel.text.split("\n").join(" | ")} ${p(f.shim.sbatLevel.proof.proven)}`,
    );
  for (const m of f.shim.mokMeasurements) out.push(`shim PCR 14: ${m.label} (content not in log)`);
  for (const b of f.bootApplications) {
    // Name the bank the digest comes from: a SHA-1-only (TCG 1.2 format) log has no sha256 digest.
    const [bank, digest] = b.digests["sha256"]
      ? ["sha256", b.digests["sha256"]]
      : (Object.entries(b.digests)[0] ?? ["digest", "?"]);
    out.push(
      `Boot application: ${bank} ${digest} path ${b.devicePath ?? b.devicePathError ?? "?"} [path unproven]`,
    );
  }
  const oneLine = (s: string) => s.replace(/\r?\n/g, " ⏎ ");
  for (const c of f.grubCommands) out.push(`grub_cmd: ${oneLine(c.text)} ${p(c.proof.proven)}`);
  for (const c of f.kernelCommandLines) out.push(`kernel_cmdline: ${oneLine(c.text)} ${p(c.proof.proven)}`);
  for (const g of f.grubFiles) out.push(`grub file: ${g.label} [label unproven]`);
  for (const a of f.efiActions) out.push(`EFI action PCR ${a.pcr}: ${a.text} ${p(a.proof.proven)}`);
  const seps = f.separators.map(
    (s) => `${s.pcr}${s.kind === "normal" ? "" : `(${s.value})`}${s.proof.proven ? "" : "?"}`,
  );
  out.push(`Separators in PCRs: ${seps.join(" ") || "none"}`);
  out.push(`Exit boot services: ${f.exitBootServices ? "logged" : "not logged"}`);
  return out;
}

function show(log: EventLog, json: boolean): number {
  const memo = new FactMemo();
  const facts = extractFacts(log, memo);
  const quirks = quirkUses(log, facts, memo);
  const first = firstApplicationIndex(log.events);
  if (json) {
    printJson(showJson(log, facts, memo, quirks));
    return Exit.ok;
  }
  const lines: string[] = [];
  lines.push(
    `Format: ${log.format}; banks: ${log.banks.map((b) => b.bank).join(", ")}; ${log.events.length} events`,
  );
  lines.push("");
  lines.push("  #  PCR  Type                               Proof     Data");
  for (const e of log.events) {
    const proof = memo.proof(e, first);
    lines.push(
      `${String(e.index).padStart(3)}  ${String(e.pcrIndex).padStart(3)}  ${e.typeName.padEnd(34)} ${(proof.proven ? "digest" : "-").padEnd(9)} ${describeEvent(e, first)}`,
    );
  }
  if (quirks.length) lines.push("", ...quirkLines(quirks));
  lines.push("", "Facts (proven = a digest in the log covers the data; still bind PCRs with `verify`):");
  lines.push(...factLines(facts).map((l) => `  ${l}`));
  process.stdout.write(`${lines.join("\n")}\n`);
  return Exit.ok;
}

function replay(log: EventLog, json: boolean, bank: string | undefined): number {
  const r = replayEventLog(log);
  const banks = r.banks.filter((b) => !bank || b.bank === bank);
  if (bank && banks.length === 0)
    throw usageError(`the log has no ${bank} bank (it has ${r.banks.map((b) => b.bank).join(", ")})`);
  if (json) {
    printJson({
      startupLocality: r.startupLocality,
      banks: Object.fromEntries(
        banks.map((b) => [
          b.bank,
          {
            supported: b.supported,
            missingDigests: b.missingDigests,
            pcrs: Object.fromEntries([...b.pcrs].map(([i, v]) => [String(i), hex(v)])),
          },
        ]),
      ),
    });
    return Exit.ok;
  }
  const lines: string[] = [];
  for (const b of banks) {
    lines.push(`${b.bank}:${b.supported ? "" : " (hash not available on this host)"}`);
    for (const [i, v] of b.pcrs)
      if (b.extended.has(i)) lines.push(`  ${String(i).padStart(2)} : 0x${hex(v)}`);
    if (b.missingDigests.length)
      lines.push(`  incomplete: events ${b.missingDigests.join(", ")} lack a ${b.bank} digest`);
  }
  process.stdout.write(`${lines.join("\n")}\n`);
  return Exit.ok;
}

function verify(log: EventLog, json: boolean, pcrs: PcrValues, requireSecureBoot: boolean): number {
  const v = verifyEventLog(log, { pcrs, requireSecureBoot });
  if (json) {
    printJson({ ok: v.ok, boundPcrs: v.boundPcrs, findings: v.findings, quirks: v.quirks, facts: v.facts });
  } else {
    const lines = [
      `Verdict: ${v.ok ? "OK" : "FAILED"}; PCRs bound to the TPM values: ${v.boundPcrs.join(" ") || "none"}`,
    ];
    for (const f of v.findings) {
      lines.push(
        `  ${f.severity.toUpperCase()} ${f.id}: ${f.message}`,
        `      expected ${f.expected}`,
        `      got      ${f.got}`,
      );
    }
    lines.push(...quirkLines(v.quirks).map((l) => `  ${l}`));
    lines.push(...factLines(v.facts).map((l) => `  ${l}`));
    process.stdout.write(`${lines.join("\n")}\n`);
  }
  return v.ok ? Exit.ok : Exit.refused;
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    bank: { type: "string" },
    pcrs: { type: "string" },
    "require-secure-boot": { type: "boolean" },
    "ignore-pcr": { type: "string" },
  });
  if (values.help) {
    process.stdout.write(`${help}\n`);
    return Exit.ok;
  }
  const [sub, file, ...extra] = positionals;
  if (!sub || !["show", "replay", "verify"].includes(sub))
    throw usageError(`expected show, replay or verify\n\n${help}`);
  if (!file || extra.length) throw usageError(`bulwark eventlog ${sub} takes exactly one FILE`);
  const log = parseEventLog(readInput(file, "event log"));
  const json = values.json === true;
  if (sub === "show") return show(log, json);
  if (sub === "replay") return replay(log, json, values.bank);
  if (!values.pcrs) throw usageError("verify needs --pcrs PCRFILE (tpm2_pcrread output or JSON)");
  const ignore = (values["ignore-pcr"] ?? "")
    .split(",")
    .filter(Boolean)
    .map((x) => {
      const n = Number(x);
      if (!/^\d{1,2}$/.test(x.trim()) || n > 23)
        throw usageError(`--ignore-pcr: '${x}' is not a PCR index 0..23`);
      return n;
    });
  const all = parsePcrValues(Buffer.from(readInput(values.pcrs, "PCR values")).toString("utf8"));
  const pcrs: PcrValues = new Map(
    [...all].map(([bank, m]) => [bank, new Map([...m].filter(([i]) => !ignore.includes(i)))]),
  );
  return verify(log, json, pcrs, values["require-secure-boot"] === true);
}
