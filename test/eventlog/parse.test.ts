/** Parser behaviour on logs built through the declarations: formats, quirks, typed errors. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { BulwarkError } from "../../src/core/errors.js";
import {
  eventlogError,
  EventType,
  encodeEventLog,
  parseEventLog,
  replayEventLog,
  resetValue,
  startupLocality,
} from "../../src/eventlog/index.js";
import {
  ascii,
  buildAgileLog,
  buildSha1Log,
  hashAlg,
  SHA1,
  SHA256,
  specIdData,
} from "../helpers/eventlog-build.js";

const sep = (pcr: number) => ({ pcr, type: EventType.EV_SEPARATOR, data: new Uint8Array(4) });

test("crypto-agile log: header, banks, events and byte-identical re-encoding", () => {
  const bytes = buildAgileLog([
    sep(0),
    sep(7),
    { pcr: 4, type: EventType.EV_EFI_ACTION, data: ascii("hello") },
  ]);
  const log = parseEventLog(bytes);
  assert.equal(log.format, "crypto-agile");
  assert.deepEqual(
    log.banks.map((b) => [b.bank, b.digestSize]),
    [
      ["sha1", 20],
      ["sha256", 32],
    ],
  );
  assert.equal(log.events.length, 4);
  assert.equal(log.events[0]!.structure, "TCG_PCClientPCREvent");
  assert.equal(log.events[3]!.typeName, "EV_EFI_ACTION");
  assert.equal(log.events[3]!.offset + log.events[3]!.raw.length, bytes.length);
  assert.deepEqual(encodeEventLog(log), bytes);
});

test("replay extends H(PCR || digest) from the reset value, per bank", () => {
  const log = parseEventLog(buildAgileLog([sep(7), sep(7), sep(18)]));
  const r = replayEventLog(log);
  for (const b of r.banks) {
    const alg = b.bank === "sha1" ? SHA1 : SHA256;
    const node = b.bank;
    const d = hashAlg(alg, new Uint8Array(4));
    let v = resetValue(7, d.length);
    for (let i = 0; i < 2; i++) v = new Uint8Array(createHash(node).update(v).update(d).digest());
    assert.deepEqual(b.pcrs.get(7), v);
    const v18 = new Uint8Array(
      createHash(node).update(new Uint8Array(d.length).fill(0xff)).update(d).digest(),
    );
    assert.deepEqual(b.pcrs.get(18), v18, "PCRs 17..22 start at all ones");
    assert.deepEqual(b.pcrs.get(3), new Uint8Array(d.length));
    assert.deepEqual(
      [...b.extended].sort((x, y) => x - y),
      [7, 18],
    );
  }
});

test("a StartupLocality event sets PCR 0's reset value and is not extended", () => {
  const data = new Uint8Array([...ascii("StartupLocality\0"), 3]);
  const log = parseEventLog(buildAgileLog([{ pcr: 0, type: EventType.EV_NO_ACTION, data }]));
  assert.deepEqual(startupLocality(log), { locality: 3, event: 1 });
  const r = replayEventLog(log);
  const sha256 = r.banks.find((b) => b.bank === "sha256")!;
  const expected = new Uint8Array(32);
  expected[31] = 3;
  assert.deepEqual(sha256.pcrs.get(0), expected);
  assert.equal(sha256.extended.size, 0);
});

test("legacy SHA-1 logs, with or without a Spec ID Event00 header", () => {
  const bare = parseEventLog(buildSha1Log([sep(0), sep(1)]));
  assert.equal(bare.format, "sha1");
  assert.equal(bare.events.length, 2);
  const header = {
    pcr: 0,
    type: EventType.EV_NO_ACTION,
    data: specIdData([SHA1], "Spec ID Event00\0"),
    digests: new Map([[SHA1, new Uint8Array(20)]]),
  };
  const withHeader = parseEventLog(buildSha1Log([header, sep(0)]));
  assert.equal(withHeader.format, "sha1");
  assert.deepEqual(
    withHeader.banks.map((b) => b.bank),
    ["sha1"],
  );
  assert.equal(replayEventLog(withHeader).banks[0]!.extended.size, 1);
});

test("named workaround zero-padding: trailing zero bytes end the log", () => {
  const bytes = buildAgileLog([sep(0)]);
  const padded = new Uint8Array(bytes.length + 100);
  padded.set(bytes);
  const log = parseEventLog(padded);
  assert.equal(log.events.length, 2);
  assert.equal(log.trailingZeroBytes, 100);
  assert.deepEqual(encodeEventLog(log), padded);
});

function assertCode(fn: () => unknown, code: string, check?: (e: BulwarkError) => void): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BulwarkError, `not a BulwarkError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    check?.(e);
    return true;
  });
}

test("typed errors: empty, truncated, too large, undeclared algorithm, bad Spec ID", () => {
  assertCode(() => parseEventLog(new Uint8Array(0)), "EVENTLOG_ERR_MALFORMED");
  const bytes = buildAgileLog([sep(0), sep(1)]);
  assertCode(
    () => parseEventLog(bytes.subarray(0, bytes.length - 2)),
    "EVENTLOG_ERR_MALFORMED",
    (e) => {
      assert.equal(e.details["event"], 2);
      assert.equal(typeof e.details.offset, "number");
      assert.match(String(e.details.path), /TCG_PCR_EVENT2/);
    },
  );
  assertCode(() => parseEventLog(bytes, { maxBytes: 10 }), "EVENTLOG_ERR_TOO_LARGE");
  assertCode(() => parseEventLog(bytes, { maxEvents: 2 }), "EVENTLOG_ERR_TOO_LARGE");
  // An event carrying a SHA-384 digest the header did not declare.
  const sha1Only = buildAgileLog([sep(0)], [SHA1]);
  const withSha384 = buildAgileLog([sep(0)], [SHA1, 0x000c]);
  const header = parseEventLog(sha1Only).events[1]!.offset;
  const spliced = new Uint8Array([
    ...sha1Only.subarray(0, header),
    ...withSha384.subarray(parseEventLog(withSha384).events[1]!.offset),
  ]);
  assertCode(() => parseEventLog(spliced), "EVENTLOG_ERR_ALGORITHM");
  // Spec ID event giving SHA-256 a 20-byte digest.
  const bad = new Uint8Array(buildAgileLog([]));
  const sizeAt = 32 + 16 + 4 + 4 + 4 + 2 + 4 + 2; // second algorithm's digestSize
  bad[sizeAt] = 20;
  assertCode(() => parseEventLog(bad), "EVENTLOG_ERR_SPEC_ID");
  assert.ok(eventlogError("EVENTLOG_ERR_FILE", "x") instanceof BulwarkError);
});

test("hostile counts and lengths are refused before anything is allocated", () => {
  const header = buildAgileLog([]);
  const event = (count: number, size: number) => {
    const b = Buffer.alloc(16);
    b.writeUInt32LE(7, 0);
    b.writeUInt32LE(EventType.EV_SEPARATOR, 4);
    b.writeUInt32LE(count, 8);
    b.writeUInt32LE(size, 12);
    return new Uint8Array([...header, ...b]);
  };
  assertCode(
    () => parseEventLog(event(0xffffffff, 0)),
    "EVENTLOG_ERR_MALFORMED",
    (e) => assert.equal(e.details["reason"], "CORE_ERR_LIMIT"),
  );
  // count 0, then EventSize 0xffffffff with 0 bytes left.
  const noDigests = event(0, 0xffffffff).subarray(0, header.length + 16);
  assertCode(() => parseEventLog(noDigests), "EVENTLOG_ERR_MALFORMED");
  const legacy = Buffer.alloc(32);
  legacy.writeUInt32LE(0xffffffff, 28);
  assertCode(() => parseEventLog(new Uint8Array(legacy)), "EVENTLOG_ERR_MALFORMED");
});
