/**
 * DER (ITU-T X.690 (02/2021), section 10 "Distinguished encoding rules") reader and writer.
 *
 * Reader ({@link parseDer}): total and bounded (STYLE.md habit 5). One cursor over the input checks
 * what remains before each read; definite lengths only (X.690 10.1); tags, lengths and integers must
 * be minimally encoded; nesting depth, element count and a single element's length are capped.
 * Every failure is an {@link Asn1Error} with a code, the byte offset and a path such as
 * `Certificate.tbsCertificate[6]`. Every node keeps its received bytes (`raw` = identifier +
 * length + contents, `content` = contents) as views into the input (STYLE.md habit 4): signatures
 * and digests are verified over those bytes, never over a re-encoding.
 *
 * Writer ({@link der}): deterministic. Each function returns the complete TLV encoding;
 * `der.setOf` sorts its members as X.690 11.6 requires; integers are minimal two's complement.
 */
import { Asn1Error, type Asn1ErrorCode } from "./errors.js";

/** Tag class, X.690 8.1.2.2 Table 1. */
export const TagClass = { universal: 0, application: 1, context: 2, private: 3 } as const;
export type TagClass = (typeof TagClass)[keyof typeof TagClass];

/** Identifier octets of the universal types used here (X.680 8.4 Table 1), constructed bit included. */
export const Tag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OBJECT_IDENTIFIER: 0x06,
  ENUMERATED: 0x0a,
  UTF8String: 0x0c,
  NumericString: 0x12,
  PrintableString: 0x13,
  T61String: 0x14,
  IA5String: 0x16,
  UTCTime: 0x17,
  GeneralizedTime: 0x18,
  VisibleString: 0x1a,
  UniversalString: 0x1c,
  BMPString: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

export interface DerNode {
  /**
   * The first identifier octet (class, constructed bit and tag number), e.g. 0x30 for SEQUENCE,
   * 0xa0 for a constructed [0]. For tag numbers >= 31 it is the class/constructed bits | 0x1f
   * and {@link tagNumber} holds the number.
   */
  readonly tag: number;
  readonly cls: TagClass;
  readonly constructed: boolean;
  readonly tagNumber: number;
  /** Offset of the identifier octet in the buffer given to {@link parseDer}. */
  readonly offset: number;
  /** Identifier + length octets. */
  readonly headerLength: number;
  /** The received bytes of this element: identifier, length and contents (a view, not a copy). */
  readonly raw: Uint8Array;
  /** The contents octets (a view). */
  readonly content: Uint8Array;
  /** Child elements of a constructed element, in received order; empty for primitives. */
  readonly children: readonly DerNode[];
  /** Path of this node for error messages, e.g. `SignedData[3][0]`. */
  readonly path: string;
}

export interface DerLimits {
  /** Maximum nesting depth (default 64). */
  readonly maxDepth?: number;
  /** Maximum number of elements in one parse (default 1,000,000). */
  readonly maxNodes?: number;
  /** Maximum contents length of one element (default 256 MiB). */
  readonly maxLength?: number;
}

const DEFAULTS = { maxDepth: 64, maxNodes: 1_000_000, maxLength: 256 * 1024 * 1024 };

export function asn1Fail(code: Asn1ErrorCode, message: string, offset: number, path: string): never {
  throw new Asn1Error(code, `${message} at offset ${offset}${path ? ` (${path})` : ""}`, { offset, path });
}

/**
 * Parses exactly one DER element covering all of `bytes` (trailing bytes are an error).
 * `name` starts the error path (e.g. "Certificate"). Offsets are relative to `bytes`, plus `baseOffset`.
 */
export function parseDer(bytes: Uint8Array, name = "", limits: DerLimits = {}, baseOffset = 0): DerNode {
  const lim = { ...DEFAULTS, ...limits };
  const state = { nodes: 0 };
  const node = parseNode(bytes, 0, bytes.length, 0, name, lim, state, baseOffset);
  if (node.raw.length !== bytes.length) {
    asn1Fail(
      "ASN1_ERR_TRAILING",
      `${bytes.length - node.raw.length} bytes after the element`,
      baseOffset + node.raw.length,
      name,
    );
  }
  return node;
}

/** Parses one DER element at the start of `bytes` and reports how many bytes it used. */
export function parseDerPrefix(bytes: Uint8Array, name = "", limits: DerLimits = {}): DerNode {
  const lim = { ...DEFAULTS, ...limits };
  return parseNode(bytes, 0, bytes.length, 0, name, lim, { nodes: 0 }, 0);
}

function parseNode(
  buf: Uint8Array,
  start: number,
  end: number,
  depth: number,
  path: string,
  lim: typeof DEFAULTS,
  state: { nodes: number },
  base: number,
): DerNode {
  if (depth > lim.maxDepth)
    asn1Fail("ASN1_ERR_LIMIT", `nesting deeper than ${lim.maxDepth}`, base + start, path);
  if (++state.nodes > lim.maxNodes)
    asn1Fail("ASN1_ERR_LIMIT", `more than ${lim.maxNodes} elements`, base + start, path);
  let p = start;
  const byte = (): number => {
    if (p >= end) asn1Fail("ASN1_ERR_TRUNCATED", "input ended inside a tag or length", base + p, path);
    return buf[p++] as number;
  };
  const first = byte();
  const cls = (first >> 6) as TagClass;
  const constructed = (first & 0x20) !== 0;
  let tagNumber = first & 0x1f;
  if (tagNumber === 0x1f) {
    // High tag number form, X.690 8.1.2.4: base-128, first subsequent octet not 0x80, number >= 31.
    tagNumber = 0;
    let b = byte();
    if (b === 0x80)
      asn1Fail("ASN1_ERR_NON_MINIMAL", "tag number with leading zero septet", base + p - 1, path);
    for (let i = 0; ; i++) {
      if (i >= 4) asn1Fail("ASN1_ERR_LIMIT", "tag number longer than 4 octets", base + p - 1, path);
      tagNumber = tagNumber * 128 + (b & 0x7f);
      if ((b & 0x80) === 0) break;
      b = byte();
    }
    if (tagNumber < 31)
      asn1Fail("ASN1_ERR_NON_MINIMAL", "tag number < 31 in high-tag form", base + start, path);
  }
  const lenAt = p;
  const l0 = byte();
  let length: number;
  if (l0 < 0x80) {
    length = l0;
  } else if (l0 === 0x80) {
    asn1Fail("ASN1_ERR_INDEFINITE_LENGTH", "indefinite length", base + lenAt, path);
  } else {
    const n = l0 & 0x7f;
    if (n > 4) asn1Fail("ASN1_ERR_LIMIT", `length of ${n} octets`, base + lenAt, path);
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + byte();
    // X.690 10.1: the definite form with the minimum number of octets.
    if (length < 0x80 || (n > 1 && buf[lenAt + 1] === 0)) {
      asn1Fail("ASN1_ERR_NON_MINIMAL", "length not minimally encoded", base + lenAt, path);
    }
  }
  if (length > lim.maxLength)
    asn1Fail("ASN1_ERR_LIMIT", `length ${length} over ${lim.maxLength}`, base + lenAt, path);
  const headerLength = p - start;
  if (length > end - p) {
    asn1Fail("ASN1_ERR_TRUNCATED", `length ${length} but only ${end - p} bytes left`, base + lenAt, path);
  }
  const contentStart = p;
  const contentEnd = p + length;
  const children: DerNode[] = [];
  if (constructed) {
    let q = contentStart;
    while (q < contentEnd) {
      const child = parseNode(buf, q, contentEnd, depth + 1, `${path}[${children.length}]`, lim, state, base);
      children.push(child);
      q += child.raw.length;
    }
  }
  return {
    tag: first,
    cls,
    constructed,
    tagNumber,
    offset: base + start,
    headerLength,
    raw: buf.subarray(start, contentEnd),
    content: buf.subarray(contentStart, contentEnd),
    children,
    path,
  };
}

// ---------------------------------------------------------------------------------------------
// Typed accessors: each checks the tag and the value, and fails with the node's offset and path.

function fail(node: DerNode, code: Asn1ErrorCode, message: string): never {
  return asn1Fail(code, message, node.offset, node.path);
}

/** Fails unless `node` has identifier octet `tag`. */
export function expectTag(node: DerNode, tag: number, what = ""): DerNode {
  if (node.tag !== tag) {
    fail(
      node,
      "ASN1_ERR_UNEXPECTED_TAG",
      `expected ${what || tagName(tag)} (0x${tag.toString(16)}), got 0x${node.tag.toString(16)}`,
    );
  }
  return node;
}

/** Context-specific tag identifier octet: [n] with the constructed bit as given. */
export function contextTag(n: number, constructed: boolean): number {
  return 0x80 | (constructed ? 0x20 : 0) | n;
}

export function isContext(node: DerNode, n: number): boolean {
  return node.cls === TagClass.context && node.tagNumber === n;
}

/** Child `i`, or a typed error naming what was expected. */
export function child(node: DerNode, i: number, what = `element ${i}`): DerNode {
  const c = node.children[i];
  if (!c) fail(node, "ASN1_ERR_UNEXPECTED_TAG", `missing ${what}`);
  return c;
}

/** Fails unless a SEQUENCE (or `tag`) has between `min` and `max` children; returns them. */
export function sequence(
  node: DerNode,
  min: number,
  max = min,
  tag: number = Tag.SEQUENCE,
): readonly DerNode[] {
  expectTag(node, tag);
  const n = node.children.length;
  if (n < min || n > max) {
    fail(
      node,
      "ASN1_ERR_UNEXPECTED_TAG",
      `expected ${min === max ? min : `${min}..${max}`} elements, got ${n}`,
    );
  }
  return node.children;
}

/** INTEGER (X.690 8.3) as a bigint; must be minimally encoded. */
export function readInteger(node: DerNode, tag: number = Tag.INTEGER): bigint {
  expectTag(node, tag, "INTEGER");
  const c = node.content;
  if (c.length === 0) fail(node, "ASN1_ERR_INVALID_VALUE", "empty INTEGER");
  if (
    c.length > 1 &&
    ((c[0] === 0 && (c[1] as number) < 0x80) || (c[0] === 0xff && (c[1] as number) >= 0x80))
  ) {
    fail(node, "ASN1_ERR_NON_MINIMAL", "INTEGER not minimally encoded");
  }
  if (c.length > 4096) fail(node, "ASN1_ERR_LIMIT", "INTEGER longer than 4096 octets");
  let v = 0n;
  for (const b of c) v = (v << 8n) | BigInt(b);
  if ((c[0] as number) >= 0x80) v -= 1n << BigInt(8 * c.length);
  return v;
}

/** A small non-negative INTEGER (versions, counts) as a number. */
export function readSmallInt(node: DerNode, max = 0xffff): number {
  const v = readInteger(node);
  if (v < 0n || v > BigInt(max)) fail(node, "ASN1_ERR_INVALID_VALUE", `INTEGER ${v} outside 0..${max}`);
  return Number(v);
}

export function readBoolean(node: DerNode): boolean {
  expectTag(node, Tag.BOOLEAN, "BOOLEAN");
  if (node.content.length !== 1) fail(node, "ASN1_ERR_INVALID_VALUE", "BOOLEAN is not one octet");
  const b = node.content[0];
  // X.690 11.1: DER TRUE is 0xff.
  if (b !== 0 && b !== 0xff) fail(node, "ASN1_ERR_INVALID_VALUE", "BOOLEAN is neither 0x00 nor 0xff");
  return b === 0xff;
}

export function readNull(node: DerNode): null {
  expectTag(node, Tag.NULL, "NULL");
  if (node.content.length !== 0) fail(node, "ASN1_ERR_INVALID_VALUE", "NULL with contents");
  return null;
}

/** OBJECT IDENTIFIER (X.690 8.19) in dotted form. */
export function readOid(node: DerNode): string {
  expectTag(node, Tag.OBJECT_IDENTIFIER, "OBJECT IDENTIFIER");
  const c = node.content;
  if (c.length === 0 || c.length > 256) fail(node, "ASN1_ERR_INVALID_VALUE", "OBJECT IDENTIFIER length");
  const arcs: bigint[] = [];
  let v = 0n;
  let fresh = true;
  for (let i = 0; i < c.length; i++) {
    const b = c[i] as number;
    if (fresh && b === 0x80) fail(node, "ASN1_ERR_NON_MINIMAL", "OID arc with leading 0x80");
    v = (v << 7n) | BigInt(b & 0x7f);
    fresh = (b & 0x80) === 0;
    if (fresh) {
      arcs.push(v);
      v = 0n;
    }
  }
  if (!fresh) fail(node, "ASN1_ERR_INVALID_VALUE", "OBJECT IDENTIFIER ends inside an arc");
  const first = arcs[0] as bigint;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join(".");
}

export function readOctetString(node: DerNode, tag: number = Tag.OCTET_STRING): Uint8Array {
  expectTag(node, tag, "OCTET STRING");
  return node.content;
}

export interface BitString {
  readonly unusedBits: number;
  readonly bytes: Uint8Array;
}

/** BIT STRING (X.690 8.6, 11.2): unused bits 0..7, zero when empty, padding bits zero. */
export function readBitString(node: DerNode, tag: number = Tag.BIT_STRING): BitString {
  expectTag(node, tag, "BIT STRING");
  const c = node.content;
  if (c.length === 0) fail(node, "ASN1_ERR_INVALID_VALUE", "BIT STRING without unused-bits octet");
  const unusedBits = c[0] as number;
  if (unusedBits > 7 || (c.length === 1 && unusedBits !== 0)) {
    fail(node, "ASN1_ERR_INVALID_VALUE", `BIT STRING unused bits ${unusedBits}`);
  }
  return { unusedBits, bytes: c.subarray(1) };
}

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Any of the character string types used in names and certificates, as a JS string. */
export function readString(node: DerNode): string {
  const c = node.content;
  try {
    switch (node.tag) {
      case Tag.UTF8String:
        return utf8.decode(c);
      case Tag.PrintableString:
      case Tag.IA5String:
      case Tag.NumericString:
      case Tag.VisibleString:
        for (const b of c)
          if (b > 0x7f) fail(node, "ASN1_ERR_INVALID_VALUE", "non-ASCII octet in ASCII string");
        return latin1.decode(c);
      case Tag.T61String:
        return latin1.decode(c);
      case Tag.BMPString: {
        if (c.length % 2) fail(node, "ASN1_ERR_INVALID_VALUE", "BMPString of odd length");
        let s = "";
        for (let i = 0; i < c.length; i += 2)
          s += String.fromCharCode(((c[i] as number) << 8) | (c[i + 1] as number));
        return s;
      }
      case Tag.UniversalString: {
        if (c.length % 4) fail(node, "ASN1_ERR_INVALID_VALUE", "UniversalString length not a multiple of 4");
        let s = "";
        const dv = new DataView(c.buffer, c.byteOffset, c.byteLength);
        for (let i = 0; i < c.length; i += 4) {
          const cp = dv.getUint32(i, false);
          if (cp > 0x10ffff) fail(node, "ASN1_ERR_INVALID_VALUE", "UniversalString code point out of range");
          s += String.fromCodePoint(cp);
        }
        return s;
      }
      default:
        return fail(
          node,
          "ASN1_ERR_UNEXPECTED_TAG",
          `expected a string type, got 0x${node.tag.toString(16)}`,
        );
    }
  } catch (e) {
    if (e instanceof Asn1Error) throw e;
    return fail(node, "ASN1_ERR_INVALID_VALUE", "invalid UTF-8 in UTF8String");
  }
}

const ascii = (c: Uint8Array): string => latin1.decode(c);

/** UTCTime (X.690 11.8, RFC 5280 4.1.2.5.1: YYMMDDHHMMSSZ, 50..99 → 19xx) or GeneralizedTime. */
export function readTime(node: DerNode): Date {
  const s = ascii(node.content);
  let m: RegExpExecArray | null;
  let year: number;
  if (node.tag === Tag.UTCTime) {
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) fail(node, "ASN1_ERR_INVALID_VALUE", "UTCTime is not YYMMDDHHMMSSZ");
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (node.tag === Tag.GeneralizedTime) {
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,9}))?Z$/.exec(s);
    if (!m) fail(node, "ASN1_ERR_INVALID_VALUE", "GeneralizedTime is not YYYYMMDDHHMMSS[.f]Z");
    year = Number(m[1]);
  } else {
    return fail(node, "ASN1_ERR_UNEXPECTED_TAG", "expected UTCTime or GeneralizedTime");
  }
  const [mo, d, h, mi, se] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const ms = m[7] ? Number(`0.${m[7]}`) * 1000 : 0;
  const t = Date.UTC(year, mo - 1, d, h, mi, se, Math.floor(ms));
  const date = new Date(t);
  if (
    mo < 1 ||
    mo > 12 ||
    date.getUTCDate() !== d ||
    h > 23 ||
    mi > 59 ||
    se > 59 ||
    date.getUTCFullYear() !== year
  ) {
    fail(node, "ASN1_ERR_INVALID_VALUE", `invalid date ${s}`);
  }
  return date;
}

export function tagName(tag: number): string {
  for (const [k, v] of Object.entries(Tag)) if (v === tag) return k;
  if ((tag & 0xc0) === 0x80) return `[${tag & 0x1f}]`;
  return `tag 0x${tag.toString(16)}`;
}

// ---------------------------------------------------------------------------------------------
// Writer: each function returns one complete element.

function lengthOctets(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return Uint8Array.from([0x80 | out.length, ...out]);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** An element from its identifier octet (tag numbers < 31) and contents. */
function tlv(tag: number, content: Uint8Array): Uint8Array {
  if ((tag & 0x1f) === 0x1f) throw new RangeError("der.tlv: high tag numbers are not written");
  return concat([Uint8Array.of(tag), lengthOctets(content.length), content]);
}

/** X.690 11.6: SET OF components in ascending order of their encodings (shorter padded with 0). */
export function compareDer(a: Uint8Array, b: Uint8Array): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x - y;
  }
  return 0;
}

function intContent(v: bigint | number | Uint8Array): Uint8Array {
  if (v instanceof Uint8Array) {
    // Unsigned magnitude (e.g. serial numbers, RSA moduli): strip leading zeros, add one if the top bit is set.
    let i = 0;
    while (i < v.length - 1 && v[i] === 0) i++;
    const mag = v.subarray(i);
    if (mag.length === 0) return Uint8Array.of(0);
    return (mag[0] as number) >= 0x80 ? concat([Uint8Array.of(0), mag]) : mag.slice();
  }
  let x = BigInt(v);
  const out: number[] = [];
  if (x >= 0n) {
    do {
      out.unshift(Number(x & 0xffn));
      x >>= 8n;
    } while (x > 0n);
    if ((out[0] as number) >= 0x80) out.unshift(0);
  } else {
    do {
      out.unshift(Number(x & 0xffn));
      x >>= 8n;
    } while (x < -1n);
    if ((out[0] as number) < 0x80) out.unshift(0xff);
  }
  return Uint8Array.from(out);
}

function oidContent(dotted: string): Uint8Array {
  if (!/^[0-2](\.\d+)+$/.test(dotted)) throw new RangeError(`der.oid: invalid OID '${dotted}'`);
  const arcs = dotted.split(".").map((s) => BigInt(s));
  const [a, b] = arcs as [bigint, bigint];
  if (a < 2n && b >= 40n) throw new RangeError(`der.oid: invalid OID '${dotted}'`);
  const out: number[] = [];
  for (const arc of [a * 40n + b, ...arcs.slice(2)]) {
    const septets: number[] = [];
    let v = arc;
    do {
      septets.unshift(Number(v & 0x7fn));
      v >>= 7n;
    } while (v > 0n);
    for (let i = 0; i < septets.length - 1; i++) septets[i] = (septets[i] as number) | 0x80;
    out.push(...septets);
  }
  return Uint8Array.from(out);
}

const pad = (n: number, w = 2): string => String(n).padStart(w, "0");

function timeString(d: Date, generalized: boolean): string {
  if (Number.isNaN(d.getTime())) throw new RangeError("der: invalid Date");
  const y = d.getUTCFullYear();
  const body = `${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`;
  return generalized ? `${pad(y, 4)}${body}` : `${pad(y % 100)}${body}`;
}

const enc = new TextEncoder();

export const der = {
  tlv,
  concat,
  sequence: (...items: Uint8Array[]): Uint8Array => tlv(Tag.SEQUENCE, concat(items)),
  /** SET with members in the order given (for SETs whose order the caller already fixed). */
  set: (...items: Uint8Array[]): Uint8Array => tlv(Tag.SET, concat(items)),
  /** SET OF with members sorted per X.690 11.6. */
  setOf: (...items: Uint8Array[]): Uint8Array => tlv(Tag.SET, concat([...items].sort(compareDer))),
  integer: (v: bigint | number | Uint8Array): Uint8Array => tlv(Tag.INTEGER, intContent(v)),
  boolean: (v: boolean): Uint8Array => tlv(Tag.BOOLEAN, Uint8Array.of(v ? 0xff : 0)),
  null: (): Uint8Array => Uint8Array.of(Tag.NULL, 0),
  oid: (dotted: string): Uint8Array => tlv(Tag.OBJECT_IDENTIFIER, oidContent(dotted)),
  octetString: (b: Uint8Array): Uint8Array => tlv(Tag.OCTET_STRING, b),
  bitString: (b: Uint8Array, unusedBits = 0): Uint8Array =>
    tlv(Tag.BIT_STRING, concat([Uint8Array.of(unusedBits), b])),
  utf8: (s: string): Uint8Array => tlv(Tag.UTF8String, enc.encode(s)),
  printable: (s: string): Uint8Array => {
    if (!/^[A-Za-z0-9 '()+,\-./:=?]*$/.test(s))
      throw new RangeError(`der.printable: '${s}' is not a PrintableString`);
    return tlv(Tag.PrintableString, enc.encode(s));
  },
  ia5: (s: string): Uint8Array => {
    if ([...s].some((c) => c.charCodeAt(0) > 0x7f)) throw new RangeError("der.ia5: non-ASCII");
    return tlv(Tag.IA5String, enc.encode(s));
  },
  /** BMPString (UTF-16BE, BMP only), as Authenticode's SpcString uses. */
  bmp: (s: string): Uint8Array => {
    const out = new Uint8Array(s.length * 2);
    for (let i = 0; i < s.length; i++) {
      out[2 * i] = s.charCodeAt(i) >> 8;
      out[2 * i + 1] = s.charCodeAt(i) & 0xff;
    }
    return tlv(Tag.BMPString, out);
  },
  utcTime: (d: Date): Uint8Array => tlv(Tag.UTCTime, enc.encode(timeString(d, false))),
  generalizedTime: (d: Date): Uint8Array => tlv(Tag.GeneralizedTime, enc.encode(timeString(d, true))),
  /** RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
  time: (d: Date): Uint8Array =>
    d.getUTCFullYear() < 2050 && d.getUTCFullYear() >= 1950 ? der.utcTime(d) : der.generalizedTime(d),
  /** [n] EXPLICIT: a constructed context tag around one complete element. */
  explicit: (n: number, inner: Uint8Array): Uint8Array => tlv(contextTag(n, true), inner),
  /**
   * [n] IMPLICIT: replaces the identifier octet of a complete element, keeping its constructed bit
   * (e.g. `implicit(0, der.setOf(...))` for SignedData.certificates).
   */
  implicit: (n: number, inner: Uint8Array): Uint8Array => {
    const out = inner.slice();
    out[0] = contextTag(n, ((inner[0] as number) & 0x20) !== 0);
    return out;
  },
  /** [n] IMPLICIT primitive from raw contents (e.g. GeneralName dNSName [2]). */
  contextPrimitive: (n: number, content: Uint8Array): Uint8Array => tlv(contextTag(n, false), content),
  /** A pre-encoded element, included verbatim (kept received bytes). */
  raw: (bytes: Uint8Array): Uint8Array => bytes,
};
