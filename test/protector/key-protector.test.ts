import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decode, encode } from "../../src/core/codec.js";
import { isBulwarkError } from "../../src/core/errors.js";
import { GuardianSet, KeyProtectorFile, KeyProtectorBody } from "../../src/protector/format.js";
import {
  createGuardian,
  guardianThumbprint,
  publicGuardian,
  UNTRUSTED_GUARDIAN,
} from "../../src/protector/guardian.js";
import {
  checkSuccessor,
  createKeyProtector,
  grantGuardian,
  inspectKeyProtector,
  parseKeyProtector,
  revokeGuardian,
  rollTransportKey,
  unwrapKeyProtector,
  unwrapWithLastKnownGood,
} from "../../src/protector/key-protector.js";
import { signMessage } from "../../src/protector/keys.js";
import { openVmSecrets, sealVmSecrets, VM_SECRET } from "../../src/protector/vm-secrets.js";
import { codeOf } from "../helpers/errors.js";

const owner = createGuardian("Owner", { signingKeyType: "p256", encryptionKeyType: "p256" });
const hostA = createGuardian(UNTRUSTED_GUARDIAN, {
  signingKeyType: "p256",
  encryptionKeyType: "p256",
  host: "host-a",
});
const hostB = createGuardian(UNTRUSTED_GUARDIAN, {
  signingKeyType: "p384",
  encryptionKeyType: "p384",
  host: "host-b",
});
/** Today's default guardian: P-384 signing key, X25519 encryption key. */
const hostX = createGuardian(UNTRUSTED_GUARDIAN, { host: "host-x" });
const hgs = createGuardian("HGS", { signingKeyType: "rsa-3072" });
const stranger = createGuardian("Stranger", { signingKeyType: "p256" });

test("create and unwrap with every guardian key type (RSA-OAEP, HPKE P-256, P-384, X25519)", () => {
  const { keyProtector, transportKey } = createKeyProtector({ owner, guardians: [hostA, hostB, hgs, hostX] });
  assert.equal(transportKey.key.length, 32);
  assert.equal(Buffer.from(keyProtector).readUInt16BE(4), 2, "an X25519 wrap makes it format version 2");
  for (const g of [owner, hostA, hostB, hgs, hostX]) {
    const t = unwrapKeyProtector(keyProtector, [g]);
    assert.deepEqual(t.key, transportKey.key);
    assert.equal(t.guardian.thumbprint, guardianThumbprint(g));
    assert.equal(t.keyGeneration, 1);
  }
  const info = inspectKeyProtector(keyProtector);
  assert.equal(info.ownerSignature.valid, true);
  assert.deepEqual(
    info.guardians.map((g) => g.wrapScheme),
    [
      "hpke-p256-sha256-aes256gcm",
      "hpke-p256-sha256-aes256gcm",
      "hpke-p384-sha384-aes256gcm",
      "rsa-oaep-sha256",
      "hpke-x25519-sha256-aes256gcm",
    ],
  );
  assert.equal(info.version, 2);
  assert.equal(info.guardians[4]?.encryptionKeyType, "x25519");
  assert.equal(info.owner.name, "Owner");
  assert.equal(info.signatureAlgorithm, "ecdsa-p256-sha256");
  // Parse → encode reproduces the file byte for byte.
  assert.deepEqual(encode(KeyProtectorFile, decode(KeyProtectorFile, keyProtector)), keyProtector);
  // No secret in the inspection output.
  assert.ok(!JSON.stringify(info).includes(transportKey.key.toString("hex")));
});

test("a host that is not a guardian gets an error naming the guardians and how to authorize it", () => {
  const { keyProtector } = createKeyProtector({ owner, guardians: [hostA] });
  try {
    unwrapKeyProtector(keyProtector, [hostB]);
    assert.fail("unwrapped without being a guardian");
  } catch (e) {
    assert.ok(isBulwarkError(e));
    assert.equal(e.code, "PROTECTOR_ERR_NOT_AUTHORIZED");
    for (const g of [owner, hostA])
      assert.ok(e.message.includes(guardianThumbprint(g)), "lists each guardian's thumbprint");
    assert.ok(e.message.includes(guardianThumbprint(hostB)), "names this host's guardian");
    assert.match(e.message, /grant/);
    assert.deepEqual(
      (e.details as { guardians: { name: string }[] }).guardians.map((g) => g.name),
      ["Owner", UNTRUSTED_GUARDIAN],
    );
  }
});

test("grant and revoke need the owner's key; guardian set generation increases; transport key is kept", () => {
  const { keyProtector: kp1, transportKey } = createKeyProtector({ owner, guardians: [hostA] });
  assert.equal(
    codeOf(() => unwrapKeyProtector(kp1, [hostB])),
    "PROTECTOR_ERR_NOT_AUTHORIZED",
  );
  assert.equal(
    codeOf(() => grantGuardian(kp1, publicGuardian(hostB), { owner: hostA })),
    "PROTECTOR_ERR_NOT_OWNER",
  );
  const kp2 = grantGuardian(kp1, publicGuardian(hostB), { owner });
  assert.deepEqual(unwrapKeyProtector(kp2, [hostB]).key, transportKey.key);
  assert.equal(parseKeyProtector(kp2).guardianSetGeneration, 2);
  assert.equal(
    codeOf(() => grantGuardian(kp2, publicGuardian(hostB), { owner })),
    "PROTECTOR_ERR_GUARDIAN_EXISTS",
  );
  // Both hosts are named UntrustedGuardian: revoking by name is ambiguous, by thumbprint is not.
  assert.equal(
    codeOf(() => revokeGuardian(kp2, UNTRUSTED_GUARDIAN, { owner })),
    "PROTECTOR_ERR_GUARDIAN_AMBIGUOUS",
  );
  assert.equal(
    codeOf(() => revokeGuardian(kp2, "nobody", { owner })),
    "PROTECTOR_ERR_GUARDIAN_NOT_FOUND",
  );
  assert.equal(
    codeOf(() => revokeGuardian(kp2, guardianThumbprint(hostA), { owner: stranger })),
    "PROTECTOR_ERR_NOT_OWNER",
  );
  const kp3 = revokeGuardian(kp2, guardianThumbprint(hostA), { owner });
  assert.equal(
    codeOf(() => unwrapKeyProtector(kp3, [hostA])),
    "PROTECTOR_ERR_NOT_AUTHORIZED",
  );
  // Revoking rolls the transport key: what hostA unwrapped before no longer opens anything sealed
  // for the new protector.
  const after = unwrapKeyProtector(kp3, [hostB]);
  assert.notDeepEqual(after.key, transportKey.key);
  assert.equal(after.keyGeneration, parseKeyProtector(kp2).keyGeneration + 1);
  assert.equal(parseKeyProtector(kp3).guardianSetGeneration, 3);
  assert.doesNotThrow(() => checkSuccessor(kp2, kp3));
  // The owner may unwrap through another guardian when it is not one itself.
  const { keyProtector: solo } = createKeyProtector({ owner, guardians: [hostA], ownerCanUnwrap: false });
  assert.equal(
    codeOf(() => grantGuardian(solo, publicGuardian(hostB), { owner })),
    "PROTECTOR_ERR_NOT_AUTHORIZED",
  );
  const solo2 = grantGuardian(solo, publicGuardian(hostB), { owner, unwrapWith: [hostA] });
  assert.equal(unwrapKeyProtector(solo2, [hostB]).guardian.name, UNTRUSTED_GUARDIAN);
  assert.equal(
    codeOf(() => revokeGuardian(solo, guardianThumbprint(hostA), { owner, unwrapWith: [hostA] })),
    "PROTECTOR_ERR_LAST_GUARDIAN",
  );
});

test("owner signature: an altered guardian set fails; re-signing with another key is caught by expectedOwner and the last known good", () => {
  const { keyProtector } = createKeyProtector({ owner, guardians: [hostA] });
  const gs = decode(KeyProtectorFile, keyProtector).body.value.guardianSet.value;
  // An attacker adds their guardian to the set, keeping the owner's signature.
  const forgedSet = { ...gs, guardians: [...gs.guardians, publicGuardian(stranger)] };
  const reencoded = reassemble(keyProtector, forgedSet);
  assert.equal(
    codeOf(() => unwrapKeyProtector(reencoded, [stranger])),
    "PROTECTOR_ERR_OWNER_SIGNATURE",
  );
  assert.equal(inspectKeyProtector(reencoded).ownerSignature.valid, false);

  // The stranger builds a whole new protector claiming to be the VM's, signed by itself.
  const fake = createKeyProtector({ owner: stranger, guardians: [hostA] }).keyProtector;
  assert.equal(
    codeOf(() => unwrapKeyProtector(fake, [hostA], { expectedOwner: guardianThumbprint(owner) })),
    "PROTECTOR_ERR_OWNER_MISMATCH",
  );
  assert.equal(
    codeOf(() => checkSuccessor(keyProtector, fake)),
    "PROTECTOR_ERR_FOREIGN_PROTECTOR",
  ); // other protector id
});

/** Rebuilds a protector around another guardian set, keeping signature, wraps and MAC bytes. */
function reassemble(kp: Uint8Array, set: GuardianSet): Uint8Array {
  const f = decode(KeyProtectorFile, kp);
  const old = f.body.value.wraps;
  const wraps = set.guardians.map((_, i) => old[Math.min(i, old.length - 1)] as (typeof old)[number]);
  const body = encode(KeyProtectorBody, {
    ...f.body.value,
    guardianSet: { value: set, raw: encode(GuardianSet, set) },
    wraps,
  });
  return Buffer.concat([body, f.mac]);
}

test("MAC: changing anything outside the signed guardian set is detected", () => {
  const { keyProtector } = createKeyProtector({ owner, guardians: [hostA] });
  const kp = parseKeyProtector(keyProtector);
  const gsEnd = 8 + 4 + kp.guardianSetRaw.length; // header + u32 length + guardian set
  // Flip each byte after the guardian set (signature, key generation, wraps, MAC).
  for (let i = gsEnd; i < keyProtector.length; i++) {
    const t = Buffer.from(keyProtector);
    t[i] = (t[i] as number) ^ 0x01;
    const code = codeOf(() => unwrapKeyProtector(t, [hostA]));
    assert.ok(
      [
        "PROTECTOR_ERR_MAC",
        "PROTECTOR_ERR_UNWRAP",
        "PROTECTOR_ERR_OWNER_SIGNATURE",
        "PROTECTOR_ERR_FORMAT",
      ].includes(code),
      `flip at ${i}: ${code}`,
    );
  }
  // A valid-looking change of the key generation: the wrap context and the MAC both catch it.
  const t = Buffer.from(keyProtector);
  const genAt = gsEnd + 2 + 2 + kp.signature.length;
  t.writeUInt32BE(7, genAt);
  assert.ok(
    ["PROTECTOR_ERR_MAC", "PROTECTOR_ERR_UNWRAP"].includes(codeOf(() => unwrapKeyProtector(t, [hostA]))),
  );
});

test("every single-byte change anywhere gives a typed error, never a silent success", () => {
  const { keyProtector } = createKeyProtector({ owner, guardians: [hostA] });
  const codes = new Set<string>();
  for (let i = 0; i < keyProtector.length; i += 1) {
    const t = Buffer.from(keyProtector);
    t[i] = (t[i] as number) ^ 0x80;
    const code = codeOf(() => unwrapKeyProtector(t, [hostA]));
    assert.notEqual(code, "OK", `byte ${i} changed unnoticed`);
    codes.add(code);
  }
  for (const c of codes) assert.match(c, /^PROTECTOR_ERR_/);
});

test("rollTransportKey: a non-owner guardian rolls; the owner signature and guardian set stay byte-identical", () => {
  const { keyProtector, transportKey } = createKeyProtector({ owner, guardians: [hostA, hgs] });
  const secrets = sealVmSecrets(transportKey, new Map([[VM_SECRET.vtpmStateKey, Buffer.alloc(32, 7)]]));
  const r = rollTransportKey(keyProtector, hgs, { vmSecrets: secrets });
  const before = parseKeyProtector(keyProtector);
  const after = parseKeyProtector(r.keyProtector);
  assert.deepEqual(after.guardianSetRaw, before.guardianSetRaw);
  assert.deepEqual(after.signature, before.signature);
  assert.equal(after.guardianSetGeneration, before.guardianSetGeneration);
  assert.equal(after.keyGeneration, before.keyGeneration + 1);
  assert.deepEqual(r.oldKey.key, transportKey.key);
  assert.notDeepEqual(r.newKey.key, r.oldKey.key);
  for (const g of [owner, hostA, hgs])
    assert.deepEqual(unwrapKeyProtector(r.keyProtector, [g]).key, r.newKey.key);
  assert.equal(inspectKeyProtector(r.keyProtector).ownerSignature.valid, true);
  // The VM secrets moved to the new key; the old blob no longer opens with it.
  assert.ok(r.vmSecrets);
  assert.deepEqual(
    openVmSecrets(r.newKey, r.vmSecrets).get(VM_SECRET.vtpmStateKey),
    new Uint8Array(32).fill(7),
  );
  assert.equal(
    codeOf(() => openVmSecrets(r.newKey, secrets)),
    "PROTECTOR_ERR_VMSECRETS_BINDING",
  );
  // The rolled protector is a valid successor; the old one is now a rollback.
  checkSuccessor(keyProtector, r.keyProtector);
  assert.equal(
    codeOf(() => checkSuccessor(r.keyProtector, keyProtector)),
    "PROTECTOR_ERR_ROLLBACK",
  );
  // Grant after a roll still verifies against the same owner.
  const granted = grantGuardian(r.keyProtector, publicGuardian(hostB), { owner });
  assert.deepEqual(unwrapKeyProtector(granted, [hostB]).key, r.newKey.key);
  assert.equal(
    codeOf(() => rollTransportKey(keyProtector, stranger)),
    "PROTECTOR_ERR_NOT_AUTHORIZED",
  );
});

test("last known good: fall back on a corrupt or rolled-back current protector, not on a revocation", () => {
  const { keyProtector: v1 } = createKeyProtector({ owner, guardians: [hostA, hostB] });
  const v2 = grantGuardian(v1, publicGuardian(hgs), { owner });
  const ok = unwrapWithLastKnownGood(v2, v1, [hostA]);
  assert.equal(ok.used, "current");
  assert.deepEqual(ok.lastKnownGood, v2);

  const corrupt = Buffer.from(v2);
  corrupt[corrupt.length - 1] = (corrupt[corrupt.length - 1] as number) ^ 1;
  const fb = unwrapWithLastKnownGood(corrupt, v2, [hostA]);
  assert.equal(fb.used, "lastKnownGood");
  assert.equal(fb.currentError?.code, "PROTECTOR_ERR_MAC");
  assert.deepEqual(fb.lastKnownGood, v2);

  const rolledBack = unwrapWithLastKnownGood(v1, v2, [hostA]);
  assert.equal(rolledBack.used, "lastKnownGood");
  assert.equal(rolledBack.currentError?.code, "PROTECTOR_ERR_ROLLBACK");

  const revoked = revokeGuardian(v2, guardianThumbprint(hostA), { owner });
  assert.equal(
    codeOf(() => unwrapWithLastKnownGood(revoked, v2, [hostA])),
    "PROTECTOR_ERR_NOT_AUTHORIZED",
  );

  // A fork: same generations, different guardian set.
  const forkA = grantGuardian(v1, publicGuardian(stranger), { owner });
  assert.equal(
    codeOf(() => checkSuccessor(v2, forkA)),
    "PROTECTOR_ERR_ROLLBACK",
  );
  // Another VM's protector (same owner and guardians, this host can unwrap it) put in place is
  // refused loudly, not silently replaced by the last known good copy.
  const { keyProtector: otherVm } = createKeyProtector({ owner, guardians: [hostA, hostB] });
  assert.equal(
    codeOf(() => unwrapWithLastKnownGood(otherVm, v2, [hostA])),
    "PROTECTOR_ERR_FOREIGN_PROTECTOR",
  );
  // A corrupt last-known-good copy is ignored.
  assert.equal(unwrapWithLastKnownGood(v2, Buffer.from("garbage"), [hostA]).used, "current");
});

test("versions and format errors are typed", () => {
  const { keyProtector } = createKeyProtector({ owner });
  // Without an X25519 guardian the lowest version that holds the wraps is written: 1.
  assert.equal(Buffer.from(keyProtector).readUInt16BE(4), 1);
  for (const unknown of [0, 3, 0xffff]) {
    const t = Buffer.from(keyProtector);
    t.writeUInt16BE(unknown, 4);
    assert.equal(
      codeOf(() => parseKeyProtector(t)),
      "PROTECTOR_ERR_VERSION",
    );
  }
  // Version 1 cannot hold the X25519 scheme: a version-2 protector relabelled 1 is malformed.
  const x = Buffer.from(createKeyProtector({ owner, guardians: [hostX] }).keyProtector);
  assert.equal(x.readUInt16BE(4), 2);
  assert.equal(parseKeyProtector(x).version, 2);
  x.writeUInt16BE(1, 4);
  assert.equal(
    codeOf(() => parseKeyProtector(x)),
    "PROTECTOR_ERR_FORMAT",
  );
  // A version-1 protector relabelled 2 parses (version 2 reads every version-1 scheme), and the
  // MAC over the header catches the change.
  const up = Buffer.from(keyProtector);
  up.writeUInt16BE(2, 4);
  assert.equal(parseKeyProtector(up).version, 2);
  assert.equal(
    codeOf(() => unwrapKeyProtector(up, [owner])),
    "PROTECTOR_ERR_MAC",
  );
  assert.equal(
    codeOf(() => parseKeyProtector(keyProtector.subarray(0, 30))),
    "PROTECTOR_ERR_FORMAT",
  );
  assert.equal(
    codeOf(() => parseKeyProtector(Buffer.from("BWKP"))),
    "PROTECTOR_ERR_FORMAT",
  );
  const signed = signMessage(owner.signingKey, Buffer.from("x"));
  assert.equal(signed.algorithm, "ecdsa-p256-sha256");
});

// --- property tests ---------------------------------------------------------------------------

const { keyProtector: SAMPLE } = createKeyProtector({ owner, guardians: [hostA] });

function typedOrValue(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!isBulwarkError(e)) throw e;
    assert.match(e.code, /^PROTECTOR_ERR_/);
  }
}

test("property: random bytes parse to a value or a typed error (10,000 runs)", () => {
  fc.assert(
    fc.property(fc.boolean(), fc.uint8Array({ maxLength: 400 }), (withMagic, tail) => {
      const input = withMagic
        ? Buffer.concat([Buffer.from([0x42, 0x57, 0x4b, 0x50, 0, 1, 0, 0]), tail])
        : Buffer.from(tail);
      typedOrValue(() => parseKeyProtector(input));
    }),
    { numRuns: 10_000 },
  );
});

test("property: mutated valid protectors parse, inspect and unwrap to a value or a typed error (10,000 runs)", () => {
  let unwrapped = 0;
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.record({ at: fc.nat(SAMPLE.length - 1), xor: fc.integer({ min: 1, max: 255 }) }), {
        minLength: 1,
        maxLength: 3,
        selector: (f) => f.at,
      }),
      fc.option(fc.nat(SAMPLE.length), { nil: undefined }),
      (flips, cut) => {
        const t = Buffer.from(SAMPLE);
        for (const f of flips) t[f.at] = (t[f.at] as number) ^ f.xor;
        const input = cut === undefined ? t : t.subarray(0, cut);
        typedOrValue(() => {
          parseKeyProtector(input);
          inspectKeyProtector(input);
          unwrapKeyProtector(input, [hostA]);
          unwrapped++;
        });
      },
    ),
    { numRuns: 10_000 },
  );
  assert.equal(unwrapped, 0, "a mutated protector unwrapped");
});
