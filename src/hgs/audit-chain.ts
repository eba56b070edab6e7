/**
 * The audit chain's hash rule, on its own so the chain's verifier (audit.ts) and the checkpointer
 * (audit-checkpoints.ts) share it without importing each other. Entry n stores
 *   hash_n = SHA-256( prev_hash ‖ canonical JSON {seq, at, event, hostId, detail} )
 * with prev_hash of the first entry = {@link GENESIS}.
 *
 * The stored detail is the canonical JSON of the entry's detail (audit.ts writes nothing else and
 * verify checks it), so the hashed record can be built around the stored text as it is: the
 * record's own keys in canonical (sorted) order — at, detail, event, hostId, seq — around the
 * detail's bytes. {@link entryHashOfText} does that: no parse, no re-serialisation, one hash per
 * entry (the writer, the verifier and the checkpointer all hash this way).
 */
import { hash } from "node:crypto";
import { canonicalJson } from "../attest/json.js";

export const GENESIS = "0".repeat(64);

export interface ChainedEntry {
  readonly seq: number;
  readonly at: number;
  readonly event: string;
  readonly hostId: string | null;
  readonly detail: Readonly<Record<string, unknown>>;
}

/**
 * The hash of an entry whose detail is already canonical JSON text (`detailJson`). Equal to
 * {@link entryHash} of the parsed detail exactly when `detailJson` is canonical.
 */
export function entryHashOfText(
  prevHash: string,
  e: Omit<ChainedEntry, "detail">,
  detailJson: string,
): string {
  // canonicalJson of the record: keys sorted (at < detail < event < hostId < seq), no spaces.
  const record = `{"at":${JSON.stringify(e.at)},"detail":${detailJson},"event":${JSON.stringify(e.event)},"hostId":${JSON.stringify(e.hostId)},"seq":${JSON.stringify(e.seq)}}`;
  // One-shot: the same bytes as update(prevHash).update(record), without a Hash object per entry.
  return hash("sha256", prevHash + record, "hex");
}

export function entryHash(prevHash: string, e: ChainedEntry): string {
  return entryHashOfText(prevHash, e, canonicalJson(e.detail));
}

/**
 * Is `text` the canonical JSON of `parsed` (= JSON.parse(text))? The same answer as
 * `canonicalJson(parsed) === text`, mostly without building that string: when the native
 * serialisation reproduces the text and every object's keys are already in sorted order, the
 * canonical form is that same string. Otherwise (integer-like keys, which objects order
 * numerically, or a text that is not canonical) the canonical form is built and compared.
 */
export function isCanonicalText(text: string, parsed: unknown): boolean {
  if (JSON.stringify(parsed) === text && keysSorted(parsed)) return true;
  return canonicalJson(parsed) === text;
}

function keysSorted(v: unknown): boolean {
  if (v === null || typeof v !== "object") return true;
  if (Array.isArray(v)) return v.every(keysSorted);
  const keys = Object.keys(v);
  for (let i = 0; i < keys.length; i++) {
    if (i > 0 && !((keys[i - 1] as string) < (keys[i] as string))) return false;
    if (!keysSorted((v as Record<string, unknown>)[keys[i] as string])) return false;
  }
  return true;
}
