/**
 * The HGS test hosts' boots (test/helpers/hgs-boot.ts): the healthy boot is the real guest log,
 * the no-IOMMU boot derived by editing it is byte for byte the real log of the guest booted
 * without IOMMU options, every variant changes only the PCRs its change would, and a simulated
 * host's swtpm holds exactly the PCR values its log replays to.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { extractFacts, parseEventLog, replayEventLog, verifyEventLog } from "../../src/eventlog/index.js";
import { TPM_ALG } from "../../src/tpm/alg.js";
import { pcrSelection } from "../../src/tpm/pcr.js";
import { REAL_BOOT_VECTOR } from "../helpers/hgs-boot.js";
import { bootEvents, encodeLog, startSimHost, type BootConfig } from "../helpers/hgs-host.js";
import { repoPath } from "../helpers/paths.js";

const vector = (name: string) =>
  readFileSync(repoPath("test/vectors/eventlog", name, "binary_bios_measurements"));
const hex = (b: Uint8Array | undefined) => Buffer.from(b ?? []).toString("hex");

/** sha256 replay of PCRs 0..23 of a boot. */
function sha256Pcrs(c: BootConfig): Map<number, Uint8Array> {
  const r = replayEventLog(parseEventLog(encodeLog(bootEvents(c))));
  return new Map(r.banks.find((b) => b.bank === "sha256")!.pcrs);
}

describe("HGS test hosts boot the real guest log", () => {
  it("the healthy boot is the stored real log, byte for byte", () => {
    assert.deepEqual(Buffer.from(encodeLog(bootEvents())), vector(REAL_BOOT_VECTOR));
  });

  it("the no-IOMMU boot derived by editing equals the real log of that boot", () => {
    const derived = Buffer.from(encodeLog(bootEvents({ iommu: false })));
    assert.deepEqual(derived, vector(`${REAL_BOOT_VECTOR}-no-iommu`));
    assert.deepEqual(
      extractFacts(parseEventLog(derived)).kernelCommandLines.map((k) => k.text),
      ["/bulwark/vmlinuz console=ttyS0,115200 panic=-1 quiet loglevel=1"],
    );
  });

  const variants: [string, BootConfig, number[]][] = [
    ["Secure Boot off", { secureBoot: false }, [7]],
    ["firmware debug mode", { debugMode: true }, [7]],
    ["another db", { db: "a db that trusts everything" }, [7]],
    ["another kernel", { bootChain: "unsigned-custom-kernel" }, [4, 9]],
    ["no IOMMU option", { iommu: false }, [8, 9]],
    ["another command line", { kernelCmdline: "root=/dev/vda2 ro intel_iommu=off" }, [8, 9]],
  ];
  const healthy = sha256Pcrs({});
  for (const [name, c, changed] of variants) {
    it(`${name}: only PCRs ${changed.join(", ")} change, and every edited event is proven`, () => {
      const pcrs = sha256Pcrs(c);
      const differ = [...pcrs].filter(([i, v]) => hex(v) !== hex(healthy.get(i))).map(([i]) => i);
      assert.deepEqual(differ, changed);
      const log = parseEventLog(encodeLog(bootEvents(c)));
      const v = verifyEventLog(log, { pcrs: new Map([["sha256", pcrs]]), requireSecureBoot: true });
      const errors = v.findings.filter((f) => f.severity === "error").map((f) => f.id);
      assert.deepEqual(errors, c.secureBoot === false ? ["secure-boot-disabled"] : []);
      assert.ok(v.facts.kernelCommandLines.every((k) => k.proof.proven));
      assert.ok(v.facts.secureBootVariables.every((d) => d.proof.proven));
    });
  }

  it("a simulated host's swtpm holds the PCR values its log replays to", async () => {
    const h = await startSimHost({ iommu: false });
    try {
      const want = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14];
      const { values } = await h.tpm.pcrRead([pcrSelection(TPM_ALG.SHA256, want)]);
      const replayed = sha256Pcrs({ iommu: false });
      for (const i of want)
        assert.equal(hex(values.get(TPM_ALG.SHA256)?.get(i)), hex(replayed.get(i)), `PCR ${i}`);
    } finally {
      await h.stop();
    }
  });
});
