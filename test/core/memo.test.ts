/** The bounded memo tables behind the verdict caches (guardians, owner signatures, health certificates, event logs). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { BoundedMap, contentKey } from "../../src/core/memo.js";

test("BoundedMap keeps at most max entries and drops the least recently used", () => {
  const m = new BoundedMap<string, number>(3);
  m.set("a", 1);
  m.set("b", 2);
  m.set("c", 3);
  assert.equal(m.get("a"), 1); // a is now the most recent
  m.set("d", 4); // drops b
  assert.equal(m.size, 3);
  assert.equal(m.has("b"), false);
  assert.deepEqual(
    ["a", "c", "d"].map((k) => m.get(k)),
    [1, 3, 4],
  );
  m.set("c", 30); // replacing does not evict
  assert.equal(m.size, 3);
  assert.equal(m.get("c"), 30);
  m.clear();
  assert.equal(m.size, 0);
});

test("contentKey separates parts by length: moving bytes between parts changes the key", () => {
  assert.notEqual(contentKey("ab", "c"), contentKey("a", "bc"));
  assert.notEqual(contentKey("abc"), contentKey("abc", ""));
  assert.equal(contentKey("x", Buffer.from("y")), contentKey(Buffer.from("x"), "y"));
});
