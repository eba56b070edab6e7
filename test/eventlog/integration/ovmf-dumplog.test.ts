/**
 * Live proof against the real components: boots OVMF + swtpm (QEMU, TCG) with dumplog.efi, which
 * prints the firmware's event logs and the TPM's PCRs. Our parse must match tpm2_eventlog on the
 * same bytes and our replay must equal the TPM's PCR values, for a Secure Boot (snakeoil keys)
 * boot and a no-keys boot. QEMU and swtpm are stopped before each capture returns.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { extractFacts, parseEventLog, parsePcrJson, verifyEventLog } from "../../../src/eventlog/index.js";
import { captureFromOvmf, SETUPS } from "../../helpers/eventlog-ovmf.js";
import { runTpm2Eventlog } from "../../helpers/eventlog-tpm2tools.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

for (const name of ["ovmf-snakeoil-secureboot", "ovmf-snakeoil-sha256-only", "ovmf-plain-code-no-keys"]) {
  test(`live ${name}: parse matches tpm2_eventlog, replay equals the TPM`, { timeout: 300_000 }, async () => {
    const setup = SETUPS.find((s) => s.name === name)!;
    const c = await captureFromOvmf(setup);
    const tmp = mkdtempSync(path.join(os.tmpdir(), "bulwark-eventlog-live-"));
    try {
      const file = path.join(tmp, "log.bin");
      writeFileSync(file, c.tcg2);
      const log = parseEventLog(c.tcg2);
      const tool = runTpm2Eventlog(file);
      assert.equal(tool.events.length, log.events.length);
      log.events.forEach((e, i) => {
        const t = tool.events[i]!;
        assert.deepEqual([t.pcr, t.type, t.size], [e.pcrIndex, e.typeName, e.data.length], `event ${i}`);
        if (i > 0)
          assert.deepEqual(
            t.digests,
            e.digests.map((d) => ({ alg: d.bank, digest: hex(d.digest) })),
            `event ${i}`,
          );
      });
      const pcrs = parsePcrJson(JSON.stringify(c.pcrs));
      assert.ok((pcrs.get("sha256")?.size ?? 0) === 24, "the TPM reported all sha256 PCRs");
      const v = verifyEventLog(log, { pcrs, requireSecureBoot: true });
      assert.deepEqual(
        v.findings.filter((f) => f.id === "pcr-mismatch"),
        [],
      );
      assert.equal(v.boundPcrs.length, 24);
      const facts = extractFacts(log);
      const secure = name.includes("snakeoil");
      assert.equal(facts.secureBoot?.enabled, secure);
      assert.equal(v.ok, secure, JSON.stringify(v.findings));
      assert.equal(facts.authorities.length, secure ? 1 : 0);
      if (c.tcg12) {
        const legacy = parseEventLog(c.tcg12);
        const sha1 = new Map([["sha1", pcrs.get("sha1")!]]);
        assert.equal(verifyEventLog(legacy, { pcrs: sha1 }).boundPcrs.length, 24);
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
}
