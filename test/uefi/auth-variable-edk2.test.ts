/**
 * Our verdict on signed variable updates equals edk2's, case by case: the vectors in
 * test/vectors/uefi/authvar-signedattrs were judged by OVMF itself (recorded in cases.json by
 * test/helpers/uefi-authvar-vectors.ts; test/integration/uefi-authvar-oracle.test.ts re-derives
 * them live). Checked through the library (verifySignedUpdate, applySignedUpdate) and through
 * `bulwark secureboot vars update`, the verb that applies a signed update to an NVRAM file.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { parseSignedData, verifySigners } from "../../src/asn1/cms.js";
import {
  applySignedUpdate,
  parseSignedUpdate,
  signedPayload,
  verifySignedUpdate,
} from "../../src/uefi/auth-variable.js";
import { getVariable, parseVarStore } from "../../src/uefi/varstore.js";
import { Exit, isBulwarkError } from "../../src/core/errors.js";
import {
  CASES,
  CASE_ATTRS,
  DB_GUID,
  TARGET,
  caseVarStore,
  readCaseKeys,
} from "../helpers/uefi-authvar-cases.js";
import {
  AUTHVAR_VECTOR_DIR,
  caseAuth,
  caseAuthPath,
  recordedCases,
} from "../helpers/uefi-authvar-vectors-read.js";
import { repoPath } from "../helpers/paths.js";
import { tempDir } from "../helpers/uefi-varstore-fixtures.js";

const keys = readCaseKeys(AUTHVAR_VECTOR_DIR);
const store = parseVarStore(caseVarStore(keys));
const recorded = recordedCases();
const { dir, cleanup } = tempDir("bulwark-authvar-edk2-");
after(cleanup);

test("every case the helper defines has a recorded edk2 verdict and a vector file", () => {
  assert.deepEqual(
    recorded.map((c) => c.id),
    CASES.map((c) => c.id),
  );
  for (const c of recorded) assert.ok(existsSync(caseAuthPath(c.id)), c.id);
  // The oracle is meaningful only if edk2 both accepted and refused something.
  assert.ok(recorded.some((c) => c.edk2 === "accepted") && recorded.some((c) => c.edk2 === "refused"));
});

for (const c of recorded) {
  test(`${c.id}: our verdict is edk2's (${c.edk2})`, () => {
    const auth = caseAuth(c.id);
    const v = verifySignedUpdate(store, TARGET, DB_GUID, CASE_ATTRS, auth);
    assert.equal(
      v.ok,
      c.edk2 === "accepted",
      `${c.description}\nedk2 ${c.edk2}; ours: ${JSON.stringify(v.findings, null, 1)}`,
    );
    if (v.ok) {
      assert.match(v.authorisedBy?.subject ?? "", /Bulwark authvar test (KEK|PK)$/);
      const next = applySignedUpdate(store, TARGET, DB_GUID, CASE_ATTRS, auth);
      assert.ok(getVariable(next, TARGET, DB_GUID), "applied: db created");
    } else {
      const failed = v.findings.filter((f) => f.severity === "error");
      assert.ok(failed.length > 0);
      assert.throws(() => applySignedUpdate(store, TARGET, DB_GUID, CASE_ATTRS, auth), {
        code: "UEFI_ERR_AUTH_REFUSED",
      });
    }
  });
}

test("`secureboot vars update --append` applies exactly the updates edk2 accepted; a refusal writes nothing", () => {
  const nvram = path.join(dir, "vars.fd");
  writeFileSync(nvram, caseVarStore(keys));
  const before = readFileSync(nvram);
  for (const c of recorded) {
    const out = path.join(dir, `${c.id}.fd`);
    const r = spawnSync(
      process.execPath,
      [
        repoPath("dist/src/cli/main.js"),
        "secureboot",
        "vars",
        "update",
        nvram,
        "--var",
        "db",
        "--append",
        "--auth",
        caseAuthPath(c.id),
        "--out",
        out,
        "--json",
      ],
      { encoding: "utf8" },
    );
    if (c.edk2 === "accepted") {
      assert.equal(r.status, 0, `${c.id}: ${r.stderr}`);
      assert.ok(getVariable(parseVarStore(new Uint8Array(readFileSync(out))), TARGET, DB_GUID), c.id);
    } else {
      assert.equal(r.status, Exit.refused, `${c.id}: ${r.stdout}${r.stderr}`);
      const err = (JSON.parse(r.stdout || r.stderr) as { error: { code: string } }).error;
      assert.equal(err.code, "UEFI_ERR_AUTH_REFUSED", c.id);
      assert.equal(existsSync(out), false, `${c.id}: a refused update left ${out}`);
    }
  }
  assert.deepEqual(readFileSync(nvram), before, "the input NVRAM is never modified with --out");
});

test("a CMS signer named by subjectKeyIdentifier: its [0] sid is not mistaken for the signed attributes", () => {
  // edk2 refuses the case (PKCS #7 has no such signer identifier); RFC 5652 allows it, and under
  // RFC 5652's rule the signature verifies: the attributes are the [0] after digestAlgorithm.
  const update = parseSignedUpdate(caseAuth("signer-subject-key-id"));
  const sd = parseSignedData(update.auth.certData);
  const payload = signedPayload(TARGET, DB_GUID, CASE_ATTRS, update.auth.timeStamp, update.data);
  const [rfc] = verifySigners(sd, { detachedContent: payload });
  assert.equal(rfc?.ok, true, JSON.stringify(rfc?.findings));
  const [pkcs7] = verifySigners(sd, { detachedContent: payload, signedAttrsRule: "openssl-pkcs7" });
  assert.deepEqual(
    pkcs7?.findings.map((f) => f.id),
    ["cms.signer.issuerAndSerialNumber"],
  );
});

test("fast-check: mutated updates with authenticatedAttributes get a verdict or a typed error", () => {
  const seed = caseAuth("attrs-signingtime-unsorted");
  const mutated = fc
    .array(fc.tuple(fc.nat({ max: seed.length - 1 }), fc.integer({ min: 0, max: 255 })), {
      minLength: 1,
      maxLength: 4,
    })
    .map((edits) => {
      const b = Uint8Array.from(seed);
      for (const [o, v] of edits) b[o] = v;
      return b;
    });
  fc.assert(
    fc.property(mutated, (b) => {
      try {
        verifySignedUpdate(store, TARGET, DB_GUID, CASE_ATTRS, b);
      } catch (e) {
        assert.ok(isBulwarkError(e) && e.code.startsWith("UEFI_ERR_"), String(e));
      }
    }),
    { numRuns: 500 },
  );
});
