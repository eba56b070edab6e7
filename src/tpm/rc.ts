/**
 * TPM_RC response codes as data (TCG TPM 2.0 Library Part 2, section 6.6, Tables 16 and 17).
 *
 * A response code is either format zero (bit 7 clear: version, vendor, warning-severity bits
 * and a 7-bit error number) or format one (bit 7 set: a 6-bit error number plus the handle,
 * parameter or session it concerns). {@link decodeResponseCode} turns the 32-bit value into
 * a {@link ResponseCodeInfo} with the spec name, its description and the index.
 */

interface RcEntry {
  readonly name: string;
  readonly description: string;
}

const e = (name: string, description: string): RcEntry => ({ name, description });

/** Format-zero errors, RC_VER1 + n (Part 2, Table 16). */
const VER1: ReadonlyMap<number, RcEntry> = new Map([
  [0x000, e("TPM_RC_INITIALIZE", "TPM not initialized by TPM2_Startup or already initialized")],
  [0x001, e("TPM_RC_FAILURE", "commands not being accepted because of a TPM failure")],
  [0x003, e("TPM_RC_SEQUENCE", "improper use of a sequence handle")],
  [0x00b, e("TPM_RC_PRIVATE", "not currently used")],
  [0x019, e("TPM_RC_HMAC", "not currently used")],
  [0x020, e("TPM_RC_DISABLED", "the command is disabled")],
  [0x021, e("TPM_RC_EXCLUSIVE", "command failed because audit sequence required exclusivity")],
  [0x024, e("TPM_RC_AUTH_TYPE", "authorization handle is not correct for command")],
  [
    0x025,
    e("TPM_RC_AUTH_MISSING", "command requires an authorization session for handle and it is not present"),
  ],
  [0x026, e("TPM_RC_POLICY", "policy failure in math operation or an invalid authPolicy value")],
  [0x027, e("TPM_RC_PCR", "PCR check fail")],
  [0x028, e("TPM_RC_PCR_CHANGED", "PCR have changed since checked")],
  [0x02d, e("TPM_RC_UPGRADE", "the TPM is in field upgrade mode")],
  [0x02e, e("TPM_RC_TOO_MANY_CONTEXTS", "context ID counter is at maximum")],
  [0x02f, e("TPM_RC_AUTH_UNAVAILABLE", "authValue or authPolicy is not available for selected entity")],
  [
    0x030,
    e("TPM_RC_REBOOT", "a _TPM_Init and Startup(CLEAR) is required before the TPM can resume operation"),
  ],
  [
    0x031,
    e("TPM_RC_UNBALANCED", "the protection algorithms (hash and symmetric) are not reasonably balanced"),
  ],
  [
    0x042,
    e("TPM_RC_COMMAND_SIZE", "command commandSize value is inconsistent with contents of the command buffer"),
  ],
  [0x043, e("TPM_RC_COMMAND_CODE", "command code not supported")],
  [
    0x044,
    e(
      "TPM_RC_AUTHSIZE",
      "the value of authorizationSize is out of range or the number of octets in the Authorization Area is greater than required",
    ),
  ],
  [
    0x045,
    e(
      "TPM_RC_AUTH_CONTEXT",
      "use of an authorization session with a context command or another command that cannot have an authorization session",
    ),
  ],
  [0x046, e("TPM_RC_NV_RANGE", "NV offset+size is out of range")],
  [0x047, e("TPM_RC_NV_SIZE", "Requested allocation size is larger than allowed")],
  [0x048, e("TPM_RC_NV_LOCKED", "NV access locked")],
  [0x049, e("TPM_RC_NV_AUTHORIZATION", "NV access authorization fails in command actions")],
  [
    0x04a,
    e(
      "TPM_RC_NV_UNINITIALIZED",
      "an NV Index is used before being initialized or the state saved by TPM2_Shutdown(STATE) could not be restored",
    ),
  ],
  [0x04b, e("TPM_RC_NV_SPACE", "insufficient space for NV allocation")],
  [0x04c, e("TPM_RC_NV_DEFINED", "NV Index or persistent object already defined")],
  [0x050, e("TPM_RC_BAD_CONTEXT", "context in TPM2_ContextLoad() is not valid")],
  [0x051, e("TPM_RC_CPHASH", "cpHash value already set or not correct for use")],
  [0x052, e("TPM_RC_PARENT", "handle for parent is not a valid parent")],
  [0x053, e("TPM_RC_NEEDS_TEST", "some function needs testing")],
  [
    0x054,
    e(
      "TPM_RC_NO_RESULT",
      "returned when an internal function cannot process a request due to an unspecified problem",
    ),
  ],
  [0x055, e("TPM_RC_SENSITIVE", "the sensitive area did not unmarshal correctly after decryption")],
]);

/** Format-one errors, RC_FMT1 + n (Part 2, Table 16). */
const FMT1: ReadonlyMap<number, RcEntry> = new Map([
  [0x01, e("TPM_RC_ASYMMETRIC", "asymmetric algorithm not supported or not correct")],
  [0x02, e("TPM_RC_ATTRIBUTES", "inconsistent attributes")],
  [0x03, e("TPM_RC_HASH", "hash algorithm not supported or not appropriate")],
  [0x04, e("TPM_RC_VALUE", "value is out of range or is not correct for the context")],
  [0x05, e("TPM_RC_HIERARCHY", "hierarchy is not enabled or is not correct for the use")],
  [0x07, e("TPM_RC_KEY_SIZE", "key size is not supported")],
  [0x08, e("TPM_RC_MGF", "mask generation function not supported")],
  [0x09, e("TPM_RC_MODE", "mode of operation not supported")],
  [0x0a, e("TPM_RC_TYPE", "the type of the value is not appropriate for the use")],
  [0x0b, e("TPM_RC_HANDLE", "the handle is not correct for the use")],
  [0x0c, e("TPM_RC_KDF", "unsupported key derivation function or function not appropriate for use")],
  [0x0d, e("TPM_RC_RANGE", "value was out of allowed range")],
  [0x0e, e("TPM_RC_AUTH_FAIL", "the authorization HMAC check failed and DA counter incremented")],
  [0x0f, e("TPM_RC_NONCE", "invalid nonce size or nonce value mismatch")],
  [0x10, e("TPM_RC_PP", "authorization requires assertion of PP")],
  [0x12, e("TPM_RC_SCHEME", "unsupported or incompatible scheme")],
  [0x15, e("TPM_RC_SIZE", "structure is the wrong size")],
  [
    0x16,
    e("TPM_RC_SYMMETRIC", "unsupported symmetric algorithm or key size, or not appropriate for instance"),
  ],
  [0x17, e("TPM_RC_TAG", "incorrect structure tag")],
  [0x18, e("TPM_RC_SELECTOR", "union selector is incorrect")],
  [
    0x1a,
    e(
      "TPM_RC_INSUFFICIENT",
      "the TPM was unable to unmarshal a value because there were not enough octets in the input buffer",
    ),
  ],
  [0x1b, e("TPM_RC_SIGNATURE", "the signature is not valid")],
  [0x1c, e("TPM_RC_KEY", "key fields are not compatible with the selected use")],
  [0x1d, e("TPM_RC_POLICY_FAIL", "a policy check failed")],
  [0x1f, e("TPM_RC_INTEGRITY", "integrity check failed")],
  [0x20, e("TPM_RC_TICKET", "invalid ticket")],
  [0x21, e("TPM_RC_RESERVED_BITS", "reserved bits not set to zero as required")],
  [0x22, e("TPM_RC_BAD_AUTH", "authorization failure without DA implications")],
  [0x23, e("TPM_RC_EXPIRED", "the policy has expired")],
  [
    0x24,
    e(
      "TPM_RC_POLICY_CC",
      "the commandCode in the policy is not the commandCode of the command or the command code in a policy command references a command that is not implemented",
    ),
  ],
  [0x25, e("TPM_RC_BINDING", "public and sensitive portions of an object are not cryptographically bound")],
  [0x26, e("TPM_RC_CURVE", "curve not supported")],
  [0x27, e("TPM_RC_ECC_POINT", "point is not on the required curve")],
]);

/** Warnings, RC_WARN + n (Part 2, Table 16). */
const WARN: ReadonlyMap<number, RcEntry> = new Map([
  [0x01, e("TPM_RC_CONTEXT_GAP", "gap for context ID is too large")],
  [0x02, e("TPM_RC_OBJECT_MEMORY", "out of memory for object contexts")],
  [0x03, e("TPM_RC_SESSION_MEMORY", "out of memory for session contexts")],
  [0x04, e("TPM_RC_MEMORY", "out of shared object/session memory or need space for internal operations")],
  [
    0x05,
    e(
      "TPM_RC_SESSION_HANDLES",
      "out of session handles; a session must be flushed before a new session may be created",
    ),
  ],
  [
    0x06,
    e(
      "TPM_RC_OBJECT_HANDLES",
      "out of object handles; the handle space for objects is depleted and a reboot is required",
    ),
  ],
  [0x07, e("TPM_RC_LOCALITY", "bad locality")],
  [
    0x08,
    e(
      "TPM_RC_YIELDED",
      "the TPM has suspended operation on the command; forward progress was made and the command may be retried",
    ),
  ],
  [0x09, e("TPM_RC_CANCELED", "the command was canceled")],
  [0x0a, e("TPM_RC_TESTING", "TPM is performing self-tests")],
  ...Array.from({ length: 7 }, (_, i): [number, RcEntry] => [
    0x10 + i,
    e(
      `TPM_RC_REFERENCE_H${i}`,
      `the ${ordinal(i + 1)} handle in the handle area references a transient object or session that is not loaded`,
    ),
  ]),
  ...Array.from({ length: 7 }, (_, i): [number, RcEntry] => [
    0x18 + i,
    e(
      `TPM_RC_REFERENCE_S${i}`,
      `the ${ordinal(i + 1)} authorization session handle references a session that is not loaded`,
    ),
  ]),
  [0x20, e("TPM_RC_NV_RATE", "the TPM is rate-limiting accesses to prevent wearout of NV")],
  [
    0x21,
    e(
      "TPM_RC_LOCKOUT",
      "authorizations for objects subject to DA protection are not allowed at this time because the TPM is in DA lockout mode",
    ),
  ],
  [0x22, e("TPM_RC_RETRY", "the TPM was not able to start the command")],
  [
    0x23,
    e("TPM_RC_NV_UNAVAILABLE", "the command may require writing of NV and NV is not current accessible"),
  ],
  [0x7f, e("TPM_RC_NOT_USED", "this value is reserved and shall not be returned by the TPM")],
]);

function ordinal(n: number): string {
  return n === 1 ? "1st" : n === 2 ? "2nd" : n === 3 ? "3rd" : `${n}th`;
}

export interface ResponseCodeInfo {
  /** The raw 32-bit response code. */
  readonly rc: number;
  /** Spec name, e.g. `TPM_RC_AUTH_FAIL`, or `TPM_RC_UNKNOWN_0x...`. */
  readonly name: string;
  readonly description: string;
  /** 0 = format zero, 1 = format one (Part 2, Table 17). */
  readonly format: 0 | 1;
  /** The base code without the index bits (e.g. 0x08e for any TPM_RC_AUTH_FAIL). */
  readonly base: number;
  /** True for TPM_RC_WARN codes: the command may succeed if retried later. */
  readonly warning: boolean;
  /** Format one: which handle (1..7), parameter (1..15) or session (1..7) the error concerns. */
  readonly handle?: number;
  readonly parameter?: number;
  readonly session?: number;
  /** Format zero: a TPM 1.2 code, or a vendor-defined code, neither of which we name. */
  readonly tpm12?: boolean;
  readonly vendor?: boolean;
}

/** Decodes a TPM_RC into its name, description and index (Part 2, section 6.6.2, Table 17). */
export function decodeResponseCode(rc: number): ResponseCodeInfo {
  rc >>>= 0;
  if (rc === 0) {
    return { rc, name: "TPM_RC_SUCCESS", description: "success", format: 0, base: 0, warning: false };
  }
  if (rc === 0x01e) {
    return {
      rc,
      name: "TPM_RC_BAD_TAG",
      description: "defined for compatibility with TPM 1.2",
      format: 0,
      base: rc,
      warning: false,
    };
  }
  if ((rc & 0x080) !== 0) {
    const n = (rc >>> 8) & 0xf;
    const number = rc & 0x3f;
    const entry = FMT1.get(number);
    const base = 0x080 + number;
    const info = {
      rc,
      name: entry?.name ?? `TPM_RC_UNKNOWN_0x${base.toString(16)}`,
      description: entry?.description ?? "unknown format-one response code",
      format: 1 as const,
      base,
      warning: false,
    };
    if ((rc & 0x040) !== 0) return { ...info, parameter: n };
    if (n === 0) return info;
    if (n < 8) return { ...info, handle: n };
    return { ...info, session: n - 8 };
  }
  const number = rc & 0x7f;
  const tpm2 = (rc & 0x100) !== 0;
  const vendor = (rc & 0x400) !== 0;
  const warning = (rc & 0x800) !== 0;
  if (!tpm2 || vendor || rc > 0xfff) {
    return {
      rc,
      name: `TPM_RC_UNKNOWN_0x${rc.toString(16)}`,
      description: vendor ? "vendor-defined response code" : "TPM 1.2 or non-TPM response code",
      format: 0,
      base: rc,
      warning,
      ...(tpm2 ? {} : { tpm12: true }),
      ...(vendor ? { vendor: true } : {}),
    };
  }
  const entry = (warning ? WARN : VER1).get(number);
  return {
    rc,
    name: entry?.name ?? `TPM_RC_UNKNOWN_0x${rc.toString(16)}`,
    description: entry?.description ?? "unknown format-zero response code",
    format: 0,
    base: rc,
    warning,
  };
}

/** One-line human description: `TPM_RC_AUTH_FAIL (session 1): the authorization HMAC check failed ...`. */
export function formatResponseCode(info: ResponseCodeInfo): string {
  const where =
    info.handle !== undefined
      ? ` (handle ${info.handle})`
      : info.parameter !== undefined
        ? ` (parameter ${info.parameter})`
        : info.session !== undefined
          ? ` (session ${info.session})`
          : "";
  return `${info.name}${where}: ${info.description} [0x${info.rc.toString(16).padStart(3, "0")}]`;
}

/** Base codes callers compare against, e.g. `info.base === RC.NV_DEFINED`. */
export const RC = {
  SUCCESS: 0x000,
  INITIALIZE: 0x100,
  FAILURE: 0x101,
  AUTH_MISSING: 0x125,
  POLICY: 0x126,
  PCR_CHANGED: 0x128,
  NV_UNINITIALIZED: 0x14a,
  NV_DEFINED: 0x14c,
  HANDLE: 0x08b,
  AUTH_FAIL: 0x08e,
  VALUE: 0x084,
  POLICY_FAIL: 0x09d,
  INTEGRITY: 0x09f,
  BAD_AUTH: 0x0a2,
  RETRY: 0x922,
  TESTING: 0x90a,
  YIELDED: 0x908,
} as const;
