/**
 * The protector library memoises two pure verdicts by content, in memos the caller owns
 * (GuardianChecker, ProtectorMemo): guardian certificate checks and owner signatures. A memoised
 * success must never let different bytes through: each case first warms the memo with the
 * genuine item, then presents an altered one. Two memos share nothing.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  checkGuardianPublic,
  createGuardian,
  GuardianChecker,
  publicGuardian,
} from "../../src/protector/guardian.js";
import {
  createKeyProtector,
  parseKeyProtector,
  ProtectorMemo,
  rollTransportKey,
  verifyOwnerSignature,
  type KeyProtector,
} from "../../src/protector/key-protector.js";
import { zeroize } from "../../src/protector/kdf.js";
import { codeOf } from "../helpers/errors.js";

const owner = createGuardian("Owner", { signingKeyType: "p256" });
const other = createGuardian("Other", { signingKeyType: "p256" });
const hgs = createGuardian("HGS", { signingKeyType: "p256" });

function flipLastByte(b: Uint8Array): Uint8Array {
  const c = new Uint8Array(b);
  c[c.length - 1] = (c[c.length - 1] as number) ^ 0x01;
  return c;
}

test("a memoised guardian check does not pass altered or recombined certificates", () => {
  const checker = new GuardianChecker();
  const g = publicGuardian(hgs);
  const first = checker.check(g);
  assert.equal(checker.check({ ...g }), first, "same bytes: memoised verdict");
  // The signature at the end of the certificate altered: no longer self-signed.
  assert.equal(
    codeOf(() => checker.check({ ...g, signingCertificate: flipLastByte(g.signingCertificate) })),
    "PROTECTOR_ERR_CERTIFICATE",
  );
  // Another guardian's encryption certificate under this signing certificate.
  assert.equal(
    codeOf(() => checker.check({ ...g, encryptionCertificate: other.encryptionCertificate })),
    "PROTECTOR_ERR_CERTIFICATE",
  );
  // Same certificates, an invalid name: the name is checked on every call.
  assert.equal(
    codeOf(() => checker.check({ ...g, name: "bad\nname" })),
    "PROTECTOR_ERR_INVALID_ARGUMENT",
  );
  // Refusals are not memoised: the altered guardian is refused again.
  assert.equal(
    codeOf(() => checker.check({ ...g, encryptionCertificate: other.encryptionCertificate })),
    "PROTECTOR_ERR_CERTIFICATE",
  );
  assert.equal(checker.check(g), first);
});

test("a memoised owner signature does not cover another signature, guardian set or owner", () => {
  const { keyProtector, transportKey } = createKeyProtector({ owner, guardians: [publicGuardian(hgs)] });
  zeroize(transportKey.key);
  const kp = parseKeyProtector(keyProtector);
  const memo = new ProtectorMemo();
  verifyOwnerSignature(kp, memo);
  verifyOwnerSignature(kp, memo); // memoised
  const variants: [string, KeyProtector][] = [
    ["signature", { ...kp, signature: flipLastByte(kp.signature) }],
    ["guardian set", { ...kp, guardianSetRaw: flipLastByte(kp.guardianSetRaw) }],
    ["owner", { ...kp, owner: publicGuardian(other) }],
  ];
  for (const [what, v] of variants) {
    assert.equal(
      codeOf(() => verifyOwnerSignature(v, memo)),
      "PROTECTOR_ERR_OWNER_SIGNATURE",
      what,
    );
  }
  // Another protector of the same owner and guardians (other protector id) verifies on its own.
  const second = createKeyProtector({ owner, guardians: [publicGuardian(hgs)] });
  zeroize(second.transportKey.key);
  verifyOwnerSignature(parseKeyProtector(second.keyProtector), memo);
});

test("rolling with memoised verdicts still refuses an altered protector and yields unwrappable keys", () => {
  const { keyProtector, transportKey } = createKeyProtector({ owner, guardians: [publicGuardian(hgs)] });
  zeroize(transportKey.key);
  const memo = new ProtectorMemo();
  let current = keyProtector;
  for (let i = 0; i < 3; i++) {
    const roll = rollTransportKey(current, hgs, { memo });
    assert.equal(roll.newKey.keyGeneration, i + 2);
    // The owner (a guardian too) opens the rolled protector: every wrap was redone for the new key.
    const again = rollTransportKey(roll.keyProtector, owner, { memo });
    assert.deepEqual(again.oldKey.key, roll.newKey.key);
    zeroize(roll.oldKey.key, roll.newKey.key, again.oldKey.key, again.newKey.key);
    current = roll.keyProtector;
  }
  // The owner signature inside the protector altered after the genuine one was memoised.
  const kp = parseKeyProtector(current);
  const sigAt = Buffer.from(current).indexOf(Buffer.from(kp.signature));
  assert.ok(sigAt > 0);
  const tampered = new Uint8Array(current);
  tampered[sigAt + 5] = (tampered[sigAt + 5] as number) ^ 0x80;
  assert.equal(
    codeOf(() => rollTransportKey(tampered, hgs, { memo })),
    "PROTECTOR_ERR_OWNER_SIGNATURE",
  );
  // A protector for a guardian set without this HGS is still not unwrappable by it.
  const foreign = createKeyProtector({ owner, guardians: [publicGuardian(other)] });
  zeroize(foreign.transportKey.key);
  assert.equal(
    codeOf(() => rollTransportKey(foreign.keyProtector, hgs, { memo })),
    "PROTECTOR_ERR_NOT_AUTHORIZED",
  );
});

test("memos belong to their owner: two checkers share nothing, the one-shot check keeps nothing", () => {
  const g = publicGuardian(hgs);
  const a = new GuardianChecker();
  const b = new GuardianChecker();
  const fromA = a.check(g);
  assert.equal(a.check(g), fromA, "a remembers its own check");
  assert.notEqual(b.check(g), fromA, "b checks for itself");
  assert.notEqual(checkGuardianPublic(g), checkGuardianPublic(g), "the one-shot form memoises nothing");
  // A memo that verified one protector's owner signature says nothing to another memo: the
  // altered signature is refused by a fresh memo and by the warmed one alike.
  const { keyProtector, transportKey } = createKeyProtector({ owner, guardians: [publicGuardian(hgs)] });
  zeroize(transportKey.key);
  const kp = parseKeyProtector(keyProtector);
  const warmed = new ProtectorMemo();
  verifyOwnerSignature(kp, warmed);
  const altered = { ...kp, signature: flipLastByte(kp.signature) };
  for (const memo of [warmed, new ProtectorMemo(), undefined]) {
    assert.equal(
      codeOf(() => verifyOwnerSignature(altered, memo)),
      "PROTECTOR_ERR_OWNER_SIGNATURE",
    );
  }
});
