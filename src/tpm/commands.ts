/**
 * The TPM 2.0 commands Bulwark uses, declared as data for the generic executor (command.ts).
 * Each entry cites TCG TPM 2.0 Library Part 3 (Commands), rev 1.59, and lists handles in the
 * order of the spec's command table (authorized handles first).
 */
import { struct, u16be, u32be, u8, type Codec } from "../core/codec.js";
import type { CommandSpec } from "./command.js";
import { TPM_CC } from "./constants.js";
import {
  TPM2B_ATTEST,
  TPM2B_CREATION_DATA,
  TPM2B_DATA,
  TPM2B_DIGEST,
  TPM2B_ENCRYPTED_SECRET,
  TPM2B_ID_OBJECT,
  TPM2B_MAX_NV_BUFFER,
  TPM2B_NAME,
  TPM2B_NONCE,
  TPM2B_NV_PUBLIC,
  TPM2B_NV_PUBLIC_RAW,
  TPM2B_PRIVATE,
  TPM2B_PUBLIC,
  TPM2B_PUBLIC_RAW,
  TPM2B_AUTH,
  TPM2B_SENSITIVE_CREATE,
  TPM2B_SENSITIVE_DATA,
  TPM2B_TIMEOUT,
  TPM_HANDLE,
  TPML_DIGEST,
  TPML_DIGEST_VALUES,
  TPML_PCR_SELECTION,
  TPMS_CAPABILITY_DATA,
  TPMT_SIG_SCHEME,
  TPMT_SIGNATURE,
  TPMT_SYM_DEF,
  TPMT_TK,
  TPM_ALG_ID,
} from "./structures.js";

const empty = struct<Record<string, never>>("empty", {});

function spec<P, R>(
  name: string,
  cc: number,
  handles: number,
  responseHandle: boolean,
  params: Codec<P>,
  response: Codec<R>,
): CommandSpec<P, R> {
  return { name, cc, handles, responseHandle, params, response };
}

/** TPM2_Startup (Part 3, section 9.3). */
export const Startup = spec(
  "Startup",
  TPM_CC.Startup,
  0,
  false,
  struct("TPM2_Startup", { startupType: u16be }),
  empty,
);
/** TPM2_Shutdown (Part 3, section 9.4). */
export const Shutdown = spec(
  "Shutdown",
  TPM_CC.Shutdown,
  0,
  false,
  struct("TPM2_Shutdown", { shutdownType: u16be }),
  empty,
);
/** TPM2_SelfTest (Part 3, section 10.2). */
export const SelfTest = spec(
  "SelfTest",
  TPM_CC.SelfTest,
  0,
  false,
  struct("TPM2_SelfTest", { fullTest: u8 }),
  empty,
);

/** TPM2_GetCapability (Part 3, section 30.2). */
export const GetCapability = spec(
  "GetCapability",
  TPM_CC.GetCapability,
  0,
  false,
  struct("TPM2_GetCapability", { capability: u32be, property: u32be, propertyCount: u32be }),
  struct("TPM2_GetCapability_Response", { moreData: u8, capabilityData: TPMS_CAPABILITY_DATA }),
);

/** TPM2_GetRandom (Part 3, section 16.1). */
export const GetRandom = spec(
  "GetRandom",
  TPM_CC.GetRandom,
  0,
  false,
  struct("TPM2_GetRandom", { bytesRequested: u16be }),
  struct("TPM2_GetRandom_Response", { randomBytes: TPM2B_DIGEST }),
);

/** TPM2_PCR_Read (Part 3, section 22.4). */
export const PCR_Read = spec(
  "PCR_Read",
  TPM_CC.PCR_Read,
  0,
  false,
  struct("TPM2_PCR_Read", { pcrSelectionIn: TPML_PCR_SELECTION }),
  struct("TPM2_PCR_Read_Response", {
    pcrUpdateCounter: u32be,
    pcrSelectionOut: TPML_PCR_SELECTION,
    pcrValues: TPML_DIGEST,
  }),
);

/** TPM2_PCR_Extend (Part 3, section 22.2): @pcrHandle. */
export const PCR_Extend = spec(
  "PCR_Extend",
  TPM_CC.PCR_Extend,
  1,
  false,
  struct("TPM2_PCR_Extend", { digests: TPML_DIGEST_VALUES }),
  empty,
);

const createParams = {
  inSensitive: TPM2B_SENSITIVE_CREATE,
  inPublic: TPM2B_PUBLIC,
  outsideInfo: TPM2B_DATA,
  creationPCR: TPML_PCR_SELECTION,
};

/** TPM2_CreatePrimary (Part 3, section 24.1): @primaryHandle → objectHandle. */
export const CreatePrimary = spec(
  "CreatePrimary",
  TPM_CC.CreatePrimary,
  1,
  true,
  struct("TPM2_CreatePrimary", createParams),
  struct("TPM2_CreatePrimary_Response", {
    outPublic: TPM2B_PUBLIC_RAW,
    creationData: TPM2B_CREATION_DATA,
    creationHash: TPM2B_DIGEST,
    creationTicket: TPMT_TK,
    name: TPM2B_NAME,
  }),
);

/** TPM2_Create (Part 3, section 12.1): @parentHandle. */
export const Create = spec(
  "Create",
  TPM_CC.Create,
  1,
  false,
  struct("TPM2_Create", createParams),
  struct("TPM2_Create_Response", {
    outPrivate: TPM2B_PRIVATE,
    outPublic: TPM2B_PUBLIC_RAW,
    creationData: TPM2B_CREATION_DATA,
    creationHash: TPM2B_DIGEST,
    creationTicket: TPMT_TK,
  }),
);

/** TPM2_Load (Part 3, section 12.2): @parentHandle → objectHandle. */
export const Load = spec(
  "Load",
  TPM_CC.Load,
  1,
  true,
  struct("TPM2_Load", { inPrivate: TPM2B_PRIVATE, inPublic: TPM2B_PUBLIC_RAW }),
  struct("TPM2_Load_Response", { name: TPM2B_NAME }),
);

/** TPM2_ReadPublic (Part 3, section 12.4): objectHandle (no authorization). */
export const ReadPublic = spec(
  "ReadPublic",
  TPM_CC.ReadPublic,
  1,
  false,
  empty,
  struct("TPM2_ReadPublic_Response", {
    outPublic: TPM2B_PUBLIC_RAW,
    name: TPM2B_NAME,
    qualifiedName: TPM2B_NAME,
  }),
);

/** TPM2_Quote (Part 3, section 18.4): @signHandle. */
export const Quote = spec(
  "Quote",
  TPM_CC.Quote,
  1,
  false,
  struct("TPM2_Quote", {
    qualifyingData: TPM2B_DATA,
    inScheme: TPMT_SIG_SCHEME,
    PCRselect: TPML_PCR_SELECTION,
  }),
  struct("TPM2_Quote_Response", { quoted: TPM2B_ATTEST, signature: TPMT_SIGNATURE }),
);

/** TPM2_ActivateCredential (Part 3, section 12.5): @activateHandle, @keyHandle. */
export const ActivateCredential = spec(
  "ActivateCredential",
  TPM_CC.ActivateCredential,
  2,
  false,
  struct("TPM2_ActivateCredential", { credentialBlob: TPM2B_ID_OBJECT, secret: TPM2B_ENCRYPTED_SECRET }),
  struct("TPM2_ActivateCredential_Response", { certInfo: TPM2B_DIGEST }),
);

/** TPM2_MakeCredential (Part 3, section 12.6): handle (no authorization). */
export const MakeCredential = spec(
  "MakeCredential",
  TPM_CC.MakeCredential,
  1,
  false,
  struct("TPM2_MakeCredential", { credential: TPM2B_DIGEST, objectName: TPM2B_NAME }),
  struct("TPM2_MakeCredential_Response", { credentialBlob: TPM2B_ID_OBJECT, secret: TPM2B_ENCRYPTED_SECRET }),
);

/** TPM2_StartAuthSession (Part 3, section 11.1): tpmKey, bind (no authorization) → sessionHandle. */
export const StartAuthSession = spec(
  "StartAuthSession",
  TPM_CC.StartAuthSession,
  2,
  true,
  struct("TPM2_StartAuthSession", {
    nonceCaller: TPM2B_NONCE,
    encryptedSalt: TPM2B_ENCRYPTED_SECRET,
    sessionType: u8,
    symmetric: TPMT_SYM_DEF,
    authHash: TPM_ALG_ID,
  }),
  struct("TPM2_StartAuthSession_Response", { nonceTPM: TPM2B_NONCE }),
);

/** TPM2_PolicyPCR (Part 3, section 23.7): policySession. */
export const PolicyPCR = spec(
  "PolicyPCR",
  TPM_CC.PolicyPCR,
  1,
  false,
  struct("TPM2_PolicyPCR", { pcrDigest: TPM2B_DIGEST, pcrs: TPML_PCR_SELECTION }),
  empty,
);

/** TPM2_PolicySecret (Part 3, section 23.4): @authHandle, policySession. */
export const PolicySecret = spec(
  "PolicySecret",
  TPM_CC.PolicySecret,
  2,
  false,
  struct("TPM2_PolicySecret", {
    nonceTPM: TPM2B_NONCE,
    cpHashA: TPM2B_DIGEST,
    policyRef: TPM2B_NONCE,
    expiration: u32be,
  }),
  struct("TPM2_PolicySecret_Response", { timeout: TPM2B_TIMEOUT, policyTicket: TPMT_TK }),
);

/** TPM2_PolicyGetDigest (Part 3, section 23.19): policySession. */
export const PolicyGetDigest = spec(
  "PolicyGetDigest",
  TPM_CC.PolicyGetDigest,
  1,
  false,
  empty,
  struct("TPM2_PolicyGetDigest_Response", { policyDigest: TPM2B_DIGEST }),
);

/** TPM2_PolicyCommandCode (Part 3, section 23.11): policySession. */
export const PolicyCommandCode = spec(
  "PolicyCommandCode",
  TPM_CC.PolicyCommandCode,
  1,
  false,
  struct("TPM2_PolicyCommandCode", { code: u32be }),
  empty,
);

/** TPM2_PolicyAuthValue (Part 3, section 23.17): policySession. */
export const PolicyAuthValue = spec("PolicyAuthValue", TPM_CC.PolicyAuthValue, 1, false, empty, empty);
/** TPM2_PolicyPassword (Part 3, section 23.18): policySession. */
export const PolicyPassword = spec("PolicyPassword", TPM_CC.PolicyPassword, 1, false, empty, empty);
/** TPM2_PolicyRestart (Part 3, section 23.20): sessionHandle. */
export const PolicyRestart = spec("PolicyRestart", TPM_CC.PolicyRestart, 1, false, empty, empty);

/** TPM2_Unseal (Part 3, section 12.7): @itemHandle. */
export const Unseal = spec(
  "Unseal",
  TPM_CC.Unseal,
  1,
  false,
  empty,
  struct("TPM2_Unseal_Response", { outData: TPM2B_SENSITIVE_DATA }),
);

/** TPM2_NV_ReadPublic (Part 3, section 31.6): nvIndex (no authorization). */
export const NV_ReadPublic = spec(
  "NV_ReadPublic",
  TPM_CC.NV_ReadPublic,
  1,
  false,
  empty,
  struct("TPM2_NV_ReadPublic_Response", { nvPublic: TPM2B_NV_PUBLIC_RAW, nvName: TPM2B_NAME }),
);

/** TPM2_NV_Read (Part 3, section 31.13): @authHandle, nvIndex. */
export const NV_Read = spec(
  "NV_Read",
  TPM_CC.NV_Read,
  2,
  false,
  struct("TPM2_NV_Read", { size: u16be, offset: u16be }),
  struct("TPM2_NV_Read_Response", { data: TPM2B_MAX_NV_BUFFER }),
);

/** TPM2_NV_DefineSpace (Part 3, section 31.3): @authHandle. */
export const NV_DefineSpace = spec(
  "NV_DefineSpace",
  TPM_CC.NV_DefineSpace,
  1,
  false,
  struct("TPM2_NV_DefineSpace", { auth: TPM2B_AUTH, publicInfo: TPM2B_NV_PUBLIC }),
  empty,
);

/** TPM2_NV_UndefineSpace (Part 3, section 31.4): @authHandle, nvIndex. */
export const NV_UndefineSpace = spec("NV_UndefineSpace", TPM_CC.NV_UndefineSpace, 2, false, empty, empty);

/** TPM2_NV_Write (Part 3, section 31.10): @authHandle, nvIndex. */
export const NV_Write = spec(
  "NV_Write",
  TPM_CC.NV_Write,
  2,
  false,
  struct("TPM2_NV_Write", { data: TPM2B_MAX_NV_BUFFER, offset: u16be }),
  empty,
);

/** TPM2_FlushContext (Part 3, section 28.4): the handle is a parameter, not in the handle area. */
export const FlushContext = spec(
  "FlushContext",
  TPM_CC.FlushContext,
  0,
  false,
  struct("TPM2_FlushContext", { flushHandle: TPM_HANDLE }),
  empty,
);

/** TPM2_EvictControl (Part 3, section 28.5): @auth, objectHandle. */
export const EvictControl = spec(
  "EvictControl",
  TPM_CC.EvictControl,
  2,
  false,
  struct("TPM2_EvictControl", { persistentHandle: TPM_HANDLE }),
  empty,
);
