import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import fc from "fast-check";
import { verifySigners } from "../../src/asn1/cms.js";
import { createCertificate, derToPem, parseCertificate, pemToDer } from "../../src/asn1/x509.js";
import { signPe, unsignPe } from "../../src/uefi/authenticode-sign.js";
import {
  authenticodeDigest,
  parseAuthenticode,
  verifyImage,
  type SignatureDatabaseModel,
} from "../../src/uefi/authenticode.js";
import { isUefiPeError } from "../../src/uefi/errors-pe.js";
import { parsePe } from "../../src/uefi/pe.js";
import { isFindingId } from "../../src/core/verdict.js";
import { tempDir, tool, toolOk } from "../helpers/asn1-tools.js";
import { repoPath } from "../helpers/paths.js";
import {
  findByCommonName,
  ovmfMsDatabases,
  readBootChain,
  shimVendorCertificate,
} from "../helpers/uefi-bootchain.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const none: SignatureDatabaseModel = { x509: [], sha256: [] };
const dbOf = (x509: Uint8Array[] = [], sha256: Uint8Array[] = []): SignatureDatabaseModel => ({
  x509,
  sha256,
});

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ownCert = createCertificate({
  subject: "CN=Bulwark Authenticode test signer",
  publicKey: rsa.publicKey,
  signingKey: rsa.privateKey,
  extKeyUsage: ["codeSigning"],
});

/** What sbverify says about an image: its integrity verdict and the digests it prints on a mismatch. */
function sbverify(
  file: string,
  certPem: string,
): { hashOk: boolean; computed?: string; signed?: string; output: string } {
  const r = tool("sbverify", ["-v", "--cert", certPem, file]);
  const output = r.stdout + r.stderr;
  // sbverify prints " got: <signed digest>" and " expecting: <digest it computed>" (labels as in sbverify.c).
  const got = /got:\s*([0-9a-f]{64})/.exec(output)?.[1];
  const expecting = /expecting:\s*([0-9a-f]{64})/.exec(output)?.[1];
  const hashOk = !/Image fails hash check|Hash doesn't match/.test(output);
  return { hashOk, ...(expecting ? { computed: expecting } : {}), ...(got ? { signed: got } : {}), output };
}

function integrityOk(bytes: Uint8Array): boolean {
  const v = verifyImage(bytes, { db: none, dbx: none });
  return v.signatures.length > 0 && v.signatures.every((s) => s.digestMatches);
}

test("test vectors: our digest equals the signed digest; sbsign output verifies with us", () => {
  const dir = repoPath("test/vectors/pe");
  const signer = pemToDer(readFileSync(`${dir}/signer.pem`, "utf8"));
  for (const name of readdirSync(dir).filter((f) => f.endsWith("-signed.efi"))) {
    const bytes = new Uint8Array(readFileSync(`${dir}/${name}`));
    const pe = parsePe(bytes);
    const sig = parseAuthenticode(pe.certificates[0]!.signedData!);
    assert.equal(hex(authenticodeDigest(pe)), hex(sig.indirect.digest), name);
    const v = verifyImage(bytes, { db: dbOf([signer]), dbx: none });
    assert.ok(v.ok, `${name}: ${v.reason}`);
    assert.equal(v.signatures[0]?.dbMatch?.how, "member");
    assert.equal(verifyImage(bytes, { db: none, dbx: none }).ok, false);
    // An unparseable db certificate is ignored with a warning, the valid one still decides.
    const withJunk = verifyImage(bytes, {
      db: dbOf([new Uint8Array([0x30, 0x03, 1, 2, 3]), signer]),
      dbx: none,
    });
    assert.ok(withJunk.ok);
    assert.equal(withJunk.findings[0]?.id, "authenticode.db.x509.0");
    assert.equal(withJunk.findings[0]?.severity, "warning");
    const r = sbverify(`${dir}/${name}`, `${dir}/signer.pem`);
    assert.ok(r.hashOk && /Signature verification OK/.test(r.output), r.output);
  }
});

test("Debian shim, grub, kernel: our Authenticode digest equals sbverify's, intact and corrupted", async () => {
  const bc = await readBootChain();
  const t = tempDir("bulwark-authenticode-");
  try {
    writeFileSync(t.file("any.pem"), derToPem(ownCert));
    for (const [name, bytes] of [
      ["shim", bc.shim],
      ["grub", bc.grub],
      ["kernel", bc.kernel],
    ] as const) {
      const pe = parsePe(bytes);
      const ours = hex(authenticodeDigest(pe));
      for (const c of pe.certificates)
        assert.equal(hex(parseAuthenticode(c.signedData!).indirect.digest), ours, name);
      writeFileSync(t.file(`${name}.efi`), bytes);
      const intact = sbverify(t.file(`${name}.efi`), t.file("any.pem"));
      assert.ok(intact.hashOk, intact.output);
      assert.equal(integrityOk(bytes), true);
      // Corruptions: inside the first section, inside the headers (a section name byte), in data after
      // the last section (if any), and in the CheckSum field, which the digest skips.
      const s0 = pe.sections[0]!;
      const lastEnd = Math.max(...pe.sections.map((s) => s.PointerToRawData + s.SizeOfRawData));
      const places: [string, number, boolean][] = [
        ["section", s0.PointerToRawData + 100, false],
        ["header", pe.sectionTableOffset + 1, false],
        ["checksum", pe.checkSumOffset, true],
      ];
      if (pe.certificateTable!.offset > lastEnd) places.push(["trailing", lastEnd + 3, false]);
      for (const [where, at, stillIntact] of places) {
        const b = bytes.slice();
        b[at] = (b[at] as number) ^ 0x5a;
        writeFileSync(t.file(`${name}-${where}.efi`), b);
        const sb = sbverify(t.file(`${name}-${where}.efi`), t.file("any.pem"));
        const mine = integrityOk(b);
        assert.equal(mine, sb.hashOk, `${name}/${where}: ours ${mine}, sbverify ${sb.hashOk}\n${sb.output}`);
        assert.equal(mine, stillIntact, `${name}/${where}`);
        if (!stillIntact) {
          assert.equal(
            hex(authenticodeDigest(parsePe(b))),
            sb.computed,
            `${name}/${where}: digest differs from sbverify's`,
          );
          assert.equal(sb.signed, ours);
        }
      }
    }
  } finally {
    t.cleanup();
  }
});

test("firmware decision: shim chains to 'Microsoft Corporation UEFI CA 2011' in OVMF_VARS_4M.ms.fd's db", async () => {
  const bc = await readBootChain();
  const ms = ovmfMsDatabases();
  const ca2011 = findByCommonName(ms.dbCertificates, "Microsoft Corporation UEFI CA 2011");
  const v = verifyImage(bc.shim, { db: ms.db, dbx: ms.dbx });
  assert.ok(v.ok, v.reason);
  const s0 = v.signatures[0]!;
  assert.equal(s0.dbMatch?.certificate?.subject, parseCertificate(ca2011).subject.text);
  assert.equal(s0.dbMatch?.how, "member");
  assert.deepEqual(
    s0.signers[0]?.chain.map((c) => /CN=([^,]+)$/.exec(c.subject)?.[1]),
    ["Microsoft Windows UEFI Driver Publisher", "Microsoft Corporation UEFI CA 2011"],
  );
  // The same db without the UEFI CA (only the Windows PCA): refused.
  const pcaOnly = dbOf(ms.db.x509.filter((c) => c !== ca2011));
  assert.equal(verifyImage(bc.shim, { db: pcaOnly, dbx: none }).ok, false);
  // grub and the kernel are signed by Debian's CA, not Microsoft's: firmware alone refuses them (shim verifies them).
  for (const img of [bc.grub, bc.kernel]) {
    const r = verifyImage(img, { db: ms.db, dbx: ms.dbx });
    assert.equal(r.ok, false);
    assert.ok(r.signatures[0]?.digestMatches && r.signatures[0].signers[0]?.signatureValid);
  }
  // With shim's vendor certificate (Debian Secure Boot CA) in db they are allowed: the CA issued the signer.
  const debianCa = shimVendorCertificate(bc.shim);
  assert.match(parseCertificate(debianCa).subject.text, /Debian Secure Boot CA/);
  for (const img of [bc.grub, bc.kernel]) {
    const r = verifyImage(img, { db: dbOf([debianCa]), dbx: none });
    assert.ok(r.ok, r.reason);
    assert.equal(r.signatures[0]?.dbMatch?.how, "issuer");
  }
});

test("firmware decision: dbx by image hash or by any certificate in any signature's chain refuses", async () => {
  const bc = await readBootChain();
  const ms = ovmfMsDatabases();
  const digest = authenticodeDigest(parsePe(bc.shim));
  const byHash = verifyImage(bc.shim, { db: ms.db, dbx: dbOf([], [digest]) });
  assert.equal(byHash.ok, false);
  assert.match(byHash.reason, /image hash is in dbx/);
  const ca2011 = findByCommonName(ms.dbCertificates, "Microsoft Corporation UEFI CA 2011");
  const byCa = verifyImage(bc.shim, { db: ms.db, dbx: dbOf([ca2011]) });
  assert.equal(byCa.ok, false);
  assert.match(byCa.reason, /UEFI CA 2011.*is in dbx/);
  // The 2023 CA from the second signature's bag in dbx: refused although signature 0 is allowed by db (edk2 semantics).
  const pe = parsePe(bc.shim);
  const bag2 = parseAuthenticode(pe.certificates[1]!.signedData!).signedData.certificates;
  const ca2023 = findByCommonName(bag2, "Microsoft UEFI CA 2023");
  const by2023 = verifyImage(bc.shim, { db: ms.db, dbx: dbOf([ca2023]) });
  assert.equal(by2023.ok, false);
  assert.match(by2023.reason, /signature 1: .*UEFI CA 2023/);
  // EFI_CERT_X509_SHA256 (TBS hash) of the signer certificate in dbx refuses too.
  const signerTbs = parseCertificate(
    findByCommonName(
      parseAuthenticode(pe.certificates[0]!.signedData!).signedData.certificates,
      "Microsoft Windows UEFI Driver Publisher",
    ),
  ).tbsRaw;
  const byTbs = verifyImage(bc.shim, {
    db: ms.db,
    dbx: {
      x509: [],
      sha256: [],
      x509Sha256: [new Uint8Array(createHash("sha256").update(signerTbs).digest())],
    },
  });
  assert.equal(byTbs.ok, false);
  assert.match(byTbs.reason, /TBS hash of certificate .*UEFI Driver Publisher/);
  // The verdict: failed checks as findings (the decision an error when refused), passed ones by id.
  const allowed = verifyImage(bc.shim, { db: ms.db, dbx: ms.dbx });
  assert.ok(allowed.ok);
  assert.ok(allowed.passed.includes("authenticode.decision"));
  assert.ok(allowed.passed.includes("authenticode.signature.1.signer.0.signature"));
  assert.deepEqual(
    byTbs.findings.filter((f) => f.severity === "error").map((f) => f.id),
    ["authenticode.signature.0.dbx", "authenticode.decision"],
  );
  for (const f of [...allowed.findings, ...byTbs.findings]) assert.ok(isFindingId(f.id), f.id);
  // A db entry by hash allows a signed image whose signature does not chain.
  assert.ok(verifyImage(bc.grub, { db: dbOf([], [authenticodeDigest(parsePe(bc.grub))]), dbx: none }).ok);
});

test("unsigned images are allowed only by hash in db, and refused by hash in dbx", async () => {
  const bc = await readBootChain();
  const unsigned = unsignPe(bc.grub);
  const pe = parsePe(unsigned);
  assert.equal(pe.certificateTable, undefined);
  const digest = authenticodeDigest(pe);
  assert.equal(
    hex(digest),
    hex(authenticodeDigest(parsePe(bc.grub))),
    "removing the signature leaves the digest",
  );
  const debianCa = shimVendorCertificate(bc.shim);
  assert.equal(verifyImage(unsigned, { db: dbOf([debianCa]), dbx: none }).ok, false);
  assert.ok(verifyImage(unsigned, { db: dbOf([], [digest]), dbx: none }).ok);
  assert.equal(verifyImage(unsigned, { db: dbOf([], [digest]), dbx: dbOf([], [digest]) }).ok, false);
});

test("signing: our signatures verify with sbverify; sbsign's verify with us; append keeps Microsoft's", async () => {
  const bc = await readBootChain();
  const t = tempDir("bulwark-authenticode-");
  try {
    writeFileSync(t.file("own.pem"), derToPem(ownCert));
    writeFileSync(t.file("own.key"), rsa.privateKey.export({ type: "pkcs8", format: "pem" }));
    const own = dbOf([ownCert]);
    // Replace Debian's signature on grub with ours.
    const ours = signPe(bc.grub, { key: rsa.privateKey, certificate: ownCert });
    writeFileSync(t.file("grub-ours.efi"), ours);
    const sv = sbverify(t.file("grub-ours.efi"), t.file("own.pem"));
    assert.match(sv.output, /Signature verification OK/);
    assert.equal(parsePe(ours).certificates.length, 1);
    assert.ok(verifyImage(ours, { db: own, dbx: none }).ok);
    assert.equal(verifyImage(ours, { db: dbOf([shimVendorCertificate(bc.shim)]), dbx: none }).ok, false);
    // The test vector (3130 bytes, not 8-aligned): our padding and digest match sbsign's.
    const hello = new Uint8Array(readFileSync(repoPath("test/vectors/pe/hello.efi")));
    writeFileSync(t.file("hello.efi"), hello);
    toolOk("sbsign", [
      "--key",
      t.file("own.key"),
      "--cert",
      t.file("own.pem"),
      "--output",
      t.file("hello-sbsign.efi"),
      t.file("hello.efi"),
    ]);
    const bySbsign = new Uint8Array(readFileSync(t.file("hello-sbsign.efi")));
    const v = verifyImage(bySbsign, { db: own, dbx: none });
    assert.ok(v.ok, v.reason);
    const mine = signPe(hello, { key: rsa.privateKey, certificate: ownCert });
    assert.equal(verifyImage(mine, { db: own, dbx: none }).digest, v.digest);
    // Same SpcIndirectDataContent bytes as sbsign (sbsign adds signingTime and SMIMECapabilities attributes; we do not).
    const spc = (b: Uint8Array): string =>
      hex(parseAuthenticode(parsePe(b).certificates[0]!.signedData!).indirect.raw);
    assert.equal(spc(mine), spc(bySbsign));
    // Same padded image before the table, apart from CheckSum and the table size in the directory.
    const a = parsePe(mine);
    const b = parsePe(bySbsign);
    assert.equal(a.certificateTable!.offset, b.certificateTable!.offset);
    const mask = (x: Uint8Array): Uint8Array => {
      const c = x.slice(0, a.certificateTable!.offset);
      c.fill(0, a.checkSumOffset, a.checkSumOffset + 4);
      c.fill(0, a.securityDirectoryOffset! + 4, a.securityDirectoryOffset! + 8);
      return c;
    };
    assert.deepEqual(mask(mine), mask(bySbsign));
    // sbsign on an image we signed (replacing ours) and on grub re-signed by us.
    toolOk("sbsign", [
      "--key",
      t.file("own.key"),
      "--cert",
      t.file("own.pem"),
      "--output",
      t.file("grub-sbsign.efi"),
      t.file("grub-ours.efi"),
    ]);
    assert.ok(
      verifyImage(new Uint8Array(readFileSync(t.file("grub-sbsign.efi"))), { db: own, dbx: none }).ok,
    );
    // Append to shim: Microsoft's two signatures stay valid for firmware, ours is a third.
    const appended = signPe(bc.shim, { key: rsa.privateKey, certificate: ownCert, mode: "append" });
    writeFileSync(t.file("shim-appended.efi"), appended);
    const list = toolOk("sbverify", ["--list", t.file("shim-appended.efi")]).stdout;
    assert.equal((list.match(/^signature \d/gm) ?? []).length, 3, list);
    const ms = ovmfMsDatabases();
    assert.ok(verifyImage(appended, { db: ms.db, dbx: ms.dbx }).ok);
    const byOwn = verifyImage(appended, { db: own, dbx: none });
    assert.ok(byOwn.ok);
    assert.equal(byOwn.signatures[2]?.dbMatch?.how, "member");
    // EC P-256 signer: verified by us (edk2 builds usually accept RSA only; we do not claim more).
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const ecCert = createCertificate({
      subject: "CN=EC signer",
      publicKey: ec.publicKey,
      signingKey: ec.privateKey,
    });
    assert.ok(
      verifyImage(signPe(hello, { key: ec.privateKey, certificate: ecCert }), {
        db: dbOf([ecCert]),
        dbx: none,
      }).ok,
    );
  } finally {
    t.cleanup();
  }
});

test("signing refuses a corrupt certificate table; verification refuses it", () => {
  const good = new Uint8Array(readFileSync(repoPath("test/vectors/pe/hello-signed.efi")));
  const pe = parsePe(good);
  const bad = good.slice();
  new DataView(bad.buffer).setUint32(pe.certificateTable!.offset, 4000, true);
  assert.throws(
    () => signPe(bad, { key: rsa.privateKey, certificate: ownCert }),
    (e: unknown) => isUefiPeError(e) && e.code === "UEFI_ERR_PE_CERT_TABLE",
  );
});

test("property: mutated real Authenticode PKCS #7 (shim) → signature or typed error, verification never throws (10,000 runs)", async () => {
  const bc = await readBootChain();
  const blob = parsePe(bc.shim).certificates[0]!.signedData!.slice();
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(blob.length - 1), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 3,
      }),
      fc.option(fc.nat(blob.length), { nil: undefined }),
      (writes, cut) => {
        const saved = writes.map(([i]) => blob[i] as number);
        for (const [i, v] of writes) blob[i] = v;
        try {
          const sig = parseAuthenticode(cut === undefined ? blob : blob.subarray(0, cut));
          for (const v of verifySigners(sig.signedData)) assert.equal(typeof v.ok, "boolean");
        } catch (e) {
          if (!isUefiPeError(e)) throw e;
          assert.equal(e.code, "UEFI_ERR_AUTHENTICODE_INVALID");
        } finally {
          for (let k = writes.length - 1; k >= 0; k--) blob[writes[k]![0]] = saved[k]!;
        }
      },
    ),
    { numRuns: 10_000 },
  );
});
