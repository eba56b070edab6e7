import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import {
  createEmptyVarStore,
  deleteVariable,
  encodeVarStore,
  getVariable,
  listVariables,
  parseVarStore,
  setVariable,
} from "../../src/uefi/varstore.js";
import { decodeSignatureDatabase, describeDatabase } from "../../src/uefi/siglist.js";
import { Guids } from "../../src/uefi/guid.js";
import { SECURE_BOOT_DB_ATTRS, NV_BS_ATTRS } from "../../src/uefi/variables.js";
import { isBulwarkError } from "../../src/core/errors.js";
import { debianOvmf, debianStores, uefiVector } from "../helpers/uefi-varstore-fixtures.js";

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const eq = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

/** Subjects of a Secure Boot variable's X.509 entries (or SHA-256 hashes). */
function entries(store: ReturnType<typeof parseVarStore>, name: string): string[] {
  const guid =
    name === "db" || name === "dbx" ? Guids.EFI_IMAGE_SECURITY_DATABASE_GUID : Guids.EFI_GLOBAL_VARIABLE;
  const v = getVariable(store, name, guid);
  assert.ok(v, `${name} present`);
  return describeDatabase(decodeSignatureDatabase(v.data)).map((d) =>
    d.kind === "x509" ? d.subject : d.kind === "sha256" ? `sha256:${d.hash}` : d.kind,
  );
}

for (const [file, info] of Object.entries(debianStores)) {
  test(`Debian ${file} parses and re-encodes byte-identically`, () => {
    const bytes = debianOvmf(file);
    assert.equal(bytes.length, info.size);
    const store = parseVarStore(bytes);
    assert.ok(store.freeSpaceErased);
    assert.ok(store.ftw, "FTW working block found");
    assert.ok(store.ftw.crcValid, "FTW working block CRC valid");
    assert.equal(store.ftw.pendingWrite, false);
    assert.ok(eq(encodeVarStore(store), bytes), "round trip byte-identical");
    const names = listVariables(store).map((v) => v.name);
    if (info.enrolled === "none") {
      assert.deepEqual(names, []);
      return;
    }
    for (const n of ["PK", "KEK", "db", "dbx", "SecureBootEnable", "CustomMode"])
      assert.ok(names.includes(n), n);
    if (info.enrolled === "ms") {
      assert.match(entries(store, "PK")[0]!, /CN=Debian UEFI Secure Boot \(PK\/KEK key\)/);
      const kek = entries(store, "KEK");
      assert.ok(kek.some((s) => s.startsWith("CN=Microsoft Corporation KEK CA 2011,")));
      const db = entries(store, "db");
      assert.ok(db.some((s) => s.startsWith("CN=Microsoft Windows Production PCA 2011,")));
      assert.ok(db.some((s) => s.startsWith("CN=Microsoft Corporation UEFI CA 2011,")));
    } else {
      assert.ok(entries(store, "PK")[0]!.startsWith("O=SnakeOil"));
      assert.ok(entries(store, "db")[0]!.startsWith("O=SnakeOil"));
    }
    // Debian's dbx holds one placeholder: the SHA-256 of the empty string.
    assert.deepEqual(entries(store, "dbx"), [`sha256:${sha256(new Uint8Array(0))}`]);
    const sbe = getVariable(store, "SecureBootEnable", Guids.EFI_SECURE_BOOT_ENABLE_DISABLE);
    assert.deepEqual([...sbe!.data], [1]);
  });
}

test("an empty store built from scratch equals Debian's blank OVMF_VARS.fd / OVMF_VARS_4M.fd", () => {
  assert.ok(eq(createEmptyVarStore("2m"), debianOvmf("OVMF_VARS.fd")));
  assert.ok(eq(createEmptyVarStore("4m"), debianOvmf("OVMF_VARS_4M.fd")));
});

test("stores the firmware wrote (deleted records included) round-trip byte-identically", () => {
  const shielded = uefiVector("ovmf-4m-bulwark-shielded-after-boot.fd.gz");
  const s2 = parseVarStore(shielded);
  assert.ok(eq(encodeVarStore(s2), shielded));
  const sbat = getVariable(s2, "SbatLevel", Guids.SHIM_LOCK_GUID);
  assert.match(Buffer.from(sbat!.data).toString(), /^sbat,1,\d{10}\ngrub,|^sbat,1,\d{10}\nshim,/);
  assert.equal(sbat!.attributes, NV_BS_ATTRS);
  const bytes = uefiVector("ovmf-4m-ms-after-boot.fd.gz");
  const store = parseVarStore(bytes);
  assert.ok(
    store.records.some((r) => r.state === 0x3c),
    "has deleted records",
  );
  assert.ok(eq(encodeVarStore(store), bytes));
  // Live view: each name once.
  const live = listVariables(store).map((v) => `${v.guid}/${v.name}`);
  assert.equal(new Set(live).size, live.length);
  assert.ok(live.includes(`${Guids.EFI_GLOBAL_VARIABLE}/BootOrder`));
});

test("set, replace and delete variables; written stores re-parse to the same model", () => {
  let store = parseVarStore(debianOvmf("OVMF_VARS_4M.ms.fd"));
  const before = listVariables(store).length;
  store = setVariable(store, {
    name: "BulwarkTest",
    guid: Guids.SHIM_LOCK_GUID,
    attributes: NV_BS_ATTRS,
    data: new Uint8Array([1, 2, 3]),
  });
  store = setVariable(store, {
    name: "SecureBootEnable",
    guid: Guids.EFI_SECURE_BOOT_ENABLE_DISABLE,
    attributes: NV_BS_ATTRS,
    data: new Uint8Array([0]),
  });
  store = deleteVariable(store, "dbx", Guids.EFI_IMAGE_SECURITY_DATABASE_GUID);
  const bytes = encodeVarStore(store);
  const back = parseVarStore(bytes);
  assert.equal(listVariables(back).length, before);
  assert.deepEqual([...getVariable(back, "BulwarkTest", Guids.SHIM_LOCK_GUID)!.data], [1, 2, 3]);
  assert.deepEqual(
    [...getVariable(back, "SecureBootEnable", Guids.EFI_SECURE_BOOT_ENABLE_DISABLE)!.data],
    [0],
  );
  assert.equal(getVariable(back, "dbx", Guids.EFI_IMAGE_SECURITY_DATABASE_GUID), undefined);
  assert.ok(eq(encodeVarStore(back), bytes), "written store is a fixed point");
  // The FTW area and everything after the store are untouched.
  assert.ok(eq(bytes.subarray(0x40000), debianOvmf("OVMF_VARS_4M.ms.fd").subarray(0x40000)));
  assert.throws(() => deleteVariable(back, "dbx", Guids.EFI_IMAGE_SECURITY_DATABASE_GUID), {
    code: "UEFI_ERR_VARIABLE_NOT_FOUND",
  });
});

test("a full store is a typed error, never a corrupt file; deleted records are reclaimed first", () => {
  let store = parseVarStore(createEmptyVarStore("2m"));
  const chunk = new Uint8Array(0x2000).fill(7);
  let i = 0;
  let error: unknown;
  try {
    for (; i < 100; i++) {
      store = setVariable(store, {
        name: `Fill${i}`,
        guid: Guids.SHIM_LOCK_GUID,
        attributes: NV_BS_ATTRS,
        data: chunk,
      });
      encodeVarStore(store);
    }
  } catch (e) {
    error = e;
  }
  assert.ok(isBulwarkError(error) && error.code === "UEFI_ERR_VARSTORE_FULL", String(error));
  assert.ok(i > 3 && i < 10, `filled after ${i}`);
  // A single variable above OVMF's PcdMaxAuthVariableSize is refused up front.
  assert.throws(
    () =>
      setVariable(parseVarStore(createEmptyVarStore("2m")), {
        name: "db",
        guid: Guids.EFI_IMAGE_SECURITY_DATABASE_GUID,
        attributes: SECURE_BOOT_DB_ATTRS,
        data: new Uint8Array(0x3000),
      }),
    { code: "UEFI_ERR_VARSTORE_FULL" },
  );
  // Deleted records give their space back when, and only when, they are needed.
  let used = parseVarStore(uefiVector("ovmf-4m-ms-after-boot.fd.gz"));
  const recSize = (nameLen: number, dataLen: number) => (60 + (nameLen + 1) * 2 + dataLen + 3) & ~3;
  const total = (st: typeof used) =>
    st.records.reduce((n, r) => n + ((60 + r.nameBytes.length + r.data.length + 3) & ~3), 0);
  const capacity = used.storeHeader.Size - 28;
  const deletedSize = used.records
    .filter((r) => r.state !== 0x3f)
    .reduce((n, r) => n + ((60 + r.nameBytes.length + r.data.length + 3) & ~3), 0);
  assert.ok(deletedSize > 16);
  let n = 0;
  while (capacity - total(used) > 0x8000) {
    used = setVariable(used, {
      name: `Big${n}`,
      guid: Guids.SHIM_LOCK_GUID,
      attributes: NV_BS_ATTRS,
      data: new Uint8Array(0x7f00).fill(n),
    });
    n++;
  }
  // The last variable overflows the space left by 8 bytes: it fits only once deleted records go.
  const free = capacity - total(used);
  const lastLen = free - recSize(5, 0) + 8;
  used = setVariable(used, {
    name: "Last0",
    guid: Guids.SHIM_LOCK_GUID,
    attributes: NV_BS_ATTRS,
    data: new Uint8Array(lastLen).fill(0xee),
  });
  const out = encodeVarStore(used);
  const back = parseVarStore(out);
  assert.deepEqual(listVariables(back), listVariables(used), "live variables intact");
  assert.ok(back.records.length < used.records.length, "deleted records were dropped to make room");
  assert.ok(
    back.records.every((r) => r.state === 0x3f),
    "only deleted records were dropped",
  );
  assert.throws(
    () =>
      encodeVarStore(
        setVariable(used, {
          name: "OneMore",
          guid: Guids.SHIM_LOCK_GUID,
          attributes: NV_BS_ATTRS,
          data: new Uint8Array(deletedSize),
        }),
      ),
    { code: "UEFI_ERR_VARSTORE_FULL" },
  );
});

test("corrupt headers are typed errors", () => {
  const good = debianOvmf("OVMF_VARS_4M.ms.fd");
  const cases: [number, number][] = [
    [0x10, 0x00], // FileSystemGuid
    [0x28, 0x00], // _FVH signature
    [0x32, 0x00], // checksum
    [0x48, 0x00], // variable store signature
    [0x5c, 0x00], // format
  ];
  for (const [off, val] of cases) {
    const b = Uint8Array.from(good);
    b[off] = val;
    assert.throws(
      () => parseVarStore(b),
      { code: "UEFI_ERR_VARSTORE_INVALID" },
      `offset 0x${off.toString(16)}`,
    );
  }
  assert.throws(() => parseVarStore(good.subarray(0, 100)), { code: "UEFI_ERR_VARSTORE_INVALID" });
});

test("a pending fault-tolerant write refuses modification", () => {
  const bytes = Uint8Array.from(debianOvmf("OVMF_VARS.ms.fd"));
  // EFI_FAULT_TOLERANT_WRITE_HEADER at the start of the queue: HeaderAllocated + WritesAllocated, not Complete.
  const q = 0xf000 + 32;
  bytes[q] = 0xfc;
  new DataView(bytes.buffer).setBigUint64(q + 24, 1n, true); // NumberOfWrites
  new DataView(bytes.buffer).setBigUint64(q + 32, 0n, true); // PrivateDataSize
  bytes[q + 40] = 0xfd; // record: SpareComplete set, DestinationComplete not
  const store = parseVarStore(bytes);
  assert.equal(store.ftw?.pendingWrite, true);
  assert.throws(
    () =>
      setVariable(store, {
        name: "X",
        guid: Guids.SHIM_LOCK_GUID,
        attributes: NV_BS_ATTRS,
        data: new Uint8Array(1),
      }),
    { code: "UEFI_ERR_VARSTORE_FTW_PENDING" },
  );
  bytes[q + 40] = 0xf9; // destination complete too: nothing to replay
  assert.equal(parseVarStore(bytes).ftw?.pendingWrite, false);
  // A working block failing its CRC is refused too (edk2 would recover it from the spare).
  const badCrc = Uint8Array.from(debianOvmf("OVMF_VARS.ms.fd"));
  badCrc[0xf000 + 16]! ^= 1;
  const bad = parseVarStore(badCrc);
  assert.equal(bad.ftw?.crcValid, false);
  assert.throws(() => deleteVariable(bad, "dbx", Guids.EFI_IMAGE_SECURITY_DATABASE_GUID), {
    code: "UEFI_ERR_VARSTORE_FTW_PENDING",
  });
});

test("fast-check: mutated stores parse to a model or a typed error, and models re-encode to a fixed point", () => {
  const bases = [
    Uint8Array.from(debianOvmf("OVMF_VARS.ms.fd")),
    Uint8Array.from(uefiVector("ovmf-4m-ms-after-boot.fd.gz")),
  ];
  // Mutations concentrate on the headers and the first records, where the structure lives.
  // They are applied in place and undone afterwards (copying 528 KiB per run would dominate).
  fc.assert(
    fc.property(
      fc.constantFrom(0, 1),
      fc.array(fc.tuple(fc.nat({ max: 0x1800 }), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 6,
      }),
      (which, muts) => {
        const b = bases[which]!;
        const saved = Uint8Array.from(b.subarray(0, 0x1800 + 1));
        try {
          for (const [off, val] of muts) b[off] = val;
          // Keep the FV checksum valid half of the time so that deeper code is reached.
          if (muts[0]![1] % 2 === 0) {
            b[50] = 0;
            b[51] = 0;
            let s = 0;
            for (let i = 0; i < 0x48; i += 2) s = (s + (b[i]! | (b[i + 1]! << 8))) & 0xffff;
            const c = (0x10000 - s) & 0xffff;
            b[50] = c & 0xff;
            b[51] = c >> 8;
          }
          let store;
          try {
            store = parseVarStore(b);
          } catch (e) {
            assert.ok(isBulwarkError(e) && e.code.startsWith("UEFI_ERR_"), String(e));
            return;
          }
          listVariables(store);
          let out;
          try {
            out = encodeVarStore(store);
          } catch (e) {
            assert.ok(isBulwarkError(e) && e.code.startsWith("UEFI_ERR_"), String(e));
            return;
          }
          assert.equal(out.length, b.length);
          const again = parseVarStore(out);
          assert.ok(eq(encodeVarStore(again), out));
          if (store.freeSpaceErased)
            assert.ok(eq(out, b), "unmodified store with erased free space re-encodes identically");
        } finally {
          b.set(saved, 0);
        }
      },
    ),
    { numRuns: 10_000 },
  );
});

test("fast-check: arbitrary bytes never crash the parser", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (b) => {
      try {
        parseVarStore(b);
      } catch (e) {
        assert.ok(isBulwarkError(e) && e.code === "UEFI_ERR_VARSTORE_INVALID", String(e));
      }
    }),
    { numRuns: 10_000 },
  );
});
