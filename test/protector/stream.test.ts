import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, connect, type AddressInfo, type Socket } from "node:net";
import fc from "fast-check";
import { isBulwarkError } from "../../src/core/errors.js";
import {
  createDecryptStream,
  createEncryptStream,
  decryptState,
  encryptState,
  MIN_CHUNK_SIZE,
  STREAM_HEADER_BYTES,
  StreamOpener,
  StreamSealer,
} from "../../src/protector/stream.js";
import { codeOf } from "../helpers/errors.js";
import { collect } from "../helpers/streams.js";

const CHUNK = MIN_CHUNK_SIZE; // 4 KiB: small, so tests cover many chunk boundaries
const FRAME = 4 + CHUNK + 16;
const key = randomBytes(32);

/** Byte offsets of each chunk's frame start in an encrypted stream with full chunks. */
function frameStarts(ct: Uint8Array): number[] {
  const out: number[] = [];
  let o = STREAM_HEADER_BYTES;
  while (o < ct.length) {
    out.push(o);
    const n = Buffer.from(ct.buffer, ct.byteOffset + o, 4).readUInt32BE(0) & 0x7fffffff;
    o += 4 + n + 16;
  }
  return out;
}

test("round trip: empty, below, at and around chunk multiples; all purposes", () => {
  for (const len of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17]) {
    for (const purpose of ["savedState", "migration"] as const) {
      const pt = randomBytes(len);
      const ct = encryptState(key, pt, { chunkSize: CHUNK, purpose });
      assert.deepEqual(decryptState(key, ct, { purpose }), pt);
      // full chunks + one final chunk (possibly empty)
      assert.equal(ct.length, STREAM_HEADER_BYTES + Math.floor(len / CHUNK) * FRAME + 4 + (len % CHUNK) + 16);
    }
  }
  const big = randomBytes(3 * 1024 * 1024 + 5);
  assert.deepEqual(decryptState(key, encryptState(key, big)), big); // default 1 MiB chunks
});

test("two encryptions of the same data differ (fresh stream id); bad chunk sizes and keys are refused", () => {
  const pt = randomBytes(100);
  assert.notDeepEqual(encryptState(key, pt), encryptState(key, pt));
  for (const chunkSize of [0, 1000, MIN_CHUNK_SIZE - 1, 3 * 4096, 32 * 1024 * 1024]) {
    assert.throws(() => encryptState(key, pt, { chunkSize }), { code: "PROTECTOR_ERR_INVALID_ARGUMENT" });
  }
  assert.throws(() => encryptState(randomBytes(16), pt), { code: "PROTECTOR_ERR_INVALID_ARGUMENT" });
});

function randomPieces(buf: Buffer, max: number): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < buf.length;) {
    const n = 1 + Math.floor(Math.random() * max);
    out.push(buf.subarray(o, o + n));
    o += n;
  }
  return out;
}

test("Transform streams round-trip with arbitrary write sizes, interoperable with the one-shot helpers", async () => {
  const pt = randomBytes(10 * CHUNK + 123);
  const ct = await collect(randomPieces(pt, 3000), createEncryptStream(key, { chunkSize: CHUNK }));
  assert.deepEqual(decryptState(key, ct), pt);
  const back = await collect(randomPieces(ct, 5000), createDecryptStream(key));
  assert.deepEqual(back, pt);
  const tiny = await collect(
    randomPieces(encryptState(key, pt, { chunkSize: CHUNK }), 3),
    createDecryptStream(key),
  );
  assert.deepEqual(tiny, pt);
});

test("idle flush (live migration): buffered bytes go out as short non-final chunks that decrypt", async () => {
  const enc = createEncryptStream(key, { chunkSize: CHUNK, purpose: "migration", idleFlushMs: 5 });
  const dec = createDecryptStream(key, { purpose: "migration" });
  const received: Buffer[] = [];
  enc.pipe(dec).on("data", (b: Buffer) => received.push(b));
  enc.write(Buffer.from("hello"));
  // Without the flush nothing could be decrypted yet (5 bytes < one chunk).
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(Buffer.concat(received).toString(), "hello");
  enc.write(Buffer.from(" world"));
  enc.flushNow();
  await new Promise((r) => setImmediate(r));
  assert.equal(Buffer.concat(received).toString(), "hello world");
  const done = new Promise((r) => dec.on("end", r));
  enc.end();
  await done;
  assert.equal(Buffer.concat(received).toString(), "hello world");
});

test("live migration framing over a real TCP socket, with a reply on the return path", async () => {
  const migrationKey = randomBytes(32);
  const payload = randomBytes(5 * CHUNK + 77);
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const received = new Promise<Buffer>((resolve, reject) => {
    server.once("connection", (sock: Socket) => {
      const parts: Buffer[] = [];
      const dec = createDecryptStream(migrationKey, { purpose: "migration" });
      sock.pipe(dec);
      dec.on("data", (b: Buffer) => {
        parts.push(b);
        // The destination answers once it has the whole payload, before the source closes.
        if (Buffer.concat(parts).length === payload.length) sock.write("ack");
      });
      dec.on("error", reject);
      dec.on("end", () => resolve(Buffer.concat(parts)));
    });
  });
  const sock = connect(port, "127.0.0.1");
  await new Promise((r) => sock.once("connect", r));
  const enc = createEncryptStream(migrationKey, { chunkSize: CHUNK, purpose: "migration", idleFlushMs: 2 });
  enc.pipe(sock);
  const ack = new Promise<string>((r) => sock.once("data", (b: Buffer) => r(b.toString())));
  for (const p of randomPieces(payload, 3000)) enc.write(p);
  // Without idle flushing the last partial chunk would sit in the encryptor and no ack would come.
  assert.equal(await ack, "ack");
  enc.end();
  assert.deepEqual(await received, payload);
  sock.destroy();
  await new Promise((r) => server.close(r));
});

// --- tampering -------------------------------------------------------------------------------

const PT = randomBytes(3 * CHUNK + 100); // 3 full chunks + a final chunk of 100 bytes
const CT = encryptState(key, PT, { chunkSize: CHUNK });
const STARTS = frameStarts(CT);

test("flipping any single bit anywhere is detected with a specific typed error", () => {
  assert.equal(STARTS.length, 4);
  const seen = new Map<string, number>();
  // Every byte of the stream: header, length fields, ciphertexts and tags.
  for (let i = 0; i < CT.length; i++) {
    const inFrameHeader = STARTS.some((s) => i >= s && i < s + 4);
    const t = Buffer.from(CT);
    t[i] = (t[i] as number) ^ (1 << (i % 8));
    const code = codeOf(() => decryptState(key, t));
    assert.notEqual(code, "OK", `flip at ${i} went unnoticed`);
    seen.set(code, (seen.get(code) ?? 0) + 1);
    if (i < 4) assert.equal(code, "PROTECTOR_ERR_STREAM_HEADER", `magic byte ${i}`);
    else if (i < 48 && i >= 16) assert.equal(code, "PROTECTOR_ERR_STREAM_KEY", `stream id byte ${i}`);
    else if (i >= 48 && i < STREAM_HEADER_BYTES)
      assert.equal(code, "PROTECTOR_ERR_STREAM_KEY", `key check byte ${i}`);
    else if (i >= STREAM_HEADER_BYTES && !inFrameHeader)
      assert.equal(code, "PROTECTOR_ERR_STREAM_CHUNK_AUTH", `body ${i}`);
    else if (inFrameHeader) {
      assert.ok(
        [
          "PROTECTOR_ERR_STREAM_FRAME",
          "PROTECTOR_ERR_STREAM_CHUNK_AUTH",
          "PROTECTOR_ERR_STREAM_TRUNCATED",
        ].includes(code),
        `length field flip at ${i}: ${code}`,
      );
    }
  }
  // version/aead/purpose/reserved/chunk-size edits are either refused outright or break the key check
  for (const code of seen.keys()) assert.match(code, /^PROTECTOR_ERR_STREAM_/);
});

test("header field edits: version, AEAD, reserved, chunk size and purpose", () => {
  const edit = (at: number, value: number, width: 2 | 4) => {
    const t = Buffer.from(CT);
    if (width === 2) t.writeUInt16BE(value, at);
    else t.writeUInt32BE(value, at);
    return codeOf(() => decryptState(key, t));
  };
  assert.equal(edit(4, 2, 2), "PROTECTOR_ERR_STREAM_HEADER"); // version
  assert.equal(edit(6, 1, 2), "PROTECTOR_ERR_STREAM_HEADER"); // aead
  assert.equal(edit(8, 9, 2), "PROTECTOR_ERR_STREAM_HEADER"); // unknown purpose
  assert.equal(edit(8, 2, 2), "PROTECTOR_ERR_STREAM_KEY"); // another valid purpose: bound into the key
  assert.equal(edit(10, 1, 2), "PROTECTOR_ERR_STREAM_HEADER"); // reserved
  assert.equal(edit(12, 5000, 4), "PROTECTOR_ERR_STREAM_HEADER"); // not a power of two
  assert.equal(edit(12, 8192, 4), "PROTECTOR_ERR_STREAM_KEY"); // valid size, but bound into the key
  assert.equal(
    codeOf(() => decryptState(key, CT, { purpose: "migration" })),
    "PROTECTOR_ERR_STREAM_HEADER",
  );
});

test("a bound context (migration session nonce) must match: a replayed stream of another session fails", () => {
  const session = randomBytes(32);
  const pt = randomBytes(CHUNK + 5);
  const ct = encryptState(key, pt, { chunkSize: CHUNK, purpose: "migration", context: session });
  assert.deepEqual(decryptState(key, ct, { purpose: "migration", context: session }), pt);
  assert.equal(
    codeOf(() => decryptState(key, ct, { context: randomBytes(32) })),
    "PROTECTOR_ERR_STREAM_KEY",
  );
  assert.equal(
    codeOf(() => decryptState(key, ct)),
    "PROTECTOR_ERR_STREAM_KEY",
  );
  assert.equal(
    codeOf(() => decryptState(key, CT, { context: session })),
    "PROTECTOR_ERR_STREAM_KEY",
  );
  assert.equal(
    codeOf(() => encryptState(key, pt, { context: new Uint8Array(1025) })),
    "PROTECTOR_ERR_INVALID_ARGUMENT",
  );
});

test("wrong key is PROTECTOR_ERR_STREAM_KEY before any plaintext", () => {
  assert.equal(
    codeOf(() => decryptState(randomBytes(32), CT)),
    "PROTECTOR_ERR_STREAM_KEY",
  );
});

test("truncation at every chunk boundary and mid-chunk is PROTECTOR_ERR_STREAM_TRUNCATED", () => {
  const cuts = [
    0,
    1,
    STREAM_HEADER_BYTES - 1,
    STREAM_HEADER_BYTES,
    ...STARTS,
    ...STARTS.map((s) => s + 2),
    ...STARTS.map((s) => s + 100),
  ];
  cuts.push(CT.length - 1, CT.length - 16);
  for (const cut of cuts) {
    assert.equal(
      codeOf(() => decryptState(key, CT.subarray(0, cut))),
      "PROTECTOR_ERR_STREAM_TRUNCATED",
      `cut at ${cut}`,
    );
  }
});

function frames(ct: Buffer): { header: Buffer; frames: Buffer[] } {
  const starts = frameStarts(ct);
  return {
    header: ct.subarray(0, STREAM_HEADER_BYTES),
    frames: starts.map((s, i) => ct.subarray(s, starts[i + 1] ?? ct.length)),
  };
}

test("reordered, dropped and duplicated chunks are PROTECTOR_ERR_STREAM_CHUNK_AUTH", () => {
  const { header, frames: f } = frames(CT);
  const [a, b, c, d] = f as [Buffer, Buffer, Buffer, Buffer];
  const cases: Record<string, Buffer[]> = {
    "swap 0,1": [b, a, c, d],
    "swap 1,2": [a, c, b, d],
    "drop 0": [b, c, d],
    "drop 1": [a, c, d],
    "duplicate 0": [a, a, b, c, d],
    "duplicate 2": [a, b, c, c, d],
    "final moved earlier": [a, d],
  };
  for (const [name, parts] of Object.entries(cases)) {
    const code = codeOf(() => decryptState(key, Buffer.concat([header, ...parts])));
    assert.equal(code, "PROTECTOR_ERR_STREAM_CHUNK_AUTH", name);
  }
  // Dropping the final chunk is truncation; adding data after it is trailing data.
  assert.equal(
    codeOf(() => decryptState(key, Buffer.concat([header, a, b, c]))),
    "PROTECTOR_ERR_STREAM_TRUNCATED",
  );
  assert.equal(
    codeOf(() => decryptState(key, Buffer.concat([CT, Buffer.of(0)]))),
    "PROTECTOR_ERR_STREAM_TRAILING",
  );
  assert.equal(
    codeOf(() => decryptState(key, Buffer.concat([CT, d]))),
    "PROTECTOR_ERR_STREAM_TRAILING",
  );
});

test("chunks spliced from another stream under the same key are PROTECTOR_ERR_STREAM_CHUNK_AUTH", () => {
  const other = encryptState(key, PT, { chunkSize: CHUNK }); // same key, same plaintext, other stream id
  const x = frames(CT);
  const y = frames(other);
  for (let i = 0; i < x.frames.length; i++) {
    const spliced = [...x.frames];
    spliced[i] = y.frames[i] as Buffer;
    assert.equal(
      codeOf(() => decryptState(key, Buffer.concat([x.header, ...spliced]))),
      "PROTECTOR_ERR_STREAM_CHUNK_AUTH",
      `chunk ${i}`,
    );
  }
  // Another stream's header with this stream's chunks.
  assert.equal(
    codeOf(() => decryptState(key, Buffer.concat([y.header, ...x.frames]))),
    "PROTECTOR_ERR_STREAM_CHUNK_AUTH",
  );
});

test("decryption releases only verified chunks: nothing of a bad chunk reaches the reader", async () => {
  const t = Buffer.from(CT);
  const bad = (STARTS[2] as number) + 4 + 10; // inside chunk 2's ciphertext
  t[bad] = (t[bad] as number) ^ 0xff;
  const got: Buffer[] = [];
  const dec = createDecryptStream(key);
  dec.on("data", (b: Buffer) => got.push(b));
  const err = await new Promise<unknown>((resolve) => {
    dec.on("error", resolve);
    dec.on("end", () => resolve(undefined));
    for (const p of randomPieces(t, 700)) dec.write(p);
    dec.end();
  });
  assert.ok(isBulwarkError(err) && err.code === "PROTECTOR_ERR_STREAM_CHUNK_AUTH");
  assert.equal((err.details as { chunk: number }).chunk, 2);
  assert.deepEqual(Buffer.concat(got), PT.subarray(0, 2 * CHUNK));
});

test("an opener refuses further input once it failed", () => {
  const o = new StreamOpener(randomBytes(32));
  assert.throws(() => o.write(CT, () => undefined), { code: "PROTECTOR_ERR_STREAM_KEY" });
  assert.throws(() => o.write(CT, () => undefined), { code: "PROTECTOR_ERR_INVALID_ARGUMENT" });
});

// --- property tests ---------------------------------------------------------------------------

function assertTyped(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!isBulwarkError(e)) throw e;
    assert.match(e.code, /^PROTECTOR_ERR_STREAM_|^PROTECTOR_ERR_INVALID_ARGUMENT$/);
  }
}

test("property: any chunk size and any split of writes round-trip through sealer and opener (1,000 runs)", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(4096, 8192, 16384),
      fc.integer({ min: 0, max: 40_000 }),
      fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 8 }),
      (chunkSize, len, encSplits, decSplits) => {
        const pt = randomBytes(len);
        const sealer = new StreamSealer(key, { chunkSize });
        const ct: Buffer[] = [];
        for (let o = 0, i = 0; o < len; i++) {
          const n = encSplits[i % encSplits.length] as number;
          sealer.write(pt.subarray(o, o + n), (b) => ct.push(Buffer.from(b)));
          o += n;
        }
        sealer.end((b) => ct.push(Buffer.from(b)));
        const all = Buffer.concat(ct);
        const opener = new StreamOpener(key);
        const out: Buffer[] = [];
        for (let o = 0, i = 0; o < all.length; i++) {
          const n = decSplits[i % decSplits.length] as number;
          opener.write(all.subarray(o, o + n), (b) => out.push(Buffer.from(b)));
          o += n;
        }
        opener.end();
        assert.deepEqual(Buffer.concat(out), pt);
      },
    ),
    { numRuns: 1000 },
  );
});

test("property: random bytes decrypt to a typed error, never a crash (10,000 runs)", () => {
  const header = CT.subarray(0, STREAM_HEADER_BYTES);
  fc.assert(
    fc.property(fc.boolean(), fc.uint8Array({ maxLength: 300 }), (withHeader, tail) => {
      const input = withHeader ? Buffer.concat([header, tail]) : Buffer.from(tail);
      assert.throws(
        () => decryptState(key, input),
        (e: unknown) => isBulwarkError(e) && e.code.startsWith("PROTECTOR_ERR_STREAM_"),
      );
    }),
    { numRuns: 10_000 },
  );
});

test("property: mutated valid streams never decrypt to other plaintext (10,000 runs)", () => {
  const pt = randomBytes(2 * CHUNK + 50);
  const ct = encryptState(key, pt, { chunkSize: CHUNK });
  fc.assert(
    fc.property(
      fc.array(fc.record({ at: fc.nat(ct.length - 1), xor: fc.integer({ min: 1, max: 255 }) }), {
        minLength: 1,
        maxLength: 4,
      }),
      fc.nat(ct.length),
      fc.boolean(),
      (flips, cut, doCut) => {
        const t = Buffer.from(ct);
        for (const f of flips) t[f.at] = (t[f.at] as number) ^ f.xor;
        const input = doCut ? t.subarray(0, cut) : t;
        let out: Buffer | undefined;
        assertTyped(() => {
          out = decryptState(key, input);
        });
        if (out) assert.deepEqual(out, pt); // only possible if the mutations cancelled out
      },
    ),
    { numRuns: 10_000 },
  );
});
