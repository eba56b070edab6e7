/**
 * Proofs in the trusted banks only (proof.ts ProofBanks): a verifier that trusts the SHA-256
 * PCRs (the HGS: its quotes select SHA-256) proves event data by the SHA-256 digest, and a
 * digest in another bank neither proves nor disproves anything; by default every bank counts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventType, FactMemo, parseEventLog, proveEvent } from "../../src/eventlog/index.js";
import { ascii, buildAgileLog, SHA1, SHA256 } from "../helpers/eventlog-build.js";

const action = ascii("Calling EFI Application from Boot Option");
const wrong = new Uint8Array(20).fill(0x5a);

test("a wrong SHA-1 digest fails the default proof, not a SHA-256-only one", () => {
  const log = parseEventLog(
    buildAgileLog([
      { pcr: 4, type: EventType.EV_EFI_ACTION, data: action, digests: new Map([[SHA1, wrong]]) },
    ]),
  );
  const e = log.events[1]!;
  const all = proveEvent(e);
  assert.equal(all.proven, false);
  const sha256 = proveEvent(e, -1, new Set(["sha256"]));
  assert.equal(sha256.proven, true);
  assert.deepEqual(sha256.banks, ["sha256"]);
  assert.deepEqual(sha256.uncheckedBanks, ["sha1"]);
  // A FactMemo carries its banks to every proof it makes.
  assert.deepEqual(new FactMemo(new Set(["sha256"])).proof(e), sha256);
  assert.deepEqual(new FactMemo().proof(e), all);
});

test("a wrong SHA-256 digest fails both, and no trusted digest proves nothing", () => {
  const log = parseEventLog(
    buildAgileLog([
      {
        pcr: 4,
        type: EventType.EV_EFI_ACTION,
        data: action,
        digests: new Map([[SHA256, new Uint8Array(32).fill(0x5a)]]),
      },
    ]),
  );
  const e = log.events[1]!;
  assert.equal(proveEvent(e).proven, false);
  assert.equal(proveEvent(e, -1, new Set(["sha256"])).proven, false);
  const none = proveEvent(e, -1, new Set(["sha384"]));
  assert.equal(none.proven, false);
  assert.deepEqual([...none.uncheckedBanks].sort(), ["sha1", "sha256"]);
  assert.match(none.note, /sha384/);
});
