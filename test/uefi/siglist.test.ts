import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import fc from "fast-check";
import {
  decodeSignatureDatabase,
  describeDatabase,
  encodeSignatureDatabase,
  sha256List,
  x509List,
} from "../../src/uefi/siglist.js";
import { EFI_GUID, Guids, guidFromBytes, guidToBytes, parseGuid } from "../../src/uefi/guid.js";
import { decode, encode } from "../../src/core/codec.js";
import { isBulwarkError } from "../../src/core/errors.js";
import { makeKey, runTool, tempDir } from "../helpers/uefi-varstore-fixtures.js";

const eq = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

test("EFI_GUID: mixed-endian bytes (UEFI 2.10 Appendix A) and round trips", () => {
  // EFI_GLOBAL_VARIABLE as it appears on flash in Debian's OVMF stores.
  const onFlash = Buffer.from("61dfe48bca93d211aa0d00e098032b8c", "hex");
  assert.equal(guidFromBytes(onFlash), Guids.EFI_GLOBAL_VARIABLE);
  assert.ok(eq(guidToBytes(Guids.EFI_GLOBAL_VARIABLE), onFlash));
  assert.equal(parseGuid("{8BE4DF61-93CA-11D2-AA0D-00E098032B8C}"), Guids.EFI_GLOBAL_VARIABLE);
  assert.throws(() => parseGuid("8be4df61-93ca-11d2-aa0d"), { code: "UEFI_ERR_VARIABLE_INVALID" });
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
      assert.ok(eq(encode(EFI_GUID, decode(EFI_GUID, b)), b));
    }),
    { numRuns: 10_000 },
  );
});

test("x509 and sha256 lists are byte-identical to sbsiglist's (sbsigntool)", () => {
  const { dir, cleanup } = tempDir();
  try {
    const k = makeKey("Bulwark siglist test");
    const certFile = path.join(dir, "cert.der");
    writeFileSync(certFile, k.cert);
    const owner = "11111111-2222-3333-4444-555555555555";
    runTool("sbsiglist", ["--owner", owner, "--type", "x509", "--output", path.join(dir, "x.esl"), certFile]);
    const theirs = new Uint8Array(readFileSync(path.join(dir, "x.esl")));
    assert.ok(eq(encodeSignatureDatabase([x509List(k.cert, owner)]), theirs));
    const parsed = decodeSignatureDatabase(theirs);
    const [d] = describeDatabase(parsed);
    assert.equal(d?.kind, "x509");
    if (d?.kind === "x509") {
      assert.equal(d.subject, "CN=Bulwark siglist test");
      assert.equal(d.owner, owner);
      assert.equal(d.sha256, createHash("sha256").update(k.cert).digest("hex"));
    }
    const digest = createHash("sha256").update("bulwark").digest();
    const hashFile = path.join(dir, "h.bin");
    writeFileSync(hashFile, digest);
    runTool("sbsiglist", [
      "--owner",
      owner,
      "--type",
      "sha256",
      "--output",
      path.join(dir, "h.esl"),
      hashFile,
    ]);
    const theirsHash = new Uint8Array(readFileSync(path.join(dir, "h.esl")));
    assert.ok(eq(encodeSignatureDatabase([sha256List([digest], owner)]), theirsHash));
    assert.deepEqual(describeDatabase(decodeSignatureDatabase(theirsHash)), [
      { kind: "sha256", owner, hash: digest.toString("hex") },
    ]);
  } finally {
    cleanup();
  }
});

test("unknown signature types stay opaque and round-trip; bad sizes are typed errors", () => {
  const owner = Guids.MICROSOFT_VENDOR;
  const opaque = {
    type: "01234567-89ab-cdef-0123-456789abcdef",
    header: new Uint8Array([9, 9]),
    signatureSize: 16 + 5,
    entries: [{ owner, data: new Uint8Array([1, 2, 3, 4, 5]) }],
  };
  const bytes = encodeSignatureDatabase([opaque, sha256List([new Uint8Array(32)], owner)]);
  const back = decodeSignatureDatabase(bytes);
  assert.equal(describeDatabase(back)[0]?.kind, "opaque");
  assert.ok(eq(encodeSignatureDatabase(back), bytes));
  const bad = Uint8Array.from(bytes);
  new DataView(bad.buffer).setUint32(24, 17, true); // SignatureSize no longer divides the body
  assert.throws(() => decodeSignatureDatabase(bad), { code: "UEFI_ERR_SIGLIST_INVALID" });
  const sha = encodeSignatureDatabase([sha256List([new Uint8Array(32)], owner)]);
  new DataView(sha.buffer).setUint32(16, 28 + 49, true);
  new DataView(sha.buffer).setUint32(24, 49, true);
  assert.throws(() => decodeSignatureDatabase(sha), { code: "UEFI_ERR_SIGLIST_INVALID" });
});

test("fast-check: signature databases decode to a value or a typed error; values round-trip", () => {
  const k = makeKey("fuzz");
  const seed = encodeSignatureDatabase([
    x509List(k.cert, Guids.MICROSOFT_VENDOR),
    sha256List([new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)], Guids.MICROSOFT_VENDOR),
  ]);
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc
      .array(fc.tuple(fc.nat({ max: seed.length - 1 }), fc.integer({ min: 0, max: 255 })), { maxLength: 4 })
      .map((muts) => {
        const b = Uint8Array.from(seed);
        for (const [o, v] of muts) b[o] = v;
        return b;
      }),
    fc.nat({ max: seed.length }).map((n) => seed.subarray(0, n)),
  );
  fc.assert(
    fc.property(input, (b) => {
      let lists;
      try {
        lists = decodeSignatureDatabase(b);
      } catch (e) {
        assert.ok(isBulwarkError(e) && e.code === "UEFI_ERR_SIGLIST_INVALID", String(e));
        return;
      }
      describeDatabase(lists);
      assert.ok(eq(encodeSignatureDatabase(lists), b));
    }),
    { numRuns: 10_000 },
  );
});
