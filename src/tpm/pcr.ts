/**
 * PCR selections and digests (TCG TPM 2.0 Library Part 2, section 10.6 TPMS_PCR_SELECTION;
 * Part 3, section 18.4 TPM2_Quote for the pcrDigest: the hash of the selected PCR values
 * concatenated in selection order, banks in list order, PCRs in ascending index).
 */
import { hash, hashInfo } from "./alg.js";
import { tpmError } from "./errors.js";
import { concat } from "./names.js";
import type { TpmsPcrSelection } from "./structures.js";

/** Number of PCRs in a PC Client TPM (TCG PC Client Platform TPM Profile, section 4.6). */
export const PCR_COUNT = 24;

/** PCR values by bank: hash algorithm id → PCR index → value. */
export type PcrValues = ReadonlyMap<number, ReadonlyMap<number, Uint8Array>>;

/** A TPMS_PCR_SELECTION for `indices` in bank `hashAlg` (sizeofSelect at least 3). */
export function pcrSelection(
  hashAlg: number,
  indices: readonly number[],
  sizeofSelect = 3,
): TpmsPcrSelection {
  const max = Math.max(sizeofSelect, ...indices.map((i) => (i >>> 3) + 1));
  const pcrSelect = new Uint8Array(max);
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0 || i >= 256) {
      throw tpmError("TPM_ERR_INVALID_ARGUMENT", `PCR index ${i} out of range`);
    }
    pcrSelect[i >>> 3] = (pcrSelect[i >>> 3] ?? 0) | (1 << (i & 7));
  }
  return { hash: hashAlg, pcrSelect };
}

/** The PCR indices a selection names, ascending. */
export function selectedIndices(sel: TpmsPcrSelection): number[] {
  const out: number[] = [];
  sel.pcrSelect.forEach((byte, i) => {
    for (let bit = 0; bit < 8; bit++) if (byte & (1 << bit)) out.push(i * 8 + bit);
  });
  return out;
}

/** `sha256:0,1,7+sha1:0` style text (as tpm2-tools writes it) into a selection list. */
export function parsePcrSpec(spec: string, hashByNameFn: (n: string) => { alg: number }): TpmsPcrSelection[] {
  return spec.split("+").map((bank) => {
    const [alg, list] = bank.split(":");
    if (!alg || list === undefined) throw tpmError("TPM_ERR_INVALID_ARGUMENT", `bad PCR selection '${bank}'`);
    const indices =
      list.trim() === "all"
        ? Array.from({ length: PCR_COUNT }, (_, i) => i)
        : list.split(",").map((x) => {
            const n = Number(x.trim());
            if (!Number.isInteger(n) || n < 0 || n >= PCR_COUNT) {
              throw tpmError("TPM_ERR_INVALID_ARGUMENT", `bad PCR index '${x}'`);
            }
            return n;
          });
    return pcrSelection(hashByNameFn(alg).alg, indices);
  });
}

/** The selected values in selection order; a typed error names the first missing PCR. */
export function selectedValues(selection: readonly TpmsPcrSelection[], values: PcrValues): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const sel of selection) {
    const bank = values.get(sel.hash);
    for (const i of selectedIndices(sel)) {
      const v = bank?.get(i);
      if (!v) {
        throw tpmError(
          "TPM_ERR_INVALID_ARGUMENT",
          `no value supplied for PCR ${i} of bank 0x${sel.hash.toString(16)}`,
          {
            bank: sel.hash,
            pcr: i,
          },
        );
      }
      out.push(v);
    }
  }
  return out;
}

/** H_hashAlg(PCR[sel0] || PCR[sel1] || ...), the pcrDigest of TPMS_QUOTE_INFO and TPM2_PolicyPCR. */
export function pcrDigest(
  hashAlg: number,
  selection: readonly TpmsPcrSelection[],
  values: PcrValues,
): Uint8Array {
  return hash(hashAlg, concat(...selectedValues(selection, values)));
}

/** The value of a PCR after TPM2_PCR_Extend: H(old || digest) (Part 1, section 17.2). */
export function extendPcr(hashAlg: number, old: Uint8Array, digest: Uint8Array): Uint8Array {
  hashInfo(hashAlg);
  return hash(hashAlg, old, digest);
}

/** Merges PCR values into one map (later entries win). */
export function pcrValues(
  entries: Iterable<[number, number, Uint8Array]>,
): Map<number, Map<number, Uint8Array>> {
  const out = new Map<number, Map<number, Uint8Array>>();
  for (const [alg, index, value] of entries) {
    let bank = out.get(alg);
    if (!bank) out.set(alg, (bank = new Map()));
    bank.set(index, value);
  }
  return out;
}
