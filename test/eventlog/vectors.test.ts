/**
 * Real logs in test/vectors/eventlog/<name>/: our parse must match tpm2-tools' tpm2_eventlog
 * (run live on the same file) event by event, and our replay must reproduce the PCR values the
 * TPM itself reported during the same boot (pcrs.json), in every bank, for all 24 PCRs.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import {
  encodeEventLog,
  extractFacts,
  parseEventLog,
  parsePcrValues,
  replayEventLog,
  verifyEventLog,
  type EventLog,
} from "../../src/eventlog/index.js";
import { runTpm2Eventlog } from "../helpers/eventlog-tpm2tools.js";
import { repoPath } from "../helpers/paths.js";

const root = repoPath("test/vectors/eventlog");
const vectors = readdirSync(root).filter((d) => existsSync(path.join(root, d, "binary_bios_measurements")));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

test("the vector folder holds real logs", () => {
  assert.ok(vectors.length >= 3, `only ${vectors.length} vectors in ${root}`);
});

function compareWithTool(file: string, log: EventLog, skipHeader: boolean): void {
  const tool = runTpm2Eventlog(file);
  const ours = log.events;
  assert.equal(tool.events.length, ours.length, `${file}: event count`);
  for (let i = 0; i < ours.length; i++) {
    const t = tool.events[i]!;
    const o = ours[i]!;
    if (t.num !== null) assert.equal(t.num, o.index, `${file} event ${i}: EventNum`);
    assert.equal(t.pcr, o.pcrIndex, `${file} event ${i}: PCRIndex`);
    assert.equal(t.type, o.typeName, `${file} event ${i}: EventType`);
    assert.equal(t.size, o.data.length, `${file} event ${i}: EventSize`);
    if (skipHeader && i === 0) continue;
    assert.deepEqual(
      t.digests,
      o.digests.map((d) => ({ alg: d.bank, digest: hex(d.digest) })),
      `${file} event ${i}: digests`,
    );
  }
  // tpm2_eventlog replays too: its values for the PCRs it prints must equal ours.
  const replay = replayEventLog(log);
  let compared = 0;
  for (const [bank, pcrs] of Object.entries(tool.pcrs)) {
    const b = replay.banks.find((x) => x.bank === bank);
    assert.ok(b, `${file}: bank ${bank}`);
    for (const [pcr, value] of Object.entries(pcrs)) {
      assert.equal(hex(b.pcrs.get(Number(pcr))!), value, `${file}: ${bank} PCR ${pcr} vs tpm2_eventlog`);
      compared++;
    }
  }
  assert.ok(compared >= 8, `${file}: tpm2_eventlog printed only ${compared} PCR values`);
}

/**
 * The TPM's PCR values for a vector (pcrs.json from TPM2_PCR_Read, or pcrs.yaml from
 * tpm2_pcrread in the guest), without the PCRs provenance.json says the log does not cover
 * (PCR 10 is IMA's, extended by the running kernel from its own log).
 */
function tpmPcrs(dir: string): { pcrs: ReturnType<typeof parsePcrValues>; notInLog: number[] } | null {
  const file = ["pcrs.json", "pcrs.yaml"].map((f) => path.join(dir, f)).find((f) => existsSync(f));
  if (!file) return null;
  const all = parsePcrValues(readFileSync(file, "utf8"));
  const prov = path.join(dir, "provenance.json");
  const notInLog = existsSync(prov)
    ? Object.keys(
        (JSON.parse(readFileSync(prov, "utf8")) as { pcrsNotInLog?: Record<string, string> }).pcrsNotInLog ??
          {},
      ).map(Number)
    : [];
  const pcrs = new Map(
    [...all].map(([bank, m]) => [bank, new Map([...m].filter(([pcr]) => !notInLog.includes(pcr)))]),
  );
  return { pcrs, notInLog };
}

for (const name of vectors) {
  const dir = path.join(root, name);
  const file = path.join(dir, "binary_bios_measurements");
  const bytes = new Uint8Array(readFileSync(file));

  test(`${name}: crypto-agile log parses like tpm2_eventlog and round-trips`, () => {
    const log = parseEventLog(bytes);
    assert.equal(log.format, "crypto-agile");
    assert.deepEqual(encodeEventLog(log), bytes);
    compareWithTool(file, log, true);
  });

  const tpm = tpmPcrs(dir);
  if (tpm) {
    test(`${name}: replay reproduces the TPM's PCR values in every bank`, () => {
      const log = parseEventLog(bytes);
      assert.deepEqual(
        [...tpm.pcrs.keys()].sort(),
        log.banks.map((b) => b.bank).sort(),
        "the TPM's active banks",
      );
      const v = verifyEventLog(log, { pcrs: tpm.pcrs });
      assert.deepEqual(
        v.findings.filter((f) => f.id === "pcr-mismatch"),
        [],
      );
      assert.deepEqual(
        v.boundPcrs,
        Array.from({ length: 24 }, (_, i) => i).filter((i) => !tpm.notInLog.includes(i)),
      );
    });
  }

  const sha1File = path.join(dir, "tcg12.bin");
  if (existsSync(sha1File)) {
    test(`${name}: legacy SHA-1 log parses like tpm2_eventlog and replays to the TPM's sha1 bank`, () => {
      const sha1Bytes = new Uint8Array(readFileSync(sha1File));
      const legacy = parseEventLog(sha1Bytes);
      assert.equal(legacy.format, "sha1");
      assert.deepEqual(encodeEventLog(legacy), sha1Bytes);
      compareWithTool(sha1File, legacy, false);
      // Same boot, same measurements: the SHA-1 log is the agile log without its header.
      const agile = parseEventLog(bytes);
      const agileEvents = agile.events.slice(1).filter((e) => e.typeName !== "EV_NO_ACTION");
      assert.equal(legacy.events.length, agileEvents.length);
      legacy.events.forEach((e, i) => {
        const a = agileEvents[i]!;
        assert.equal(e.pcrIndex, a.pcrIndex);
        assert.equal(e.eventType, a.eventType);
        assert.deepEqual(e.digests[0]!.digest, a.digests.find((d) => d.bank === "sha1")!.digest);
      });
      if (tpm) {
        const sha1 = new Map([["sha1", tpm.pcrs.get("sha1")!]]);
        const v = verifyEventLog(legacy, { pcrs: sha1 });
        assert.deepEqual(
          v.findings.filter((f) => f.severity === "error"),
          [],
        );
        assert.equal(v.boundPcrs.length, 24 - tpm.notInLog.length);
      }
    });
  }

  const expectFile = path.join(dir, "expect.json");
  if (existsSync(expectFile)) {
    test(`${name}: facts match what the boot is known to have done (expect.json)`, () => {
      const expect = JSON.parse(readFileSync(expectFile, "utf8")) as {
        secureBoot: boolean;
        authorities: string[];
        bootApplicationPaths: string[];
        databases: Record<string, number>;
        sbatLevel?: string;
        kernelCommandLines?: string[];
        mokMeasurements?: string[];
      };
      const log = parseEventLog(bytes);
      assert.ok(tpm, "expect.json needs the TPM's PCR values");
      const v = verifyEventLog(log, { pcrs: tpm.pcrs, requireSecureBoot: true });
      const f = extractFacts(log);
      assert.equal(f.secureBoot?.enabled, expect.secureBoot);
      assert.equal(f.secureBoot?.proof.proven, true);
      assert.equal(v.ok, expect.secureBoot, JSON.stringify(v.findings));
      if (!expect.secureBoot) assert.ok(v.findings.some((x) => x.id === "secure-boot-disabled"));
      assert.deepEqual(
        f.authorities.map((a) => (a.entry?.kind === "x509" ? a.entry.subject : "?")),
        expect.authorities,
      );
      assert.ok(f.authorities.every((a) => a.proof.proven));
      assert.deepEqual(
        f.bootApplications.map((b) => b.devicePath),
        expect.bootApplicationPaths,
      );
      assert.ok(
        f.bootApplications.every((b) => !b.proof.proven),
        "device paths are never proven",
      );
      for (const [db, count] of Object.entries(expect.databases)) {
        const d = f.secureBootVariables.find((x) => x.name === db);
        assert.equal(d?.entries?.length, count, `${db} entries`);
        assert.equal(d?.proof.proven, true);
      }
      assert.deepEqual(
        f.separators.map((s) => s.pcr).sort((a, b) => a - b),
        [0, 1, 2, 3, 4, 5, 6, 7],
      );
      if (expect.sbatLevel !== undefined) {
        assert.equal(f.shim.sbatLevel?.text, expect.sbatLevel);
        assert.equal(f.shim.sbatLevel?.proof.proven, true);
      }
      if (expect.kernelCommandLines) {
        assert.deepEqual(
          f.kernelCommandLines.map((k) => k.text),
          expect.kernelCommandLines,
        );
        assert.ok(
          f.kernelCommandLines.every((k) => k.proof.proven && k.proof.covers === "string-after-prefix"),
        );
      }
      if (expect.mokMeasurements) {
        assert.deepEqual(
          f.shim.mokMeasurements.map((m) => m.label),
          expect.mokMeasurements,
        );
        assert.ok(
          f.shim.mokMeasurements.every((m) => !m.proof.proven),
          "MokList content is not in the log",
        );
      }
    });
  }
}
