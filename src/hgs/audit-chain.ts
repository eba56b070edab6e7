/**
 * The audit chain's hash rule, on its own so the chain's verifier (audit.ts) and the checkpointer
 * (audit-checkpoints.ts) share it without importing each other. Entry n stores
 *   hash_n = SHA-256( prev_hash ‖ canonical JSON {seq, at, event, hostId, detail} )
 * with prev_hash of the first entry = {@link GENESIS}.
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

export function entryHash(prevHash: string, e: ChainedEntry): string {
  return createHash("sha256")
    .update(prevHash, "utf8")
    .update(
      canonicalJson({ seq: e.seq, at: e.at, event: e.event, hostId: e.hostId, detail: e.detail }),
      "utf8",
    )
    .digest("hex");
}
