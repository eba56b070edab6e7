/**
 * Host-key attestation (Hyper-V "TrustHostKey"): the host signs the HGS nonce and its key-release
 * key with its registered host key (message format in attest/host-key.ts). Proves identity only:
 * no policy is evaluated in this mode.
 */
import { attestKeyMessage, verifyHostSignature } from "../attest/host-key.js";
import { attestationVerdict, error, type AttestFinding } from "../attest/verdict.js";
import {
  finishAttestation,
  hostFinding,
  keyReleaseKeyReuse,
  readKeyReleaseKey,
  refuseOtherMode,
  type AttestResult,
} from "./attestation.js";
import type { HgsContext } from "./context.js";

export interface KeyAttestRequest {
  readonly hostId: string;
  readonly nonce: string;
  readonly keyReleaseKey: string;
  readonly signature: string;
}

export async function attestHostKey(ctx: HgsContext, req: KeyAttestRequest): Promise<AttestResult> {
  const startedAt = performance.now();
  refuseOtherMode((await ctx.repo.settings()).mode, "key");
  const findings: AttestFinding[] = [];
  const passed: string[] = [];
  const host = await ctx.repo.host(req.hostId);
  const n = await ctx.nonces.consume(req.nonce, req.hostId, "attest-key");
  if ("id" in n) findings.push(n);
  else passed.push("nonce");
  const standing = hostFinding(host, req.hostId, "key");
  if (standing) findings.push(standing);
  else passed.push("host");
  const krk = readKeyReleaseKey(ctx, req.keyReleaseKey);
  const reused = keyReleaseKeyReuse(ctx, host, krk);
  if ("id" in krk) findings.push(krk);
  else if (reused) findings.push(reused);
  else passed.push("key-release-key");
  if (findings.length === 0 && host && !("id" in krk)) {
    const signed =
      host.publicKey !== null &&
      verifyHostSignature(
        ctx.caches.keys.fromSpki(host.publicKey),
        attestKeyMessage(Buffer.from(req.nonce, "hex"), krk.spki, host.id),
        Buffer.from(req.signature, "base64"),
      );
    if (signed) passed.push("host-key.signature");
    else
      findings.push(
        error(
          "host-key.bad-signature",
          "the challenge signature does not verify with the registered host key",
        ),
      );
  }
  return finishAttestation(ctx, {
    host,
    hostId: req.hostId,
    mode: "key",
    verdict: attestationVerdict(findings, passed),
    keyReleaseKey: "id" in krk ? undefined : krk,
    startedAt,
  });
}
