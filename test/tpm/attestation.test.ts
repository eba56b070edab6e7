/**
 * The whole attestation flow on a real swtpm, host half (src/tpm/attestation.ts) and server half
 * (src/tpm/verify/): EK and its certificate, AK under the EK and under the SRK, credential
 * activation, quote, verdicts. The server side sees only bytes, as over the network.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate, randomBytes } from "node:crypto";
import { decode, encode } from "../../src/core/codec.js";
import { TPM_ALG } from "../../src/tpm/alg.js";
import {
  activate,
  createAttestationKey,
  createSrk,
  loadEk,
  quoteWithPcrs,
} from "../../src/tpm/attestation.js";
import { readEkCertificate } from "../../src/tpm/ek.js";
import { pcrSelection } from "../../src/tpm/pcr.js";
import { TPM2B_PUBLIC_RAW, TPMT_SIGNATURE } from "../../src/tpm/structures.js";
import { checkActivatedSecret, credentialChallenge } from "../../src/tpm/verify/credential.js";
import { publicKeyFromTpm } from "../../src/tpm/verify/keys.js";
import { verifyQuote } from "../../src/tpm/verify/quote.js";
import { startSwtpm, type Swtpm } from "../helpers/tpm-swtpm.js";

let sw: Swtpm;
before(async () => {
  sw = await startSwtpm({ manufacture: true });
});
after(async () => {
  await sw?.stop();
});

for (const [label, alg, under] of [
  ["RSA AK under the EK", "rsa", "ek"],
  ["ECC AK under the SRK", "ecc", "srk"],
] as const) {
  test(`attestation flow: ${label}`, async () => {
    const tpm = sw.tpm;
    // Host: EK, its certificate, an AK.
    const { ek, transient } = await loadEk(tpm, "rsa");
    assert.equal(transient, false, "swtpm_setup made the persistent RSA EK");
    const cert = new X509Certificate(Buffer.from((await readEkCertificate(tpm, 0x01c00002)).der));
    const srk = under === "srk" ? await createSrk(tpm) : undefined;
    const { ak } = await createAttestationKey(tpm, { alg, parent: srk ?? ek, parentIsEk: under === "ek" });
    try {
      const wire = {
        ekPublic: encode(TPM2B_PUBLIC_RAW, ek.public),
        akPublic: encode(TPM2B_PUBLIC_RAW, ak.public),
        ekCert: cert.raw,
      };

      // Server: the EK certificate's key is the EK; challenge bound to the AK's Name.
      const ekPub = decode(TPM2B_PUBLIC_RAW, wire.ekPublic);
      const akPub = decode(TPM2B_PUBLIC_RAW, wire.akPublic);
      assert.deepEqual(
        publicKeyFromTpm(ekPub.value).export({ format: "der", type: "spki" }),
        new X509Certificate(wire.ekCert).publicKey.export({ format: "der", type: "spki" }),
      );
      const challenge = credentialChallenge(ekPub, akPub);
      assert.equal(challenge.verdict.ok, true, JSON.stringify(challenge.verdict.findings));

      // Host: activation.
      const returned = await activate(tpm, ak, ek, challenge.credential!);
      // Server: the AK is in the EK's TPM.
      assert.equal(checkActivatedSecret(challenge.secret!, returned).ok, true);

      // Server: nonce; host: quote + PCRs; server: verdict.
      const nonce = randomBytes(32);
      const sel = [pcrSelection(TPM_ALG.SHA256, [0, 1, 2, 3, 4, 5, 6, 7]), pcrSelection(TPM_ALG.SHA1, [0])];
      const q = await quoteWithPcrs(tpm, ak, nonce, sel);
      const v = verifyQuote({
        ak: akPub,
        quoted: q.quoted,
        signature: encode(TPMT_SIGNATURE, q.signature),
        nonce,
        pcrs: q.pcrs,
        expectedSelection: sel,
      });
      assert.equal(v.ok, true, JSON.stringify(v.findings));
      assert.ok(v.passed.includes("quote.pcrDigest"));
      // A replayed quote (old nonce) is refused.
      const replay = verifyQuote({
        ak: akPub,
        quoted: q.quoted,
        signature: q.signature,
        nonce: randomBytes(32),
        pcrs: q.pcrs,
        expectedSelection: sel,
      });
      assert.deepEqual(
        replay.findings.map((f) => f.id),
        ["quote.nonce"],
      );
    } finally {
      await tpm.flushContext(ak.handle);
      if (srk) await tpm.flushContext(srk.handle);
    }
  });
}

test("loadEk creates an ECC EK from the L-2 template when asked", async () => {
  const { ek, transient } = await loadEk(sw.tpm, "ecc");
  try {
    assert.equal(transient, true);
    assert.equal(ek.public.value.type, TPM_ALG.ECC);
  } finally {
    await sw.tpm.flushContext(ek.handle);
  }
});
