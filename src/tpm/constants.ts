/**
 * TPM 2.0 constants, each table cited from TCG TPM 2.0 Library Part 2 (Structures), rev 1.59.
 * Names are the spec's, without the common prefix (TPM_CC.Quote is TPM_CC_Quote).
 */

/** TPM_CC (Part 2, section 6.5.2, Table 12). */
export const TPM_CC = {
  NV_UndefineSpaceSpecial: 0x11f,
  EvictControl: 0x120,
  HierarchyControl: 0x121,
  NV_UndefineSpace: 0x122,
  Clear: 0x126,
  ClearControl: 0x127,
  HierarchyChangeAuth: 0x129,
  NV_DefineSpace: 0x12a,
  PCR_Allocate: 0x12b,
  CreatePrimary: 0x131,
  NV_Increment: 0x134,
  NV_Extend: 0x136,
  NV_Write: 0x137,
  NV_WriteLock: 0x138,
  DictionaryAttackLockReset: 0x139,
  PCR_Event: 0x13c,
  PCR_Reset: 0x13d,
  SelfTest: 0x143,
  Startup: 0x144,
  Shutdown: 0x145,
  StirRandom: 0x146,
  ActivateCredential: 0x147,
  Certify: 0x148,
  NV_Read: 0x14e,
  NV_ReadLock: 0x14f,
  ObjectChangeAuth: 0x150,
  PolicySecret: 0x151,
  Create: 0x153,
  Load: 0x157,
  Quote: 0x158,
  RSA_Decrypt: 0x159,
  Sign: 0x15d,
  Unseal: 0x15e,
  PolicySigned: 0x160,
  ContextLoad: 0x161,
  ContextSave: 0x162,
  FlushContext: 0x165,
  LoadExternal: 0x167,
  MakeCredential: 0x168,
  NV_ReadPublic: 0x169,
  PolicyAuthorize: 0x16a,
  PolicyAuthValue: 0x16b,
  PolicyCommandCode: 0x16c,
  PolicyOR: 0x171,
  ReadPublic: 0x173,
  RSA_Encrypt: 0x174,
  StartAuthSession: 0x176,
  VerifySignature: 0x177,
  GetCapability: 0x17a,
  GetRandom: 0x17b,
  GetTestResult: 0x17c,
  Hash: 0x17d,
  PCR_Read: 0x17e,
  PolicyPCR: 0x17f,
  PolicyRestart: 0x180,
  ReadClock: 0x181,
  PCR_Extend: 0x182,
  PolicyGetDigest: 0x189,
  PolicyPassword: 0x18c,
  CreateLoaded: 0x191,
} as const;

/** TPM_ST (Part 2, section 6.9, Table 19). */
export const TPM_ST = {
  RSP_COMMAND: 0x00c4,
  NULL: 0x8000,
  NO_SESSIONS: 0x8001,
  SESSIONS: 0x8002,
  ATTEST_NV: 0x8014,
  ATTEST_COMMAND_AUDIT: 0x8015,
  ATTEST_SESSION_AUDIT: 0x8016,
  ATTEST_CERTIFY: 0x8017,
  ATTEST_QUOTE: 0x8018,
  ATTEST_TIME: 0x8019,
  ATTEST_CREATION: 0x801a,
  ATTEST_NV_DIGEST: 0x801c,
  CREATION: 0x8021,
  VERIFIED: 0x8022,
  AUTH_SECRET: 0x8023,
  HASHCHECK: 0x8024,
  AUTH_SIGNED: 0x8025,
} as const;

/** TPM_GENERATED_VALUE: the magic of every TPMS_ATTEST (Part 2, section 6.2, Table 7). */
export const TPM_GENERATED_VALUE = 0xff544347;

/** TPM_SU (Part 2, section 6.10, Table 20). */
export const TPM_SU = { CLEAR: 0x0000, STATE: 0x0001 } as const;

/** TPM_SE (Part 2, section 6.11, Table 21). */
export const TPM_SE = { HMAC: 0x00, POLICY: 0x01, TRIAL: 0x03 } as const;

/** TPM_CAP (Part 2, section 6.12, Table 22). */
export const TPM_CAP = {
  ALGS: 0x0,
  HANDLES: 0x1,
  COMMANDS: 0x2,
  PP_COMMANDS: 0x3,
  AUDIT_COMMANDS: 0x4,
  PCRS: 0x5,
  TPM_PROPERTIES: 0x6,
  PCR_PROPERTIES: 0x7,
  ECC_CURVES: 0x8,
  AUTH_POLICIES: 0x9,
} as const;

/** TPM_PT (Part 2, section 6.13, Table 23): the fixed and variable property groups. */
export const TPM_PT = {
  FAMILY_INDICATOR: 0x100,
  LEVEL: 0x101,
  REVISION: 0x102,
  DAY_OF_YEAR: 0x103,
  YEAR: 0x104,
  MANUFACTURER: 0x105,
  VENDOR_STRING_1: 0x106,
  VENDOR_STRING_2: 0x107,
  VENDOR_STRING_3: 0x108,
  VENDOR_STRING_4: 0x109,
  VENDOR_TPM_TYPE: 0x10a,
  FIRMWARE_VERSION_1: 0x10b,
  FIRMWARE_VERSION_2: 0x10c,
  INPUT_BUFFER: 0x10d,
  HR_TRANSIENT_MIN: 0x10e,
  HR_PERSISTENT_MIN: 0x10f,
  HR_LOADED_MIN: 0x110,
  ACTIVE_SESSIONS_MAX: 0x111,
  PCR_COUNT: 0x112,
  PCR_SELECT_MIN: 0x113,
  CONTEXT_GAP_MAX: 0x114,
  NV_COUNTERS_MAX: 0x116,
  NV_INDEX_MAX: 0x117,
  MEMORY: 0x118,
  CLOCK_UPDATE: 0x119,
  CONTEXT_HASH: 0x11a,
  CONTEXT_SYM: 0x11b,
  CONTEXT_SYM_SIZE: 0x11c,
  ORDERLY_COUNT: 0x11d,
  MAX_COMMAND_SIZE: 0x11e,
  MAX_RESPONSE_SIZE: 0x11f,
  MAX_DIGEST: 0x120,
  MAX_OBJECT_CONTEXT: 0x121,
  MAX_SESSION_CONTEXT: 0x122,
  NV_BUFFER_MAX: 0x12c,
  PERMANENT: 0x200,
  STARTUP_CLEAR: 0x201,
} as const;

/** TPM_RH and TPM_RS_PW (Part 2, section 7.4, Table 28). */
export const TPM_RH = {
  OWNER: 0x40000001,
  NULL: 0x40000007,
  PW: 0x40000009,
  LOCKOUT: 0x4000000a,
  ENDORSEMENT: 0x4000000b,
  PLATFORM: 0x4000000c,
  PLATFORM_NV: 0x4000000d,
} as const;

/** TPM_HT: the handle type in the top byte (Part 2, section 7.2, Table 26). */
export const TPM_HT = {
  PCR: 0x00,
  NV_INDEX: 0x01,
  HMAC_SESSION: 0x02,
  POLICY_SESSION: 0x03,
  PERMANENT: 0x40,
  TRANSIENT: 0x80,
  PERSISTENT: 0x81,
} as const;

/** Well-known handles: TCG EK Credential Profile 2.x section 2.2.1.4 (NV) and TCG Provisioning Guidance (persistent). */
export const WELL_KNOWN = {
  /** RSA 2048 EK certificate NV index (EK Credential Profile, Table 2). */
  EK_CERT_RSA2048: 0x01c00002,
  /** RSA 2048 EK template NV index. */
  EK_TEMPLATE_RSA2048: 0x01c00004,
  /** ECC NIST P-256 EK certificate NV index. */
  EK_CERT_ECC_P256: 0x01c0000a,
  /** ECC NIST P-384 EK certificate NV index (high range, as swtpm_setup writes it). */
  EK_CERT_ECC_P384: 0x01c00016,
  /** Persistent handle of the RSA EK (TCG Provisioning Guidance, section 7.8). */
  EK_RSA_PERSISTENT: 0x81010001,
  /** Persistent handle of the SRK. */
  SRK_PERSISTENT: 0x81000001,
} as const;

/** TPMA_OBJECT bits (Part 2, section 8.3, Table 31). */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
  x509sign: 1 << 19,
} as const;
export type TpmaObjectName = keyof typeof TPMA_OBJECT;

/** The attribute names set in a TPMA_OBJECT value. */
export function objectAttributeNames(attrs: number): TpmaObjectName[] {
  return (Object.keys(TPMA_OBJECT) as TpmaObjectName[]).filter((k) => (attrs & TPMA_OBJECT[k]) !== 0);
}

/** Builds a TPMA_OBJECT value from attribute names. */
export function objectAttributes(...names: TpmaObjectName[]): number {
  return names.reduce((a, n) => (a | TPMA_OBJECT[n]) >>> 0, 0);
}

/** TPMA_SESSION bits (Part 2, section 8.4, Table 32). */
export const TPMA_SESSION = {
  continueSession: 0x01,
  auditExclusive: 0x02,
  auditReset: 0x04,
  decrypt: 0x20,
  encrypt: 0x40,
  audit: 0x80,
} as const;

/** TPMA_NV bits (Part 2, section 13.4, Table 215); TPM_NT occupies bits 4..7. */
export const TPMA_NV = {
  PPWRITE: 1 << 0,
  OWNERWRITE: 1 << 1,
  AUTHWRITE: 1 << 2,
  POLICYWRITE: 1 << 3,
  POLICY_DELETE: 1 << 10,
  WRITELOCKED: 1 << 11,
  WRITEALL: 1 << 12,
  WRITEDEFINE: 1 << 13,
  WRITE_STCLEAR: 1 << 14,
  GLOBALLOCK: 1 << 15,
  PPREAD: 1 << 16,
  OWNERREAD: 1 << 17,
  AUTHREAD: 1 << 18,
  POLICYREAD: 1 << 19,
  NO_DA: 1 << 25,
  ORDERLY: 1 << 26,
  CLEAR_STCLEAR: 1 << 27,
  READLOCKED: 1 << 28,
  WRITTEN: 1 << 29,
  PLATFORMCREATE: 1 << 30,
  READ_STCLEAR: 2 ** 31,
} as const;
export type TpmaNvName = keyof typeof TPMA_NV;

export function nvAttributes(...names: TpmaNvName[]): number {
  return names.reduce((a, n) => (a | TPMA_NV[n]) >>> 0, 0);
}
export function nvAttributeNames(attrs: number): TpmaNvName[] {
  return (Object.keys(TPMA_NV) as TpmaNvName[]).filter((k) => (attrs & TPMA_NV[k]) >>> 0 !== 0);
}
