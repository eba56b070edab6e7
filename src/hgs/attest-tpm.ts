/**
 * TPM-mode attestation (Hyper-V "TrustTpm") over the store: AK enrollment by credential
 * activation (TPM2_MakeCredential to the registered EK, bound to the AK's name), then quote
 * attestation. The judgement of the evidence is pure and lives in attest/tpm-judge.ts; this
 * module adds the registered host, the nonces, the enabled policies and baselines.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { objectName } from "../tpm/names.js";
import type { PublicArea } from "../tpm/structures.js";
import { checkAkPublic } from "../tpm/verify/ak.js";
import { makeCredential } from "../tpm/verify/credential.js";
import { hgsError, refuse } from "../attest/errors.js";
import { sha256 } from "../attest/host-key.js";
import { judgeTpmEvidence, parseTpm2bPublic } from "../attest/tpm-judge.js";
import { tpm2bPublicBytes } from "../attest/tpm-wire.js";
import { attestationVerdict, error, type AttestationVerdict, type AttestFinding } from "../attest/verdict.js";
import { appendAudit } from "./audit.js";
import {
  finishAttestation,
  hostFinding,
  keyReleaseKeyReuse,
  readKeyReleaseKey,
  refuseOtherMode,
  type AttestResult,
} from "./attestation.js";
import type { HgsContext } from "./context.js";

/** AK enrollment step 1: checks the AK, makes a credential to the EK bound to the AK's name. */
export async function akChallenge(
  ctx: HgsContext,
  hostId: string,
  akPublic: Uint8Array,
): Promise<{ challengeId: string; credentialBlob: string; encryptedSecret: string; expiresAt: string }> {
  const host = await ctx.repo.host(hostId);
  if (!host || host.kind !== "tpm" || !host.ekPublic) {
    refuse("host.not-registered", "no TPM host is registered with this id", "HGS_ERR_UNAUTHORIZED_HOST", {
      got: hostId,
    });
  }
  if (host.revokedAt !== null) refuse("host.revoked", "the host is revoked", "HGS_ERR_UNAUTHORIZED_HOST");
  const ak = parseTpm2bPublic(akPublic, "the AK public");
  const bad = checkAkPublic(ak.value).findings.filter((f) => f.severity === "error");
  if (bad.length > 0) {
    throw hgsError(
      "HGS_ERR_INVALID",
      `the AK is not a restricted signing key of a TPM: ${bad.map((f) => f.id).join(", ")}`,
      { finding: bad[0]?.id, findings: bad },
    );
  }
  const ek = parseTpm2bPublic(host.ekPublic, "the stored EK");
  const secret = randomBytes(32);
  const cred = makeCredential(ek.value, objectName(ak), secret);
  const payload = Buffer.concat([sha256(secret), tpm2bPublicBytes(ak)]);
  secret.fill(0);
  const ttl = (await ctx.repo.settings()).nonceTtlSeconds;
  const n = await ctx.nonces.issue(hostId, "ak-activate", ttl, payload);
  return {
    challengeId: n.nonce,
    credentialBlob: Buffer.from(cred.credentialBlob).toString("base64"),
    encryptedSecret: Buffer.from(cred.secret).toString("base64"),
    expiresAt: n.expiresAt,
  };
}

/** AK enrollment step 2: the secret from TPM2_ActivateCredential proves the AK lives beside the EK. */
export async function akActivate(
  ctx: HgsContext,
  hostId: string,
  challengeId: string,
  secret: Uint8Array,
): Promise<{ hostId: string; akName: string }> {
  const n = await ctx.nonces.consume(challengeId, hostId, "ak-activate");
  if ("id" in n) refuse(n.id, n.message, "HGS_ERR_NONCE", { expected: n.expected, got: n.got });
  const payload = n.payload ?? Buffer.alloc(0);
  const issuedHash = payload.subarray(0, 32);
  const akBytes = payload.subarray(32);
  if (issuedHash.length !== 32 || !timingSafeEqual(issuedHash, sha256(secret))) {
    await ctx.audit.append("attestation.failed", hostId, {
      step: "ak-activate",
      finding: "credential.secret-mismatch",
    });
    refuse(
      "credential.secret-mismatch",
      "the activated secret is not the one issued: the AK is not bound to this EK",
      "HGS_ERR_UNAUTHORIZED_HOST",
    );
  }
  const akName = Buffer.from(objectName(parseTpm2bPublic(akBytes, "the AK public"))).toString("hex");
  await ctx.repo.transaction(async (tx) => {
    await tx.setHostAk(hostId, Buffer.from(akBytes));
    await appendAudit(tx, "host.ak-bound", hostId, { akName });
  });
  return { hostId, akName };
}

/** Decoded AK public areas by their bytes (the QuoteVerifier keeps each AK's KeyObject). */
function akOf(ctx: HgsContext, bytes: Buffer): PublicArea {
  const k = bytes.toString("base64");
  let ak = ctx.caches.akAreas.get(k);
  if (!ak) {
    ak = parseTpm2bPublic(bytes, "the stored AK");
    ctx.caches.akAreas.set(k, ak);
  }
  return ak;
}

export interface TpmAttestRequest {
  readonly hostId: string;
  readonly nonce: string;
  readonly keyReleaseKey: string;
  readonly quote: string;
  readonly signature: string;
  readonly pcrs: Record<string, string>;
  readonly eventLog: string;
}

export async function attestTpm(ctx: HgsContext, req: TpmAttestRequest): Promise<AttestResult> {
  const startedAt = performance.now();
  const s = await ctx.repo.settings();
  refuseOtherMode(s.mode, "tpm");
  const findings: AttestFinding[] = [];
  const host = await ctx.repo.host(req.hostId);
  const n = await ctx.nonces.consume(req.nonce, req.hostId, "attest-tpm");
  if ("id" in n) findings.push(n);
  const standing = hostFinding(host, req.hostId, "tpm");
  if (standing) findings.push(standing);
  else if (!host?.akPublic)
    findings.push(
      error(
        "host.ak-not-bound",
        "no AK is bound to this host's EK: enroll one by credential activation first",
      ),
    );
  else if (s.requireEkCertificate && !host.ekCertificate) {
    findings.push(
      error(
        "host.no-ek-certificate",
        "this HGS requires an EK certificate and the host was registered without one",
      ),
    );
  }
  const krk = readKeyReleaseKey(ctx, req.keyReleaseKey);
  if ("id" in krk) findings.push(krk);
  const reused = keyReleaseKeyReuse(ctx, host, krk);
  if (reused) findings.push(reused);
  const finish = (verdict: AttestationVerdict) =>
    finishAttestation(ctx, {
      host,
      hostId: req.hostId,
      mode: "tpm",
      verdict,
      keyReleaseKey: "id" in krk ? undefined : krk,
      startedAt,
    });
  if (findings.length > 0 || !host?.akPublic || "id" in krk) return finish(attestationVerdict(findings));

  const pcrs = new Map<number, Uint8Array>();
  for (const [k, v] of Object.entries(req.pcrs)) pcrs.set(Number(k), Buffer.from(v, "hex"));
  const [enabled, baselines] = await Promise.all([ctx.repo.enabledPolicyIds(), ctx.baselines.current()]);
  const j = judgeTpmEvidence({
    ak: akOf(ctx, host.akPublic),
    nonce: Buffer.from(req.nonce, "hex"),
    keyReleaseKey: krk.spki,
    evidence: {
      quote: Buffer.from(req.quote, "base64"),
      signature: Buffer.from(req.signature, "base64"),
      pcrs,
      eventLog: Buffer.from(req.eventLog, "base64"),
    },
    enabledPolicies: enabled,
    baselines,
    eventLogs: ctx.caches.eventLogs,
    quotes: ctx.caches.quotes,
  });
  return finish(attestationVerdict(j.findings, ["nonce", "host", "key-release-key"]));
}
