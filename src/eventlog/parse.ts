/**
 * Parsing TCG PC Client event logs: crypto-agile logs (a TCG_EfiSpecIdEvent header in SHA-1
 * format, then TCG_PCR_EVENT2 entries; PFP 1.05 section 10.2.2 and 10.4.5.1) and legacy SHA-1
 * logs (TCG_PCClientPCREvent entries only; PFP 10.2.1).
 *
 * The parser is total and bounded: it returns a {@link EventLog} or throws an
 * {@link EventlogError}; counts and lengths are checked against what remains before any
 * allocation. Every event keeps its received bytes (`raw`, `data`), which replay and proof use.
 */
import { decode, encode, Reader, Writer } from "../core/codec.js";
import { DecodeError } from "../core/errors.js";
import { HASHES } from "../tpm/alg.js";
import { type EventlogError, eventlogError, isEventlogError } from "./errors.js";
import { EventType, eventTypeName } from "./event-types.js";
import {
  TCG_EfiSpecIdEvent,
  TCG_EfiStartupLocalityEvent,
  TCG_PCClientPCREvent,
  TCG_PCR_EVENT2,
  type TCG_EfiSpecIdEvent as SpecIdEvent,
} from "./structures.js";

export type EventLogFormat = "crypto-agile" | "sha1";

export interface EventDigest {
  /** TPM_ALG_ID of the bank (TPM 2.0 Part 2, Table 9). */
  readonly alg: number;
  /** tpm2-tools' name for it (sha1, sha256, ...), or `0x....` when unknown. */
  readonly bank: string;
  readonly digest: Uint8Array;
}

export interface TcgEvent {
  /** Position in the log, counting the header event as 0 (as tpm2_eventlog's EventNum does). */
  readonly index: number;
  /** Byte offset of the event in the log. */
  readonly offset: number;
  /** Which structure carried it. */
  readonly structure: "TCG_PCClientPCREvent" | "TCG_PCR_EVENT2";
  readonly pcrIndex: number;
  readonly eventType: number;
  /** Spec name of the event type (EV_SEPARATOR, ...). */
  readonly typeName: string;
  readonly digests: readonly EventDigest[];
  /** The event data, as received. */
  readonly data: Uint8Array;
  /** The whole event structure, as received. */
  readonly raw: Uint8Array;
}

export interface Bank {
  readonly alg: number;
  readonly bank: string;
  readonly digestSize: number;
}

export interface EventLog {
  readonly format: EventLogFormat;
  /** The decoded TCG_EfiSpecIdEvent of a crypto-agile log; null for a legacy SHA-1 log. */
  readonly specId: SpecIdEvent | null;
  /** The banks the log declares (crypto-agile: from the Spec ID event; legacy: SHA-1 only). */
  readonly banks: readonly Bank[];
  /** Every event, the header included. */
  readonly events: readonly TcgEvent[];
  /**
   * Named workaround "zero-padding": firmware log areas (e.g. the ACPI LASA region) are
   * zero-filled after the last event; the count of such trailing zero bytes, which are not events.
   */
  readonly trailingZeroBytes: number;
  readonly raw: Uint8Array;
}

export interface ParseOptions {
  /** Refuse larger logs (default 64 MiB). */
  readonly maxBytes?: number;
  /** Refuse logs with more events (default 1,000,000). */
  readonly maxEvents?: number;
}

const SPEC_ID_03 = "Spec ID Event03\0";
/** TCG EFI Platform 1.22 headers of SHA-1 logs (TCG_EfiSpecIdEventStruct). */
const SPEC_ID_LEGACY = ["Spec ID Event00\0", "Spec ID Event02\0"];
const SHA1 = 0x0004;

export function bankName(alg: number): string {
  return HASHES.get(alg)?.name ?? `0x${alg.toString(16).padStart(4, "0")}`;
}

function startsWith(data: Uint8Array, sig: string): boolean {
  if (data.length < sig.length) return false;
  for (let i = 0; i < sig.length; i++) if (data[i] !== sig.charCodeAt(i)) return false;
  return true;
}

function malformed(e: DecodeError, index: number): EventlogError {
  return eventlogError(
    "EVENTLOG_ERR_MALFORMED",
    `event ${index}: ${e.message}`,
    { ...e.details, event: index, reason: e.code },
    { cause: e },
  );
}

function isZero(b: Uint8Array): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

/** Validates the Spec ID event and returns the banks it declares. */
function specIdBanks(data: Uint8Array, offset: number): { specId: SpecIdEvent; banks: Bank[] } {
  let specId: SpecIdEvent;
  try {
    specId = decode(TCG_EfiSpecIdEvent, data);
  } catch (e) {
    if (e instanceof DecodeError) {
      throw eventlogError("EVENTLOG_ERR_SPEC_ID", `TCG_EfiSpecIdEvent: ${e.message}`, {
        offset: offset + 32 + (e.details.offset ?? 0),
        path: e.details.path ?? "",
        event: 0,
      });
    }
    throw e;
  }
  if (specId.digestSizes.length === 0) {
    throw eventlogError("EVENTLOG_ERR_SPEC_ID", "TCG_EfiSpecIdEvent declares no digest algorithms", {
      event: 0,
    });
  }
  const banks: Bank[] = [];
  for (const { algorithmId, digestSize } of specId.digestSizes) {
    const known = HASHES.get(algorithmId);
    if (known && known.size !== digestSize) {
      throw eventlogError(
        "EVENTLOG_ERR_SPEC_ID",
        `TCG_EfiSpecIdEvent gives ${known.name} a digest size of ${digestSize}, not ${known.size}`,
        { event: 0, alg: algorithmId },
      );
    }
    if (digestSize === 0 || digestSize > 512) {
      throw eventlogError(
        "EVENTLOG_ERR_SPEC_ID",
        `TCG_EfiSpecIdEvent digest size ${digestSize} is not plausible`,
        {
          event: 0,
          alg: algorithmId,
        },
      );
    }
    if (banks.some((b) => b.alg === algorithmId)) {
      throw eventlogError(
        "EVENTLOG_ERR_SPEC_ID",
        `TCG_EfiSpecIdEvent declares ${bankName(algorithmId)} twice`,
        {
          event: 0,
          alg: algorithmId,
        },
      );
    }
    banks.push({ alg: algorithmId, bank: bankName(algorithmId), digestSize });
  }
  return { specId, banks };
}

/** Parses a TCG PC Client event log (e.g. /sys/kernel/security/tpm0/binary_bios_measurements). */
export function parseEventLog(bytes: Uint8Array, opts: ParseOptions = {}): EventLog {
  const maxBytes = opts.maxBytes ?? 64 << 20;
  const maxEvents = opts.maxEvents ?? 1_000_000;
  if (bytes.length > maxBytes) {
    throw eventlogError("EVENTLOG_ERR_TOO_LARGE", `event log of ${bytes.length} bytes exceeds ${maxBytes}`, {
      size: bytes.length,
    });
  }
  const r = new Reader(bytes);
  const events: TcgEvent[] = [];
  let format: EventLogFormat = "sha1";
  let specId: SpecIdEvent | null = null;
  let banks: Bank[] = [{ alg: SHA1, bank: "sha1", digestSize: 20 }];
  let sizes = new Map<number, number>();

  const readLegacy = (index: number): TcgEvent => {
    const offset = r.offset;
    try {
      const e = r.at(`events[${index}]`, () =>
        r.at("TCG_PCClientPCREvent", () => TCG_PCClientPCREvent.decode(r)),
      );
      return {
        index,
        offset,
        structure: "TCG_PCClientPCREvent",
        pcrIndex: e.PCRIndex,
        eventType: e.EventType,
        typeName: eventTypeName(e.EventType),
        digests: [{ alg: SHA1, bank: "sha1", digest: e.Digest }],
        data: e.Event,
        raw: bytes.subarray(offset, r.offset),
      };
    } catch (e) {
      throw e instanceof DecodeError ? malformed(e, index) : e;
    }
  };

  if (r.remaining === 0) {
    throw eventlogError("EVENTLOG_ERR_MALFORMED", "the event log is empty", { offset: 0, event: 0 });
  }
  const first = readLegacy(0);
  events.push(first);
  if (first.eventType === EventType.EV_NO_ACTION && startsWith(first.data, SPEC_ID_03)) {
    if (first.pcrIndex !== 0 || !isZero(first.digests[0]!.digest)) {
      throw eventlogError("EVENTLOG_ERR_SPEC_ID", "the Spec ID event must be on PCR 0 with a zero digest", {
        offset: 0,
        event: 0,
      });
    }
    const s = specIdBanks(first.data, first.offset);
    format = "crypto-agile";
    specId = s.specId;
    banks = s.banks;
    sizes = new Map(banks.map((b) => [b.alg, b.digestSize]));
  } else if (
    first.eventType === EventType.EV_NO_ACTION &&
    SPEC_ID_LEGACY.some((s) => startsWith(first.data, s))
  ) {
    format = "sha1";
  }

  const codec = format === "crypto-agile" ? TCG_PCR_EVENT2(sizes) : null;
  let trailingZeroBytes = 0;
  while (r.remaining > 0) {
    const index = events.length;
    if (index >= maxEvents) {
      throw eventlogError("EVENTLOG_ERR_TOO_LARGE", `event log has more than ${maxEvents} events`, {
        offset: r.offset,
      });
    }
    if (isZero(bytes.subarray(r.offset, r.end))) {
      trailingZeroBytes = r.remaining;
      break;
    }
    if (!codec) {
      events.push(readLegacy(index));
      continue;
    }
    const offset = r.offset;
    try {
      const e = r.at(`events[${index}]`, () => r.at("TCG_PCR_EVENT2", () => codec.decode(r)));
      const seen = new Set<number>();
      for (const d of e.Digests) {
        if (seen.has(d.hashAlg)) {
          throw eventlogError(
            "EVENTLOG_ERR_ALGORITHM",
            `event ${index} carries two ${bankName(d.hashAlg)} digests`,
            {
              offset,
              event: index,
              alg: d.hashAlg,
            },
          );
        }
        seen.add(d.hashAlg);
      }
      events.push({
        index,
        offset,
        structure: "TCG_PCR_EVENT2",
        pcrIndex: e.PCRIndex,
        eventType: e.EventType,
        typeName: eventTypeName(e.EventType),
        digests: e.Digests.map((d) => ({ alg: d.hashAlg, bank: bankName(d.hashAlg), digest: d.digest })),
        data: e.Event,
        raw: bytes.subarray(offset, r.offset),
      });
    } catch (e) {
      if (isEventlogError(e) && e.details.event === undefined) {
        throw eventlogError(
          e.code,
          `event ${index}: ${e.message}`,
          { ...e.details, event: index },
          { cause: e },
        );
      }
      throw e instanceof DecodeError ? malformed(e, index) : e;
    }
  }
  return { format, specId, banks, events, trailingZeroBytes, raw: bytes };
}

/**
 * Re-encodes a parsed log from its decoded fields through the same declarations the parser
 * used; for a log without zero padding the result equals the input (STYLE.md habit 9).
 */
export function encodeEventLog(log: EventLog): Uint8Array {
  const w = new Writer(log.raw.length + 16);
  const sizes = new Map(log.banks.map((b) => [b.alg, b.digestSize]));
  const agile = TCG_PCR_EVENT2(sizes);
  for (const e of log.events) {
    if (e.structure === "TCG_PCClientPCREvent") {
      const digest = e.digests[0]?.digest ?? new Uint8Array(20);
      TCG_PCClientPCREvent.encode(w, {
        PCRIndex: e.pcrIndex,
        EventType: e.eventType,
        Digest: digest,
        Event: e.data,
      });
    } else {
      agile.encode(w, {
        PCRIndex: e.pcrIndex,
        EventType: e.eventType,
        Digests: e.digests.map((d) => ({ hashAlg: d.alg, digest: d.digest })),
        Event: e.data,
      });
    }
  }
  if (log.trailingZeroBytes > 0) w.bytes(new Uint8Array(log.trailingZeroBytes));
  return w.finish();
}

/** The Spec ID header as an encoded TCG_EfiSpecIdEvent (for building logs in tests and tools). */
export function encodeSpecId(specId: SpecIdEvent): Uint8Array {
  return encode(TCG_EfiSpecIdEvent, specId);
}

/** The startup locality recorded by a TCG_EfiStartupLocalityEvent (PFP 10.4.5.3), if any. */
export function startupLocality(log: EventLog): { locality: number; event: number } | null {
  for (const e of log.events) {
    if (
      e.eventType !== EventType.EV_NO_ACTION ||
      e.pcrIndex !== 0 ||
      !startsWith(e.data, "StartupLocality\0")
    )
      continue;
    try {
      return { locality: decode(TCG_EfiStartupLocalityEvent, e.data).StartupLocality, event: e.index };
    } catch {
      return null;
    }
  }
  return null;
}
