/**
 * The fabric-wide HGS settings (stored in the shared database, so every node reads the same):
 * attestation mode, health-certificate lifetime, nonce lifetime, deny-before date, EK
 * certificate requirement. Limits are checked here, once, for the HTTP API and the CLI alike.
 */
import type { AttestationMode } from "../attest/health.js";
import { hgsError } from "../attest/errors.js";

export interface HgsSettings {
  readonly mode: AttestationMode;
  readonly healthCertificateLifetimeSeconds: number;
  readonly nonceTtlSeconds: number;
  /** Health certificates issued before this instant (ms since epoch, 0 = none) are refused. */
  readonly denyBefore: number;
  /** TPM mode: refuse hosts registered without an EK certificate (false = v1-style EK-public policy). */
  readonly requireEkCertificate: boolean;
}

export const DEFAULT_SETTINGS: HgsSettings = {
  mode: "tpm",
  healthCertificateLifetimeSeconds: 8 * 3600,
  nonceTtlSeconds: 120,
  denyBefore: 0,
  requireEkCertificate: false,
};

/** Stored settings over the defaults (a key added by a newer build reads as its default). */
export function withDefaults(stored: Partial<HgsSettings>): HgsSettings {
  return { ...DEFAULT_SETTINGS, ...stored };
}

/** Refuses a patch outside the limits (HGS_ERR_INVALID). */
export function checkSettingsPatch(patch: Partial<HgsSettings>): void {
  if (patch.mode !== undefined && patch.mode !== "key" && patch.mode !== "tpm") {
    throw hgsError("HGS_ERR_INVALID", "mode is 'key' or 'tpm'");
  }
  const life = patch.healthCertificateLifetimeSeconds;
  if (life !== undefined && (!Number.isInteger(life) || life < 60 || life > 7 * 86400)) {
    throw hgsError("HGS_ERR_INVALID", "healthCertificateLifetimeSeconds must be 60..604800");
  }
  const ttl = patch.nonceTtlSeconds;
  if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 5 || ttl > 3600)) {
    throw hgsError("HGS_ERR_INVALID", "nonceTtlSeconds must be 5..3600");
  }
}
