/**
 * Facts and their proofs: a fact counts only when a digest covers its bytes and its PCR replays
 * to the TPM's value. Tampering with a real log shows both links failing independently.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { readFileSync } from "node:fs";
import {
  EventType,
  extractFacts,
  FactMemo,
  isBound,
  parseEventLog,
  parsePcrJson,
  proveEvent,
  quirkChannel,
  verifyEventLog,
  type QuirkMessage,
} from "../../src/eventlog/index.js";
import { isFindingId } from "../../src/core/verdict.js";
import { authenticodeDigest } from "../../src/uefi/authenticode.js";
import { Guids } from "../../src/uefi/guid.js";
import { parsePe } from "../../src/uefi/pe.js";
import { ascii, buildAgileLog, SHA1, SHA256, variableData } from "../helpers/eventlog-build.js";
import { repoPath } from "../helpers/paths.js";

const dir = repoPath("test/vectors/eventlog/ovmf-snakeoil-secureboot");
const real = new Uint8Array(readFileSync(`${dir}/binary_bios_measurements`));
const pcrs = parsePcrJson(readFileSync(`${dir}/pcrs.json`, "utf8"));

function dataStart(bytes: Uint8Array, index: number): { at: number; length: number } {
  const e = parseEventLog(bytes).events[index]!;
  return { at: e.offset + e.raw.length - e.data.length, length: e.data.length };
}

test("real log: Secure Boot on, proven by digest and bound to the TPM", () => {
  const v = verifyEventLog(parseEventLog(real), { pcrs, requireSecureBoot: true });
  assert.equal(v.ok, true, JSON.stringify(v.findings));
  assert.equal(v.facts.secureBoot?.enabled, true);
  assert.equal(isBound(v.facts.secureBoot!, v.boundPcrs), true);
  assert.equal(v.facts.secureBoot?.proof.covers, "event-data");
  assert.deepEqual(v.facts.secureBoot?.proof.banks, ["sha1", "sha256", "sha384", "sha512"]);
});

test("real log: the boot application's digest is the Authenticode hash of the binary that booted", () => {
  const f = extractFacts(parseEventLog(real));
  assert.equal(f.bootApplications.length, 1);
  const efi = new Uint8Array(readFileSync(repoPath("test/vectors/eventlog/dumplog/dumplog.snakeoil.efi")));
  const digest = Buffer.from(authenticodeDigest(parsePe(efi), "sha256")).toString("hex");
  assert.equal(f.bootApplications[0]!.digests["sha256"], digest);
  assert.equal(f.bootApplications[0]!.proof.proven, false, "the image is not in the log");
});

test("tampered event data (SecureBoot 01 → 00): PCRs still bound, but the fact is unproven and refused", () => {
  const log0 = parseEventLog(real);
  const sbIndex = log0.events.findIndex((e) => e.eventType === EventType.EV_EFI_VARIABLE_DRIVER_CONFIG);
  const { at, length } = dataStart(real, sbIndex);
  const forged = new Uint8Array(real);
  assert.equal(forged[at + length - 1], 1);
  forged[at + length - 1] = 0;
  const v = verifyEventLog(parseEventLog(forged), { pcrs, requireSecureBoot: true });
  assert.equal(v.boundPcrs.length, 24, "digests untouched: replay still matches");
  assert.equal(v.facts.secureBoot?.enabled, false);
  assert.equal(v.facts.secureBoot?.proof.proven, false);
  const ids = v.findings.map((f) => f.id);
  assert.ok(ids.includes("event-data-mismatch"));
  assert.ok(ids.includes("secure-boot-unproven"));
  assert.ok(!ids.includes("secure-boot-disabled"), "no decision on an unproven fact");
  assert.equal(v.ok, false);
});

test("tampered digest: replay no longer matches the TPM in that bank and PCR", () => {
  const log0 = parseEventLog(real);
  const sep = log0.events.find((e) => e.eventType === EventType.EV_SEPARATOR && e.pcrIndex === 7)!;
  const forged = new Uint8Array(real);
  const d = sep.digests.find((x) => x.bank === "sha256")!;
  const digestAt = sep.offset + (d.digest.byteOffset - sep.raw.byteOffset);
  forged[digestAt] = forged[digestAt]! ^ 1;
  const v = verifyEventLog(parseEventLog(forged), { pcrs, requireSecureBoot: true });
  const mismatch = v.findings.filter((f) => f.id === "pcr-mismatch");
  assert.deepEqual(
    mismatch.map((f) => [f.bank, f.pcr]),
    [["sha256", 7]],
  );
  assert.ok(!v.boundPcrs.includes(7));
  assert.ok(
    v.findings.some((f) => f.id === "secure-boot-unproven"),
    "PCR 7 unbound: Secure Boot not relied on",
  );
  assert.ok(
    v.findings.some((f) => f.id === "separator-error" && f.pcr === 7),
    "the separator data no longer matches",
  );
});

test("without PCR values nothing is bound", () => {
  const v = verifyEventLog(parseEventLog(real), { requireSecureBoot: true });
  assert.deepEqual(v.boundPcrs, []);
  assert.ok(v.findings.some((f) => f.id === "pcrs-not-compared"));
  assert.ok(v.findings.some((f) => f.id === "secure-boot-unproven"));
});

test("grub and shim measurements: command lines proven after the prefix, labels never", () => {
  const cmdline = "BOOT_IMAGE=/vmlinuz root=/dev/vda2 ro lockdown=integrity";
  const sbat = "sbat,1,2021030218\n";
  const log = parseEventLog(
    buildAgileLog(
      [
        {
          pcr: 8,
          type: EventType.EV_IPL,
          data: ascii(`grub_cmd: linux /vmlinuz ro\0`),
          measured: ascii("linux /vmlinuz ro"),
        },
        {
          pcr: 8,
          type: EventType.EV_IPL,
          data: ascii(`kernel_cmdline: ${cmdline}\0`),
          measured: ascii(cmdline),
        },
        {
          pcr: 9,
          type: EventType.EV_IPL,
          data: ascii("/boot/vmlinuz\0"),
          measured: ascii("the kernel file"),
        },
        { pcr: 14, type: EventType.EV_IPL, data: ascii("MokList\0"), measured: ascii("the MokList content") },
        {
          pcr: 7,
          type: EventType.EV_EFI_VARIABLE_AUTHORITY,
          data: variableData(Guids.SHIM_LOCK_GUID, "SbatLevel", ascii(sbat)),
        },
        // A forged command line: the digest covers a different string.
        {
          pcr: 8,
          type: EventType.EV_IPL,
          data: ascii("kernel_cmdline: init=/bin/sh\0"),
          measured: ascii(cmdline),
        },
      ],
      [SHA1, SHA256],
    ),
  );
  const f = extractFacts(log);
  assert.deepEqual(
    f.grubCommands.map((c) => [c.text, c.proof.proven, c.proof.covers]),
    [["linux /vmlinuz ro", true, "string-after-prefix"]],
  );
  assert.deepEqual(
    f.kernelCommandLines.map((c) => [c.text, c.proof.proven]),
    [
      [cmdline, true],
      ["init=/bin/sh", false],
    ],
  );
  assert.deepEqual(
    f.grubFiles.map((g) => [g.label, g.proof.proven]),
    [["/boot/vmlinuz", false]],
  );
  assert.deepEqual(
    f.shim.mokMeasurements.map((m) => [m.label, m.proof.proven]),
    [["MokList", false]],
  );
  assert.equal(f.shim.sbatLevel?.text, sbat);
  assert.equal(f.shim.sbatLevel?.proof.proven, true);
  assert.equal(proveEvent(log.events[1]!).banks.length, 2);
});

test("edk2's EV_EFI_VARIABLE_BOOT quirk: only VariableData is hashed, and the proof says so", () => {
  const bootOrder = new Uint8Array([1, 0, 0, 0]);
  const log = parseEventLog(
    buildAgileLog([
      {
        pcr: 1,
        type: EventType.EV_EFI_VARIABLE_BOOT,
        data: variableData(Guids.EFI_GLOBAL_VARIABLE, "BootOrder", bootOrder),
        measured: bootOrder,
      },
    ]),
  );
  const f = extractFacts(log);
  assert.deepEqual(f.bootVariables[0]?.order, ["Boot0001", "Boot0000"]);
  assert.equal(f.bootVariables[0]?.proof.covers, "variable-data");
});

test("a proof through a firmware quirk is published on bulwark:eventlog:quirk, a strict one is not", () => {
  const bootOrder = new Uint8Array([1, 0, 0, 0]);
  const log = parseEventLog(
    buildAgileLog([
      { pcr: 7, type: EventType.EV_EFI_ACTION, data: ascii("strict") },
      {
        pcr: 1,
        type: EventType.EV_EFI_VARIABLE_BOOT,
        data: variableData(Guids.EFI_GLOBAL_VARIABLE, "BootOrder", bootOrder),
        measured: bootOrder,
      },
    ]),
  );
  // Event 0 is the Spec ID event; 1 is hashed as the specification says; 2 through edk2's quirk.
  assert.equal(log.events[2]?.eventType, EventType.EV_EFI_VARIABLE_BOOT);
  const seen: unknown[] = [];
  const onMessage = (m: unknown) => void seen.push(m);
  assert.equal(quirkChannel.name, "bulwark:eventlog:quirk");
  subscribe("bulwark:eventlog:quirk", onMessage);
  try {
    for (const e of log.events) proveEvent(e);
  } finally {
    unsubscribe("bulwark:eventlog:quirk", onMessage);
  }
  const expected: QuirkMessage = {
    quirk: "edk2-variable-data-only",
    covers: "variable-data",
    event: log.events[2]!.index,
    eventType: "EV_EFI_VARIABLE_BOOT",
    pcr: 1,
  };
  assert.deepEqual(seen, [expected]);
});

test("a FactMemo proves each event once per verification and is the caller's to keep", () => {
  const log = parseEventLog(real);
  const memo = new FactMemo();
  const first = verifyEventLog(log, { pcrs }, memo);
  const again = verifyEventLog(log, { pcrs }, memo);
  assert.deepEqual(again, first);
  const e = log.events.find((x) => x.eventType === EventType.EV_SEPARATOR)!;
  assert.equal(memo.proof(e), memo.proof(e), "memoised per event");
  assert.notEqual(new FactMemo().proof(e), memo.proof(e), "another memo shares nothing");
  assert.deepEqual(new FactMemo().proof(e), memo.proof(e));
  assert.deepEqual(verifyEventLog(log, { pcrs }), first, "the one-shot form decides the same");
  // The core verdict shape: ids in the one grammar, the checks made and passed listed.
  assert.ok(first.passed.includes("pcr-values"), first.passed.join());
  for (const id of [...first.passed, ...first.findings.map((f) => f.id)]) assert.ok(isFindingId(id), id);
});

test("a CRTM version string that does not match its digest is a warning, not a refusal", () => {
  const i = parseEventLog(real).events.findIndex((e) => e.eventType === EventType.EV_S_CRTM_VERSION);
  const { at } = dataStart(real, i);
  const forged = new Uint8Array(real);
  forged[at] = 0x41;
  const v = verifyEventLog(parseEventLog(forged), { pcrs, requireSecureBoot: true });
  const f = v.findings.find((x) => x.id === "event-data-mismatch");
  assert.equal(f?.severity, "warning");
  assert.equal(f?.event, i);
  assert.equal(v.ok, true);
  assert.equal(v.facts.firmware.crtmVersion?.proof.proven, false);
});
