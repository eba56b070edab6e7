/**
 * File formats of tpm2-tools (5.x), so operators can mix tpm2-tools and Bulwark:
 *
 * - Credential blob (tpm2_makecredential -o, tpm2_activatecredential -i): a big-endian header
 *   u32 magic 0xBADCC0DE, u32 version 1, then TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET
 *   (tpm2-tools lib/files.c files_write_header, tools/tpm2_makecredential.c).
 * - PCR values, "serialized" (tpm2_quote -o / -F serialized, tpm2_checkquote -f): the in-memory
 *   C layout of TPML_PCR_SELECTION, then a u32 count and that many TPML_DIGEST, little-endian
 *   with the compiler's padding: TPMS_PCR_SELECTION is 8 bytes (hash u16, sizeofSelect u8,
 *   pcrSelect[4], 1 pad), TPML_PCR_SELECTION 4 + 16 x 8 bytes, TPM2B_DIGEST 2 + 64 bytes,
 *   TPML_DIGEST 4 + 8 x 66 bytes (tpm2-tools lib/pcr.c pcr_fwrite_serialized).
 * - PCR values, "values" (-F values): the selected digests concatenated in selection order.
 * - TPMS_ATTEST (tpm2_quote -m), TPMT_SIGNATURE (-s, "tss" format), TPM2B_PUBLIC (-u): TPM
 *   marshaling, see structures.ts.
 */
import {
  decode,
  encode,
  fixedBytes,
  list,
  struct,
  u16le,
  u32be,
  u32le,
  u8,
  type Codec,
} from "../core/codec.js";
import { isBulwarkError } from "../core/errors.js";
import { digestSize, hashByName } from "./alg.js";
import { tpmError } from "./errors.js";
import { pcrValues, selectedIndices, type PcrValues } from "./pcr.js";
import { TPM2B_ENCRYPTED_SECRET, TPM2B_ID_OBJECT, type TpmsPcrSelection } from "./structures.js";

/** A fixed number of items, no count on the wire (C arrays). */
function array<T>(n: number, item: Codec<T>, name = `${item.name}[${n}]`): Codec<T[]> {
  return {
    name,
    decode: (r) => Array.from({ length: n }, (_, i) => r.at(`[${i}]`, () => item.decode(r))),
    encode: (w, v) => {
      if (v.length !== n) throw new RangeError(`${name}: expected ${n} items`);
      for (const x of v) item.encode(w, x);
    },
  };
}

/** The tpm2-tools credential file (magic 0xBADCC0DE, version 1). */
export const TPM2_TOOLS_CREDENTIAL = struct("tpm2-tools credential", {
  magic: u32be,
  version: u32be,
  credentialBlob: TPM2B_ID_OBJECT,
  secret: TPM2B_ENCRYPTED_SECRET,
});
export const CREDENTIAL_MAGIC = 0xbadcc0de;

export function readCredentialFile(bytes: Uint8Array): { credentialBlob: Uint8Array; secret: Uint8Array } {
  const f = decodeFile(TPM2_TOOLS_CREDENTIAL, bytes, "tpm2-tools credential blob");
  if (f.magic !== CREDENTIAL_MAGIC || f.version !== 1) {
    throw tpmError(
      "TPM_ERR_FILE_FORMAT",
      `credential file has magic 0x${f.magic.toString(16)} version ${f.version}, expected 0xbadcc0de version 1`,
    );
  }
  return { credentialBlob: f.credentialBlob, secret: f.secret };
}

export function writeCredentialFile(c: { credentialBlob: Uint8Array; secret: Uint8Array }): Uint8Array {
  return encode(TPM2_TOOLS_CREDENTIAL, {
    magic: CREDENTIAL_MAGIC,
    version: 1,
    credentialBlob: c.credentialBlob,
    secret: c.secret,
  });
}

// The C in-memory layout tpm2-tools serializes (little-endian on x86 and arm64).
const PCR_SELECT_MAX = 4;
const HASH_COUNT = 16;
const TPMS_PCR_SELECTION_MEM = struct("TPMS_PCR_SELECTION(mem)", {
  hash: u16le,
  sizeofSelect: u8,
  pcrSelect: fixedBytes(PCR_SELECT_MAX),
  pad: u8,
});
const TPML_PCR_SELECTION_MEM = struct("TPML_PCR_SELECTION(mem)", {
  count: u32le,
  pcrSelections: array(HASH_COUNT, TPMS_PCR_SELECTION_MEM),
});
const TPM2B_DIGEST_MEM = struct("TPM2B_DIGEST(mem)", { size: u16le, buffer: fixedBytes(64) });
const TPML_DIGEST_MEM = struct("TPML_DIGEST(mem)", { count: u32le, digests: array(8, TPM2B_DIGEST_MEM) });
/** The whole "serialized" PCR file. */
export const TPM2_TOOLS_PCRS = struct("tpm2-tools PCR file", {
  pcrSelection: TPML_PCR_SELECTION_MEM,
  digestLists: list(u32le, 64, TPML_DIGEST_MEM, "TPML_DIGEST(mem)[]"),
});

export interface PcrFile {
  readonly selection: TpmsPcrSelection[];
  readonly values: PcrValues;
}

function decodeFile<T>(codec: Codec<T>, bytes: Uint8Array, what: string): T {
  try {
    return decode(codec, bytes);
  } catch (e) {
    if (isBulwarkError(e))
      throw tpmError("TPM_ERR_FILE_FORMAT", `not a ${what}: ${e.message}`, { ...e.details }, { cause: e });
    throw e;
  }
}

/** Parses a "serialized" tpm2-tools PCR file into a selection and values. */
export function readPcrFile(bytes: Uint8Array): PcrFile {
  const f = decodeFile(TPM2_TOOLS_PCRS, bytes, "tpm2-tools PCR file");
  const sel = f.pcrSelection;
  if (sel.count > HASH_COUNT) throw tpmError("TPM_ERR_FILE_FORMAT", `PCR file selects ${sel.count} banks`);
  const selection = sel.pcrSelections.slice(0, sel.count).map((s) => {
    if (s.sizeofSelect > PCR_SELECT_MAX)
      throw tpmError("TPM_ERR_FILE_FORMAT", `sizeofSelect ${s.sizeofSelect} exceeds ${PCR_SELECT_MAX}`);
    return { hash: s.hash, pcrSelect: s.pcrSelect.slice(0, s.sizeofSelect) };
  });
  const digests: Uint8Array[] = [];
  for (const l of f.digestLists) {
    if (l.count > 8) throw tpmError("TPM_ERR_FILE_FORMAT", `TPML_DIGEST count ${l.count} exceeds 8`);
    for (const d of l.digests.slice(0, l.count)) {
      if (d.size > 64) throw tpmError("TPM_ERR_FILE_FORMAT", `digest size ${d.size} exceeds 64`);
      digests.push(d.buffer.slice(0, d.size));
    }
  }
  const entries: [number, number, Uint8Array][] = [];
  let k = 0;
  for (const s of selection) {
    for (const i of selectedIndices(s)) {
      const d = digests[k++];
      if (!d) throw tpmError("TPM_ERR_FILE_FORMAT", "PCR file has fewer digests than selected PCRs");
      const want = digestSize(s.hash);
      if (want !== undefined && d.length !== want) {
        throw tpmError("TPM_ERR_FILE_FORMAT", `PCR ${i} digest is ${d.length} bytes, bank needs ${want}`);
      }
      entries.push([s.hash, i, d]);
    }
  }
  if (k !== digests.length)
    throw tpmError("TPM_ERR_FILE_FORMAT", "PCR file has more digests than selected PCRs");
  return { selection, values: pcrValues(entries) };
}

/** Writes a "serialized" tpm2-tools PCR file for `selection` from `values`. */
export function writePcrFile(selection: readonly TpmsPcrSelection[], values: PcrValues): Uint8Array {
  if (selection.length > HASH_COUNT) throw tpmError("TPM_ERR_INVALID_ARGUMENT", "too many PCR banks");
  const pcrSelections = Array.from({ length: HASH_COUNT }, (_, i) => {
    const s = selection[i];
    const pcrSelect = new Uint8Array(PCR_SELECT_MAX);
    if (s) {
      if (s.pcrSelect.length > PCR_SELECT_MAX)
        throw tpmError("TPM_ERR_INVALID_ARGUMENT", "pcrSelect longer than 4 bytes");
      pcrSelect.set(s.pcrSelect);
    }
    return { hash: s?.hash ?? 0, sizeofSelect: s?.pcrSelect.length ?? 0, pcrSelect, pad: 0 };
  });
  const all: Uint8Array[] = [];
  for (const s of selection) {
    for (const i of selectedIndices(s)) {
      const v = values.get(s.hash)?.get(i);
      if (!v)
        throw tpmError("TPM_ERR_INVALID_ARGUMENT", `no value for PCR ${i} of bank 0x${s.hash.toString(16)}`);
      all.push(v);
    }
  }
  const digestLists = [];
  for (let i = 0; i < all.length; i += 8) {
    const chunk = all.slice(i, i + 8);
    digestLists.push({
      count: chunk.length,
      digests: Array.from({ length: 8 }, (_, j) => {
        const buffer = new Uint8Array(64);
        const d = chunk[j];
        if (d) buffer.set(d);
        return { size: d?.length ?? 0, buffer };
      }),
    });
  }
  return encode(TPM2_TOOLS_PCRS, { pcrSelection: { count: selection.length, pcrSelections }, digestLists });
}

/** Parses a "values" PCR file (digests concatenated) against a known selection. */
export function readPcrValuesFile(bytes: Uint8Array, selection: readonly TpmsPcrSelection[]): PcrValues {
  const entries: [number, number, Uint8Array][] = [];
  let at = 0;
  for (const s of selection) {
    const size = digestSize(s.hash);
    if (size === undefined)
      throw tpmError("TPM_ERR_UNSUPPORTED_ALG", `bank 0x${s.hash.toString(16)} has an unknown digest size`);
    for (const i of selectedIndices(s)) {
      if (at + size > bytes.length)
        throw tpmError("TPM_ERR_FILE_FORMAT", "PCR values file is shorter than the selection");
      entries.push([s.hash, i, bytes.slice(at, at + size)]);
      at += size;
    }
  }
  if (at !== bytes.length)
    throw tpmError("TPM_ERR_FILE_FORMAT", "PCR values file is longer than the selection");
  return pcrValues(entries);
}

/** Largest text PCR file we parse (24 PCRs x 8 banks of hex fits easily). */
const MAX_TEXT_PCR_FILE = 256 * 1024;

/**
 * PCR values as text: JSON `{"sha256": {"0": "hex", ...}, ...}` (optionally under a `pcrs` key,
 * as `bulwark tpm pcrs --json` and `bulwark eventlog replay --json` print), or the YAML that
 * `tpm2_pcrread` prints (`  sha256:` then `    0 : 0x...`). Digest sizes are checked per bank.
 */
export function readPcrValuesText(bytes: Uint8Array): PcrValues {
  if (bytes.length > MAX_TEXT_PCR_FILE) throw tpmError("TPM_ERR_FILE_FORMAT", "PCR text file is too large");
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes).trim();
  const entries: [number, number, Uint8Array][] = [];
  const add = (bankName: string, index: string, hexValue: string): void => {
    const bank = hashByNameOrUndefined(bankName);
    if (!bank) throw tpmError("TPM_ERR_FILE_FORMAT", `unknown PCR bank '${bankName}'`);
    const i = Number(index);
    if (!Number.isInteger(i) || i < 0 || i > 255)
      throw tpmError("TPM_ERR_FILE_FORMAT", `bad PCR index '${index}'`);
    const h = hexValue.trim().replace(/^0x/i, "");
    if (!/^[0-9a-fA-F]*$/.test(h) || h.length !== bank.size * 2) {
      throw tpmError("TPM_ERR_FILE_FORMAT", `PCR ${bankName}:${i} is not a ${bank.size}-byte hex digest`);
    }
    entries.push([bank.alg, i, new Uint8Array(Buffer.from(h, "hex"))]);
  };
  if (text.startsWith("{")) {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw tpmError("TPM_ERR_FILE_FORMAT", `PCR JSON does not parse: ${(e as Error).message}`);
    }
    const root = (doc as { pcrs?: unknown }).pcrs ?? doc;
    if (typeof root !== "object" || root === null)
      throw tpmError("TPM_ERR_FILE_FORMAT", "PCR JSON must be an object");
    for (const [bank, values] of Object.entries(root)) {
      if (typeof values !== "object" || values === null)
        throw tpmError("TPM_ERR_FILE_FORMAT", `bank ${bank} must map indices to hex`);
      for (const [i, v] of Object.entries(values)) {
        if (typeof v !== "string")
          throw tpmError("TPM_ERR_FILE_FORMAT", `PCR ${bank}:${i} must be a hex string`);
        add(bank, i, v);
      }
    }
  } else {
    let bank: string | undefined;
    for (const line of text.split(/\r?\n/)) {
      const b = /^\s*([A-Za-z0-9_]+)\s*:\s*$/.exec(line);
      const p = /^\s*(\d+)\s*:\s*(0x[0-9A-Fa-f]+|[0-9A-Fa-f]+)\s*$/.exec(line);
      if (b) bank = b[1];
      else if (p && bank) add(bank, p[1]!, p[2]!);
      else if (line.trim() !== "")
        throw tpmError("TPM_ERR_FILE_FORMAT", `unrecognised PCR line '${line.slice(0, 80)}'`);
    }
  }
  if (entries.length === 0) throw tpmError("TPM_ERR_FILE_FORMAT", "no PCR values found");
  return pcrValues(entries);
}

function hashByNameOrUndefined(name: string): { alg: number; size: number } | undefined {
  try {
    return hashByName(name);
  } catch {
    return undefined;
  }
}
