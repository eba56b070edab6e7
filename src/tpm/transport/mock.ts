/**
 * In-memory transports for transcript tests: {@link RecordingTransport} wraps a real one and
 * keeps every command/response pair; {@link ReplayTransport} answers from such a transcript and
 * fails with TPM_ERR_TRANSCRIPT_MISMATCH on any command that differs from the recording.
 * Transcripts are JSON (hex strings) so they can live in test/vectors/tpm/.
 */
import { tpmError } from "../errors.js";
import type { Transport } from "./transport.js";
import { toHex } from "../../core/bytes.js";

export interface TranscriptEntry {
  readonly command: string;
  readonly response: string;
}
export interface Transcript {
  readonly description: string;
  readonly entries: readonly TranscriptEntry[];
}

export class RecordingTransport implements Transport {
  readonly entries: TranscriptEntry[] = [];
  constructor(private readonly inner: Transport) {}

  async send(command: Uint8Array): Promise<Uint8Array> {
    const rsp = await this.inner.send(command);
    this.entries.push({ command: toHex(command), response: toHex(rsp) });
    return rsp;
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  transcript(description: string): Transcript {
    return { description, entries: [...this.entries] };
  }
}

export class ReplayTransport implements Transport {
  private next = 0;
  constructor(private readonly transcript: Transcript) {}

  send(command: Uint8Array): Promise<Uint8Array> {
    const i = this.next;
    const entry = this.transcript.entries[i];
    if (!entry) {
      return Promise.reject(
        tpmError("TPM_ERR_TRANSCRIPT_MISMATCH", `command ${i} is beyond the recorded transcript`, {
          index: i,
        }),
      );
    }
    if (entry.command !== toHex(command)) {
      return Promise.reject(
        tpmError("TPM_ERR_TRANSCRIPT_MISMATCH", `command ${i} differs from the recording`, {
          index: i,
          expected: entry.command,
          got: toHex(command),
        }),
      );
    }
    this.next++;
    return Promise.resolve(new Uint8Array(Buffer.from(entry.response, "hex")));
  }

  /** True when every recorded command was replayed. */
  get complete(): boolean {
    return this.next === this.transcript.entries.length;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
