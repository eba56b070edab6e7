/**
 * TCG PC Client event logs: parse, replay, prove, judge.
 *
 * ```ts
 * const log = parseEventLog(bytes);                  // EventLog | EventlogError
 * const replay = replayEventLog(log);                // PCR values per bank
 * const verdict = verifyEventLog(log, { pcrs, requireSecureBoot: true });
 * verdict.findings;                                  // [{ id, expected, got, severity, ... }]
 * verdict.facts.secureBoot;                          // { enabled, proof, pcr, event }
 * isBound(verdict.facts.secureBoot!, verdict.boundPcrs);
 * ```
 *
 * Every fact carries a {@link Proof}: `proven` only when a digest in the log equals the hash
 * of the bytes the fact was read from. A proven fact is evidence about the boot once its PCR
 * replays to the TPM's value (`boundPcrs`); anything else is a claim of the log's author.
 * See verdict.ts for what is not checked here.
 */
export * from "./errors.js";
export * from "./event-types.js";
export * from "./parse.js";
export * from "./replay.js";
export * from "./proof.js";
export * from "./quirks.js";
export * from "./facts.js";
export * from "./verdict.js";
export * from "./pcr-values.js";
export { parseDevicePath, type DevicePath, type DevicePathNode } from "./devicepath.js";
export { describeEvent } from "./describe.js";
export { boundFacts, type BoundFacts } from "./bound.js";
