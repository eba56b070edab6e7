import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  constant,
  decode,
  encode,
  list,
  sized,
  sizedBytes,
  struct,
  u16be,
  u32be,
  u32le,
  u8,
  union,
  withRaw,
  type Codec,
  type Infer,
} from "../../src/core/codec.js";
import { DecodeError } from "../../src/core/errors.js";

const Inner = struct<{ kind: number; body: number | Uint8Array }>("INNER", {
  kind: u8,
  body: (p) =>
    union<number, number | Uint8Array>("INNER_BODY", p.kind ?? -1, {
      1: u32be,
      2: sizedBytes(u16be, 64) as Codec<number | Uint8Array>,
    }),
});
const Outer = struct("OUTER", {
  magic: constant(u32le, 0x4b4c5742),
  items: list(u8, 4, Inner),
  tail: sized(u16be, 100, withRaw(u32be)),
});
type OuterT = Infer<typeof Outer>;

test("struct round trip is byte-identical", () => {
  const v: OuterT = {
    magic: 0x4b4c5742,
    items: [
      { kind: 1, body: 7 },
      { kind: 2, body: new Uint8Array([1, 2, 3]) },
    ],
    tail: { value: 9, raw: new Uint8Array([0, 0, 0, 9]) },
  };
  const bytes = encode(Outer, v);
  const back = decode(Outer, bytes);
  assert.deepEqual(encode(Outer, back), bytes);
  assert.equal(back.tail.value, 9);
});

test("errors carry code, offset and path", () => {
  const bytes = encode(Outer, {
    magic: 0x4b4c5742,
    items: [{ kind: 2, body: new Uint8Array(10) }],
    tail: { value: 1, raw: new Uint8Array([0, 0, 0, 1]) },
  });
  const cut = bytes.subarray(0, 10);
  assert.throws(
    () => decode(Outer, cut),
    (e: unknown) =>
      e instanceof DecodeError &&
      e.code === "CORE_ERR_TRUNCATED" &&
      e.details.path === "OUTER.items.[0].body" &&
      e.details.offset === 8,
  );
  assert.throws(() => decode(Outer, new Uint8Array([1, 2, 3, 4])), { code: "CORE_ERR_INVALID" });
  const tooMany = Uint8Array.from([0x42, 0x57, 0x4c, 0x4b, 5]);
  assert.throws(() => decode(Outer, tooMany), { code: "CORE_ERR_LIMIT" });
  assert.throws(() => decode(u8, new Uint8Array([1, 2])), { code: "CORE_ERR_TRAILING" });
});

test("property: random input decodes or fails with a typed error", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      try {
        const v = decode(Outer, bytes);
        assert.deepEqual(encode(Outer, v), bytes);
      } catch (e) {
        if (!(e instanceof DecodeError)) throw e;
      }
    }),
    { numRuns: 10_000 },
  );
});
