import assert from "node:assert/strict";
import { isBulwarkError } from "../../src/core/errors.js";

/** The catalogue code `fn` throws, "OK" when it returns; anything but a typed error fails the test. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(isBulwarkError(e), `not a typed error: ${String(e)}`);
    return e.code;
  }
  return "OK";
}

/** Awaits `p`, which must reject with a typed error of `code`; returns that error's details. */
export async function rejectsWith(p: Promise<unknown>, code: string): Promise<Record<string, unknown>> {
  try {
    await p;
  } catch (e) {
    assert.ok(isBulwarkError(e), `expected ${code}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e.details as Record<string, unknown>;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}
