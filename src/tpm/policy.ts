/**
 * Policy digests computed in software (TCG TPM 2.0 Library Part 3, section 23: each
 * TPM2_PolicyXXX extends policyDigest_new = H(policyDigest_old || TPM_CC || arguments)).
 * Lets a caller compute an authPolicy without a trial session; tests check each function
 * against the TPM's TPM2_PolicyGetDigest.
 */
import { encode } from "../core/codec.js";
import { hash, hashInfo } from "./alg.js";
import { TPM_CC } from "./constants.js";
import { u32 } from "./names.js";
import { TPML_PCR_SELECTION, type TpmsPcrSelection } from "./structures.js";

/** The starting policyDigest: all zeros of the session hash size (Part 1, section 19.7.2). */
export function emptyPolicy(hashAlg: number): Uint8Array {
  return new Uint8Array(hashInfo(hashAlg).size);
}

/** TPM2_PolicyPCR (Part 3, section 23.7): H(old || TPM_CC_PolicyPCR || pcrs || digestTPM). */
export function policyPcr(
  hashAlg: number,
  old: Uint8Array,
  pcrs: readonly TpmsPcrSelection[],
  pcrValuesDigest: Uint8Array,
): Uint8Array {
  return hash(hashAlg, old, u32(TPM_CC.PolicyPCR), encode(TPML_PCR_SELECTION, [...pcrs]), pcrValuesDigest);
}

/**
 * TPM2_PolicySecret / PolicySigned second step (Part 3, section 23.2.6 PolicyUpdate):
 * H(H(old || TPM_CC || authObjectName) || policyRef).
 */
export function policySecret(
  hashAlg: number,
  old: Uint8Array,
  authObjectName: Uint8Array,
  policyRef = new Uint8Array(0),
): Uint8Array {
  const step = hash(hashAlg, old, u32(TPM_CC.PolicySecret), authObjectName);
  return hash(hashAlg, step, policyRef);
}

/** TPM2_PolicyCommandCode (Part 3, section 23.11): H(old || TPM_CC_PolicyCommandCode || code). */
export function policyCommandCode(hashAlg: number, old: Uint8Array, commandCode: number): Uint8Array {
  return hash(hashAlg, old, u32(TPM_CC.PolicyCommandCode), u32(commandCode));
}

/** TPM2_PolicyAuthValue (Part 3, section 23.17). */
export function policyAuthValue(hashAlg: number, old: Uint8Array): Uint8Array {
  return hash(hashAlg, old, u32(TPM_CC.PolicyAuthValue));
}

/** TPM2_PolicyPassword (Part 3, section 23.18): the same digest as PolicyAuthValue. */
export function policyPassword(hashAlg: number, old: Uint8Array): Uint8Array {
  return hash(hashAlg, old, u32(TPM_CC.PolicyAuthValue));
}
