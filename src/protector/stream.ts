/**
 * Authenticated chunked encryption of a byte stream: QEMU's migration stream saved to a file
 * (saved state) and, with the same framing, the live-migration channel. Format in
 * docs/formats/saved-state.md; the layout is declared once below.
 *
 * Construction: per-stream keys from HKDF-SHA256 (RFC 5869) over the VM's state key, salted
 * with a random 256-bit stream id and bound to every header field; each chunk is AES-256-GCM
 * (NIST SP 800-38D) with a deterministic nonce (§8.2.1: a 32-bit fixed field from HKDF and the
 * 64-bit chunk sequence number) and associated data = SHA-256(header) | sequence | length/final
 * flag. The final flag is the STREAM construction's end marker (Hoang, Reyhanitabar, Rogaway,
 * Vizár, "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015).
 * So flipped bits, truncation, reordering, dropped or duplicated chunks, chunks spliced from
 * another stream, and a wrong key or edited header are all detected, each with its own code.
 *
 * Decryption never releases a chunk's plaintext before the chunk's tag has verified. What it
 * cannot do: tell a truncated stream's consumer to un-read chunks already verified and pushed;
 * a consumer that must be all-or-nothing (restore) waits for the stream's successful end.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { Transform, type TransformCallback, type TransformOptions } from "node:stream";
import { setImmediate as nextTurn } from "node:timers/promises";
import { constant, decode, encode, fixedBytes, struct, u16be, u32be, type Infer } from "../core/codec.js";
import { decodeAs, type ProtectorError, protectorError } from "./errors.js";
import { hkdf, zeroize } from "./kdf.js";
import { secretsEqual } from "../core/bytes.js";

export const STREAM_MAGIC = 0x42575353; // "BWSS"
export const STREAM_VERSION = 1;
export const STREAM_AEAD_AES256GCM = 2; // RFC 9180 §7.3 identifier, reused as a label
export const MIN_CHUNK_SIZE = 4 * 1024;
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
export const STREAM_HEADER_BYTES = 80;
const TAG = 16;
/**
 * Largest slice handed to one Cipher.update: node allocates a fresh output buffer per call, and
 * buffers above glibc's mmap threshold (128 KiB) cost page faults; measured in bench/stream-cipher.ts.
 */
const UPDATE_SLICE = 128 * 1024;
/** The `o`th-byte slice of `piece` for one Cipher.update; a piece that fits whole is not re-viewed. */
function slice(piece: Buffer, o: number): Buffer {
  return piece.length <= UPDATE_SLICE ? piece : piece.subarray(o, o + UPDATE_SLICE);
}
const FINAL = 0x80000000;
const INFO = Buffer.from("bulwark state stream v1\0");

/** What the stream carries; bound into the key derivation. */
export const StreamPurpose = { savedState: 1, migration: 2 } as const;
export type StreamPurposeName = keyof typeof StreamPurpose;

/** BULWARK_STATE_STREAM_HEADER (80 octets). */
export const StreamHeader = struct("BULWARK_STATE_STREAM_HEADER", {
  magic: constant(u32be, STREAM_MAGIC),
  version: u16be,
  aead: u16be,
  purpose: u16be,
  reserved: u16be,
  chunkSize: u32be,
  streamId: fixedBytes(32, "streamId"),
  keyCheck: fixedBytes(32, "keyCheck"),
});
export type StreamHeader = Infer<typeof StreamHeader>;

interface StreamKeys {
  readonly key: Buffer;
  readonly noncePrefix: Buffer;
  readonly keyCheck: Buffer;
}

/** HKDF-SHA256(stateKey, salt = streamId, info = label | header[0..48] | context) → key | nonce prefix | key check. */
function deriveStreamKeys(
  stateKey: Uint8Array,
  headerWithoutCheck: Uint8Array,
  streamId: Uint8Array,
  context: Uint8Array,
): StreamKeys {
  const info = Buffer.concat([INFO, headerWithoutCheck, context]);
  const okm = hkdf("sha256", stateKey, streamId, info, 32 + 4 + 32);
  const keys = {
    key: Buffer.from(okm.subarray(0, 32)),
    noncePrefix: Buffer.from(okm.subarray(32, 36)),
    keyCheck: Buffer.from(okm.subarray(36, 68)),
  };
  zeroize(okm);
  return keys;
}

function checkStateKey(stateKey: Uint8Array): void {
  if (stateKey.length < 32) {
    throw protectorError("PROTECTOR_ERR_INVALID_ARGUMENT", "the state key must be at least 32 bytes");
  }
}

function validChunkSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_CHUNK_SIZE && n <= MAX_CHUNK_SIZE && (n & (n - 1)) === 0;
}

/** Per-chunk nonce and associated data, reusing two small buffers. */
class ChunkParams {
  readonly nonce = Buffer.alloc(12);
  readonly aad = Buffer.alloc(32 + 8 + 4);
  constructor(noncePrefix: Buffer, headerHash: Buffer) {
    noncePrefix.copy(this.nonce, 0);
    headerHash.copy(this.aad, 0);
  }
  set(seq: number, lengthField: number): void {
    const hi = Math.floor(seq / 0x100000000);
    const lo = seq >>> 0;
    this.nonce.writeUInt32BE(hi, 4);
    this.nonce.writeUInt32BE(lo, 8);
    this.aad.writeUInt32BE(hi, 32);
    this.aad.writeUInt32BE(lo, 36);
    this.aad.writeUInt32BE(lengthField, 40);
  }
}

/** A FIFO of byte pieces that hands out views (no copies) of the next n bytes. */
class ByteQueue {
  private pieces: Buffer[] = [];
  private head = 0;
  length = 0;

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.pieces.push(b);
    this.length += b.length;
  }
  /** Views of the next `n` bytes (n <= length), removed from the queue. */
  take(n: number): Buffer[] {
    const out: Buffer[] = [];
    let need = n;
    while (need > 0) {
      const p = this.pieces[this.head] as Buffer;
      if (p.length <= need) {
        out.push(p);
        need -= p.length;
        this.head++;
      } else {
        out.push(p.subarray(0, need));
        this.pieces[this.head] = p.subarray(need);
        need = 0;
      }
    }
    if (this.head > 64 && this.head * 2 > this.pieces.length) {
      this.pieces = this.pieces.slice(this.head);
      this.head = 0;
    }
    this.length -= n;
    return out;
  }
  /** The next `n` bytes as one buffer (copies when they span pieces). */
  takeContiguous(n: number): Buffer {
    const parts = this.take(n);
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, n);
  }
  /** Reads a u32be at the front without consuming it (length >= 4). */
  peekU32(): number {
    const p = this.pieces[this.head] as Buffer;
    if (p.length >= 4) return p.readUInt32BE(0);
    const parts = this.take(4);
    const b = Buffer.concat(parts, 4);
    this.pieces.splice(this.head, 0, b);
    this.length += 4;
    return b.readUInt32BE(0);
  }
  clear(): void {
    this.pieces = [];
    this.head = 0;
    this.length = 0;
  }
}

export interface EncryptOptions {
  /** Plaintext bytes per full chunk: a power of two, 4 KiB..16 MiB (default 1 MiB). */
  readonly chunkSize?: number;
  /** Default `savedState`. */
  readonly purpose?: StreamPurposeName;
  /**
   * Bytes both ends know but the stream does not carry (at most 1024), bound into the key
   * derivation: a migration session nonce from the destination, or a save identifier, so an
   * older recorded stream cannot be replayed in its place. Decrypting with other bytes is
   * PROTECTOR_ERR_STREAM_KEY.
   */
  readonly context?: Uint8Array;
}

function checkContext(context: Uint8Array | undefined): Uint8Array {
  if (context && context.length > 1024) {
    throw protectorError("PROTECTOR_ERR_INVALID_ARGUMENT", "the stream context is at most 1024 bytes");
  }
  return context ?? new Uint8Array(0);
}

type Sink = (b: Buffer) => void;

/**
 * Work split into small steps (a step ends after each cipher slice of at most UPDATE_SLICE
 * bytes), so a caller on the event loop can let I/O run between them: see {@link runCooperatively}.
 */
export type Steps = Generator<void, void>;

function runSteps(steps: Steps): void {
  for (let r = steps.next(); !r.done; r = steps.next()) {
    /* synchronous: no turn given to the event loop */
  }
}

/**
 * How long the streams run cipher work before they give the event loop a turn. Restoring and
 * saving pass QEMU's stream through a unix socket whose kernel buffer (~208 KiB) QEMU empties
 * or fills in about 0.2 ms; a 1 MiB chunk takes ~0.3 ms of AES-GCM, so without turns the
 * socket runs dry (or full) once per chunk and QEMU waits. Measured in bench/vm.ts.
 */
const TURN_AFTER_MS = 0.1;

/**
 * Runs `steps`, giving the event loop a turn (setImmediate: socket and file I/O run) whenever
 * they have run for TURN_AFTER_MS. Stops early, abandoning the steps (their `finally` blocks
 * run, so unverified plaintext is wiped), once `stopped()` says so.
 */
export async function runCooperatively(steps: Steps, stopped: () => boolean = () => false): Promise<void> {
  let since = performance.now();
  try {
    for (let r = steps.next(); !r.done; r = steps.next()) {
      if (performance.now() - since >= TURN_AFTER_MS) {
        await nextTurn();
        if (stopped()) return;
        since = performance.now();
      }
    }
  } finally {
    steps.return();
  }
}

/**
 * The encrypting state machine (push-based, synchronous): the Transform and the one-shot
 * helpers share it. Full chunks go out as soon as their bytes are in; `flush` seals what is
 * buffered as a short non-final chunk (live migration waits on replies, so data cannot sit).
 */
export class StreamSealer {
  readonly header: Buffer;
  readonly chunkSize: number;
  private readonly keys: StreamKeys;
  private readonly params: ChunkParams;
  private readonly pending = new ByteQueue();
  private seq = 0;
  private headerSent = false;
  private finished = false;

  constructor(stateKey: Uint8Array, opts: EncryptOptions = {}) {
    checkStateKey(stateKey);
    const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (!validChunkSize(chunkSize)) {
      throw protectorError(
        "PROTECTOR_ERR_INVALID_ARGUMENT",
        `chunk size ${chunkSize} must be a power of two from ${MIN_CHUNK_SIZE} to ${MAX_CHUNK_SIZE}`,
      );
    }
    const purpose = StreamPurpose[opts.purpose ?? "savedState"];
    if (purpose === undefined)
      throw protectorError("PROTECTOR_ERR_INVALID_ARGUMENT", "unknown stream purpose");
    this.chunkSize = chunkSize;
    const streamId = new Uint8Array(randomBytes(32));
    const draft = encode(StreamHeader, {
      magic: STREAM_MAGIC,
      version: STREAM_VERSION,
      aead: STREAM_AEAD_AES256GCM,
      purpose,
      reserved: 0,
      chunkSize,
      streamId,
      keyCheck: new Uint8Array(32),
    });
    this.keys = deriveStreamKeys(stateKey, draft.subarray(0, 48), streamId, checkContext(opts.context));
    this.header = Buffer.from(draft);
    this.keys.keyCheck.copy(this.header, 48);
    this.params = new ChunkParams(this.keys.noncePrefix, createHash("sha256").update(this.header).digest());
  }

  private sendHeader(out: Sink): void {
    if (!this.headerSent) {
      this.headerSent = true;
      out(this.header);
    }
  }

  /** Seals the next `n` pending bytes; yields after each slice (see {@link Steps}). */
  private *seal(n: number, final: boolean, out: Sink): Steps {
    const lengthField = (final ? FINAL : 0) | n;
    this.params.set(this.seq++, lengthField >>> 0);
    const c = createCipheriv("aes-256-gcm", this.keys.key, this.params.nonce, { authTagLength: TAG });
    c.setAAD(this.params.aad);
    const prefix = Buffer.allocUnsafe(4);
    prefix.writeUInt32BE(lengthField >>> 0);
    out(prefix);
    for (const piece of this.pending.take(n)) {
      for (let o = 0; o < piece.length; o += UPDATE_SLICE) {
        out(c.update(slice(piece, o)));
        yield;
      }
    }
    c.final();
    out(c.getAuthTag());
  }

  /**
   * Takes ownership of `data` until it is sealed (like a Writable's chunk): it is not copied,
   * so the caller must not modify it afterwards.
   */
  write(data: Uint8Array, out: Sink): void {
    runSteps(this.writeSteps(data, out));
  }

  /** {@link write} as steps, for callers that yield to the event loop between them. */
  *writeSteps(data: Uint8Array, out: Sink): Steps {
    if (this.finished) throw protectorError("PROTECTOR_ERR_INVALID_ARGUMENT", "write after the final chunk");
    this.sendHeader(out);
    this.pending.push(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length));
    while (this.pending.length >= this.chunkSize) yield* this.seal(this.chunkSize, false, out);
  }

  /** Seals buffered bytes now as a (short) non-final chunk; nothing happens when none are buffered. */
  flush(out: Sink): void {
    this.sendHeader(out);
    if (this.pending.length > 0 && !this.finished) runSteps(this.seal(this.pending.length, false, out));
  }

  /** Seals the final chunk (possibly empty) and forgets the key. */
  end(out: Sink): void {
    runSteps(this.endSteps(out));
  }

  /** {@link end} as steps. */
  *endSteps(out: Sink): Steps {
    if (this.finished) return;
    this.sendHeader(out);
    yield* this.seal(this.pending.length, true, out);
    this.finished = true;
    zeroize(this.keys.key, this.keys.noncePrefix);
  }

  /** Forgets the key without finishing (on errors and aborts). */
  destroy(): void {
    this.finished = true;
    this.pending.clear();
    zeroize(this.keys.key, this.keys.noncePrefix);
  }
}

export interface DecryptOptions {
  /** When given, a stream of another purpose is PROTECTOR_ERR_STREAM_HEADER. */
  readonly purpose?: StreamPurposeName;
  /** The context the stream was encrypted with (see {@link EncryptOptions.context}). */
  readonly context?: Uint8Array;
}

/** The decrypting state machine; emits plaintext only after each chunk's tag verified. */
export class StreamOpener {
  private readonly stateKey: Buffer;
  private readonly opts: DecryptOptions;
  private readonly context: Buffer;
  private readonly queue = new ByteQueue();
  private keys?: StreamKeys;
  private params?: ChunkParams;
  private headerInfo?: StreamHeader;
  private seq = 0;
  private offset = 0;
  private state: "header" | "chunks" | "done" | "failed" = "header";

  constructor(stateKey: Uint8Array, opts: DecryptOptions = {}) {
    checkStateKey(stateKey);
    this.stateKey = Buffer.from(stateKey); // own copy, zeroized once the stream keys exist
    this.opts = opts;
    this.context = Buffer.from(checkContext(opts.context));
  }

  get header(): StreamHeader | undefined {
    return this.headerInfo;
  }

  private fail(e: ProtectorError): never {
    this.destroy();
    throw e;
  }

  private readHeader(): void {
    const bytes = this.queue.takeContiguous(STREAM_HEADER_BYTES);
    this.offset += STREAM_HEADER_BYTES;
    let h: StreamHeader;
    try {
      h = decodeAs("PROTECTOR_ERR_STREAM_HEADER", "state stream header", () => decode(StreamHeader, bytes));
    } catch (e) {
      return this.fail(e as ProtectorError);
    }
    const headerError = (m: string) => this.fail(protectorError("PROTECTOR_ERR_STREAM_HEADER", m));
    if (h.version !== STREAM_VERSION) headerError(`state stream version ${h.version} is not supported`);
    if (h.aead !== STREAM_AEAD_AES256GCM) headerError(`state stream AEAD ${h.aead} is not supported`);
    if (h.reserved !== 0) headerError("state stream reserved field is not zero");
    if (!validChunkSize(h.chunkSize)) headerError(`state stream chunk size ${h.chunkSize} is not allowed`);
    const purpose = (Object.keys(StreamPurpose) as StreamPurposeName[]).find(
      (k) => StreamPurpose[k] === h.purpose,
    );
    if (!purpose) headerError(`state stream purpose ${h.purpose} is unknown`);
    if (this.opts.purpose && purpose !== this.opts.purpose) {
      headerError(`the stream is a ${purpose} stream, not ${this.opts.purpose}`);
    }
    const keys = deriveStreamKeys(this.stateKey, bytes.subarray(0, 48), h.streamId, this.context);
    zeroize(this.stateKey);
    if (!secretsEqual(keys.keyCheck, h.keyCheck)) {
      zeroize(keys.key, keys.noncePrefix);
      this.fail(
        protectorError(
          "PROTECTOR_ERR_STREAM_KEY",
          "the state stream's key check failed: wrong state key, or the header was modified",
        ),
      );
    }
    this.keys = keys;
    this.params = new ChunkParams(keys.noncePrefix, createHash("sha256").update(bytes).digest());
    this.headerInfo = h;
    this.state = "chunks";
  }

  /** Tries to open one chunk; returns false when more input is needed. Yields after each slice. */
  private *readChunk(out: Sink): Generator<void, boolean> {
    const keys = this.keys as StreamKeys;
    const params = this.params as ChunkParams;
    const chunkSize = (this.headerInfo as StreamHeader).chunkSize;
    if (this.queue.length < 4) return false;
    const lengthField = this.queue.peekU32();
    const final = (lengthField & FINAL) !== 0;
    const n = lengthField & ~FINAL;
    if (n > chunkSize || (!final && n === 0)) {
      this.fail(
        protectorError("PROTECTOR_ERR_STREAM_FRAME", `chunk ${this.seq} has an impossible length ${n}`, {
          chunk: this.seq,
          offset: this.offset,
        }),
      );
    }
    if (this.queue.length < 4 + n + TAG) return false;
    const chunkOffset = this.offset;
    this.queue.take(4);
    params.set(this.seq, lengthField >>> 0);
    const d = createDecipheriv("aes-256-gcm", keys.key, params.nonce, { authTagLength: TAG });
    d.setAAD(params.aad);
    const plain: Buffer[] = [];
    const ciphertext = this.queue.take(n);
    const tag = this.queue.takeContiguous(TAG);
    let verified = false;
    try {
      for (const piece of ciphertext) {
        for (let o = 0; o < piece.length; o += UPDATE_SLICE) {
          plain.push(d.update(slice(piece, o)));
          yield;
        }
      }
      d.setAuthTag(tag);
      d.final();
      verified = true;
    } catch {
      // the tag did not verify
    } finally {
      // Unverified plaintext never leaves: also when the caller abandons the steps midway.
      if (!verified) for (const p of plain) zeroize(p);
    }
    if (!verified) {
      this.fail(
        protectorError(
          "PROTECTOR_ERR_STREAM_CHUNK_AUTH",
          `chunk ${this.seq} at offset ${chunkOffset} failed authentication (altered, reordered, dropped, duplicated or from another stream)`,
          { chunk: this.seq, offset: chunkOffset },
        ),
      );
    }
    this.seq++;
    this.offset += 4 + n + TAG;
    for (const p of plain) out(p);
    if (final) {
      this.state = "done";
      zeroize(keys.key, keys.noncePrefix);
    }
    return true;
  }

  private trailing(): never {
    return this.fail(
      protectorError("PROTECTOR_ERR_STREAM_TRAILING", `data after the final chunk at offset ${this.offset}`, {
        offset: this.offset,
      }),
    );
  }

  /** Takes ownership of `data` (not copied) until the chunk it belongs to is opened. */
  write(data: Uint8Array, out: Sink): void {
    runSteps(this.writeSteps(data, out));
  }

  /** {@link write} as steps, for callers that yield to the event loop between them. */
  *writeSteps(data: Uint8Array, out: Sink): Steps {
    if (this.state === "failed")
      throw protectorError("PROTECTOR_ERR_INVALID_ARGUMENT", "write after a failure");
    if (data.length === 0) return;
    if (this.state === "done") this.trailing();
    this.queue.push(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length));
    if (this.state === "header") {
      if (this.queue.length < STREAM_HEADER_BYTES) return;
      this.readHeader();
    }
    yield* this.drain(out);
  }

  private *drain(out: Sink): Steps {
    while (this.state === "chunks" && (yield* this.readChunk(out))) {
      /* keep opening chunks */
    }
    if (this.state === "done" && this.queue.length > 0) this.trailing();
  }

  /** Checks the stream ended properly: after its final chunk. */
  end(): void {
    if (this.state === "done") return;
    const buffered = this.queue.length;
    const chunk = this.seq;
    this.fail(
      protectorError(
        "PROTECTOR_ERR_STREAM_TRUNCATED",
        this.state === "header"
          ? `the state stream ended inside its header (${buffered} bytes)`
          : `the state stream ended before its final chunk (after ${chunk} chunks, ${buffered} bytes of an incomplete one)`,
        { chunks: chunk, offset: this.offset + buffered },
      ),
    );
  }

  destroy(): void {
    this.state = this.state === "done" ? "done" : "failed";
    this.queue.clear();
    zeroize(this.stateKey);
    if (this.keys) zeroize(this.keys.key, this.keys.noncePrefix);
  }
}

function transformOptions(chunkSize: number, extra?: TransformOptions): TransformOptions {
  return { writableHighWaterMark: chunkSize, readableHighWaterMark: chunkSize, ...extra };
}

export interface EncryptStreamOptions extends EncryptOptions {
  /** Seal buffered bytes after this many idle milliseconds (live migration); default off. */
  readonly idleFlushMs?: number;
}

/** A Transform that encrypts: write plaintext, read header + chunks. */
export class EncryptStream extends Transform {
  private readonly sealer: StreamSealer;
  private readonly idleFlushMs: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** A chunk is being sealed across event-loop turns; a flush must wait for it. */
  private busy = false;
  private flushWanted = false;

  constructor(stateKey: Uint8Array, opts: EncryptStreamOptions = {}) {
    const sealer = new StreamSealer(stateKey, opts);
    super(transformOptions(sealer.chunkSize));
    this.sealer = sealer;
    this.idleFlushMs = opts.idleFlushMs;
  }

  private readonly sink: Sink = (b) => {
    this.push(b);
  };

  private readonly stopped = () => this.destroyed;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.busy = true;
    runCooperatively(this.sealer.writeSteps(chunk, this.sink), this.stopped).then(
      () => {
        this.busy = false;
        if (this.flushWanted) this.flushNow();
        if (this.idleFlushMs !== undefined) {
          clearTimeout(this.timer);
          this.timer = setTimeout(() => this.flushNow(), this.idleFlushMs);
          this.timer.unref();
        }
        cb();
      },
      (e: unknown) => {
        this.busy = false;
        cb(e as Error);
      },
    );
  }

  /** Seals and emits whatever is buffered now (a short chunk); after the chunk in progress, if any. */
  flushNow(): void {
    clearTimeout(this.timer);
    this.flushWanted = this.busy;
    if (!this.busy && !this.destroyed && !this.writableFinished) this.sealer.flush(this.sink);
  }

  override _flush(cb: TransformCallback): void {
    clearTimeout(this.timer);
    this.flushWanted = false;
    runCooperatively(this.sealer.endSteps(this.sink), this.stopped).then(
      () => cb(),
      (e: unknown) => cb(e as Error),
    );
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    clearTimeout(this.timer);
    this.sealer.destroy();
    cb(err);
  }
}

/** A Transform that decrypts and verifies: write header + chunks, read verified plaintext. */
export class DecryptStream extends Transform {
  private readonly opener: StreamOpener;

  constructor(stateKey: Uint8Array, opts: DecryptOptions = {}) {
    super(transformOptions(DEFAULT_CHUNK_SIZE));
    this.opener = new StreamOpener(stateKey, opts);
  }

  private readonly sink: Sink = (b) => {
    this.push(b);
  };

  /** The stream header, once read. */
  get header(): StreamHeader | undefined {
    return this.opener.header;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    runCooperatively(this.opener.writeSteps(chunk, this.sink), () => this.destroyed).then(
      () => cb(),
      (e: unknown) => cb(e as Error),
    );
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.opener.end();
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb();
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    this.opener.destroy();
    cb(err);
  }
}

export function createEncryptStream(stateKey: Uint8Array, opts: EncryptStreamOptions = {}): EncryptStream {
  return new EncryptStream(stateKey, opts);
}

export function createDecryptStream(stateKey: Uint8Array, opts: DecryptOptions = {}): DecryptStream {
  return new DecryptStream(stateKey, opts);
}

/** Encrypts a whole buffer (same format as the streams). */
export function encryptState(stateKey: Uint8Array, plaintext: Uint8Array, opts: EncryptOptions = {}): Buffer {
  const parts: Buffer[] = [];
  const s = new StreamSealer(stateKey, opts);
  s.write(plaintext, (b) => parts.push(b));
  s.end((b) => parts.push(b));
  return Buffer.concat(parts);
}

/** Decrypts and verifies a whole buffer; any defect is a typed PROTECTOR_ERR_STREAM_* error. */
export function decryptState(
  stateKey: Uint8Array,
  ciphertext: Uint8Array,
  opts: DecryptOptions = {},
): Buffer {
  const parts: Buffer[] = [];
  const o = new StreamOpener(stateKey, opts);
  o.write(ciphertext, (b) => parts.push(b));
  o.end();
  return Buffer.concat(parts);
}
