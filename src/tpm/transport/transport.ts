/**
 * The one interface every TPM transport implements (as go-tpm's `transport.TPM`): bytes of a
 * complete TPM 2.0 command in, bytes of the complete response out. Framing of the response
 * header (TCG TPM 2.0 Library Part 1, section 18: tag, responseSize, responseCode) is checked
 * here so each adapter only moves bytes.
 */
import { tpmError } from "../errors.js";

export interface Transport {
  /** Sends one command and resolves with the complete response. Calls are serialized. */
  send(command: Uint8Array): Promise<Uint8Array>;
  /** Releases the connection or device; further sends reconnect where the transport can. */
  close(): Promise<void>;
}

/** Largest response we accept (no TPM response comes near this; caps allocation). */
export const MAX_RESPONSE_SIZE = 64 * 1024;
export const HEADER_SIZE = 10;

/** Reads responseSize from a response header, checking it against what a TPM may send. */
export function responseSizeFromHeader(header: Uint8Array): number {
  if (header.length < HEADER_SIZE) {
    throw tpmError("TPM_ERR_MALFORMED_RESPONSE", `response header of ${header.length} bytes is too short`);
  }
  const size = new DataView(header.buffer, header.byteOffset, header.byteLength).getUint32(2, false);
  if (size < HEADER_SIZE || size > MAX_RESPONSE_SIZE) {
    throw tpmError("TPM_ERR_MALFORMED_RESPONSE", `response size ${size} out of range`, { size });
  }
  return size;
}

/** Runs sends one at a time on a transport that cannot interleave requests. */
export class Serializer {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}
