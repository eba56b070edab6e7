/**
 * Binary structures declared once (STYLE.md habits 2, 4, 5).
 *
 * A {@link Codec} pairs a bounded decoder with a deterministic encoder; its TypeScript type
 * is derived with {@link Infer}. Decoding goes through one {@link Reader} cursor that checks
 * what remains before every read and reports failures as {@link DecodeError} with the byte
 * offset and the structure path. Parsed objects can keep the exact bytes they came from
 * ({@link withRaw}) so signatures and digests are verified over received bytes.
 */
import { DecodeError, type CoreErrorCode } from "./errors.js";

export class Reader {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  offset: number;
  readonly end: number;
  private readonly pathStack: string[] = [];

  constructor(bytes: Uint8Array, offset = 0, end = bytes.length) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.offset = offset;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.offset;
  }

  get path(): string {
    return this.pathStack.join(".");
  }

  /** Runs `fn` with `name` appended to the error path. */
  at<T>(name: string, fn: () => T): T {
    this.pathStack.push(name);
    try {
      return fn();
    } finally {
      this.pathStack.pop();
    }
  }

  fail(code: CoreErrorCode, message: string, offset = this.offset): never {
    throw new DecodeError(code, `${message} at offset ${offset}${this.path ? ` (${this.path})` : ""}`, {
      offset,
      path: this.path,
    });
  }

  need(n: number): void {
    if (n < 0 || n > this.remaining) {
      this.fail("CORE_ERR_TRUNCATED", `need ${n} bytes, ${this.remaining} left`);
    }
  }

  u8(): number {
    this.need(1);
    return this.view.getUint8(this.offset++);
  }
  u16(le: boolean): number {
    this.need(2);
    const v = this.view.getUint16(this.offset, le);
    this.offset += 2;
    return v;
  }
  u32(le: boolean): number {
    this.need(4);
    const v = this.view.getUint32(this.offset, le);
    this.offset += 4;
    return v;
  }
  u64(le: boolean): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.offset, le);
    this.offset += 8;
    return v;
  }
  /** A view (not a copy) of the next `n` bytes: the received bytes themselves. */
  take(n: number): Uint8Array {
    this.need(n);
    const out = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }
  /** A reader over the next `n` bytes that cannot read past them. */
  sub(n: number): Reader {
    this.need(n);
    const r = new Reader(this.bytes, this.offset, this.offset + n);
    r.pathStack.push(...this.pathStack);
    this.offset += n;
    return r;
  }
  expectEnd(): void {
    if (this.remaining !== 0) this.fail("CORE_ERR_TRAILING", `${this.remaining} unexpected trailing bytes`);
  }
}

export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  length = 0;

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
  }
  private grow(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.grow(1);
    this.view.setUint8(this.length++, v);
  }
  u16(v: number, le: boolean): void {
    this.grow(2);
    this.view.setUint16(this.length, v, le);
    this.length += 2;
  }
  u32(v: number, le: boolean): void {
    this.grow(4);
    this.view.setUint32(this.length, v, le);
    this.length += 4;
  }
  u64(v: bigint, le: boolean): void {
    this.grow(8);
    this.view.setBigUint64(this.length, v, le);
    this.length += 8;
  }
  bytes(b: Uint8Array): void {
    this.grow(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  /** Overwrites a previously written u16/u32 (for length prefixes). */
  patchU16(at: number, v: number, le: boolean): void {
    this.view.setUint16(at, v, le);
  }
  patchU32(at: number, v: number, le: boolean): void {
    this.view.setUint32(at, v, le);
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

export interface Codec<T> {
  /** Spec name, e.g. `TPMS_ATTEST` or `EFI_SIGNATURE_LIST`. */
  readonly name: string;
  decode(r: Reader): T;
  encode(w: Writer, value: T): void;
}
export type Infer<C> = C extends Codec<infer T> ? T : never;

/** Decodes a whole buffer; trailing bytes are an error unless `allowTrailing`. */
export function decode<T>(codec: Codec<T>, bytes: Uint8Array, opts: { allowTrailing?: boolean } = {}): T {
  const r = new Reader(bytes);
  const v = r.at(codec.name, () => codec.decode(r));
  if (!opts.allowTrailing) r.at(codec.name, () => r.expectEnd());
  return v;
}

export function encode<T>(codec: Codec<T>, value: T): Uint8Array {
  const w = new Writer();
  codec.encode(w, value);
  return w.finish();
}

function intCodec(name: string, size: 1 | 2 | 4, le: boolean): Codec<number> {
  const max = 2 ** (size * 8) - 1;
  return {
    name,
    decode: (r) => (size === 1 ? r.u8() : size === 2 ? r.u16(le) : r.u32(le)),
    encode: (w, v) => {
      if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${name}: ${v} out of range`);
      if (size === 1) w.u8(v);
      else if (size === 2) w.u16(v, le);
      else w.u32(v, le);
    },
  };
}

export const u8 = intCodec("u8", 1, false);
export const u16be = intCodec("u16be", 2, false);
export const u16le = intCodec("u16le", 2, true);
export const u32be = intCodec("u32be", 4, false);
export const u32le = intCodec("u32le", 4, true);
export const u64be: Codec<bigint> = {
  name: "u64be",
  decode: (r) => r.u64(false),
  encode: (w, v) => w.u64(v, false),
};
export const u64le: Codec<bigint> = {
  name: "u64le",
  decode: (r) => r.u64(true),
  encode: (w, v) => w.u64(v, true),
};

/** Exactly `n` bytes. */
export function fixedBytes(n: number, name = `BYTE[${n}]`): Codec<Uint8Array> {
  return {
    name,
    decode: (r) => r.take(n),
    encode: (w, v) => {
      if (v.length !== n) throw new RangeError(`${name}: expected ${n} bytes, got ${v.length}`);
      w.bytes(v);
    },
  };
}

/** Length-prefixed bytes (e.g. TPM2B_*), with the length capped before anything is read. */
export function sizedBytes(len: Codec<number>, max: number, name = "sized"): Codec<Uint8Array> {
  return {
    name,
    decode: (r) => {
      const n = len.decode(r);
      if (n > max) r.fail("CORE_ERR_LIMIT", `length ${n} exceeds ${max}`, r.offset - 1);
      return r.take(n);
    },
    encode: (w, v) => {
      if (v.length > max) throw new RangeError(`${name}: length ${v.length} exceeds ${max}`);
      len.encode(w, v.length);
      w.bytes(v);
    },
  };
}

/** A structure nested inside a length prefix (e.g. TPM2B_PUBLIC around TPMT_PUBLIC). */
export function sized<T>(len: Codec<number>, max: number, inner: Codec<T>, name = inner.name): Codec<T> {
  return {
    name,
    decode: (r) => {
      const n = len.decode(r);
      if (n > max) r.fail("CORE_ERR_LIMIT", `length ${n} exceeds ${max}`);
      const sub = r.sub(n);
      const v = sub.at(inner.name, () => inner.decode(sub));
      sub.expectEnd();
      return v;
    },
    encode: (w, v) => {
      const body = encode(inner, v);
      len.encode(w, body.length);
      w.bytes(body);
    },
  };
}

/** Remaining bytes of the current (sub)reader. */
export const rest: Codec<Uint8Array> = {
  name: "rest",
  decode: (r) => r.take(r.remaining),
  encode: (w, v) => w.bytes(v),
};

/** A count-prefixed list, with the count capped before anything is allocated. */
export function list<T>(
  count: Codec<number>,
  max: number,
  item: Codec<T>,
  name = `${item.name}[]`,
): Codec<T[]> {
  return {
    name,
    decode: (r) => {
      const n = count.decode(r);
      if (n > max) r.fail("CORE_ERR_LIMIT", `count ${n} exceeds ${max}`);
      const out: T[] = [];
      for (let i = 0; i < n; i++) out.push(r.at(`[${i}]`, () => item.decode(r)));
      return out;
    },
    encode: (w, v) => {
      if (v.length > max) throw new RangeError(`${name}: count ${v.length} exceeds ${max}`);
      count.encode(w, v.length);
      for (const x of v) item.encode(w, x);
    },
  };
}

type FieldCodecs<T> = { [K in keyof T]: Codec<T[K]> | ((partial: Partial<T>) => Codec<T[K]>) };

/**
 * An ordered structure. A field may be a function of the fields before it, which is how
 * unions selected by an earlier tag (TPMU_*, EFI variable payloads) are declared.
 */
export function struct<T extends object>(name: string, fields: FieldCodecs<T>): Codec<T> {
  const entries = Object.entries(fields) as [keyof T & string, FieldCodecs<T>[keyof T]][];
  const pick = (f: FieldCodecs<T>[keyof T], partial: Partial<T>): Codec<T[keyof T]> =>
    typeof f === "function" ? (f as (p: Partial<T>) => Codec<T[keyof T]>)(partial) : f;
  return {
    name,
    decode: (r) => {
      const out: Record<string, unknown> = {};
      for (const [key, f] of entries) {
        const c = pick(f, out as Partial<T>);
        out[key] = r.at(key, () => c.decode(r));
      }
      return out as T;
    },
    encode: (w, v) => {
      const partial: Partial<T> = {};
      for (const [key, f] of entries) {
        pick(f, partial).encode(w, v[key]);
        partial[key] = v[key];
      }
    },
  };
}

/** Decodes with `inner` and also returns the exact bytes consumed. */
export function withRaw<T>(inner: Codec<T>): Codec<{ value: T; raw: Uint8Array }> {
  return {
    name: inner.name,
    decode: (r) => {
      const start = r.offset;
      const value = inner.decode(r);
      return { value, raw: r.bytes.subarray(start, r.offset) };
    },
    encode: (w, v) => w.bytes(v.raw),
  };
}

/** A value that must equal `expected` (magic numbers, versions). */
export function constant<T extends number | bigint>(
  inner: Codec<T>,
  expected: T,
  name = inner.name,
): Codec<T> {
  return {
    name,
    decode: (r) => {
      const at = r.offset;
      const v = inner.decode(r);
      if (v !== expected) r.fail("CORE_ERR_INVALID", `expected ${String(expected)}, got ${String(v)}`, at);
      return v;
    },
    encode: (w, v) => inner.encode(w, v),
  };
}

/** A codec chosen by a selector value; unknown selectors are a typed error. */
export function union<K extends number, T>(
  name: string,
  selector: K,
  arms: Partial<Record<number, Codec<T>>>,
): Codec<T> {
  const arm = arms[selector];
  if (arm) return arm;
  return {
    name,
    decode: (r) => r.fail("CORE_ERR_INVALID", `${name}: unsupported selector 0x${selector.toString(16)}`),
    encode: () => {
      throw new RangeError(`${name}: unsupported selector 0x${selector.toString(16)}`);
    },
  };
}
