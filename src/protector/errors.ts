/**
 * Error codes of the protector library (guardians, key protectors, VM secrets, stream
 * encryption). Messages and details never carry key material: at most names, thumbprints,
 * offsets and counts.
 */
import {
  DecodeError,
  defineErrors,
  errorFactory,
  errorGuard,
  Exit,
  type BulwarkError,
} from "../core/errors.js";

export const ProtectorErrors = defineErrors("PROTECTOR", {
  PROTECTOR_ERR_INVALID_ARGUMENT: {
    summary:
      "A protector function was called with an argument it does not accept (key length, chunk size, name).",
    exit: Exit.invalidInput,
    http: 400,
  },
  PROTECTOR_ERR_UNSUPPORTED_KEY: {
    summary:
      "A guardian key is of an unsupported type or size, or X25519 where a signing key is needed; use RSA-3072/4096, ECDSA/ECDH P-256/P-384, or X25519 (encryption only).",
    exit: Exit.invalidInput,
    http: 400,
  },
  PROTECTOR_ERR_CERTIFICATE: {
    summary:
      "A guardian certificate cannot be parsed, does not match its key, or is not issued by the guardian's signing key.",
    exit: Exit.invalidInput,
    http: 400,
  },
  PROTECTOR_ERR_PEM: {
    summary:
      "A guardian PEM file is malformed: it needs a signing and an encryption certificate (and their keys when private).",
    exit: Exit.invalidInput,
    http: 400,
  },
  PROTECTOR_ERR_PKCS12: {
    summary:
      "The guardian PKCS#12 file is malformed, uses an unsupported algorithm, or the password is wrong (MAC mismatch).",
    exit: Exit.invalidInput,
    http: 400,
  },
  PROTECTOR_ERR_FORMAT: {
    summary:
      "The key protector is malformed (truncated, bad magic, or inconsistent fields); restore the last known good copy.",
    exit: Exit.invalidInput,
    http: 400,
  },
  PROTECTOR_ERR_VERSION: {
    summary:
      "The key protector was written by a newer format version than this Bulwark understands; upgrade Bulwark.",
    exit: Exit.invalidInput,
    http: 400,
  },
  PROTECTOR_ERR_OWNER_SIGNATURE: {
    summary:
      "The owner's signature over the key protector's guardian set does not verify: the guardian set was altered.",
    exit: Exit.refused,
    http: 422,
  },
  PROTECTOR_ERR_OWNER_MISMATCH: {
    summary: "The key protector's owner is not the expected owner (a different owner key signed it).",
    exit: Exit.refused,
    http: 403,
  },
  PROTECTOR_ERR_MAC: {
    summary: "The key protector's MAC does not verify under its transport key: the protector was altered.",
    exit: Exit.refused,
    http: 422,
  },
  PROTECTOR_ERR_NOT_AUTHORIZED: {
    summary:
      "None of this host's guardians is in the key protector; the owner must grant this host's guardian access (or use HGS).",
    exit: Exit.refused,
    http: 403,
  },
  PROTECTOR_ERR_UNWRAP: {
    summary:
      "A local guardian is listed but could not unwrap the transport key (altered wrapping or a different private key).",
    exit: Exit.refused,
    http: 422,
  },
  PROTECTOR_ERR_NOT_OWNER: {
    summary:
      "Changing the guardian set needs the owner's signing key; the key given is not the protector's owner.",
    exit: Exit.refused,
    http: 403,
  },
  PROTECTOR_ERR_GUARDIAN_EXISTS: {
    summary: "The guardian is already in the key protector.",
    exit: Exit.conflict,
    http: 409,
  },
  PROTECTOR_ERR_GUARDIAN_NOT_FOUND: {
    summary: "No guardian with that name or thumbprint is in the key protector.",
    exit: Exit.notFound,
    http: 404,
  },
  PROTECTOR_ERR_GUARDIAN_AMBIGUOUS: {
    summary: "Several guardians have that name; name the guardian by its thumbprint.",
    exit: Exit.invalidInput,
    http: 400,
  },
  PROTECTOR_ERR_LAST_GUARDIAN: {
    summary:
      "Revoking the last guardian would make the VM's keys unrecoverable; grant another guardian first.",
    exit: Exit.refused,
    http: 409,
  },
  PROTECTOR_ERR_ROLLBACK: {
    summary:
      "The key protector is older than, or forks from, the last known good one (a replayed or rolled-back protector).",
    exit: Exit.refused,
    http: 409,
  },
  PROTECTOR_ERR_FOREIGN_PROTECTOR: {
    summary:
      "The key protector in place belongs to another VM (its protector id is not the one this VM's secrets and last known good copy are bound to); it is refused, not replaced.",
    exit: Exit.refused,
    http: 409,
  },
  PROTECTOR_ERR_VMSECRETS_FORMAT: {
    summary: "The VM secrets blob is malformed or of an unknown version.",
    exit: Exit.invalidInput,
    http: 400,
  },
  PROTECTOR_ERR_VMSECRETS_AUTH: {
    summary:
      "The VM secrets blob does not decrypt under this transport key: altered, or sealed under another key.",
    exit: Exit.refused,
    http: 422,
  },
  PROTECTOR_ERR_VMSECRETS_BINDING: {
    summary: "The VM secrets blob belongs to another key protector or transport-key generation.",
    exit: Exit.refused,
    http: 422,
  },
  PROTECTOR_ERR_STREAM_HEADER: {
    summary: "The encrypted state stream has a malformed header (magic, version, algorithm or chunk size).",
    exit: Exit.invalidInput,
    http: 400,
  },
  PROTECTOR_ERR_STREAM_KEY: {
    summary: "The encrypted state stream's key check failed: wrong VM state key, or the header was modified.",
    exit: Exit.refused,
    http: 422,
  },
  PROTECTOR_ERR_STREAM_FRAME: {
    summary: "An encrypted state chunk has an impossible length field (the stream was altered).",
    exit: Exit.refused,
    http: 422,
  },
  PROTECTOR_ERR_SETTINGS_FORMAT: {
    summary:
      "The signed VM settings (security statement) are malformed: truncated, bad magic, unknown version or oversized.",
    exit: Exit.invalidInput,
    http: 400,
  },
  PROTECTOR_ERR_SETTINGS_SIGNATURE: {
    summary:
      "The signed VM settings do not verify under the key protector's owner: they were altered or signed by someone else.",
    exit: Exit.refused,
    http: 422,
  },
  PROTECTOR_ERR_SETTINGS_PROTECTOR: {
    summary:
      "The signed VM settings belong to another key protector (protector id differs): they were copied from another VM.",
    exit: Exit.refused,
    http: 422,
  },
  PROTECTOR_ERR_STREAM_CHUNK_AUTH: {
    summary:
      "An encrypted state chunk failed authentication: altered, reordered, dropped, duplicated or from another stream.",
    exit: Exit.refused,
    http: 422,
  },
  PROTECTOR_ERR_STREAM_TRUNCATED: {
    summary: "The encrypted state stream ended before its final chunk (truncated).",
    exit: Exit.refused,
    http: 422,
  },
  PROTECTOR_ERR_STREAM_TRAILING: {
    summary: "The encrypted state stream has data after its final chunk.",
    exit: Exit.refused,
    http: 422,
  },
});
export type ProtectorErrorCode = keyof typeof ProtectorErrors;

/** Raises this domain's errors: `throw protectorError("...", "sentence", details)`. */
export const protectorError = errorFactory(ProtectorErrors, "ProtectorError");
/** True for an error carrying one of this domain's codes. */
export const isProtectorError = errorGuard(ProtectorErrors);
export type ProtectorError = BulwarkError<ProtectorErrorCode>;

/** Runs a decoder and re-raises its {@link DecodeError} under a protector code, keeping offset and path. */
export function decodeAs<T>(code: ProtectorErrorCode, what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof DecodeError) {
      throw protectorError(code, `${what}: ${e.message}`, { ...e.details, reason: e.code }, { cause: e });
    }
    throw e;
  }
}
