import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import fc from "fast-check";
import { authenticodeRanges, verifyImage } from "../../src/uefi/authenticode.js";
import { isUefiPeError } from "../../src/uefi/errors-pe.js";
import {
  fullSectionName,
  parsePe,
  peChecksum,
  PE32_MAGIC,
  PE32PLUS_MAGIC,
  sectionData,
  WIN_CERT_TYPE_PKCS_SIGNED_DATA,
} from "../../src/uefi/pe.js";
import { repoPath } from "../helpers/paths.js";
import { readBootChain } from "../helpers/uefi-bootchain.js";

const vectorDir = repoPath("test/vectors/pe");
const vectors = readdirSync(vectorDir)
  .filter((f) => f.endsWith(".efi"))
  .map((name) => ({ name, bytes: new Uint8Array(readFileSync(`${vectorDir}/${name}`)) }));

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    assert.ok(isUefiPeError(e), `expected UefiPeError, got ${String(e)}`);
    return e.code;
  }
}

test("test vectors parse: PE32 and PE32+, sections, certificate table, checksum", () => {
  assert.equal(vectors.length, 4);
  for (const { name, bytes } of vectors) {
    const pe = parsePe(bytes);
    assert.equal(pe.magic, name.startsWith("hello32") ? PE32_MAGIC : PE32PLUS_MAGIC, name);
    assert.deepEqual(
      pe.sections.map((s) => fullSectionName(pe, s)),
      [".dynsym", ".text", ".rodata", ".dynamic"],
      name,
    );
    const signed = name.includes("signed");
    assert.equal(pe.certificates.length, signed ? 1 : 0, name);
    if (signed) {
      const c = pe.certificates[0]!;
      assert.equal(c.wRevision, 0x0200);
      assert.equal(c.wCertificateType, WIN_CERT_TYPE_PKCS_SIGNED_DATA);
      assert.equal(pe.certificateTable!.offset % 8, 0);
      assert.equal(pe.certificateTable!.offset + pe.certificateTable!.size, bytes.length);
      // sbsign writes a correct PE checksum: our algorithm reproduces it.
      assert.equal(peChecksum(bytes, pe.checkSumOffset), pe.checkSum, name);
    }
    assert.match(Buffer.from(sectionData(pe, ".rodata") ?? []).toString("utf16le"), /Bulwark test vector/);
  }
});

test("Debian's signed shim, grub and kernel parse as PE32+ with their sections and signatures", async () => {
  const bc = await readBootChain();
  for (const [name, bytes, sigs] of [
    ["shim", bc.shim, 2],
    ["grub", bc.grub, 1],
    ["kernel", bc.kernel, 1],
  ] as const) {
    const pe = parsePe(bytes);
    assert.equal(pe.magic, PE32PLUS_MAGIC, name);
    assert.equal(pe.fileHeader.Machine, 0x8664, name);
    assert.equal(pe.certificates.length, sigs, name);
    assert.equal(pe.certificateTableProblem, undefined);
    // The Microsoft/Debian signing tools kept the checksum correct.
    assert.equal(peChecksum(bytes, pe.checkSumOffset), pe.checkSum, name);
    const names = pe.sections.map((s) => fullSectionName(pe, s));
    if (name !== "kernel") assert.ok(names.includes(".sbat"), `${name}: ${names.join(",")}`);
    if (name === "shim") assert.ok(names.includes(".vendor_cert"));
  }
});

test("malformed images fail with typed errors", () => {
  const good = vectors.find((v) => v.name === "hello-signed.efi")!.bytes;
  const mut = (f: (b: Uint8Array, dv: DataView) => void): Uint8Array => {
    const b = good.slice();
    f(b, new DataView(b.buffer));
    return b;
  };
  const peOff = new DataView(good.buffer, good.byteOffset).getUint32(0x3c, true);
  assert.equal(
    codeOf(() => parsePe(new Uint8Array(10))),
    "UEFI_ERR_PE_INVALID",
  );
  assert.equal(
    codeOf(() => parsePe(mut((b) => (b[0] = 0)))),
    "UEFI_ERR_PE_INVALID",
  );
  assert.equal(
    codeOf(() => parsePe(mut((_b, dv) => dv.setUint32(0x3c, 0xfffffff0, true)))),
    "UEFI_ERR_PE_INVALID",
  );
  assert.equal(
    codeOf(() => parsePe(mut((_b, dv) => dv.setUint16(peOff + 24, 0x30b, true)))),
    "UEFI_ERR_PE_INVALID",
  );
  assert.equal(
    codeOf(() => parsePe(mut((_b, dv) => dv.setUint16(peOff + 6, 97, true)))),
    "UEFI_ERR_PE_INVALID",
  );
  assert.equal(
    codeOf(() => parsePe(good.subarray(0, 300))),
    "UEFI_ERR_PE_INVALID",
  );
  // A section running past the end of the file.
  assert.equal(
    codeOf(() => parsePe(good.subarray(0, 2100))),
    "UEFI_ERR_PE_INVALID",
  );
  // A certificate table with a wrong dwLength is parsed but flagged, and the image is refused.
  const pe = parsePe(good);
  const badTable = mut((_b, dv) => dv.setUint32(pe.certificateTable!.offset, 12, true));
  const p = parsePe(badTable);
  assert.match(p.certificateTableProblem ?? "", /dwLength|end/);
  const v = verifyImage(badTable, { db: { x509: [], sha256: [] }, dbx: { x509: [], sha256: [] } });
  assert.equal(v.ok, false);
  assert.match(v.reason, /certificate table is corrupt/);
});

function checkTotal(bytes: Uint8Array, full: boolean): void {
  let pe;
  try {
    pe = parsePe(bytes);
  } catch (e) {
    if (isUefiPeError(e)) return;
    throw e;
  }
  for (const r of authenticodeRanges(pe)) {
    assert.ok(r.offset >= 0 && r.length > 0 && r.offset + r.length <= bytes.length, JSON.stringify(r));
  }
  if (full) {
    try {
      const v = verifyImage(pe, { db: { x509: [], sha256: [] }, dbx: { x509: [], sha256: [] } });
      assert.equal(typeof v.ok, "boolean");
    } catch (e) {
      if (!isUefiPeError(e)) throw e;
    }
  }
}

test("property: random and mutated real PE images → image or typed error; digest ranges in bounds (3 × 10,000 runs)", async () => {
  // Random bytes behind a valid DOS header that points at a PE signature, so parsing goes deep.
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), fc.boolean(), (tail, pe32) => {
      const b = new Uint8Array(0x48 + tail.length);
      b.set([0x4d, 0x5a]);
      new DataView(b.buffer).setUint32(0x3c, 0x40, true);
      b.set([0x50, 0x45, 0, 0], 0x40);
      b.set(tail, 0x44);
      if (tail.length > 22) new DataView(b.buffer).setUint16(0x44 + 20, pe32 ? 0x10b : 0x20b, true);
      checkTotal(b, true);
    }),
    { numRuns: 10_000 },
  );
  // Mutations (byte writes, u32 writes of boundary values, truncation) of the small real vectors, fully verified.
  const mutation = (len: number) =>
    fc.record({
      writes: fc.array(fc.tuple(fc.nat(len - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      words: fc.array(fc.tuple(fc.nat(600), fc.constantFrom(0, 1, 8, 0x7fffffff, 0xffffffff, len, len - 8)), {
        maxLength: 2,
      }),
      cut: fc.option(fc.nat(len), { nil: undefined }),
    });
  fc.assert(
    fc.property(fc.nat(vectors.length - 1), mutation(3000), (vi, m) => {
      const src = vectors[vi]!.bytes;
      const b = src.slice(0, m.cut ?? src.length);
      const dv = new DataView(b.buffer);
      for (const [i, v] of m.writes) if (i < b.length) b[i] = v;
      for (const [i, v] of m.words) if (i + 4 <= b.length) dv.setUint32(i, v >>> 0, true);
      checkTotal(b, true);
    }),
    { numRuns: 10_000 },
  );
  // Header mutations of the real shim, in place (restored after each run; no 1 MB copies).
  const shim = (await readBootChain()).shim.slice();
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(1023), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
      (writes) => {
        const saved = writes.map(([i]) => shim[i] as number);
        for (const [i, v] of writes) shim[i] = v;
        try {
          checkTotal(shim, false);
        } finally {
          for (let k = writes.length - 1; k >= 0; k--) shim[writes[k]![0]] = saved[k]!;
        }
      },
    ),
    { numRuns: 10_000 },
  );
});
