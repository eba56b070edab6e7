/**
 * PCR values to compare a replay with: a map bank name → PCR index → digest. Read here from the
 * two text forms people have at hand: tpm2-tools' `tpm2_pcrread` YAML output (also the `pcrs:`
 * section `tpm2_eventlog` prints), and JSON `{ "sha256": { "0": "hex", ... } }`.
 * The parser is total: a value or EVENTLOG_ERR_PCR_VALUES.
 */
import { HASHES } from "../tpm/alg.js";
import { eventlogError } from "./errors.js";

export type PcrValues = ReadonlyMap<string, ReadonlyMap<number, Uint8Array>>;

const bankSizes = new Map([...HASHES.values()].map((h) => [h.name, h.size]));

function bad(message: string, line?: number): never {
  throw eventlogError("EVENTLOG_ERR_PCR_VALUES", line === undefined ? message : `line ${line}: ${message}`, {
    ...(line === undefined ? {} : { line }),
  });
}

function put(
  out: Map<string, Map<number, Uint8Array>>,
  bank: string,
  pcr: number,
  hexValue: string,
  line?: number,
) {
  const size = bankSizes.get(bank);
  if (size === undefined) bad(`unknown PCR bank '${bank.slice(0, 32)}'`, line);
  if (!Number.isInteger(pcr) || pcr < 0 || pcr > 23) bad(`PCR index ${pcr} outside 0..23`, line);
  const h = hexValue.replace(/^0x/i, "");
  if (!/^[0-9a-f]*$/i.test(h) || h.length !== size * 2)
    bad(`${bank} PCR ${pcr} is not ${size} bytes of hex`, line);
  let m = out.get(bank);
  if (!m) out.set(bank, (m = new Map()));
  if (m.has(pcr)) bad(`${bank} PCR ${pcr} given twice`, line);
  m.set(pcr, new Uint8Array(Buffer.from(h, "hex")));
}

/** Parses `tpm2_pcrread` output (`  sha256:` then `    0 : 0x…` lines); other lines are ignored. */
export function parsePcrReadYaml(text: string): PcrValues {
  if (text.length > 1 << 20) bad("PCR value text exceeds 1 MiB");
  const out = new Map<string, Map<number, Uint8Array>>();
  let bank: string | null = null;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const b = /^\s*([a-z0-9_]+)\s*:\s*$/i.exec(line);
    if (b) {
      const name = b[1]!.toLowerCase();
      bank = bankSizes.has(name) ? name : null;
      continue;
    }
    const v = /^\s+(\d{1,3})\s*:\s*(0x[0-9a-f]+)\s*$/i.exec(line);
    if (v && bank) put(out, bank, Number(v[1]), v[2]!, i + 1);
  }
  if (out.size === 0) bad("no PCR values found");
  return out;
}

/** Parses `{ "<bank>": { "<pcr>": "<hex>" } }`. */
export function parsePcrJson(text: string): PcrValues {
  if (text.length > 1 << 20) bad("PCR value text exceeds 1 MiB");
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    bad("PCR values are not JSON");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) bad("PCR values must be an object of banks");
  const out = new Map<string, Map<number, Uint8Array>>();
  for (const [bank, pcrs] of Object.entries(v as Record<string, unknown>)) {
    if (typeof pcrs !== "object" || pcrs === null || Array.isArray(pcrs))
      bad(`bank ${bank.slice(0, 32)} must be an object`);
    for (const [k, hexValue] of Object.entries(pcrs as Record<string, unknown>)) {
      if (!/^\d{1,2}$/.test(k) || typeof hexValue !== "string")
        bad(`${bank.slice(0, 32)}: bad entry '${k.slice(0, 8)}'`);
      put(out, bank.toLowerCase(), Number(k), hexValue);
    }
  }
  return out;
}

/** Either form: JSON when the text starts with `{`, otherwise tpm2_pcrread YAML. */
export function parsePcrValues(text: string): PcrValues {
  return text.trimStart().startsWith("{") ? parsePcrJson(text) : parsePcrReadYaml(text);
}
