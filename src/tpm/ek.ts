/**
 * EK certificates from TPM NV (TCG EK Credential Profile for TPM Family 2.0, v2.3, section
 * 2.2.1.5, Table 2 "Reserved Handles for EK Credentials"). The certificate is DER; a TPM may pad
 * the index, so the bytes are cut at the end of the outer DER SEQUENCE.
 *
 * Does NOT validate the certificate (chain, validity, EK key match): the caller does that
 * against its trusted manufacturer CAs and the EK public area.
 */
import type { HandleRef } from "./command.js";
import type { Tpm } from "./client.js";
import { TPM_HT, TPM_RH } from "./constants.js";

/** Well-known EK certificate NV indices, low and high range (EK Credential Profile, Table 2). */
export const EK_CERT_INDICES: ReadonlyMap<number, string> = new Map([
  [0x01c00002, "RSA 2048 (L-1)"],
  [0x01c0000a, "ECC NIST P-256 (L-2)"],
  [0x01c00012, "RSA 2048 (H-1)"],
  [0x01c00014, "ECC NIST P-256 (H-2)"],
  [0x01c00016, "ECC NIST P-384 (H-3)"],
  [0x01c00018, "ECC NIST P-521 (H-4)"],
  [0x01c0001a, "ECC SM2 P-256 (H-5)"],
  [0x01c0001c, "RSA 3072 (H-6)"],
  [0x01c0001e, "RSA 4096 (H-7)"],
]);

/** Length of the DER element at the start of `b`, or undefined when it is not one. */
export function derLength(b: Uint8Array): number | undefined {
  if (b.length < 2 || b[0] !== 0x30) return undefined;
  const first = b[1] ?? 0;
  if (first < 0x80) return 2 + first;
  const n = first & 0x7f;
  if (n === 0 || n > 4 || b.length < 2 + n) return undefined;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + (b[2 + i] ?? 0);
  const total = 2 + n + len;
  return total <= b.length ? total : undefined;
}

export interface EkCertificate {
  readonly index: number;
  readonly kind: string;
  /** The certificate DER, without NV padding. */
  readonly der: Uint8Array;
}

/** Reads one EK certificate index (TPM_RH_OWNER authorization by default). */
export async function readEkCertificate(
  tpm: Tpm,
  index: number,
  authHandle: HandleRef = { handle: TPM_RH.OWNER },
): Promise<EkCertificate> {
  const raw = await tpm.nvRead(index, { authHandle });
  const n = derLength(raw);
  return {
    index,
    kind: EK_CERT_INDICES.get(index) ?? "unknown",
    der: n === undefined ? raw : raw.subarray(0, n),
  };
}

/** Every EK certificate the TPM holds at a well-known index. */
export async function readEkCertificates(tpm: Tpm, authHandle?: HandleRef): Promise<EkCertificate[]> {
  const present = (await tpm.handles(TPM_HT.NV_INDEX)).filter((h) => EK_CERT_INDICES.has(h));
  const out: EkCertificate[] = [];
  for (const index of present) out.push(await readEkCertificate(tpm, index, authHandle));
  return out;
}
