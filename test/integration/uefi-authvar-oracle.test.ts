/**
 * The firmware is the oracle for signed variable updates with and without PKCS #7
 * authenticatedAttributes: one guest boot under OVMF (edk2-stable202211, SMM) applies every case
 * of test/vectors/uefi/authvar-signedattrs through efivarfs (test/helpers/uefi-authvar-oracle.ts)
 * and the host reads back the NVRAM the firmware left. edk2's verdicts must equal the ones
 * recorded beside the vectors (which the unit test test/uefi/auth-variable-edk2.test.ts holds our
 * verifier to) and our verifier's, case by case.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { verifySignedUpdate } from "../../src/uefi/auth-variable.js";
import { parseVarStore } from "../../src/uefi/varstore.js";
import { CASE_ATTRS, DB_GUID, TARGET, caseVarStore, readCaseKeys } from "../helpers/uefi-authvar-cases.js";
import { judgeByFirmware } from "../helpers/uefi-authvar-oracle.js";
import { AUTHVAR_VECTOR_DIR, caseAuth, recordedCases } from "../helpers/uefi-authvar-vectors-read.js";
import { tempDir } from "../helpers/uefi-varstore-fixtures.js";

test("OVMF accepts exactly the signed updates recorded as accepted, and so does our verifier", async () => {
  const keys = readCaseKeys(AUTHVAR_VECTOR_DIR);
  const recorded = recordedCases();
  const { dir, cleanup } = tempDir("bulwark-authvar-int-");
  try {
    const vars = path.join(dir, "vars.fd");
    const nvram = caseVarStore(keys);
    writeFileSync(vars, nvram);
    const firmware = await judgeByFirmware(
      vars,
      recorded.map((c) => ({ id: c.id, auth: caseAuth(c.id) })),
    );
    const store = parseVarStore(nvram);
    const rows = recorded.map((c) => ({
      id: c.id,
      recorded: c.edk2,
      edk2: firmware.get(c.id)?.accepted ? "accepted" : "refused",
      ours: verifySignedUpdate(store, TARGET, DB_GUID, CASE_ATTRS, caseAuth(c.id)).ok
        ? "accepted"
        : "refused",
    }));
    const table = rows
      .map((r) => `${r.id}: recorded ${r.recorded}, edk2 ${r.edk2}, ours ${r.ours}`)
      .join("\n");
    for (const r of rows) {
      assert.equal(r.edk2, r.recorded, `edk2 changed its verdict on ${r.id}:\n${table}`);
      assert.equal(r.ours, r.edk2, `our verdict on ${r.id} differs from edk2's:\n${table}`);
    }
    // A refusal is the firmware's EFI_SECURITY_VIOLATION (efivarfs: EACCES), not a malformed write.
    for (const [id, o] of firmware) {
      if (!o.accepted) assert.match(o.error ?? "", /Permission denied/, `${id}: ${o.error}`);
    }
  } finally {
    cleanup();
  }
});
