/**
 * Host Guardian Service error codes (STYLE.md habit 6). HTTP statuses and CLI exit codes come
 * from this table through the catalogue; call sites only name the code.
 *
 * The table lives with the HGS wire format in attest/ (below hgs/ and host/ in DESIGN.md's
 * layering) because both sides speak it: HGS raises these codes and the guarded host's client
 * reads them back from refusals.
 */
import { defineErrors, errorFactory, Exit, isBulwarkError, type BulwarkError } from "../core/errors.js";

export const HgsErrors = defineErrors("HGS", {
  HGS_ERR_CONFIG: {
    summary:
      "The HGS directory or its configuration is missing or invalid; run `bulwark hgs init --dir DIR` first.",
    exit: Exit.invalidInput,
    http: 500,
  },
  HGS_ERR_UNSAFE_PERMISSIONS: {
    summary:
      "The HGS directory or SQLite database file is accessible to other users (or owned by another user); `chmod 700 DIR` / `chmod 600 FILE`, or choose a new path.",
    exit: Exit.refused,
    http: 500,
  },
  HGS_ERR_EXISTS: {
    summary:
      "The HGS directory is already initialised (or the object already exists); nothing was overwritten.",
    exit: Exit.conflict,
    http: 409,
  },
  HGS_ERR_STORE: {
    summary:
      "The HGS database failed or is unreachable (check --db / the database URL and that the server runs).",
    exit: Exit.externalFailure,
    http: 503,
  },
  HGS_ERR_MIGRATION: {
    summary:
      "The database schema is newer than this HGS build, or a migration failed; upgrade every node together.",
    exit: Exit.failure,
    http: 500,
  },
  HGS_ERR_UNAUTHENTICATED: {
    summary:
      "The admin API needs the admin credential (Authorization: Bearer …) created by `bulwark hgs init`.",
    exit: Exit.refused,
    http: 401,
  },
  HGS_ERR_BAD_REQUEST: {
    summary: "The request body or parameters do not match the route's schema; details name the field.",
    exit: Exit.invalidInput,
    http: 400,
  },
  HGS_ERR_TOO_LARGE: {
    summary: "The request body exceeds the route's limit.",
    exit: Exit.invalidInput,
    http: 413,
  },
  HGS_ERR_NOT_FOUND: {
    summary: "No such host, baseline, policy or route.",
    exit: Exit.notFound,
    http: 404,
  },
  HGS_ERR_MODE: {
    summary:
      "The request needs another attestation mode than the one this HGS runs (switch with `bulwark hgs mode set`).",
    exit: Exit.refused,
    http: 409,
  },
  HGS_ERR_UNAUTHORIZED_HOST: {
    summary:
      "The host is not registered, is revoked, or did not prove possession of its registered key or TPM.",
    exit: Exit.refused,
    http: 403,
  },
  HGS_ERR_NONCE: {
    summary:
      "The attestation nonce is unknown, expired, already used or issued to another host; ask for a new challenge.",
    exit: Exit.refused,
    http: 403,
  },
  HGS_ERR_ATTESTATION_FAILED: {
    summary:
      "Attestation refused: the host's evidence does not satisfy the enabled policies; findings say which.",
    exit: Exit.refused,
    http: 403,
  },
  HGS_ERR_HEALTH_CERTIFICATE: {
    summary:
      "The health certificate is malformed, forged, expired, from another HGS, or issued before the deny-before date.",
    exit: Exit.refused,
    http: 403,
  },
  HGS_ERR_KEY_PROTECTOR: {
    summary: "The key protector is malformed, tampered with, or does not list this HGS as a guardian.",
    exit: Exit.refused,
    http: 403,
  },
  HGS_ERR_POLICY_LOCKED: {
    summary: "The policy is locked and cannot be disabled.",
    exit: Exit.refused,
    http: 409,
  },
  HGS_ERR_INVALID: {
    summary: "A value is not acceptable (key type or size, baseline format, EK certificate, lifetime).",
    exit: Exit.invalidInput,
    http: 400,
  },
  HGS_ERR_INVALID_NAME: {
    summary:
      "A host or baseline name is empty, longer than 256 characters, not NFC, or holds a control, bidi, invisible or separator character.",
    exit: Exit.invalidInput,
    http: 400,
  },
  HGS_ERR_AUDIT_BROKEN: {
    summary:
      "The audit log does not verify: an entry was edited, removed or inserted, or a signed checkpoint is missing from the chain (tail removed, table emptied, chain rewritten).",
    exit: Exit.refused,
    http: 500,
  },
  HGS_ERR_RATE_LIMITED: {
    summary:
      "Too many failed requests, or too many unused challenges, from this source; retry after the Retry-After seconds.",
    exit: Exit.refused,
    http: 429,
  },
  HGS_ERR_NONCES_FULL: {
    summary:
      "HGS holds as many unused challenges as it allows in total; retry after the Retry-After seconds.",
    exit: Exit.externalFailure,
    http: 503,
  },
  HGS_ERR_UNAVAILABLE: {
    summary: "No HGS answered (primary and fallback URLs); check the service and the network.",
    exit: Exit.io,
    http: 503,
  },
});
export type HgsErrorCode = keyof typeof HgsErrors;

/** Raises an HGS error: `throw hgsError("HGS_ERR_X", "sentence", details)`; the code is checked. */
export const hgsError = errorFactory(HgsErrors, "HgsError");

/** True when `e` is the HGS error `code` (the code is checked against the declared ones). */
export function isHgsError(e: unknown, code: HgsErrorCode): e is BulwarkError<HgsErrorCode> {
  return isBulwarkError(e) && e.code === code;
}

/** Throws a refusal whose details carry a stable finding id (what tests and clients match on). */
export function refuse(
  finding: string,
  message: string,
  code: HgsErrorCode,
  details: Record<string, unknown> = {},
): never {
  throw hgsError(code, message, { finding, ...details });
}
