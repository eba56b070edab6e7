/**
 * The TPM-mode attestation wire facts both sides compute: which PCRs a quote must cover, how a
 * host id is derived from its EK, and the quote's qualifyingData (nonce bound to the host's
 * key-release key). HGS verifies with them (attest/tpm-judge.ts); the host quotes with them.
 */
import type { KeyObject } from "node:crypto";
import { encode } from "../core/codec.js";
import { TPM_ALG } from "../tpm/alg.js";
import { pcrSelection } from "../tpm/pcr.js";
import { TPM2B_PUBLIC_RAW, type PublicArea } from "../tpm/structures.js";
import { sha256, spkiDer } from "./host-key.js";

/** Every TPM attestation quotes sha256 PCRs 0..9: firmware, Secure Boot, boot chain, kernel. */
export const REQUIRED_PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] as const;
export const REQUIRED_SELECTION = [pcrSelection(TPM_ALG.SHA256, [...REQUIRED_PCRS])];

export function tpm2bPublicBytes(p: PublicArea): Buffer {
  return Buffer.from(encode(TPM2B_PUBLIC_RAW, p));
}

/** A TPM host's id: SHA-256 of its EK TPMT_PUBLIC bytes, hex. */
export function ekHostId(ek: PublicArea): string {
  return sha256(ek.raw).toString("hex");
}

/** Expected TPM2_Quote qualifyingData for a nonce and a key-release key. */
export function quoteQualifyingData(nonce: Uint8Array, keyReleaseKey: KeyObject | Uint8Array): Buffer {
  return sha256(nonce, sha256(keyReleaseKey instanceof Uint8Array ? keyReleaseKey : spkiDer(keyReleaseKey)));
}
