/**
 * The registered baselines an HGS judges with are parsed once per document text, by the judge
 * that owns them: the same text gives the same (frozen) baseline, a bad one is refused every
 * time, and two judges share nothing.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { isBulwarkError } from "../../src/core/errors.js";
import { parseBaseline, ParsedBaselines } from "../../src/attest/baseline.js";
import { EventLogJudge } from "../../src/attest/tpm-judge.js";

const text = JSON.stringify({
  format: "bulwark-hgs-baseline/v1",
  kind: "codeintegrity",
  name: "known good",
  bank: "sha256",
  pcrs: { "4": "AB".repeat(32), "8": "00".repeat(32) },
});

test("a baseline text is parsed once, as parseBaseline parses it, and frozen", () => {
  const memo = new ParsedBaselines();
  const a = memo.parse(text);
  assert.deepEqual(a, parseBaseline(text));
  assert.equal(a.pcrs["4"], "ab".repeat(32));
  assert.equal(memo.parse(`${text}`), a, "the same text is the same baseline");
  assert.ok(Object.isFrozen(a) && Object.isFrozen(a.pcrs));
  // Another text (here: one more PCR) is another baseline.
  const other = text.replace('"8":', '"9":"' + "11".repeat(32) + '","8":');
  assert.notEqual(memo.parse(other), a);
  assert.equal(memo.parse(other).pcrs["9"], "11".repeat(32));
});

test("a bad baseline text is refused every time, and judges keep their own baselines", () => {
  const memo = new ParsedBaselines(2);
  const bad = text.replace('"4":', '"0":');
  for (let i = 0; i < 2; i++) {
    assert.throws(
      () => memo.parse(bad),
      (e: unknown) => isBulwarkError(e) && e.code === "HGS_ERR_INVALID",
    );
  }
  const one = new EventLogJudge();
  const two = new EventLogJudge();
  assert.notEqual(one.baselines, two.baselines);
  assert.notEqual(one.baselines.parse(text), two.baselines.parse(text));
  assert.deepEqual(one.baselines.parse(text), two.baselines.parse(text));
});
