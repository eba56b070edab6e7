/**
 * Error codes of the guarded-host agent (`bulwark host`, key release at VM start). Messages and
 * details never carry key material: at most URLs, host ids, statuses, finding ids and generations.
 */
import { defineErrors, errorFactory, Exit, isBulwarkError, type BulwarkError } from "../../core/errors.js";

export const HostGuardErrors = defineErrors("HOSTGUARD", {
  HOSTGUARD_ERR_CONFIG: {
    summary:
      "The guarded-host configuration is missing or not valid (bulwark host config --hgs URL … or --local-mode).",
    exit: Exit.invalidInput,
    http: 400,
  },
  HOSTGUARD_ERR_LOCAL_MODE: {
    summary:
      "The host is in local mode: configure a Host Guardian Service first (bulwark host config --hgs URL).",
    exit: Exit.refused,
    http: 409,
  },
  HOSTGUARD_ERR_IDENTITY: {
    summary:
      "A host identity key under <state>/host (host key, key-release key) is unreadable or of an unsupported type.",
    exit: Exit.invalidInput,
    http: 500,
  },
  HOSTGUARD_ERR_ATTESTATION_FAILED: {
    summary:
      "HGS refused to attest this host (UnauthorizedHost, InsecureHostConfiguration, …); details carry the status, sub-statuses and findings.",
    exit: Exit.refused,
    http: 403,
  },
  HOSTGUARD_ERR_KEY_RELEASE_REFUSED: {
    summary:
      "HGS refused to release the VM's keys (health certificate refused, key protector not for this fabric, tampered).",
    exit: Exit.refused,
    http: 403,
  },
  HOSTGUARD_ERR_HGS_UNAVAILABLE: {
    summary: "No configured HGS URL (primary or fallback) answered; the VM was not started.",
    exit: Exit.externalFailure,
    http: 503,
  },
  HOSTGUARD_ERR_KEY_PROTECTOR: {
    summary:
      "The key protector HGS returned does not descend from the VM's, or the VM secrets do not match it; nothing was written.",
    exit: Exit.refused,
    http: 422,
  },
  HOSTGUARD_ERR_TPM: {
    summary:
      "TPM-mode attestation or baseline capture failed: the TPM target is missing or unreachable, or the event log is unreadable.",
    exit: Exit.externalFailure,
    http: 500,
  },
});
export type HostGuardErrorCode = keyof typeof HostGuardErrors;

export type HostGuardError = BulwarkError<HostGuardErrorCode>;
export const hostGuardError = errorFactory(HostGuardErrors, "HostGuardError");

/** One of this domain's own errors (already worded for the operator: passed on unchanged). */
export function isHostGuardError(e: unknown): e is HostGuardError {
  return isBulwarkError(e) && Object.hasOwn(HostGuardErrors, e.code);
}
