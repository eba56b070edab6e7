import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { guardianThumbprint, importGuardianPem } from "../../src/protector/guardian.js";
import { inspectKeyProtector, unwrapKeyProtector } from "../../src/protector/key-protector.js";
import { decryptState } from "../../src/protector/stream.js";
import { openVmSecrets, VM_SECRET } from "../../src/protector/vm-secrets.js";
import { repoPath } from "../helpers/paths.js";

interface Expected {
  protectorId: string;
  guardianSetGeneration: number;
  keyGeneration: number;
  owner: { name: string; thumbprint: string };
  guardians: { name: string; thumbprint: string }[];
  hostPassphrase: string;
  secrets: string[];
  stateKeySha256: string;
  streamPlaintextLength: number;
  streamPlaintextSha256: string;
}

const root = repoPath("test/vectors/protector/golden");

test("golden files written by earlier versions still import, unwrap, open and decrypt", () => {
  const dirs = readdirSync(root);
  assert.ok(dirs.length >= 1);
  for (const d of dirs) {
    const dir = path.join(root, d);
    const read = (f: string) => readFileSync(path.join(dir, f));
    const e = JSON.parse(read("expected.json").toString()) as Expected;
    const owner = importGuardianPem(read("owner.guardian.pem").toString());
    const host = importGuardianPem(read("host.guardian.pem").toString(), { passphrase: e.hostPassphrase });
    const hgs = importGuardianPem(read("hgs.guardian.pem").toString());
    assert.equal(guardianThumbprint(owner), e.owner.thumbprint);
    const kp = read("key-protector.bin");
    const info = inspectKeyProtector(kp);
    assert.equal(info.protectorId, e.protectorId, d);
    assert.equal(info.guardianSetGeneration, e.guardianSetGeneration);
    assert.equal(info.keyGeneration, e.keyGeneration);
    assert.equal(info.ownerSignature.valid, true);
    assert.deepEqual(
      info.guardians.map((g) => ({ name: g.name, thumbprint: g.thumbprint })),
      e.guardians,
    );
    let key: Buffer | undefined;
    for (const g of [owner, host, hgs]) {
      const t = unwrapKeyProtector(kp, [g], { expectedOwner: e.owner.thumbprint });
      if (key) assert.deepEqual(t.key, key);
      key = t.key;
      const secrets = openVmSecrets(t, read("vm-secrets.bin"));
      assert.deepEqual([...secrets.keys()], e.secrets);
      const stateKey = secrets.get(VM_SECRET.stateKey) as Uint8Array;
      assert.equal(createHash("sha256").update(stateKey).digest("hex"), e.stateKeySha256);
      const pt = decryptState(stateKey, read("state-stream.bin"));
      assert.equal(pt.length, e.streamPlaintextLength);
      assert.equal(createHash("sha256").update(pt).digest("hex"), e.streamPlaintextSha256);
    }
  }
});
