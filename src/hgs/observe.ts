/**
 * What the HGS use cases report while they run, and who hears it. The use cases publish on
 * `node:diagnostics_channel` (STYLE.md habit 12: library code never logs), knowing nothing of
 * HTTP, logs or metrics. Channels are process-wide, but the observers are per server: each
 * request runs inside {@link observed} with its server's observer, and a message reaches the
 * observer of the request that published it. So two servers in one process (tests, the demo
 * fabric) never count each other's attestations, and a use case run outside any request (the
 * admin CLI on a node) is heard by nobody.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import diagnostics from "node:diagnostics_channel";
import { ATTESTATION_CHANNEL, RELEASE_CHANNEL } from "./attestation.js";

/** One finished attestation: its mode, its verdict status (or error code), how long it took. */
export interface AttestationEvent {
  readonly mode: "key" | "tpm";
  readonly status: string;
  readonly durationMs: number;
}

/** One finished key release; `code` is the catalogue code of a refusal. */
export interface ReleaseEvent {
  readonly outcome: "released" | "refused";
  readonly code?: string;
  readonly durationMs: number;
}

export interface Observer {
  attestation(e: AttestationEvent): void;
  release(e: ReleaseEvent): void;
}

const scope = new AsyncLocalStorage<readonly Observer[]>();

/** Runs `fn` (one request) so that what it publishes reaches `observers`. */
export function observed<T>(observers: readonly Observer[], fn: () => T): T {
  return scope.run(observers, fn);
}

const isRecord = (m: unknown): m is Record<string, unknown> => typeof m === "object" && m !== null;

function asAttestation(m: unknown): AttestationEvent | undefined {
  if (!isRecord(m) || (m.mode !== "key" && m.mode !== "tpm")) return undefined;
  if (typeof m.status !== "string" || typeof m.durationMs !== "number") return undefined;
  return { mode: m.mode, status: m.status, durationMs: m.durationMs };
}

function asRelease(m: unknown): ReleaseEvent | undefined {
  if (!isRecord(m) || (m.outcome !== "released" && m.outcome !== "refused")) return undefined;
  if (typeof m.durationMs !== "number" || (m.code !== undefined && typeof m.code !== "string"))
    return undefined;
  return { outcome: m.outcome, durationMs: m.durationMs, ...(m.code !== undefined ? { code: m.code } : {}) };
}

// Subscribed once per process, at first import; a message of another shape is ignored rather
// than thrown back into the publisher's use case.
diagnostics.subscribe(ATTESTATION_CHANNEL, (m) => {
  const e = asAttestation(m);
  if (e) for (const o of scope.getStore() ?? []) o.attestation(e);
});
diagnostics.subscribe(RELEASE_CHANNEL, (m) => {
  const e = asRelease(m);
  if (e) for (const o of scope.getStore() ?? []) o.release(e);
});
