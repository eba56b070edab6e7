/**
 * TPM error codes (STYLE.md habit 6). Every failure raised on purpose by src/tpm is a
 * {@link TpmError} with one of these codes, or a core DecodeError (CORE_ERR_*) from the codec.
 * A TPM that answers with a non-zero response code raises TPM_ERR_RESPONSE_CODE whose details
 * carry the decoded code ({@link ResponseCodeInfo} in rc.ts) — except TPM_RC_INTEGRITY, which is
 * TPM_ERR_INTEGRITY with the same details: data we handed the TPM failed its integrity check.
 */
import { defineErrors, errorFactory, errorGuard, Exit, type BulwarkError } from "../core/errors.js";

export const TpmErrors = defineErrors("TPM", {
  TPM_ERR_RESPONSE_CODE: {
    summary:
      "The TPM refused a command; details name the TPM_RC code, the handle/parameter/session it concerns and whether it is a warning.",
    exit: Exit.externalFailure,
    http: 502,
  },
  TPM_ERR_TRANSPORT: {
    summary:
      "The TPM could not be reached or the connection failed (check the target, e.g. swtpm:host=127.0.0.1,port=2321 or device:/dev/tpmrm0).",
    exit: Exit.io,
    http: 502,
  },
  TPM_ERR_CONTROL: {
    summary: "The TPM simulator's control/platform channel refused a request (power-on, init, stop).",
    exit: Exit.externalFailure,
    http: 502,
  },
  TPM_ERR_MALFORMED_RESPONSE: {
    summary:
      "The TPM's response is not consistent with TPM 2.0 framing (tag, size, response handle or parameter area).",
    exit: Exit.externalFailure,
    http: 502,
  },
  TPM_ERR_RESPONSE_HMAC: {
    summary:
      "The HMAC on a TPM response did not verify: the response was altered or the session is out of sync.",
    exit: Exit.refused,
    http: 502,
  },
  TPM_ERR_TRANSCRIPT_MISMATCH: {
    summary: "A replayed TPM transcript received a command different from the recorded one.",
    exit: Exit.failure,
    http: 500,
  },
  TPM_ERR_UNSUPPORTED_ALG: {
    summary: "The algorithm (hash, key type, signature scheme or curve) is not supported here.",
    exit: Exit.invalidInput,
    http: 400,
  },
  TPM_ERR_INVALID_ARGUMENT: {
    summary: "A value passed to a TPM operation is out of range or inconsistent (PCR index, handle, size).",
    exit: Exit.usage,
    http: 400,
  },
  TPM_ERR_INVALID_TARGET: {
    summary:
      "The TPM target is not understood; use swtpm:host=H,port=P, mssim:host=H,port=P, unix:PATH or device:/dev/tpmrm0.",
    exit: Exit.usage,
    http: 400,
  },
  TPM_ERR_INVALID_KEY: {
    summary: "A public key is unusable for this operation (wrong type, size, curve or encoding).",
    exit: Exit.invalidInput,
    http: 400,
  },
  TPM_ERR_FILE_FORMAT: {
    summary:
      "A file is not in a recognised TPM format (TPM2B_PUBLIC, PEM, TPMS_ATTEST, TPMT_SIGNATURE, tpm2-tools PCR or credential file).",
    exit: Exit.invalidInput,
    http: 400,
  },
  TPM_ERR_READ: {
    summary: "An input file could not be read (missing, unreadable or a directory).",
    exit: Exit.io,
    http: 500,
  },
  TPM_ERR_INTEGRITY: {
    summary: "An integrity check on protected TPM data failed (credential blob HMAC, activated secret).",
    exit: Exit.refused,
    http: 400,
  },
  TPM_ERR_VERIFICATION_FAILED: {
    summary: "A quote or key did not pass verification; the findings say which check failed.",
    exit: Exit.refused,
    http: 403,
  },
});
export type TpmErrorCode = keyof typeof TpmErrors;

/** Raises this domain's errors: `throw tpmError("...", "sentence", details)`. */
export const tpmError = errorFactory(TpmErrors, "TpmError");
/** True for an error carrying one of this domain's codes. */
export const isTpmError = errorGuard(TpmErrors);
export type TpmError = BulwarkError<TpmErrorCode>;
