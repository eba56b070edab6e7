import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseDer, readInteger, readOid, readTime, Tag, type DerNode } from "../../src/asn1/der.js";
import { isAsn1Error } from "../../src/asn1/errors.js";
import { parseCertificate, pemToDer } from "../../src/asn1/x509.js";
import { readFileSync } from "node:fs";
import { derOf, tlv } from "../helpers/asn1-tools.js";
import { repoPath } from "../helpers/paths.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ""), "hex"));
const time = (tag: number, s: string): Uint8Array => tlv(tag, new TextEncoder().encode(s));

test("reader returns typed values and keeps the received bytes", () => {
  const bytes = derOf.sequence(
    derOf.integer(-129),
    derOf.oid("1.3.6.1.4.1.311.2.1.4"),
    time(Tag.GeneralizedTime, "20510203040506Z"),
    derOf.explicit(0, derOf.octetString(new Uint8Array([1, 2]))),
  );
  const n = parseDer(bytes, "T");
  const c = n.children as DerNode[];
  assert.equal(readInteger(c[0]!), -129n);
  assert.equal(readOid(c[1]!), "1.3.6.1.4.1.311.2.1.4");
  assert.equal(readTime(c[2]!).toISOString(), "2051-02-03T04:05:06.000Z");
  assert.equal(c[3]!.tag, 0xa0);
  assert.equal(c[3]!.children[0]!.offset, c[3]!.offset + 2);
  assert.equal(hex(n.raw), hex(bytes));
  assert.equal(n.raw.buffer, bytes.buffer, "raw is a view into the input, not a copy");
});

test("times: UTCTime 50-99 is 19xx; GeneralizedTime keeps years 0001-0099 (Go's zero time)", () => {
  const read = (tag: number, s: string): string => readTime(parseDer(time(tag, s))).toISOString();
  assert.equal(read(Tag.UTCTime, "991231235958Z"), "1999-12-31T23:59:58.000Z");
  assert.equal(read(Tag.UTCTime, "491231235958Z"), "2049-12-31T23:59:58.000Z");
  assert.equal(read(Tag.GeneralizedTime, "00010101000000Z"), "0001-01-01T00:00:00.000Z");
  assert.equal(read(Tag.GeneralizedTime, "00991231235959Z"), "0099-12-31T23:59:59.000Z");
  assert.equal(read(Tag.GeneralizedTime, "99991231235959Z"), "9999-12-31T23:59:59.000Z");
  for (const bad of ["00010230000000Z", "00011301000000Z", "0001010100000Z"])
    assert.throws(
      () => read(Tag.GeneralizedTime, bad),
      (e: unknown) => isAsn1Error(e) && e.code === "ASN1_ERR_INVALID_VALUE",
    );
});

function expectCode(bytes: Uint8Array, code: string, limits = {}): void {
  assert.throws(
    () => parseDer(bytes, "X", limits),
    (e: unknown) => isAsn1Error(e) && e.code === code && typeof e.details.offset === "number",
  );
}

test("reader rejects BER and malformed input with typed errors carrying the offset", () => {
  expectCode(unhex("3080 0500 0000"), "ASN1_ERR_INDEFINITE_LENGTH");
  expectCode(unhex("048105 0102030405"), "ASN1_ERR_NON_MINIMAL");
  expectCode(unhex("04820005 0102030405"), "ASN1_ERR_NON_MINIMAL");
  expectCode(unhex("0403 0102"), "ASN1_ERR_TRUNCATED");
  expectCode(unhex("0500 00"), "ASN1_ERR_TRAILING");
  expectCode(unhex("04 85 0100000000"), "ASN1_ERR_LIMIT");
  expectCode(unhex("1f05 00"), "ASN1_ERR_NON_MINIMAL");
  expectCode(unhex(""), "ASN1_ERR_TRUNCATED");
  let deep = derOf.null();
  for (let i = 0; i < 80; i++) deep = derOf.sequence(deep);
  expectCode(deep, "ASN1_ERR_LIMIT");
  parseDer(deep, "deep", { maxDepth: 100 });
  expectCode(derOf.sequence(derOf.null(), derOf.null(), derOf.null()), "ASN1_ERR_LIMIT", { maxNodes: 3 });
  assert.throws(
    () => readInteger(parseDer(unhex("02020001"))),
    (e: unknown) => isAsn1Error(e) && e.code === "ASN1_ERR_NON_MINIMAL",
  );
  assert.throws(
    () => readOid(parseDer(unhex("06028001"))),
    (e: unknown) => isAsn1Error(e) && e.code === "ASN1_ERR_NON_MINIMAL",
  );
  assert.throws(
    () => readTime(parseDer(time(Tag.UTCTime, "991332000000Z"))),
    (e: unknown) => isAsn1Error(e),
  );
  // High tag numbers are read.
  const hi = parseDer(unhex("9f2a 0100"));
  assert.equal(hi.tagNumber, 42);
  assert.equal(hi.cls, 2);
});

/** DER trees written by @peculiar/asn1-schema's converters (leaves), as (bytes, expected summary). */
const leaf = fc.oneof(
  // Non-negative only: this property found that asn1js writes some negative INTEGERs in more
  // octets than DER allows (the gate refused them). We never write negative integers.
  fc
    .bigInt({ min: 0n, max: 1n << 200n })
    .map((v) => ({ b: derOf.integer(v), check: (n: DerNode) => readInteger(n) === v })),
  fc
    .uint8Array({ maxLength: 300 })
    .map((v) => ({ b: derOf.octetString(v), check: (n: DerNode) => hex(n.content) === hex(v) })),
  fc
    .array(fc.integer({ min: 0, max: 2 ** 31 }), { minLength: 2, maxLength: 8 })
    .map(
      (arcs) =>
        `${arcs[0]! % 3}.${arcs[0]! % 3 < 2 ? arcs[1]! % 40 : arcs[1]!}${arcs
          .slice(2)
          .map((a) => `.${a}`)
          .join("")}`,
    )
    .map((o) => ({ b: derOf.oid(o), check: (n: DerNode) => readOid(n) === o })),
  fc.string({ maxLength: 40 }).map((s) => ({
    b: derOf.utf8(s),
    check: (n: DerNode) => n.tag === Tag.UTF8String && Buffer.from(n.content).toString("utf8") === s,
  })),
  fc.boolean().map((v) => ({
    b: derOf.boolean(v),
    check: (n: DerNode) => n.tag === Tag.BOOLEAN && n.content[0] === (v ? 0xff : 0),
  })),
);
type Gen = { b: Uint8Array; check: (n: DerNode) => boolean };
const { tree } = fc.letrec<{ tree: Gen }>((tie) => ({
  tree: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    leaf,
    fc.array(tie("tree"), { maxLength: 5 }).map((kids) => ({
      b: derOf.sequence(...kids.map((k) => k.b)),
      check: (n: DerNode) =>
        n.tag === Tag.SEQUENCE &&
        n.children.length === kids.length &&
        kids.every((k, i) => k.check(n.children[i]!)),
    })),
    fc.tuple(fc.integer({ min: 0, max: 30 }), tie("tree")).map(([t, k]) => ({
      b: derOf.explicit(t, k.b),
      check: (n: DerNode) => n.tagNumber === t && n.cls === 2 && k.check(n.children[0]!),
    })),
  ),
}));

test("property: schema-package writer → DER gate round trip reads back every value and the same bytes (10,000 runs)", () => {
  fc.assert(
    fc.property(tree, (g) => {
      const n = parseDer(g.b);
      assert.equal(hex(n.raw), hex(g.b));
      assert.ok(g.check(n));
    }),
    { numRuns: 10_000 },
  );
});

function totalParse(bytes: Uint8Array): void {
  try {
    const n = parseDer(bytes);
    // Whatever parses must re-encode to the same bytes from its parts.
    const reenc = (x: DerNode): Uint8Array =>
      x.constructed && x.tagNumber < 31 ? tlv(x.tag, ...x.children.map(reenc)) : x.raw;
    assert.equal(hex(reenc(n)), hex(bytes));
  } catch (e) {
    if (!isAsn1Error(e)) throw e;
  }
}

test("property: random bytes → node or typed Asn1Error (10,000 runs)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (b) => totalParse(b)),
    { numRuns: 10_000 },
  );
});

test("property: mutated real certificate (openssl-made, test/vectors/pe/signer.pem) → node/certificate or typed Asn1Error (10,000 runs)", () => {
  const cert = pemToDer(readFileSync(repoPath("test/vectors/pe/signer.pem"), "utf8"));
  parseCertificate(cert);
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(cert.length - 1), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 4,
      }),
      fc.nat(cert.length),
      (muts, cut) => {
        const b = cert.slice(0, Math.max(cut, cert.length - 8));
        for (const [i, v] of muts) if (i < b.length) b[i] = v;
        totalParse(b);
        try {
          parseCertificate(b);
        } catch (e) {
          if (!isAsn1Error(e)) throw e;
        }
      },
    ),
    { numRuns: 10_000 },
  );
});
