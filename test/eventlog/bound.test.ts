/** boundFacts: only proven facts in bound PCRs reach a decision. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  boundFacts,
  EventType,
  parseEventLog,
  parsePcrValues,
  verifyEventLog,
} from "../../src/eventlog/index.js";
import { repoPath } from "../helpers/paths.js";

const dir = repoPath("test/vectors/eventlog/debian-shim-grub-kernel-ms-secureboot");
const bytes = new Uint8Array(readFileSync(`${dir}/binary_bios_measurements`));
const all = parsePcrValues(readFileSync(`${dir}/pcrs.yaml`, "utf8"));
const withoutIma = new Map([...all].map(([k, m]) => [k, new Map([...m].filter(([i]) => i !== 10))]));

test("real shim/grub/kernel boot: every decision input present when bound", () => {
  const f = boundFacts(verifyEventLog(parseEventLog(bytes), { pcrs: withoutIma }));
  assert.equal(f.secureBoot, true);
  assert.deepEqual(
    f.secureBootDatabases.map((d) => d.name),
    ["PK", "KEK", "db", "dbx"],
  );
  assert.equal(f.authorities.length, 2);
  assert.equal(f.bootApplications.length, 4);
  assert.equal(f.kernelCommandLines.length, 1);
  assert.ok(f.grubCommands.length > 5);
  assert.equal(f.grubFileDigests.length, 4);
  assert.match(f.sbatLevel ?? "", /^sbat,1,/);
  assert.equal(f.separatorsOk, true);
  assert.equal(f.exitBootServices, true);
});

test("only PCRs 0..7 quoted: grub facts (PCRs 8, 9) drop out", () => {
  const quoted = new Map([["sha256", new Map([...all.get("sha256")!].filter(([i]) => i <= 7))]]);
  const f = boundFacts(verifyEventLog(parseEventLog(bytes), { pcrs: quoted }));
  assert.equal(f.secureBoot, true);
  assert.deepEqual(f.kernelCommandLines, []);
  assert.deepEqual(f.grubCommands, []);
  assert.deepEqual(f.grubFileDigests, []);
  assert.equal(f.bootApplications.length, 4);
});

test("a forged kernel command line is left out; the other PCR 8 facts stay", () => {
  const log = parseEventLog(bytes);
  const e = log.events.find((x) => x.eventType === EventType.EV_IPL && x.data[0] === 0x6b)!; // "kernel_cmdline: "
  const at = e.offset + e.raw.length - e.data.length + "kernel_cmdline: ".length;
  const forged = new Uint8Array(bytes);
  forged.set(Buffer.from("init=/bin/sh "), at);
  const v = verifyEventLog(parseEventLog(forged), { pcrs: withoutIma });
  assert.ok(v.boundPcrs.includes(8), "digests untouched: PCR 8 still replays");
  const f = boundFacts(v);
  assert.equal(f.kernelCommandLines.length, 0, "the edited text no longer matches its digest");
  assert.ok(f.grubCommands.length > 5);
});

test("no PCR values: nothing is bound, nothing is decided", () => {
  const f = boundFacts(verifyEventLog(parseEventLog(bytes)));
  assert.equal(f.secureBoot, null);
  assert.deepEqual(f.authorities, []);
  assert.deepEqual(f.bootApplications, []);
  assert.equal(f.separatorsOk, false);
});
