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
import { createHash } from "node:crypto";
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
  return createHash("sha256").update(prevHash, "utf8").update(record, "utf8").digest("hex");
}

export function entryHash(prevHash: string, e: ChainedEntry): string {
  return entryHashOfText(prevHash, e, canonicalJson(e.detail));
}
