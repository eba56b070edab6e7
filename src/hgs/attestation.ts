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
import type { PublicArea } from "../tpm/structures.js";
import { parseTpm2bPublic } from "../attest/tpm-judge.js";
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

/** Big-endian integer bytes without leading zeros, as text (JWK and TPM encodings differ in padding). */
function integerText(b: Uint8Array): string {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return Buffer.from(b.subarray(i)).toString("hex");
}

/** A public key's numbers: the RSA modulus, or the EC point. Undefined for other key types. */
function keyNumbers(key: KeyObject): string | undefined {
  const j = key.export({ format: "jwk" });
  if (j.kty === "RSA" && j.n) return `rsa:${integerText(Buffer.from(j.n, "base64url"))}`;
  if (j.kty === "EC" && j.x && j.y)
    return `ec:${integerText(Buffer.from(j.x, "base64url"))}:${integerText(Buffer.from(j.y, "base64url"))}`;
  return undefined;
}

/** The numbers of a TPM public area (TPMU_PUBLIC_ID: an RSA modulus or an ECC point). */
function areaNumbers(area: PublicArea): string {
  const u = area.value.unique;
  return u instanceof Uint8Array ? `rsa:${integerText(u)}` : `ec:${integerText(u.x)}:${integerText(u.y)}`;
}

/** A stored TPM2B_PUBLIC, decoded once per context (the AK cache is the one quotes use). */
function storedArea(ctx: HgsContext, bytes: Buffer): PublicArea | undefined {
  const k = bytes.toString("base64");
  let area = ctx.caches.akAreas.get(k);
  if (!area) {
    try {
      area = parseTpm2bPublic(bytes, "a stored TPM public area");
    } catch {
      return undefined; // judged where it is used; a key that does not decode equals nothing
    }
    ctx.caches.akAreas.set(k, area);
  }
  return area;
}

/**
 * True when `key` is one of the keys registered for `host`: its host key (host-key mode), its
 * EK or its AK (TPM mode). A key-release key must be a key of its own: the host key signs
 * attestations and the AK quotes, and a key both signing and receiving the VM's keys lets one
 * compromise or protocol confusion serve the other (docs/hgs.md). Keys are compared by their
 * numbers, never by encoding; building a KeyObject from a TPM area would cost a point check per
 * release.
 */
export function isRegisteredKey(ctx: HgsContext, host: HostRow, key: KeyObject): boolean {
  if (host.publicKey && ctx.caches.keys.fromSpki(host.publicKey).equals(key)) return true;
  if (!host.ekPublic && !host.akPublic) return false;
  const numbers = keyNumbers(key);
  if (numbers === undefined) return false;
  for (const stored of [host.ekPublic, host.akPublic]) {
    const area = stored ? storedArea(ctx, stored) : undefined;
    if (area && areaNumbers(area) === numbers) return true;
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
