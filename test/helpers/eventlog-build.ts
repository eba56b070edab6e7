/**
 * Builds small TCG event logs for tests, through the library's own structure declarations.
 * Digests are computed from `measured` (default: the event data) so tests can state exactly
 * what a digest covers.
 */
import { createHash } from "node:crypto";
import { encode, Writer } from "../../src/core/codec.js";
import { EventType } from "../../src/eventlog/event-types.js";
import {
  TCG_EfiSpecIdEvent,
  TCG_PCClientPCREvent,
  TCG_PCR_EVENT2,
  UEFI_VARIABLE_DATA,
} from "../../src/eventlog/structures.js";
import { guidToBytes } from "../../src/uefi/guid.js";

export interface BuildEvent {
  pcr: number;
  type: number;
  data: Uint8Array;
  /** Bytes the digests are computed over (default `data`). */
  measured?: Uint8Array;
  /** Explicit digests per TPM_ALG_ID, overriding `measured`. */
  digests?: Map<number, Uint8Array>;
}

export const SHA1 = 0x0004;
export const SHA256 = 0x000b;
const NODE: Record<number, [string, number]> = {
  [SHA1]: ["sha1", 20],
  [SHA256]: ["sha256", 32],
  0x000c: ["sha384", 48],
};

export function hashAlg(alg: number, b: Uint8Array): Uint8Array {
  return new Uint8Array(createHash(NODE[alg]![0]).update(b).digest());
}

export function specIdData(algs: readonly number[], signature = "Spec ID Event03\0"): Uint8Array {
  return encode(TCG_EfiSpecIdEvent, {
    signature: new Uint8Array(Buffer.from(signature.padEnd(16, "\0").slice(0, 16), "latin1")),
    platformClass: 0,
    specVersionMinor: 0,
    specVersionMajor: 2,
    specErrata: 0,
    uintnSize: 2,
    digestSizes: algs.map((a) => ({ algorithmId: a, digestSize: NODE[a]?.[1] ?? 32 })),
    vendorInfo: new Uint8Array(0),
  });
}

/** A crypto-agile log: Spec ID header then TCG_PCR_EVENT2 events. */
export function buildAgileLog(
  events: readonly BuildEvent[],
  algs: readonly number[] = [SHA1, SHA256],
): Uint8Array {
  const w = new Writer();
  TCG_PCClientPCREvent.encode(w, {
    PCRIndex: 0,
    EventType: EventType.EV_NO_ACTION,
    Digest: new Uint8Array(20),
    Event: specIdData(algs),
  });
  const codec = TCG_PCR_EVENT2(new Map(algs.map((a) => [a, NODE[a]![1]])));
  for (const e of events) {
    codec.encode(w, {
      PCRIndex: e.pcr,
      EventType: e.type,
      Digests: algs.map((a) => ({
        hashAlg: a,
        digest:
          e.digests?.get(a) ??
          (e.type === EventType.EV_NO_ACTION
            ? new Uint8Array(NODE[a]![1])
            : hashAlg(a, e.measured ?? e.data)),
      })),
      Event: e.data,
    });
  }
  return w.finish();
}

/** A legacy SHA-1 log of TCG_PCClientPCREvent entries. */
export function buildSha1Log(events: readonly BuildEvent[]): Uint8Array {
  const w = new Writer();
  for (const e of events) {
    TCG_PCClientPCREvent.encode(w, {
      PCRIndex: e.pcr,
      EventType: e.type,
      Digest: e.digests?.get(SHA1) ?? hashAlg(SHA1, e.measured ?? e.data),
      Event: e.data,
    });
  }
  return w.finish();
}

export function utf16(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, "utf16le"));
}

export function variableData(guid: string, name: string, data: Uint8Array): Uint8Array {
  return encode(UEFI_VARIABLE_DATA, {
    VariableName: guid,
    UnicodeNameLength: name.length,
    VariableDataLength: data.length,
    UnicodeName: utf16(name),
    VariableData: data,
  });
}

export function ascii(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, "latin1"));
}

export { guidToBytes };
