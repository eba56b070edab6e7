/**
 * The Transforms seal and open chunks in steps, giving the event loop turns in between (so a
 * save or restore keeps QEMU's socket moving). These tests pin what that must not change:
 * output order, flushes that arrive mid-chunk, and no unverified plaintext on abandonment.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setImmediate as nextTurn } from "node:timers/promises";
import { isBulwarkError } from "../../src/core/errors.js";
import {
  createDecryptStream,
  createEncryptStream,
  decryptState,
  encryptState,
  runCooperatively,
  type Steps,
} from "../../src/protector/stream.js";
import { collect } from "../helpers/streams.js";

const key = randomBytes(32);
const MiB = 1024 * 1024;

test("the event loop gets turns while one large write is opened and sealed", async () => {
  const pt = randomBytes(8 * MiB);
  const cases = [
    { make: () => createEncryptStream(key), input: pt, check: (out: Buffer) => decryptState(key, out) },
    { make: () => createDecryptStream(key), input: encryptState(key, pt), check: (out: Buffer) => out },
  ];
  for (const { make, input, check } of cases) {
    let turns = 0;
    let done = false;
    const counter = (async () => {
      while (!done) {
        await nextTurn();
        turns++;
      }
    })();
    const out = await collect([input], make());
    done = true;
    await counter;
    assert.ok(turns >= 8, `only ${turns} event-loop turns during 8 MiB of cipher work`);
    assert.deepEqual(check(out), pt);
  }
});

test("flushNow while a chunk is being sealed waits for it: the stream still decrypts in order", async () => {
  const chunkSize = 256 * 1024;
  const enc = createEncryptStream(key, { chunkSize, purpose: "migration", idleFlushMs: 1000 });
  const parts: Buffer[] = [];
  enc.on("data", (b: Buffer) => parts.push(b));
  const pt = randomBytes(3 * MiB + 1234);
  const ended = new Promise<void>((resolve, reject) => {
    enc.on("end", resolve);
    enc.on("error", reject);
  });
  enc.write(pt.subarray(0, 2 * MiB + 77));
  for (let i = 0; i < 20; i++) {
    await nextTurn();
    enc.flushNow(); // lands between slices of the chunks above
  }
  enc.write(pt.subarray(2 * MiB + 77));
  enc.flushNow();
  enc.end();
  await ended;
  const ct = Buffer.concat(parts);
  assert.deepEqual(decryptState(key, ct, { purpose: "migration" }), pt);
});

test("a decryptor destroyed mid-chunk releases nothing of that chunk and stops", async () => {
  const pt = randomBytes(4 * MiB);
  const ct = encryptState(key, pt);
  const dec = createDecryptStream(key);
  const got: Buffer[] = [];
  dec.on("data", (b: Buffer) => got.push(b));
  const closed = new Promise<void>((resolve) => dec.on("close", resolve));
  dec.write(ct);
  await nextTurn(); // the first chunk is part-way through
  dec.destroy();
  await closed;
  const released = Buffer.concat(got);
  assert.ok(released.length % MiB === 0, "only whole verified chunks are released");
  assert.ok(released.length < pt.length);
  assert.deepEqual(released, pt.subarray(0, released.length));
});

test("abandoned steps run their cleanup; errors from steps reach the caller", async () => {
  let cleaned = false;
  function* work(): Steps {
    try {
      for (;;) {
        const until = performance.now() + 0.05;
        while (performance.now() < until) {
          /* busy */
        }
        yield;
      }
    } finally {
      cleaned = true;
    }
  }
  let stop = false;
  setTimeout(() => (stop = true), 5);
  await runCooperatively(work(), () => stop);
  assert.ok(cleaned);
  function* failing(): Steps {
    yield;
    throw new Error("boom");
  }
  await assert.rejects(runCooperatively(failing()), /boom/);
  // A bad chunk inside one large write is still a typed error through the Transform.
  const ct = encryptState(key, randomBytes(3 * MiB));
  const bad = 80 + 4 + MiB + 20 + 4 + 5;
  ct[bad] = (ct[bad] as number) ^ 1;
  await assert.rejects(
    collect([ct], createDecryptStream(key)),
    (e: unknown) => isBulwarkError(e) && e.code === "PROTECTOR_ERR_STREAM_CHUNK_AUTH",
  );
});
