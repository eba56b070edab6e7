/**
 * The DER gate: a reader for ITU-T X.690 (02/2021) section 10 "Distinguished encoding rules".
 *
 * Every input passes it before @peculiar's schema packages see it (schema.ts): asn1js, under
 * them, reads BER, and we refuse what DER forbids. It is also where received bytes come from.
 *
 * {@link parseDer} is total and bounded (STYLE.md habit 5). One cursor over the input checks
 * what remains before each read; definite lengths only (X.690 10.1); tags, lengths and integers must
 * be minimally encoded; nesting depth, element count and a single element's length are capped.
 * Every failure is a typed ASN1_ERR_* error (errors.ts) with a code, the byte offset and a path such as
 * `Certificate.tbsCertificate[6]`. Every node keeps its received bytes (`raw` = identifier +
 * length + contents, `content` = contents) as views into the input (STYLE.md habit 4): signatures
 * and digests are verified over those bytes, never over a re-encoding.
 *
 * Encoding is not done here: the schema packages write DER (AsnConvert, see schema.ts).
 */
import { asn1Error, type Asn1ErrorCode } from "./errors.js";

/** Tag class, X.690 8.1.2.2 Table 1. */
const TagClass = { universal: 0, application: 1, context: 2, private: 3 } as const;
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
  throw asn1Error(code, `${message} at offset ${offset}${path ? ` (${path})` : ""}`, { offset, path });
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
// The few values read from received bytes rather than through a schema: each checks the tag and
// the value, and fails with the node's offset and path.

function fail(node: DerNode, code: Asn1ErrorCode, message: string): never {
  return asn1Fail(code, message, node.offset, node.path);
}

function expectTag(node: DerNode, tag: number, what: string): void {
  if (node.tag !== tag)
    fail(
      node,
      "ASN1_ERR_UNEXPECTED_TAG",
      `expected ${what} (0x${tag.toString(16)}), got 0x${node.tag.toString(16)}`,
    );
}

export function isContext(node: DerNode, n: number): boolean {
  return node.cls === TagClass.context && node.tagNumber === n;
}

/** INTEGER (X.690 8.3) as a bigint; must be minimally encoded. */
export function readInteger(node: DerNode): bigint {
  expectTag(node, Tag.INTEGER, "INTEGER");
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

const latin1 = new TextDecoder("latin1");
const ascii = (c: Uint8Array): string => latin1.decode(c);

/**
 * UTCTime (X.690 11.8, RFC 5280 4.1.2.5.1: YYMMDDHHMMSSZ, 50..99 → 19xx) or GeneralizedTime,
 * read here rather than by asn1js, which turns GeneralizedTime years 0001-0099 into 1901-1999.
 */
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
  // Not Date.UTC: it reads years 0-99 as 1900-1999, and Go writes 0001-01-01 (its zero time).
  const date = new Date(0);
  date.setUTCFullYear(year, mo - 1, d);
  date.setUTCHours(h, mi, se, Math.floor(ms));
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
