import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { isBulwarkError } from "../../src/core/errors.js";
import type { TransportKey } from "../../src/protector/transport-key.js";
import {
  openVmSecrets,
  reencryptVmSecrets,
  sealVmSecrets,
  VM_SECRET,
  vmSecretsHeader,
} from "../../src/protector/vm-secrets.js";
import { codeOf } from "../helpers/errors.js";

const tk = (gen = 1, id: Uint8Array = randomBytes(16)): TransportKey => ({
  key: randomBytes(32),
  protectorId: id,
  keyGeneration: gen,
});

const K = tk();
const SECRETS = new Map<string, Uint8Array>([
  [VM_SECRET.vtpmStateKey, randomBytes(32)],
  [VM_SECRET.stateKey, randomBytes(32)],
  ["nvram-mac-key", randomBytes(64)],
]);
const BLOB = sealVmSecrets(K, SECRETS);

test("seal/open round trip; the header says which protector and key generation", () => {
  const back = openVmSecrets(K, BLOB);
  assert.deepEqual([...back.keys()], [...SECRETS.keys()]);
  for (const [k, v] of SECRETS) assert.deepEqual(back.get(k), new Uint8Array(v));
  const h = vmSecretsHeader(BLOB);
  assert.deepEqual(Buffer.from(h.protectorId), Buffer.from(K.protectorId));
  assert.equal(h.keyGeneration, 1);
  assert.equal(h.version, 1);
  assert.equal(openVmSecrets(K, sealVmSecrets(K, new Map())).size, 0);
  assert.notDeepEqual(sealVmSecrets(K, SECRETS), BLOB); // fresh nonce each time
  assert.ok(!Buffer.from(BLOB).includes(Buffer.from(SECRETS.get(VM_SECRET.stateKey) as Uint8Array)));
});

test("wrong key, other protector, other generation, and re-encryption", () => {
  assert.equal(
    codeOf(() => openVmSecrets({ ...K, key: randomBytes(32) }, BLOB)),
    "PROTECTOR_ERR_VMSECRETS_AUTH",
  );
  assert.equal(
    codeOf(() => openVmSecrets({ ...K, protectorId: randomBytes(16) }, BLOB)),
    "PROTECTOR_ERR_VMSECRETS_BINDING",
  );
  assert.equal(
    codeOf(() => openVmSecrets({ ...K, keyGeneration: 2 }, BLOB)),
    "PROTECTOR_ERR_VMSECRETS_BINDING",
  );
  const next = tk(2, K.protectorId);
  const moved = reencryptVmSecrets(BLOB, K, next);
  assert.deepEqual(
    openVmSecrets(next, moved).get(VM_SECRET.vtpmStateKey),
    new Uint8Array(SECRETS.get(VM_SECRET.vtpmStateKey) as Uint8Array),
  );
  assert.equal(
    codeOf(() => openVmSecrets(K, moved)),
    "PROTECTOR_ERR_VMSECRETS_BINDING",
  );
});

test("every byte flip and every truncation is a typed error", () => {
  for (let i = 0; i < BLOB.length; i++) {
    const t = Buffer.from(BLOB);
    t[i] = (t[i] as number) ^ 0x04;
    const code = codeOf(() => openVmSecrets(K, t));
    assert.ok(code.startsWith("PROTECTOR_ERR_VMSECRETS_"), `flip ${i}: ${code}`);
    if (i >= 40) assert.equal(code, "PROTECTOR_ERR_VMSECRETS_AUTH", `flip ${i}`);
  }
  for (let n = 0; n < BLOB.length; n++) {
    const code = codeOf(() => openVmSecrets(K, BLOB.subarray(0, n)));
    assert.ok(code.startsWith("PROTECTOR_ERR_VMSECRETS_"), `cut ${n}: ${code}`);
  }
});

test("bad arguments are refused", () => {
  assert.equal(
    codeOf(() => sealVmSecrets(K, new Map([["", randomBytes(1)]]))),
    "PROTECTOR_ERR_INVALID_ARGUMENT",
  );
  assert.equal(
    codeOf(() => sealVmSecrets(K, new Map([["x", randomBytes(5000)]]))),
    "PROTECTOR_ERR_INVALID_ARGUMENT",
  );
  const many = new Map(
    Array.from({ length: 65 }, (_, i) => [`k${i}`, randomBytes(1)] as [string, Uint8Array]),
  );
  assert.equal(
    codeOf(() => sealVmSecrets(K, many)),
    "PROTECTOR_ERR_INVALID_ARGUMENT",
  );
});

test("property: random and mutated blobs open to a value or a typed error (2 x 10,000 runs)", () => {
  const check = (input: Uint8Array) => {
    try {
      openVmSecrets(K, input);
      vmSecretsHeader(input);
    } catch (e) {
      if (!isBulwarkError(e)) throw e;
      assert.match(e.code, /^PROTECTOR_ERR_VMSECRETS_/);
    }
  };
  fc.assert(
    fc.property(fc.boolean(), fc.uint8Array({ maxLength: 200 }), (withHeader, tail) => {
      check(withHeader ? Buffer.concat([BLOB.subarray(0, 40), tail]) : tail);
    }),
    { numRuns: 10_000 },
  );
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.record({ at: fc.nat(BLOB.length - 1), xor: fc.integer({ min: 1, max: 255 }) }), {
        minLength: 1,
        maxLength: 4,
        selector: (f) => f.at,
      }),
      (flips) => {
        const t = Buffer.from(BLOB);
        for (const f of flips) t[f.at] = (t[f.at] as number) ^ f.xor;
        assert.throws(
          () => openVmSecrets(K, t),
          (e: unknown) => isBulwarkError(e),
        );
        check(t);
      },
    ),
    { numRuns: 10_000 },
  );
});
