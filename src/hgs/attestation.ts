/**
 * What both attestation modes share: the challenge, the checks of the registered host and of the
 * key-release key, and the end of every attestation — the verdict audited, a health certificate
 * issued when it passed, one `bulwark:hgs:attestation` diagnostics message published.
 *
 * Diagnostics (node:diagnostics_channel, for metrics; never secrets):
 *   bulwark:hgs:attestation  { mode: "key" | "tpm", status: AttestationStatus, durationMs: number }
 *   bulwark:hgs:release      { outcome: "released" | "refused", code?: string, durationMs: number }  (release.ts)
 * An attestation refused before any evidence is judged (HGS_ERR_MODE: the node runs the other
 * mode) has no verdict and publishes nothing.
 */
import diagnostics_channel from "node:diagnostics_channel";
import type { KeyObject } from "node:crypto";
import { isBulwarkError, type BulwarkError } from "../core/errors.js";
import { hgsError, refuse, type HgsErrorCode } from "../attest/errors.js";
import { issueHealthCertificate, type AttestationMode } from "../attest/health.js";
import { checkKeyReleaseKey, readPublicKey, spkiDer } from "../attest/host-key.js";
import { loadPublicKey } from "../tpm/verify/keys.js";
import {
  error,
  passed,
  type AttestationStatus,
  type AttestationVerdict,
  type AttestFinding,
} from "../attest/verdict.js";
import type { HgsContext } from "./context.js";
import type { HostRow } from "./store/repo.js";

export const ATTESTATION_CHANNEL = "bulwark:hgs:attestation";
export const RELEASE_CHANNEL = "bulwark:hgs:release";

export interface AttestationMessage {
  readonly mode: AttestationMode;
  readonly status: AttestationStatus;
  readonly durationMs: number;
}

const attestationChannel = diagnostics_channel.channel(ATTESTATION_CHANNEL);

export interface AttestResult {
  readonly verdict: AttestationVerdict;
  readonly healthCertificate?: string;
  readonly validUntil?: string;
}

/** A fresh nonce for the host's next attestation, in the mode this HGS runs. */
export async function issueChallenge(
  ctx: HgsContext,
  hostId: string,
): Promise<{ nonce: string; expiresAt: string; mode: AttestationMode }> {
  const s = await ctx.repo.settings();
  const row = await ctx.repo.host(hostId);
  // No oracle for registration: an unknown host still gets a nonce; attestation refuses it.
  const purpose = row && row.kind === s.mode ? `attest-${s.mode}` : "attest-unregistered";
  return { ...(await ctx.nonces.issue(hostId, purpose, s.nonceTtlSeconds)), mode: s.mode };
}

/** Refuses an attestation in the mode this node does not run (before any evidence is read). */
export function refuseOtherMode(running: AttestationMode, asked: AttestationMode): void {
  if (running !== asked) {
    refuse("mode.mismatch", `this HGS attests in '${running}' mode`, "HGS_ERR_MODE", {
      expected: running,
      got: asked,
    });
  }
}

/** The registered host's standing for `mode`: a finding when it may not attest. */
export function hostFinding(
  host: HostRow | undefined,
  hostId: string,
  mode: AttestationMode,
): AttestFinding | undefined {
  if (!host) return error("host.not-registered", "no host is registered with this id", { got: hostId });
  if (host.kind !== mode) {
    const other = host.kind === "tpm" ? "TPM" : "host-key";
    return error("host.wrong-mode", `the host is registered for ${other} attestation`, {
      expected: mode,
      got: host.kind,
    });
  }
  if (host.revokedAt !== null) return error("host.revoked", "the host is revoked");
  return undefined;
}

export interface KeyReleaseKey {
  readonly key: KeyObject;
  /** SPKI DER as received (base64 input) or as re-encoded (PEM input). */
  readonly spki: Buffer;
}

/** The key-release key the host wants its certificate bound to, or why it is refused. */
export function readKeyReleaseKey(ctx: HgsContext, text: string): KeyReleaseKey | AttestFinding {
  try {
    const key = readPublicKey(text, "the key-release key", ctx.caches.keys);
    checkKeyReleaseKey(key);
    return { key, spki: text.includes("-----BEGIN") ? spkiDer(key) : Buffer.from(text, "base64") };
  } catch (e) {
    return error("key-release-key.unsupported", isBulwarkError(e) ? e.message : "invalid key-release key");
  }
}

/**
 * True when `key` is one of the keys registered for `host`: its host key (host-key mode), its
 * EK or its AK (TPM mode). A key-release key must be a key of its own: the host key signs
 * attestations and the AK quotes, and a key used both to sign and to receive the VM's keys
 * lets whoever obtains one use serve the other (docs/hgs.md).
 */
export function isRegisteredKey(ctx: HgsContext, host: HostRow, key: KeyObject): boolean {
  if (host.publicKey && ctx.caches.keys.fromSpki(host.publicKey).equals(key)) return true;
  for (const tpmPublic of [host.ekPublic, host.akPublic]) {
    if (!tpmPublic) continue;
    try {
      if (loadPublicKey(tpmPublic).key.equals(key)) return true;
    } catch {
      // A stored area that no longer loads is judged elsewhere; it cannot equal the key.
    }
  }
  return false;
}

/** The finding for a key-release key that is one of the host's registered keys. */
export function keyReleaseKeyReuse(
  ctx: HgsContext,
  host: HostRow | undefined,
  krk: KeyReleaseKey | AttestFinding,
): AttestFinding | undefined {
  if (!host || "id" in krk || !isRegisteredKey(ctx, host, krk.key)) return undefined;
  return error(
    "key-release-key.is-host-key",
    "the key-release key must be a key of its own, not the host key, EK or AK",
  );
}

/** One attestation's outcome, as {@link finishAttestation} takes it. */
export interface JudgedAttestation {
  readonly host: HostRow | undefined;
  readonly hostId: string;
  readonly mode: AttestationMode;
  readonly verdict: AttestationVerdict;
  readonly keyReleaseKey: KeyReleaseKey | undefined;
  /** `performance.now()` when the request was taken up. */
  readonly startedAt: number;
}

/**
 * Ends an attestation: audits the verdict, issues the health certificate when it passed, and
 * publishes the diagnostics message.
 */
export async function finishAttestation(ctx: HgsContext, a: JudgedAttestation): Promise<AttestResult> {
  const result = await issueOrRefuse(ctx, a);
  if (attestationChannel.hasSubscribers) {
    const message: AttestationMessage = {
      mode: a.mode,
      status: a.verdict.status,
      durationMs: performance.now() - a.startedAt,
    };
    attestationChannel.publish(message);
  }
  return result;
}

async function issueOrRefuse(
  ctx: HgsContext,
  { host, hostId, mode, verdict, keyReleaseKey }: JudgedAttestation,
): Promise<AttestResult> {
  if (!passed(verdict) || !host || !keyReleaseKey) {
    await ctx.audit.append("attestation.failed", hostId, {
      mode,
      status: verdict.status,
      subStatuses: verdict.subStatuses,
      findings: verdict.findings.map((f) => f.id),
    });
    return { verdict };
  }
  const s = await ctx.repo.settings();
  const { text, claims } = issueHealthCertificate({
    signer: ctx.signer.key,
    hostId: host.id,
    name: host.name,
    mode,
    keyReleaseKey: keyReleaseKey.key,
    lifetimeSeconds: s.healthCertificateLifetimeSeconds,
    kid: ctx.signer.id,
    keyReleaseSpki: keyReleaseKey.spki,
  });
  await ctx.audit.append("attestation.passed", host.id, { mode, jti: claims.jti, exp: claims.exp });
  return { verdict, healthCertificate: text, validUntil: new Date(claims.exp * 1000).toISOString() };
}

/** The refusal of an attestation that did not pass (HTTP 403 with the verdict beside it). */
export function attestationRefusal(verdict: AttestationVerdict): BulwarkError<HgsErrorCode> {
  const failing = verdict.findings.filter((f) => f.severity === "error").map((f) => f.id);
  const sub = verdict.subStatuses.length ? ` (${verdict.subStatuses.join(", ")})` : "";
  return hgsError(
    "HGS_ERR_ATTESTATION_FAILED",
    `attestation refused: ${verdict.status}${sub}: ${failing.join(", ")}`,
    {
      status: verdict.status,
    },
  );
}
