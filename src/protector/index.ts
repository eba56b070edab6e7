/**
 * The protector library: guardians, key protectors, VM secrets and encrypted state streams.
 * Pure (no files, processes or sockets); the host stores what these functions return.
 * Formats: docs/formats/key-protector.md, docs/formats/saved-state.md.
 */
export {
  ProtectorErrors,
  protectorError,
  isProtectorError,
  type ProtectorError,
  type ProtectorErrorCode,
} from "./errors.js";
export {
  UNTRUSTED_GUARDIAN,
  createGuardian,
  checkGuardian,
  checkGuardianPublic,
  GuardianChecker,
  publicGuardian,
  summarizeGuardian,
  guardianThumbprint,
  encryptionThumbprint,
  exportGuardianPem,
  exportGuardianPublicPem,
  importGuardianPem,
  importGuardianPublicPem,
  type Guardian,
  type GuardianPublic,
  type GuardianSummary,
  type CreateGuardianOptions,
  type ExportGuardianOptions,
} from "./guardian.js";
export { exportGuardianPkcs12, importGuardianPkcs12, readPkcs12, type Pkcs12Contents } from "./pkcs12.js";
export {
  GUARDIAN_KEY_TYPES,
  wrapSecret,
  unwrapSecret,
  type GuardianKeyType,
  type Wrapped,
  type WrapSchemeName,
} from "./keys.js";
export {
  TRANSPORT_KEY_BYTES,
  ProtectorMemo,
  createKeyProtector,
  parseKeyProtector,
  verifyOwnerSignature,
  unwrapKeyProtector,
  grantGuardian,
  revokeGuardian,
  rollTransportKey,
  inspectKeyProtector,
  checkSuccessor,
  unwrapWithLastKnownGood,
  type KeyProtector,
  type KeyProtectorInfo,
  type UnwrappedTransportKey,
  type UnwrapOptions,
  type CreateKeyProtectorOptions,
  type ChangeGuardiansOptions,
  type RollResult,
  type LastKnownGoodResult,
} from "./key-protector.js";
export type { TransportKey } from "./transport-key.js";
export {
  VM_SECRET,
  sealVmSecrets,
  openVmSecrets,
  reencryptVmSecrets,
  vmSecretsHeader,
  type VmSecretsHeader,
} from "./vm-secrets.js";
export {
  DEFAULT_CHUNK_SIZE,
  StreamPurpose,
  EncryptStream,
  DecryptStream,
  StreamSealer,
  StreamOpener,
  createEncryptStream,
  createDecryptStream,
  encryptState,
  decryptState,
  type StreamPurposeName,
  type EncryptOptions,
  type EncryptStreamOptions,
  type DecryptOptions,
} from "./stream.js";
export { zeroize } from "./kdf.js";
export {
  parseSignedSettings,
  signSettings,
  verifySignedSettings,
  type SignedSettings,
} from "./signed-settings.js";
