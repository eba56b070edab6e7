/**
 * Bulwark's TPM 2.0 library: the public API other parts import.
 *
 * Talking to a TPM (client side):
 *   const { transport, powerOn } = parseTarget("swtpm:host=127.0.0.1,port=2321");
 *   const tpm = new Tpm(transport);               // every TPM2_* command Bulwark uses
 *   const ek = await tpm.createPrimary(TPM_RH.ENDORSEMENT, ekTemplateRsa2048());
 *
 * Verifying (no TPM needed; the Host Guardian Service side):
 *   verifyQuote({ ak, quoted, signature, nonce, pcrs, expectedSelection }) → QuoteVerdict
 *   checkAkPublic(akPublic) / checkEkPublic(ekPublic)                       → Verdict
 *   makeCredential(ekPublic, objectName(akPublic), secret)                  → { credentialBlob, secret }
 *   checkActivatedSecret(issued, returned)                                  → Verdict
 *   objectName(publicArea), nvName(...)                                     → Names
 * Every verdict lists findings {id, expected, got, severity, message} and the checks passed;
 * each verifier's doc comment says what it does not check.
 */
export * from "./alg.js";
export * from "./constants.js";
export * from "./errors.js";
export * from "./rc.js";
export * from "./structures.js";
export * from "./names.js";
export * from "./pcr.js";
export * from "./policy.js";
export * from "./kdf.js";
export * from "./templates.js";
export * from "./files.js";
export * from "./ek.js";
export * from "./attestation.js";
export { shareSecret } from "./secret.js";
export {
  Tpm,
  hierarchyRef,
  type KeyRef,
  type CreatedObject,
  type QuoteResult,
  type NvPublicInfo,
  type TpmOptions,
  type StartSessionOptions,
} from "./client.js";
export {
  execute,
  marshalCommand,
  unmarshalResponse,
  type CommandSpec,
  type HandleRef,
  type CommandResult,
} from "./command.js";
export * as commands from "./commands.js";
export {
  PasswordSession,
  HmacSession,
  PolicySession,
  type Session,
  type RandomSource,
  type SessionOptions,
} from "./sessions.js";
export type { Transport } from "./transport/transport.js";
export { parseTarget, type Target } from "./transport/target.js";
export { SwtpmTransport, SwtpmControl } from "./transport/swtpm.js";
export { MssimTransport, MssimPlatform } from "./transport/mssim.js";
export { DeviceTransport } from "./transport/device.js";
export {
  RecordingTransport,
  ReplayTransport,
  type Transcript,
  type TranscriptEntry,
} from "./transport/mock.js";
export { QuoteVerifier, verifyQuote, type QuoteToVerify, type QuoteVerdict } from "./verify/quote.js";
export { checkAkPublic, checkEkPublic } from "./verify/ak.js";
export {
  makeCredential,
  checkActivatedSecret,
  credentialChallenge,
  type Credential,
  type CredentialChallenge,
} from "./verify/credential.js";
export { publicKeyFromTpm, loadPublicKey, type LoadedPublicKey } from "./verify/keys.js";
export { verifyTpmSignature, type SignatureCheck } from "./verify/signature.js";
export type { Finding, Severity, Verdict } from "../core/verdict.js";
