/**
 * Event log error codes (STYLE.md habit 6). Every failure raised by src/eventlog is an
 * {@link EventlogError} carrying one of these codes; decoding failures also carry the byte
 * offset, the structure path and the index of the event being read.
 */
import { defineErrors, errorFactory, errorGuard, Exit, type BulwarkError } from "../core/errors.js";

export const EventlogErrors = defineErrors("EVENTLOG", {
  EVENTLOG_ERR_MALFORMED: {
    summary:
      "The event log is not a well-formed TCG PC Client log (a TCG_PCR_EVENT2 or TCG_PCClientPCREvent is truncated or exceeds a limit).",
    exit: Exit.invalidInput,
    http: 400,
  },
  EVENTLOG_ERR_SPEC_ID: {
    summary:
      "The log's first event is not a usable TCG_EfiSpecIdEvent (bad signature, no algorithms, or a digest size that contradicts the algorithm).",
    exit: Exit.invalidInput,
    http: 400,
  },
  EVENTLOG_ERR_ALGORITHM: {
    summary:
      "An event carries a digest for an algorithm the Spec ID event did not declare, or a bank uses a hash this host cannot compute.",
    exit: Exit.invalidInput,
    http: 400,
  },
  EVENTLOG_ERR_TOO_LARGE: {
    summary: "The event log exceeds the size or event-count limit; raise the limit only for a log you trust.",
    exit: Exit.invalidInput,
    http: 413,
  },
  EVENTLOG_ERR_FILE: {
    summary: "An event log or PCR value file cannot be read; check the path and permissions.",
    exit: Exit.io,
    http: 400,
  },
  EVENTLOG_ERR_PCR_VALUES: {
    summary:
      "The PCR values given to compare with are not valid (unknown bank, PCR index outside 0..23, or a digest of the wrong size).",
    exit: Exit.invalidInput,
    http: 400,
  },
});
export type EventlogErrorCode = keyof typeof EventlogErrors;

/** Raises this domain's errors: `throw eventlogError("...", "sentence", details)`. */
export const eventlogError = errorFactory(EventlogErrors, "EventlogError");
/** True for an error carrying one of this domain's codes. */
export const isEventlogError = errorGuard(EventlogErrors);
export type EventlogError = BulwarkError<EventlogErrorCode>;
