import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  der,
  parseDer,
  readBitString,
  readBoolean,
  readInteger,
  readOid,
  readString,
  readTime,
  Tag,
  type DerNode,
} from "../../src/asn1/der.js";
import { Asn1Error } from "../../src/asn1/errors.js";
import { parseCertificate, pemToDer } from "../../src/asn1/x509.js";
import { readFileSync } from "node:fs";
import { repoPath } from "../helpers/paths.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ""), "hex"));

test("writer produces the X.690 encodings", () => {
  assert.equal(hex(der.integer(0)), "020100");
  assert.equal(hex(der.integer(127)), "02017f");
  assert.equal(hex(der.integer(128)), "02020080");
  assert.equal(hex(der.integer(-1)), "0201ff");
  assert.equal(hex(der.integer(-128)), "020180");
  assert.equal(hex(der.integer(-129)), "0202ff7f");
  assert.equal(hex(der.integer(new Uint8Array([0, 0, 0x80]))), "02020080");
  assert.equal(hex(der.oid("1.2.840.113549")), "06062a864886f70d");
  assert.equal(hex(der.oid("2.999.3")), "0603883703");
  assert.equal(hex(der.boolean(true)), "0101ff");
  assert.equal(hex(der.null()), "0500");
  assert.equal(hex(der.octetString(new Uint8Array(128))).slice(0, 6), "048180");
  assert.equal(
    hex(der.utcTime(new Date(Date.UTC(2019, 11, 31, 23, 59, 58)))),
    `170d${hex(Buffer.from("191231235958Z"))}`,
  );
  assert.equal(hex(der.time(new Date(Date.UTC(2050, 0, 1)))).slice(0, 4), "180f");
  // SET OF sorted by encoding (X.690 11.6); SET keeps order.
  assert.equal(hex(der.setOf(der.integer(2), der.integer(1))), "3106020101020102");
  assert.equal(hex(der.set(der.integer(2), der.integer(1))), "3106020102020101");
  assert.equal(hex(der.implicit(0, der.setOf(der.integer(1)))), "a003020101");
  assert.equal(hex(der.explicit(3, der.null())), "a3020500");
});

test("reader returns typed values and keeps the received bytes", () => {
  const bytes = der.sequence(
    der.integer(-129),
    der.oid("1.3.6.1.4.1.311.2.1.4"),
    der.bitString(new Uint8Array([0xa0]), 5),
    der.boolean(false),
    der.utf8("grüße"),
    der.bmp("<<<Obsolete>>>"),
    der.generalizedTime(new Date(Date.UTC(2051, 1, 3, 4, 5, 6))),
    der.explicit(0, der.octetString(new Uint8Array([1, 2]))),
  );
  const n = parseDer(bytes, "T");
  const c = n.children as DerNode[];
  assert.equal(readInteger(c[0]!), -129n);
  assert.equal(readOid(c[1]!), "1.3.6.1.4.1.311.2.1.4");
  assert.deepEqual(readBitString(c[2]!), { unusedBits: 5, bytes: new Uint8Array([0xa0]) });
  assert.equal(readBoolean(c[3]!), false);
  assert.equal(readString(c[4]!), "grüße");
  assert.equal(readString(c[5]!), "<<<Obsolete>>>");
  assert.equal(readTime(c[6]!).toISOString(), "2051-02-03T04:05:06.000Z");
  assert.equal(c[7]!.tag, 0xa0);
  assert.equal(c[7]!.children[0]!.offset, c[7]!.offset + 2);
  assert.equal(hex(n.raw), hex(bytes));
  assert.equal(n.raw.buffer, bytes.buffer, "raw is a view into the input, not a copy");
});

function expectCode(bytes: Uint8Array, code: string, limits = {}): void {
  assert.throws(
    () => parseDer(bytes, "X", limits),
    (e: unknown) => e instanceof Asn1Error && e.code === code && typeof e.details.offset === "number",
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
  let deep = der.null();
  for (let i = 0; i < 80; i++) deep = der.sequence(deep);
  expectCode(deep, "ASN1_ERR_LIMIT");
  parseDer(deep, "deep", { maxDepth: 100 });
  expectCode(der.sequence(der.null(), der.null(), der.null()), "ASN1_ERR_LIMIT", { maxNodes: 3 });
  assert.throws(
    () => readInteger(parseDer(unhex("02020001"))),
    (e: unknown) => e instanceof Asn1Error && e.code === "ASN1_ERR_NON_MINIMAL",
  );
  assert.throws(
    () => readOid(parseDer(unhex("06028001"))),
    (e: unknown) => e instanceof Asn1Error && e.code === "ASN1_ERR_NON_MINIMAL",
  );
  assert.throws(() => readTime(parseDer(der.tlv(Tag.UTCTime, Buffer.from("991332000000Z")))), Asn1Error);
  // High tag numbers are read.
  const hi = parseDer(unhex("9f2a 0100"));
  assert.equal(hi.tagNumber, 42);
  assert.equal(hi.cls, 2);
});

/** Generates DER trees with the writer, as (bytes, expected summary). */
const leaf = fc.oneof(
  fc
    .bigInt({ min: -(1n << 200n), max: 1n << 200n })
    .map((v) => ({ b: der.integer(v), check: (n: DerNode) => readInteger(n) === v })),
  fc
    .uint8Array({ maxLength: 300 })
    .map((v) => ({ b: der.octetString(v), check: (n: DerNode) => hex(n.content) === hex(v) })),
  fc
    .array(fc.integer({ min: 0, max: 2 ** 31 }), { minLength: 2, maxLength: 8 })
    .map(
      (arcs) =>
        `${arcs[0]! % 3}.${arcs[0]! % 3 < 2 ? arcs[1]! % 40 : arcs[1]!}${arcs
          .slice(2)
          .map((a) => `.${a}`)
          .join("")}`,
    )
    .map((o) => ({ b: der.oid(o), check: (n: DerNode) => readOid(n) === o })),
  fc.string({ maxLength: 40 }).map((s) => ({ b: der.utf8(s), check: (n: DerNode) => readString(n) === s })),
  fc.boolean().map((v) => ({ b: der.boolean(v), check: (n: DerNode) => readBoolean(n) === v })),
);
type Gen = { b: Uint8Array; check: (n: DerNode) => boolean };
const { tree } = fc.letrec<{ tree: Gen }>((tie) => ({
  tree: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    leaf,
    fc.array(tie("tree"), { maxLength: 5 }).map((kids) => ({
      b: der.sequence(...kids.map((k) => k.b)),
      check: (n: DerNode) =>
        n.tag === Tag.SEQUENCE &&
        n.children.length === kids.length &&
        kids.every((k, i) => k.check(n.children[i]!)),
    })),
    fc.tuple(fc.integer({ min: 0, max: 30 }), tie("tree")).map(([t, k]) => ({
      b: der.explicit(t, k.b),
      check: (n: DerNode) => n.tagNumber === t && n.cls === 2 && k.check(n.children[0]!),
    })),
  ),
}));

test("property: writer → reader round trip reads back every value and the same bytes (10,000 runs)", () => {
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
      x.constructed && x.tagNumber < 31 ? der.tlv(x.tag, der.concat(x.children.map(reenc))) : x.raw;
    assert.equal(hex(reenc(n)), hex(bytes));
  } catch (e) {
    if (!(e instanceof Asn1Error)) throw e;
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
          if (!(e instanceof Asn1Error)) throw e;
        }
      },
    ),
    { numRuns: 10_000 },
  );
});
