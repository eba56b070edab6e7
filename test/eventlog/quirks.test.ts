/**
 * Firmware and shim quirks (src/eventlog/quirks.ts): each is tried only after the strict reading
 * failed, is named in the verdict, and is recognised narrowly — a malformed event that is not
 * the quirk is still refused.
 *
 * None of the real logs in test/vectors/eventlog shows these quirks (their shim is 16.1, their
 * firmware OVMF), so each quirky log here is the real Debian shim → grub → kernel boot
 * (debian-shim-grub-kernel-ms-secureboot) rewritten exactly as the quirky component would have
 * logged it:
 *   - shim < 15.3 logged EV_EFI_VARIABLE_AUTHORITY with one byte more than it hashed
 *     (`EFI_TCG2_EVENT.Size` counted a byte past the structure): the event data gains a byte, the
 *     digests stay those of the real boot, so the real TPM values still bind the log;
 *   - shim's EV_EFI_BOOT_SERVICES_APPLICATION (UEFI_IMAGE_LOAD_EVENT sized with `sizeof` of a
 *     struct ending in a `DevicePath[1]` placeholder) carries 8–9 bytes after the device path; the
 *     digest is the image's Authenticode hash, so it is unchanged;
 *   - firmware that logs no EV_SEPARATOR in PCRs 0–6 (seen on GCE Windows images): the
 *     separators are removed and the PCR values are the replay of what remains (what such a
 *     TPM reports).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  boundFacts,
  describeEvent,
  EventType,
  extractFacts,
  parseEventLog,
  parsePcrValues,
  replayEventLog,
  verifyEventLog,
  type PcrValues,
  type TcgEvent,
} from "../../src/eventlog/index.js";
import { judgeEventLog } from "../../src/attest/tpm-judge.js";
import { repoPath } from "../helpers/paths.js";

const dir = repoPath("test/vectors/eventlog/debian-shim-grub-kernel-ms-secureboot");
const real = new Uint8Array(readFileSync(`${dir}/binary_bios_measurements`));
// PCR 10 is IMA's (not in this log); keep the PCRs the log covers.
const pcrs: PcrValues = new Map(
  [...parsePcrValues(readFileSync(`${dir}/pcrs.yaml`, "utf8"))].map(([bank, m]) => [
    bank,
    new Map([...m].filter(([i]) => i !== 10)),
  ]),
);

/** The log with some events' data replaced (digests kept) or dropped (null). */
function rewrite(bytes: Uint8Array, edit: (e: TcgEvent) => Uint8Array | null | undefined): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of parseEventLog(bytes).events) {
    const data = e.index === 0 ? undefined : edit(e);
    if (data === null) continue;
    if (data === undefined) {
      parts.push(e.raw);
      continue;
    }
    const head = e.raw.subarray(0, e.raw.length - e.data.length - 4);
    const size = Buffer.alloc(4);
    size.writeUInt32LE(data.length);
    parts.push(head, size, data);
  }
  return new Uint8Array(Buffer.concat(parts));
}

const plus = (d: Uint8Array, ...extra: number[]) => new Uint8Array([...d, ...extra]);

/** Index of the first EV_EFI_BOOT_SERVICES_APPLICATION: shim, loaded by the firmware. */
const firstApp = parseEventLog(real).events.find(
  (e) => e.eventType === EventType.EV_EFI_BOOT_SERVICES_APPLICATION,
)!.index;
const shimAuthority = (e: TcgEvent) =>
  e.eventType === EventType.EV_EFI_VARIABLE_AUTHORITY && e.index > firstApp;

/** shim < 15.3: one byte past the hashed structure is logged. */
const oldShim = rewrite(real, (e) => (shimAuthority(e) ? plus(e.data, 0xa5) : undefined));

const ids = (v: { findings: readonly { id: string }[] }) => v.findings.map((f) => f.id);

test("the real log needs none of the new quirks: three authority events, all read strictly", () => {
  const v = verifyEventLog(parseEventLog(real), { pcrs, requireSecureBoot: true });
  assert.equal(v.ok, true, JSON.stringify(v.findings));
  assert.equal(v.facts.authorities.length + (v.facts.shim.sbatLevel ? 1 : 0), 3);
  assert.ok(!v.findings.some((f) => f.severity === "warning"), JSON.stringify(v.findings));
});

test("shim < 15.3 authority events: proven through the named quirk, the facts keep all three", () => {
  const log = parseEventLog(oldShim);
  const v = verifyEventLog(log, { pcrs, requireSecureBoot: true });
  assert.equal(v.boundPcrs.includes(7), true, "digests untouched: the real TPM values bind PCR 7");
  assert.ok(!ids(v).includes("event-data-mismatch"), JSON.stringify(v.findings));
  assert.equal(v.ok, true, JSON.stringify(v.findings));
  // db (firmware → shim), SbatLevel and MokListRT (shim → grub).
  assert.equal(v.facts.authorities.length, 2);
  assert.ok(v.facts.shim.sbatLevel, "SbatLevel recovered");
  assert.match(v.facts.shim.sbatLevel.text, /^sbat,1,/);
  const mok = v.facts.authorities.find((a) => a.variable === "MokListRT");
  assert.ok(mok?.entry, "the certificate that verified grub is read");
  assert.equal(mok.proof.proven, true);
  assert.equal(mok.proof.covers, "event-data-without-last-byte");
  assert.equal(boundFacts(v).authorities.length, 2);
  const q = v.findings.find((f) => f.id === "quirk.shim-authority-extra-byte");
  assert.ok(q, JSON.stringify(v.findings));
  assert.equal(q.severity, "warning");
  assert.match(q.got ?? "", /events \d+, \d+/);
  assert.ok(v.quirks.some((u) => u.id === "shim-authority-extra-byte" && u.events.length === 2));
  const mokEvent = log.events[mok.event]!;
  assert.match(describeEvent(mokEvent, firstApp), /^MokListRT .* \[quirk shim-authority-extra-byte\]$/);
  assert.match(describeEvent(mokEvent), /undecodable/, "without the log's context no shim quirk is tried");
});

test("not the quirk: an authority whose data differs from what was hashed is still refused", () => {
  const cases: [string, Uint8Array][] = [
    // one byte of the certificate changed, plus shim's extra byte
    [
      "changed certificate byte",
      rewrite(real, (e) => {
        if (!shimAuthority(e) || e.data.length < 200) return undefined;
        const d = plus(e.data, 0xa5);
        d[100] = d[100]! ^ 1;
        return d;
      }),
    ],
    // two bytes past the hashed structure: not what shim did
    ["two extra bytes", rewrite(real, (e) => (shimAuthority(e) ? plus(e.data, 0xa5, 0x5a) : undefined))],
    // the firmware's own authority (before any application ran) is never shim's
    [
      "firmware authority with an extra byte",
      rewrite(real, (e) =>
        e.eventType === EventType.EV_EFI_VARIABLE_AUTHORITY && e.index < firstApp
          ? plus(e.data, 0xa5)
          : undefined,
      ),
    ],
  ];
  for (const [what, bytes] of cases) {
    const v = verifyEventLog(parseEventLog(bytes), { pcrs, requireSecureBoot: true });
    assert.ok(ids(v).includes("event-data-mismatch"), what);
    assert.equal(v.ok, false, what);
    assert.ok(!ids(v).includes("quirk.shim-authority-extra-byte"), what);
  }
});

test("shim image loads with 8 or 9 trailing bytes: the device path is decoded and the quirk named", () => {
  const apps = parseEventLog(real).events.filter(
    (e) => e.eventType === EventType.EV_EFI_BOOT_SERVICES_APPLICATION && e.index > firstApp,
  );
  const [grub, kernel] = [apps[0]!, apps[1]!];
  const bytes = rewrite(real, (e) =>
    e.index === grub.index
      ? plus(e.data, 0, 0, 0, 0, 0, 0, 0, 0)
      : e.index === kernel.index
        ? plus(e.data, 1, 2, 3, 4, 5, 6, 7, 8, 9)
        : undefined,
  );
  const log = parseEventLog(bytes);
  const v = verifyEventLog(log, { pcrs, requireSecureBoot: true });
  assert.equal(v.ok, true, JSON.stringify(v.findings));
  const g = v.facts.bootApplications.find((a) => a.event === grub.index)!;
  assert.equal(g.devicePath, "\\EFI\\BOOT\\grubx64.efi");
  assert.equal(g.quirk, "shim-image-load-trailing-bytes");
  const k = v.facts.bootApplications.find((a) => a.event === kernel.index)!;
  assert.equal(k.devicePathError, undefined);
  assert.equal(k.devicePath, "");
  assert.equal(k.quirk, "shim-image-load-trailing-bytes");
  assert.match(
    describeEvent(log.events[grub.index]!),
    /grubx64\.efi \[quirk shim-image-load-trailing-bytes\]/,
  );
  const q = v.findings.find((f) => f.id === "quirk.shim-image-load-trailing-bytes");
  assert.equal(q?.severity, "warning");
  assert.match(q.got ?? "", new RegExp(`events ${grub.index}, ${kernel.index}`));
});

test("not the quirk: other trailing lengths, or another event type, stay undecodable", () => {
  const grub = parseEventLog(real).events.filter(
    (e) => e.eventType === EventType.EV_EFI_BOOT_SERVICES_APPLICATION && e.index > firstApp,
  )[0]!;
  for (const n of [1, 3, 7, 10, 16]) {
    const bytes = rewrite(real, (e) =>
      e.index === grub.index ? plus(e.data, ...new Array<number>(n).fill(0)) : undefined,
    );
    const f = extractFacts(parseEventLog(bytes)).bootApplications.find((a) => a.event === grub.index)!;
    assert.equal(f.devicePath, null, `${n} trailing bytes`);
    assert.equal(f.quirk, undefined);
    assert.match(describeEvent(parseEventLog(bytes).events[grub.index]!), /undecodable/);
  }
  // The same 8 bytes after a driver's UEFI_IMAGE_LOAD_EVENT (PCR 2): not shim, not the quirk.
  const driverLog = rewrite(real, (e) =>
    e.index === grub.index ? plus(e.data, 0, 0, 0, 0, 0, 0, 0, 0) : undefined,
  );
  const asDriver = new Uint8Array(driverLog);
  const ev = parseEventLog(asDriver).events[grub.index]!;
  new DataView(asDriver.buffer).setUint32(ev.offset + 4, EventType.EV_EFI_BOOT_SERVICES_DRIVER, true);
  const d = extractFacts(parseEventLog(asDriver)).drivers.find((a) => a.event === grub.index)!;
  assert.equal(d.devicePath, null);
  assert.equal(d.quirk, undefined);
});

/** PCR values a TPM would report for this log (0..9, 14): its own replay. */
function replayed(bytes: Uint8Array): PcrValues {
  const r = replayEventLog(parseEventLog(bytes));
  return new Map(r.banks.map((b) => [b.bank, new Map([...b.pcrs].filter(([i]) => i <= 9 || i === 14))]));
}

test("no separators in PCRs 0–6 (GCE): judged with the quirk named, not as missing separators", () => {
  const bytes = rewrite(real, (e) =>
    e.eventType === EventType.EV_SEPARATOR && e.pcrIndex <= 6 ? null : undefined,
  );
  const v = verifyEventLog(parseEventLog(bytes), { pcrs: replayed(bytes), requireSecureBoot: true });
  assert.ok(!ids(v).includes("separator-missing"), JSON.stringify(v.findings));
  const q = v.findings.find((f) => f.id === "quirk.no-separators-pcr0-6");
  assert.equal(q?.severity, "warning");
  assert.equal(v.ok, true, JSON.stringify(v.findings));
  assert.ok(!v.passed.includes("separators"), "the strict separator check did not pass");
});

test("not the quirk: some PCRs 0–6 with a separator, or none in PCR 7 either, are errors", () => {
  const cases: [string, (e: TcgEvent) => boolean][] = [
    ["only PCR 3 lacks one", (e) => e.pcrIndex === 3],
    ["PCRs 0–5 lack one", (e) => e.pcrIndex <= 5],
    ["PCRs 0–7 lack one", (e) => e.pcrIndex <= 7],
  ];
  for (const [what, drop] of cases) {
    const bytes = rewrite(real, (e) =>
      e.eventType === EventType.EV_SEPARATOR && drop(e) ? null : undefined,
    );
    const v = verifyEventLog(parseEventLog(bytes), { pcrs: replayed(bytes) });
    assert.ok(ids(v).includes("separator-missing"), what);
    assert.ok(!ids(v).includes("quirk.no-separators-pcr0-6"), what);
    assert.equal(v.ok, false, what);
  }
});

test("HGS judgement names the quirks it judged through; a non-quirk stays invalid evidence", () => {
  const sha256 = pcrs.get("sha256")!;
  const policies = new Set(["Hgs_SecureBootEnabled"]);
  const j = judgeEventLog(oldShim, sha256, policies);
  assert.equal(j.evidenceFailed, false, JSON.stringify(j.findings));
  const q = j.findings.find((f) => f.id === "eventlog.quirk.shim-authority-extra-byte");
  assert.equal(q?.severity, "warning", JSON.stringify(j.findings));
  assert.equal(judgeEventLog(real, sha256, policies).findings.length, 0);
  const bad = rewrite(real, (e) => (shimAuthority(e) ? plus(e.data, 0xa5, 0x5a) : undefined));
  const b = judgeEventLog(bad, sha256, policies);
  assert.equal(b.evidenceFailed, true);
  assert.ok(b.findings.some((f) => f.id === "eventlog.event-data-mismatch"));
});

test("eventlog show and verify print the quirk ids", () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "bulwark-quirks-"));
  try {
    const file = path.join(tmp, "old-shim.bin");
    writeFileSync(file, oldShim);
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [repoPath("dist/src/cli/main.js"), ...args], { encoding: "utf8" });
    const show = run("eventlog", "show", file);
    assert.equal(show.status, 0, show.stderr);
    assert.match(show.stdout, /Quirk shim-authority-extra-byte \(PCR 7; events \d+, \d+\)/);
    const verify = run("eventlog", "verify", file, "--pcrs", `${dir}/pcrs.yaml`, "--ignore-pcr", "10");
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, /WARNING quirk\.shim-authority-extra-byte/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
