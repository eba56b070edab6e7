/**
 * Replay against the definition (PCR := H(PCR || digest), from the reset values), for every
 * bank of every real log in test/vectors/eventlog, and the lazy banks' public shape.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, existsSync } from "node:fs";
import { EventType, parseEventLog, replayEventLog, resetValue } from "../../src/eventlog/index.js";
import { nodeHashName } from "../../src/eventlog/replay.js";
import { startupLocality } from "../../src/eventlog/parse.js";
import { repoPath } from "../helpers/paths.js";

const root = repoPath("test/vectors/eventlog");
const logs = readdirSync(root)
  .filter((d) => existsSync(`${root}/${d}/binary_bios_measurements`))
  .map((d) => ({
    name: d,
    log: parseEventLog(new Uint8Array(readFileSync(`${root}/${d}/binary_bios_measurements`))),
  }));

test("every bank of every real log replays to what the definition gives", () => {
  assert.ok(logs.length >= 5);
  for (const { name, log } of logs) {
    const replay = replayEventLog(log);
    const locality = startupLocality(log)?.locality ?? 0;
    for (const b of replay.banks) {
      const node = nodeHashName(b.alg);
      assert.equal(b.supported, node !== undefined, `${name} ${b.bank}`);
      if (!node) continue;
      const expected = new Map<number, Uint8Array>();
      for (let i = 0; i < 24; i++) expected.set(i, resetValue(i, b.pcrs.get(0)!.length, locality));
      for (const e of log.events) {
        if (e.eventType === EventType.EV_NO_ACTION) continue;
        const d = e.digests.find((x) => x.alg === b.alg);
        if (!d) continue;
        const old = expected.get(e.pcrIndex)!;
        expected.set(e.pcrIndex, new Uint8Array(createHash(node).update(old).update(d.digest).digest()));
      }
      assert.deepEqual(b.pcrs, expected, `${name} ${b.bank}`);
    }
  }
});

test("banks replayed on first read still compare and serialise by their values", () => {
  const [a, b] = logs;
  const ra = replayEventLog(a!.log);
  // Two replays of one log are equal whichever banks were read first...
  const again = replayEventLog(a!.log);
  void again.banks[0]!.pcrs;
  assert.deepEqual(replayEventLog(a!.log), again);
  // ...and replays of different logs are not, though alg, bank and support agree.
  const rb = replayEventLog(b!.log);
  const shared = ra.banks.find((x) => rb.banks.some((y) => y.bank === x.bank))!;
  const other = rb.banks.find((y) => y.bank === shared.bank)!;
  assert.notDeepEqual(shared, other);
  const json = JSON.parse(JSON.stringify(shared)) as Record<string, unknown>;
  assert.deepEqual(Object.keys(json).sort(), [
    "alg",
    "bank",
    "extended",
    "missingDigests",
    "pcrs",
    "supported",
  ]);
  assert.deepEqual(json.missingDigests, [...shared.missingDigests]);
});
