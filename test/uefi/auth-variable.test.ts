import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import fc from "fast-check";
import {
  applySignedUpdate,
  createSignedUpdate,
  parseSignedUpdate,
  verifySignedUpdate,
} from "../../src/uefi/auth-variable.js";
import {
  createEmptyVarStore,
  encodeVarStore,
  getVariable,
  parseVarStore,
  setVariable,
} from "../../src/uefi/varstore.js";
import {
  decodeSignatureDatabase,
  encodeSignatureDatabase,
  sha256List,
  x509List,
  describeDatabase,
} from "../../src/uefi/siglist.js";
import { Guids } from "../../src/uefi/guid.js";
import { Attr, SECURE_BOOT_DB_ATTRS, efiTimeFromDate } from "../../src/uefi/variables.js";
import { isBulwarkError } from "../../src/core/errors.js";
import { makeKey, runTool, tempDir, type TestKey } from "../helpers/uefi-varstore-fixtures.js";

const G = Guids.EFI_GLOBAL_VARIABLE;
const DB = Guids.EFI_IMAGE_SECURITY_DATABASE_GUID;
const OWNER = "a0baa8a3-041d-48a8-bc87-c36d121b5e3d";

function enrolled(pk: TestKey, kek: TestKey) {
  let s = parseVarStore(createEmptyVarStore("4m"));
  s = setVariable(s, {
    name: "PK",
    guid: G,
    attributes: SECURE_BOOT_DB_ATTRS,
    data: encodeSignatureDatabase([x509List(pk.cert, OWNER)]),
  });
  s = setVariable(s, {
    name: "KEK",
    guid: G,
    attributes: SECURE_BOOT_DB_ATTRS,
    data: encodeSignatureDatabase([x509List(kek.cert, OWNER)]),
  });
  s = setVariable(s, {
    name: "db",
    guid: DB,
    attributes: SECURE_BOOT_DB_ATTRS,
    data: encodeSignatureDatabase([sha256List([new Uint8Array(32).fill(1)], OWNER)]),
  });
  return s;
}

const pk = makeKey("Bulwark test PK");
const kek = makeKey("Bulwark test KEK");
const stranger = makeKey("Not enrolled");
const t1 = efiTimeFromDate(new Date("2026-01-02T03:04:05Z"));
const t0 = efiTimeFromDate(new Date("2025-01-01T00:00:00Z"));

test("db update signed by the KEK or the PK is accepted; by a stranger refused; tampering refused", () => {
  const store = enrolled(pk, kek);
  const newDb = encodeSignatureDatabase([sha256List([new Uint8Array(32).fill(2)], OWNER)]);
  for (const signer of [kek, pk]) {
    const auth = createSignedUpdate({
      name: "db",
      guid: DB,
      attributes: SECURE_BOOT_DB_ATTRS,
      timeStamp: t1,
      data: newDb,
      key: signer.key,
      certificate: signer.cert,
    });
    const v = verifySignedUpdate(store, "db", DB, SECURE_BOOT_DB_ATTRS, auth);
    assert.ok(v.ok, JSON.stringify(v.findings));
    assert.match(v.authorisedBy!.subject, /Bulwark test (KEK|PK)/);
    const next = applySignedUpdate(store, "db", DB, SECURE_BOOT_DB_ATTRS, auth);
    assert.deepEqual(getVariable(next, "db", DB)!.data, newDb);
    assert.deepEqual(getVariable(next, "db", DB)!.timestamp, t1);
    encodeVarStore(next);
  }
  const bad = createSignedUpdate({
    name: "db",
    guid: DB,
    attributes: SECURE_BOOT_DB_ATTRS,
    timeStamp: t1,
    data: newDb,
    key: stranger.key,
    certificate: stranger.cert,
  });
  assert.equal(verifySignedUpdate(store, "db", DB, SECURE_BOOT_DB_ATTRS, bad).ok, false);
  assert.throws(() => applySignedUpdate(store, "db", DB, SECURE_BOOT_DB_ATTRS, bad), {
    code: "UEFI_ERR_AUTH_REFUSED",
  });
  const good = createSignedUpdate({
    name: "db",
    guid: DB,
    attributes: SECURE_BOOT_DB_ATTRS,
    timeStamp: t1,
    data: newDb,
    key: kek.key,
    certificate: kek.cert,
  });
  const tampered = Uint8Array.from(good);
  tampered[tampered.length - 1]! ^= 1;
  assert.equal(verifySignedUpdate(store, "db", DB, SECURE_BOOT_DB_ATTRS, tampered).ok, false);
  // Same bytes presented for another variable name (dbx) do not verify: the name is signed.
  assert.equal(verifySignedUpdate(store, "dbx", DB, SECURE_BOOT_DB_ATTRS, good).ok, false);
});

test("KEK and PK updates need the PK; the KEK cannot replace them", () => {
  const store = enrolled(pk, kek);
  const newKek = encodeSignatureDatabase([x509List(stranger.cert, OWNER)]);
  const byKek = createSignedUpdate({
    name: "KEK",
    guid: G,
    attributes: SECURE_BOOT_DB_ATTRS,
    timeStamp: t1,
    data: newKek,
    key: kek.key,
    certificate: kek.cert,
  });
  assert.equal(verifySignedUpdate(store, "KEK", G, SECURE_BOOT_DB_ATTRS, byKek).ok, false);
  const byPk = createSignedUpdate({
    name: "KEK",
    guid: G,
    attributes: SECURE_BOOT_DB_ATTRS,
    timeStamp: t1,
    data: newKek,
    key: pk.key,
    certificate: pk.cert,
  });
  assert.ok(verifySignedUpdate(store, "KEK", G, SECURE_BOOT_DB_ATTRS, byPk).ok);
  // Replaying an older timestamp after the update is refused.
  const updated = applySignedUpdate(store, "KEK", G, SECURE_BOOT_DB_ATTRS, byPk);
  const older = createSignedUpdate({
    name: "KEK",
    guid: G,
    attributes: SECURE_BOOT_DB_ATTRS,
    timeStamp: t0,
    data: newKek,
    key: pk.key,
    certificate: pk.cert,
  });
  const v = verifySignedUpdate(updated, "KEK", G, SECURE_BOOT_DB_ATTRS, older);
  assert.equal(v.ok, false);
  assert.ok(v.findings.some((f) => f.id === "uefi.auth.timestampNewer" && f.severity === "error"));
});

test("APPEND_WRITE merges lists without duplicates; empty data deletes", () => {
  const store = enrolled(pk, kek);
  const attrs = SECURE_BOOT_DB_ATTRS | Attr.EFI_VARIABLE_APPEND_WRITE;
  const extra = encodeSignatureDatabase([
    sha256List([new Uint8Array(32).fill(1), new Uint8Array(32).fill(3)], OWNER),
  ]);
  const auth = createSignedUpdate({
    name: "db",
    guid: DB,
    attributes: attrs,
    timeStamp: t0,
    data: extra,
    key: kek.key,
    certificate: kek.cert,
  });
  const next = applySignedUpdate(store, "db", DB, attrs, auth);
  const hashes = describeDatabase(decodeSignatureDatabase(getVariable(next, "db", DB)!.data)).map((d) =>
    d.kind === "sha256" ? d.hash[1] : "?",
  );
  assert.deepEqual(hashes, ["1", "3"]);
  assert.equal(getVariable(next, "db", DB)!.attributes, SECURE_BOOT_DB_ATTRS);
  const del = createSignedUpdate({
    name: "db",
    guid: DB,
    attributes: SECURE_BOOT_DB_ATTRS,
    timeStamp: t1,
    data: new Uint8Array(0),
    key: pk.key,
    certificate: pk.cert,
  });
  assert.equal(
    getVariable(applySignedUpdate(next, "db", DB, SECURE_BOOT_DB_ATTRS, del), "db", DB),
    undefined,
  );
});

test("setup mode: PK must be self-signed by the new PK", () => {
  const empty = parseVarStore(createEmptyVarStore("4m"));
  const newPk = encodeSignatureDatabase([x509List(pk.cert, OWNER)]);
  const selfSigned = createSignedUpdate({
    name: "PK",
    guid: G,
    attributes: SECURE_BOOT_DB_ATTRS,
    timeStamp: t1,
    data: newPk,
    key: pk.key,
    certificate: pk.cert,
  });
  assert.ok(verifySignedUpdate(empty, "PK", G, SECURE_BOOT_DB_ATTRS, selfSigned).ok);
  const other = createSignedUpdate({
    name: "PK",
    guid: G,
    attributes: SECURE_BOOT_DB_ATTRS,
    timeStamp: t1,
    data: newPk,
    key: kek.key,
    certificate: kek.cert,
  });
  assert.equal(verifySignedUpdate(empty, "PK", G, SECURE_BOOT_DB_ATTRS, other).ok, false);
});

test("updates made by sbvarsign (sbsigntool) verify with our verifier", () => {
  const { dir, cleanup } = tempDir();
  try {
    writeFileSync(path.join(dir, "kek.key"), kek.keyPem);
    writeFileSync(path.join(dir, "kek.crt"), kek.certPem);
    const newDb = encodeSignatureDatabase([sha256List([new Uint8Array(32).fill(9)], OWNER)]);
    writeFileSync(path.join(dir, "db.esl"), newDb);
    runTool("sbvarsign", [
      "--attr",
      "NON_VOLATILE,BOOTSERVICE_ACCESS,RUNTIME_ACCESS,TIME_BASED_AUTHENTICATED_WRITE_ACCESS",
      "--key",
      path.join(dir, "kek.key"),
      "--cert",
      path.join(dir, "kek.crt"),
      "--output",
      path.join(dir, "db.auth"),
      "db",
      path.join(dir, "db.esl"),
    ]);
    const theirs = new Uint8Array(readFileSync(path.join(dir, "db.auth")));
    const parsed = parseSignedUpdate(theirs);
    assert.deepEqual(parsed.data, newDb);
    const store = enrolled(pk, kek);
    const v = verifySignedUpdate(store, "db", DB, SECURE_BOOT_DB_ATTRS, theirs);
    assert.ok(v.ok, JSON.stringify(v.findings));
    // Our signer, given sbvarsign's timestamp, produces a blob that verifies the same way.
    const ours = createSignedUpdate({
      name: "db",
      guid: DB,
      attributes: SECURE_BOOT_DB_ATTRS,
      timeStamp: parsed.auth.timeStamp,
      data: newDb,
      key: kek.key,
      certificate: kek.cert,
    });
    assert.ok(verifySignedUpdate(store, "db", DB, SECURE_BOOT_DB_ATTRS, ours).ok);
  } finally {
    cleanup();
  }
});

test("fast-check: EFI_VARIABLE_AUTHENTICATION_2 parsing is total", () => {
  const seed = createSignedUpdate({
    name: "db",
    guid: DB,
    attributes: SECURE_BOOT_DB_ATTRS,
    timeStamp: t1,
    data: new Uint8Array(48),
    key: kek.key,
    certificate: kek.cert,
  });
  const store = enrolled(pk, kek);
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.array(fc.tuple(fc.nat({ max: 63 }), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }).map((m) => {
      const b = Uint8Array.from(seed);
      for (const [o, v] of m) b[o] = v;
      return b;
    }),
  );
  let verified = 0;
  fc.assert(
    fc.property(input, (b) => {
      try {
        parseSignedUpdate(b);
      } catch (e) {
        assert.ok(isBulwarkError(e) && e.code === "UEFI_ERR_AUTH_INVALID", String(e));
        return;
      }
      if (verified++ < 300) {
        try {
          verifySignedUpdate(store, "db", DB, SECURE_BOOT_DB_ATTRS, b);
        } catch (e) {
          assert.ok(isBulwarkError(e), String(e));
        }
      }
    }),
    { numRuns: 10_000 },
  );
});
