/**
 * Property tests (STYLE.md habit 10): every parser returns a value or a typed BulwarkError on
 * random and mutated input — never another exception, never a hang.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { decode } from "../../src/core/codec.js";
import { BulwarkError } from "../../src/core/errors.js";
import {
  describeEvent,
  encodeEventLog,
  EventType,
  extractFacts,
  FactMemo,
  parseDevicePath,
  parseEventLog,
  parsePcrJson,
  parsePcrValues,
  replayEventLog,
  verifyEventLog,
} from "../../src/eventlog/index.js";
import {
  EFI_LOAD_OPTION,
  TCG_EfiSpecIdEvent,
  UEFI_GPT_DATA,
  UEFI_HANDOFF_TABLE_POINTERS,
  UEFI_IMAGE_LOAD_EVENT,
  UEFI_PLATFORM_FIRMWARE_BLOB2,
  UEFI_VARIABLE_DATA,
} from "../../src/eventlog/structures.js";
import { buildAgileLog, SHA1, SHA256 } from "../helpers/eventlog-build.js";
import { repoPath } from "../helpers/paths.js";

const RUNS = 10_000;
const real = new Uint8Array(
  readFileSync(repoPath("test/vectors/eventlog/ovmf-snakeoil-secureboot/binary_bios_measurements")),
);
const realSha1 = new Uint8Array(
  readFileSync(repoPath("test/vectors/eventlog/ovmf-snakeoil-secureboot/tcg12.bin")),
);
const pcrText = readFileSync(repoPath("test/vectors/eventlog/ovmf-snakeoil-secureboot/pcrs.json"), "utf8");
const pcrs = parsePcrJson(pcrText);

function typed<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (e instanceof BulwarkError) return undefined;
    throw e;
  }
}

/** Full pipeline on a parsed log: nothing after a successful parse may throw. */
export const outcomes = { parsed: 0, refused: 0 };

const facts = new FactMemo();

function everything(bytes: Uint8Array): void {
  const log = typed(() => parseEventLog(bytes));
  if (!log) {
    outcomes.refused++;
    return;
  }
  outcomes.parsed++;
  replayEventLog(log);
  // One memo for the whole property, as a service that sees many logs keeps one.
  extractFacts(log, facts);
  verifyEventLog(log, { pcrs, requireSecureBoot: true }, facts);
  for (const e of log.events) describeEvent(e);
}

/** Mutations of a real log: bit flips, byte overwrites, truncation, splices, length-field hits. */
function mutated(base: Uint8Array) {
  return fc
    .array(
      fc.oneof(
        fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
        fc.record({
          kind: fc.constant("set" as const),
          at: fc.nat(),
          value: fc.integer({ min: 0, max: 255 }),
        }),
        fc.record({ kind: fc.constant("ff32" as const), at: fc.nat() }),
        fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
        fc.record({ kind: fc.constant("dup" as const), at: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }),
      ),
      { minLength: 1, maxLength: 4 },
    )
    .map((ops) => {
      let b = new Uint8Array(base);
      for (const op of ops) {
        const at = b.length === 0 ? 0 : op.at % b.length;
        if (op.kind === "flip") b[at] = b[at]! ^ (1 << op.bit);
        else if (op.kind === "set") b[at] = op.value;
        else if (op.kind === "ff32") b.fill(0xff, at, Math.min(b.length, at + 4));
        else if (op.kind === "cut") b = b.subarray(0, at);
        else b = new Uint8Array([...b.subarray(0, at), ...b.subarray(at, at + op.len), ...b.subarray(at)]);
      }
      return b;
    });
}

test("property: random bytes parse to a log or a typed error", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (b) => everything(b)),
    { numRuns: RUNS },
  );
});

test("property: random bytes after a valid Spec ID header", () => {
  const header = buildAgileLog([], [SHA1, SHA256]);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (tail) =>
      everything(new Uint8Array([...header, ...tail])),
    ),
    { numRuns: RUNS },
  );
});

test("property: mutated real crypto-agile logs", () => {
  outcomes.parsed = outcomes.refused = 0;
  fc.assert(
    fc.property(mutated(real), (b) => everything(b)),
    { numRuns: RUNS },
  );
  // Both paths must be exercised for the property to mean anything.
  assert.ok(outcomes.parsed > RUNS / 10 && outcomes.refused > RUNS / 10, JSON.stringify(outcomes));
});

test("property: mutated real SHA-1 logs", () => {
  fc.assert(
    fc.property(mutated(realSha1), (b) => everything(b)),
    { numRuns: RUNS },
  );
});

test("property: generated logs round-trip and replay like an independent fold", () => {
  const event = fc.record({
    pcr: fc.integer({ min: 0, max: 23 }),
    type: fc.constantFrom(
      EventType.EV_SEPARATOR,
      EventType.EV_EFI_ACTION,
      EventType.EV_IPL,
      EventType.EV_NO_ACTION,
      0x12345678,
    ),
    data: fc.uint8Array({ maxLength: 40 }),
  });
  fc.assert(
    fc.property(fc.array(event, { maxLength: 12 }), (events) => {
      const bytes = buildAgileLog(events);
      const log = parseEventLog(bytes);
      assert.equal(log.events.length, events.length + 1);
      assert.deepEqual(encodeEventLog(log), bytes);
      const r = replayEventLog(log);
      const extended = new Set(events.filter((e) => e.type !== EventType.EV_NO_ACTION).map((e) => e.pcr));
      for (const b of r.banks) assert.deepEqual([...b.extended].sort(), [...extended].sort());
      const facts = extractFacts(log);
      assert.equal(facts.separators.length, events.filter((e) => e.type === EventType.EV_SEPARATOR).length);
      assert.ok(
        facts.separators.every((s) => s.proof.proven),
        "builder digests cover the data",
      );
    }),
    { numRuns: RUNS },
  );
});

test("property: event-data structures decode or fail typed", () => {
  const codecs = [
    UEFI_VARIABLE_DATA,
    UEFI_IMAGE_LOAD_EVENT,
    UEFI_GPT_DATA,
    UEFI_HANDOFF_TABLE_POINTERS,
    UEFI_PLATFORM_FIRMWARE_BLOB2,
    TCG_EfiSpecIdEvent,
    EFI_LOAD_OPTION,
  ] as const;
  fc.assert(
    fc.property(fc.integer({ min: 0, max: codecs.length - 1 }), fc.uint8Array({ maxLength: 256 }), (i, b) => {
      typed(() => decode(codecs[i]! as typeof UEFI_VARIABLE_DATA, b));
    }),
    { numRuns: RUNS },
  );
});

test("property: device paths (random and mutated real ones) parse or fail typed", () => {
  const log = parseEventLog(real);
  const app = log.events.find((e) => e.eventType === EventType.EV_EFI_BOOT_SERVICES_APPLICATION)!;
  const realPath = decode(UEFI_IMAGE_LOAD_EVENT, app.data).DevicePath;
  assert.match(parseDevicePath(realPath).text, /BOOTX64\.EFI$/);
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), mutated(realPath)), (b) => {
      const p = typed(() => parseDevicePath(b));
      if (p) assert.equal(typeof p.text, "string");
    }),
    { numRuns: RUNS },
  );
});

test("property: PCR value text parses or fails typed", () => {
  const yaml = "  sha256:\n    0 : 0x" + "ab".repeat(32) + "\n    7 : 0x" + "cd".repeat(32) + "\n";
  assert.equal(parsePcrValues(yaml).get("sha256")?.size, 2);
  const chars = fc.constantFrom(...' \n:0123456789abcdefxsha{}"[],'.split(""));
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string({ maxLength: 200 }),
        fc.array(chars, { maxLength: 200 }).map((a) => a.join("")),
        fc
          .nat({ max: pcrText.length })
          .chain((at) =>
            fc.string({ maxLength: 8 }).map((s) => pcrText.slice(0, at) + s + pcrText.slice(at + 1)),
          ),
        fc
          .nat({ max: yaml.length })
          .chain((at) => fc.string({ maxLength: 4 }).map((s) => yaml.slice(0, at) + s + yaml.slice(at))),
      ),
      (s) => {
        typed(() => parsePcrValues(s));
      },
    ),
    { numRuns: RUNS },
  );
});
