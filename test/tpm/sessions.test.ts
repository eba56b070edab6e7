/**
 * Salted HMAC sessions and AES-CFB parameter encryption against a real swtpm: the TPM accepts our
 * session key (HMACs verify both ways), decrypts what we encrypt, and what it encrypts decrypts
 * to the sealed secret, which never crosses the wire in clear.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { TPM_RH } from "../../src/tpm/constants.js";
import { Tpm, type KeyRef } from "../../src/tpm/client.js";
import { RecordingTransport } from "../../src/tpm/transport/mock.js";
import { HmacSession } from "../../src/tpm/sessions.js";
import { TPM_ALG } from "../../src/tpm/alg.js";
import { ekTemplateEccP256, sealedObjectTemplate, srkTemplateRsa2048 } from "../../src/tpm/templates.js";
import { startSwtpm, type Swtpm } from "../helpers/tpm-swtpm.js";

let sw: Swtpm;
before(async () => {
  sw = await startSwtpm();
});
after(async () => {
  await sw?.stop();
});

const secret = new TextEncoder().encode("never on the wire in clear: 5f1b");
const contains = (hay: string, needle: Uint8Array) => hay.includes(Buffer.from(needle).toString("hex"));

for (const [label, saltTemplate, hierarchy] of [
  ["RSA SRK", srkTemplateRsa2048, TPM_RH.OWNER],
  ["ECC P-256 EK", ekTemplateEccP256, TPM_RH.ENDORSEMENT],
] as const) {
  test(`salted with the ${label}: Create with an encrypted inSensitive, Unseal with an encrypted outData`, async () => {
    const rec = new RecordingTransport(sw.transport);
    const tpm = new Tpm(rec);
    const srk = await tpm.createPrimary(TPM_RH.OWNER, srkTemplateRsa2048());
    const saltKey: KeyRef =
      hierarchy === TPM_RH.OWNER ? srk : await tpm.createPrimary(hierarchy, saltTemplate());
    const userAuth = new TextEncoder().encode("item-auth");
    try {
      const s1 = await tpm.startAuthSession("hmac", undefined, { salt: saltKey, decrypt: true });
      const obj = await tpm.create(srk, sealedObjectTemplate(new Uint8Array(0)), {
        session: s1,
        userAuth,
        data: secret,
      });
      await tpm.flushContext(s1.handle);
      const item = await tpm.load(srk, obj, { userAuth });
      const s2 = await tpm.startAuthSession("hmac", undefined, { salt: saltKey, encrypt: true });
      assert.deepEqual(await tpm.unseal(item, s2), secret);
      // The session continues with rolled nonces; a second encrypted unseal works too.
      assert.deepEqual(await tpm.unseal(item, s2), secret);
      await tpm.flushContext(s2.handle);
      // Without encryption the secret is visible in the response: the check below means something.
      const s3 = await tpm.startAuthSession("hmac", undefined, { salt: saltKey });
      assert.deepEqual(await tpm.unseal(item, s3), secret);
      await tpm.flushContext(s3.handle);
      await tpm.flushContext(item.handle);
      const wire = rec.entries.map((e) => e.command + e.response);
      const clear = wire.filter((w) => contains(w, secret));
      assert.equal(clear.length, 1, "only the unencrypted unseal shows the secret");
    } finally {
      if (saltKey !== srk) await tpm.flushContext(saltKey.handle);
      await tpm.flushContext(srk.handle);
    }
  });
}

test("parameter encryption without an AES session is refused before anything is sent", () => {
  assert.throws(
    () =>
      new HmacSession(0x02000000, TPM_ALG.SHA256, new Uint8Array(32), () => new Uint8Array(32), {
        encrypt: true,
      }),
    {
      code: "TPM_ERR_INVALID_ARGUMENT",
    },
  );
});
