/**
 * The scripted TPM session recorded into test/vectors/tpm/transcripts/ and replayed by unit
 * tests: the same calls with the same deterministic nonces produce the same command bytes.
 */
import { createHash } from "node:crypto";
import { TPM_ALG } from "../../src/tpm/alg.js";
import { TPM_RH } from "../../src/tpm/constants.js";
import type { Tpm } from "../../src/tpm/client.js";
import { pcrSelection } from "../../src/tpm/pcr.js";
import { PasswordSession } from "../../src/tpm/sessions.js";
import { akTemplateRsa2048, sealedObjectTemplate, srkTemplateRsa2048 } from "../../src/tpm/templates.js";

/** SHA-256 counter-mode bytes: reproducible nonces for transcripts (never for real use). */
export function seededRandom(seed: string): (n: number) => Uint8Array {
  let counter = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let at = 0; at < n; at += 32) {
      const block = createHash("sha256").update(`${seed}:${counter++}`).digest();
      out.set(block.subarray(0, Math.min(32, n - at)), at);
    }
    return out;
  };
}

export const TRANSCRIPT_NONCE = Uint8Array.from({ length: 20 }, (_, i) => i);
export const TRANSCRIPT_SECRET = new TextEncoder().encode("transcript secret");

/** Runs the scripted session and returns what a test checks. */
export async function transcriptScript(tpm: Tpm) {
  const props = await tpm.properties();
  const sel = [pcrSelection(TPM_ALG.SHA256, [0, 1, 2, 3, 4, 5, 6, 7])];
  const pcrs = await tpm.pcrRead(sel);
  const srk = await tpm.createPrimary(TPM_RH.OWNER, srkTemplateRsa2048());
  const userAuth = new TextEncoder().encode("transcript-pw");
  const sealed = await tpm.create(srk, sealedObjectTemplate(new Uint8Array(0)), {
    userAuth,
    data: TRANSCRIPT_SECRET,
  });
  const item = await tpm.load(srk, sealed, { userAuth });
  const hmacSession = await tpm.startAuthSession("hmac");
  const unsealedHmac = await tpm.unseal(item, hmacSession);
  const unsealedPw = await tpm.unseal(item, new PasswordSession(userAuth));
  await tpm.flushContext(hmacSession.handle);
  await tpm.flushContext(item.handle);
  const akObj = await tpm.create(srk, akTemplateRsa2048());
  const ak = await tpm.load(srk, akObj);
  const quote = await tpm.quote(ak, TRANSCRIPT_NONCE, sel);
  await tpm.flushContext(ak.handle);
  await tpm.flushContext(srk.handle);
  return { props, pcrs, unsealedHmac, unsealedPw, akPublic: akObj.public, quote, sel };
}
