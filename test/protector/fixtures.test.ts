/**
 * Golden key-protector fixtures (test/fixtures/key-protector/README.md): byte-exact files written
 * once by the Bulwark of their time — version 1 by the code before the X25519 suite, version 2 by
 * the first code that wrote it. Today's code must open every one and get the recorded secrets,
 * and a roll of a version-1 protector must stay version 1 (readable by the older code).
 */
import assert from "node:assert/strict";
import { createPrivateKey } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { keysContext, unwrapKeys, type WrappedKeysJson } from "../../src/attest/release.js";
import { guardianThumbprint, importGuardianPem } from "../../src/protector/guardian.js";
import {
  inspectKeyProtector,
  parseKeyProtector,
  ProtectorMemo,
  rollTransportKey,
  unwrapKeyProtector,
} from "../../src/protector/key-protector.js";
import { repoPath } from "../helpers/paths.js";

interface Expected {
  protectorId: string;
  keyGeneration: number;
  guardianSetGeneration: number;
  owner: { name: string; thumbprint: string };
  guardians: { name: string; thumbprint: string }[];
  transportKey: string;
  rolled?: { keyGeneration: number; transportKey: string; keysContext: string };
}

const root = repoPath("test/fixtures/key-protector");
const folders = readdirSync(root).filter((d) => /^v\d+-/.test(d));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** The format version in a protector's header (format.ts: magic u32, then version u16). */
const versionOf = (kp: Uint8Array) => Buffer.from(kp).readUInt16BE(4);

test("every fixture folder is here: version 1 (P-256, P-384, HGS release) and version 2 (X25519)", () => {
  for (const d of ["v1-p256", "v1-p384", "v1-hgs-release", "v2-x25519"]) assert.ok(folders.includes(d), d);
});

for (const d of folders) {
  test(`golden key protector ${d}: opens with today's code and gives the recorded transport key`, () => {
    const dir = path.join(root, d);
    const read = (f: string) => readFileSync(path.join(dir, f));
    const e = JSON.parse(read("expected.json").toString()) as Expected;
    const kp = read("key-protector.bin");
    assert.equal(versionOf(kp), Number(d.slice(1, d.indexOf("-"))), "header version matches the folder");
    const info = inspectKeyProtector(kp);
    assert.equal(info.protectorId, e.protectorId);
    assert.equal(info.keyGeneration, e.keyGeneration);
    assert.equal(info.guardianSetGeneration, e.guardianSetGeneration);
    assert.equal(info.ownerSignature.valid, true);
    assert.deepEqual(
      info.guardians.map((g) => ({ name: g.name, thumbprint: g.thumbprint })),
      e.guardians,
    );
    const pems = readdirSync(dir).filter((f) => f.endsWith(".guardian.pem"));
    assert.equal(pems.length, e.guardians.length);
    const memo = new ProtectorMemo();
    for (const f of pems) {
      const g = importGuardianPem(read(f).toString());
      // Both with and without the memo (the memo changes how pkRm is found for HPKE).
      for (const opts of [{}, { memo }]) {
        const t = unwrapKeyProtector(kp, [g], { expectedOwner: e.owner.thumbprint, ...opts });
        assert.equal(hex(t.key), e.transportKey, `${d}: ${f}`);
        assert.equal(t.guardian.thumbprint, guardianThumbprint(g));
      }
    }
  });
}

test("golden HGS releases: the recorded rolled protector and the keys wrapped to the host open", () => {
  for (const d of folders.filter((f) => f.endsWith("hgs-release") || f === "v2-x25519")) {
    const dir = path.join(root, d);
    const read = (f: string) => readFileSync(path.join(dir, f));
    const e = JSON.parse(read("expected.json").toString()) as Expected;
    assert.ok(e.rolled, d);
    const rolled = read("rolled-key-protector.bin");
    const hgs = importGuardianPem(read("hgs.guardian.pem").toString());
    const owner = importGuardianPem(read("owner.guardian.pem").toString());
    for (const g of [hgs, owner])
      assert.equal(hex(unwrapKeyProtector(rolled, [g]).key), e.rolled.transportKey);
    const context = keysContext(
      Buffer.from(e.protectorId, "hex"),
      e.keyGeneration,
      e.rolled.keyGeneration,
      rolled,
    );
    assert.equal(hex(context), e.rolled.keysContext);
    const krk = createPrivateKey(read("key-release-key.pem").toString());
    const keys = JSON.parse(read("release-keys.json").toString()) as WrappedKeysJson;
    const { oldKey, newKey } = unwrapKeys(krk, keys, context);
    assert.equal(hex(oldKey), e.transportKey);
    assert.equal(hex(newKey), e.rolled.transportKey);
  }
});

test("a roll keeps a version-1 protector at version 1 and its wrapping schemes; version 2 stays 2", () => {
  for (const d of folders) {
    const dir = path.join(root, d);
    const read = (f: string) => readFileSync(path.join(dir, f));
    const kp = read("key-protector.bin");
    const e = JSON.parse(read("expected.json").toString()) as Expected;
    const g = importGuardianPem(read("owner.guardian.pem").toString());
    const roll = rollTransportKey(kp, g);
    assert.equal(versionOf(roll.keyProtector), versionOf(kp), d);
    assert.deepEqual(
      parseKeyProtector(roll.keyProtector).wraps.map((w) => w.scheme),
      parseKeyProtector(kp).wraps.map((w) => w.scheme),
    );
    assert.equal(hex(roll.oldKey.key), e.transportKey);
    assert.deepEqual(unwrapKeyProtector(roll.keyProtector, [g]).key, roll.newKey.key);
  }
});
