import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { sbatLevelsFromSection, sbatLevelVariableData } from "../../src/uefi/sbat.js";
import { isBulwarkError } from "../../src/core/errors.js";
import { makeKey, uefiVector } from "../helpers/uefi-varstore-fixtures.js";
import { shimVendorKeysFromSection } from "../../src/uefi/shim.js";
import { encodeSignatureDatabase, sha256List } from "../../src/uefi/siglist.js";
import { Guids } from "../../src/uefi/guid.js";

test("the .sbatlevel section of Debian's signed shim decodes to its previous and latest levels", () => {
  const levels = sbatLevelsFromSection(uefiVector("debian-shim-16.1-sbatlevel.bin"));
  assert.equal(levels.previous, "sbat,1,2025021800\nshim,4\ngrub,5\n");
  assert.equal(levels.latest, "sbat,1,2025051000\nshim,4\ngrub,5\ngrub.proxmox,2\n");
  assert.deepEqual(Buffer.from(sbatLevelVariableData(levels.latest)).toString("latin1"), levels.latest);
  assert.throws(() => sbatLevelVariableData("sbat,1,x\n"), { code: "UEFI_ERR_TEMPLATE_INVALID" });
});

test("fast-check: .sbatlevel decoding is total", () => {
  const seed = uefiVector("debian-shim-16.1-sbatlevel.bin");
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 120 }),
    fc
      .array(fc.tuple(fc.nat({ max: seed.length - 1 }), fc.integer({ min: 0, max: 255 })), { maxLength: 3 })
      .map((m) => {
        const b = Uint8Array.from(seed);
        for (const [o, v] of m) b[o] = v;
        return b;
      }),
  );
  fc.assert(
    fc.property(input, (b) => {
      try {
        const l = sbatLevelsFromSection(b);
        sbatLevelVariableData(l.latest);
      } catch (e) {
        assert.ok(isBulwarkError(e) && e.code === "UEFI_ERR_TEMPLATE_INVALID", String(e));
      }
    }),
    { numRuns: 10_000 },
  );
});

test("shim .vendor_cert: a DER certificate and a built-in dbx decode; any input is lists or a typed error", () => {
  const k = makeKey("Vendor CA");
  const dbx = encodeSignatureDatabase([sha256List([new Uint8Array(32).fill(5)], Guids.MICROSOFT_VENDOR)]);
  const section = new Uint8Array(16 + k.cert.length + dbx.length);
  const dv = new DataView(section.buffer);
  dv.setUint32(0, k.cert.length, true);
  dv.setUint32(4, dbx.length, true);
  dv.setUint32(8, 16, true);
  dv.setUint32(12, 16 + k.cert.length, true);
  section.set(k.cert, 16);
  section.set(dbx, 16 + k.cert.length);
  const keys = shimVendorKeysFromSection(section);
  assert.deepEqual(keys.authorized[0]?.entries[0]?.data, k.cert);
  assert.equal(keys.deauthorized[0]?.entries.length, 1);
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.array(fc.tuple(fc.nat({ max: 40 }), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }).map((m) => {
      const b = Uint8Array.from(section);
      for (const [o, v] of m) b[o < 16 ? o : 16 + k.cert.length + (o - 16)] = v;
      return b;
    }),
  );
  fc.assert(
    fc.property(input, (b) => {
      try {
        shimVendorKeysFromSection(b);
      } catch (e) {
        assert.ok(isBulwarkError(e) && e.code === "UEFI_ERR_TEMPLATE_INVALID", String(e));
      }
    }),
    { numRuns: 10_000 },
  );
});
