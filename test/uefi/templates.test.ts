import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { extractMicrosoftSet } from "../../src/uefi/ms-certs.js";
import {
  BUILTIN_TEMPLATES,
  findTemplate,
  makeCustomTemplate,
  parseCustomTemplate,
  resolveTemplate,
  serializeCustomTemplate,
  signatureListsFromFile,
} from "../../src/uefi/templates.js";
import { buildSecureBootVarStore } from "../../src/uefi/varstore-build.js";
import { encodeVarStore, getVariable, parseVarStore, setVariable } from "../../src/uefi/varstore.js";
import { reportVarStore } from "../../src/uefi/varstore-report.js";
import {
  decodeSignatureDatabase,
  describeDatabase,
  encodeSignatureDatabase,
  x509List,
  type SignatureDatabase,
} from "../../src/uefi/siglist.js";
import { BULWARK_OWNER_GUID, Guids } from "../../src/uefi/guid.js";
import { isBulwarkError } from "../../src/core/errors.js";
import { debianOvmf, makeKey } from "../helpers/uefi-varstore-fixtures.js";

const ms = extractMicrosoftSet(debianOvmf("OVMF_VARS_4M.ms.fd"), "/usr/share/OVMF/OVMF_VARS_4M.ms.fd");
const pk = makeKey("Template test PK");

const cns = (lists: SignatureDatabase) =>
  describeDatabase(lists).map((d) => (d.kind === "x509" ? /CN=([^,]+)/.exec(d.subject)?.[1] : d.kind));

test("the Microsoft certificates come from Debian's OVMF_VARS_4M.ms.fd, found by subject", () => {
  const roles = ms.certificates.map((c) => c.role).sort();
  assert.deepEqual(roles, ["kek-ca-2011", "uefi-ca-2011", "windows-production-pca-2011"]);
  for (const c of ms.certificates) assert.equal(c.sha256, createHash("sha256").update(c.der).digest("hex"));
  assert.equal(ms.sourceSha256, createHash("sha256").update(debianOvmf("OVMF_VARS_4M.ms.fd")).digest("hex"));
  // The snakeoil store has no Microsoft certificates: a typed error, not an empty template.
  assert.throws(() => extractMicrosoftSet(debianOvmf("OVMF_VARS_4M.snakeoil.fd"), "snakeoil"), {
    code: "UEFI_ERR_MS_CERTS_MISSING",
  });
});

test("built-in templates by Hyper-V name or ID resolve to their meaning", () => {
  assert.equal(findTemplate("microsoftwindows").id, "1734c6e8-3154-4dda-ba5f-a874cc483422");
  assert.equal(
    findTemplate("{272E7447-90A4-4563-A4B9-8E4AB00526CE}").name,
    "MicrosoftUEFICertificateAuthority",
  );
  assert.equal(findTemplate("4292ae2b-ee2c-42b5-a969-dd8f8689f6f3").name, "OpenSourceShieldedVM");
  assert.throws(() => findTemplate("NoSuch"), { code: "UEFI_ERR_TEMPLATE_NOT_FOUND" });
  const win = resolveTemplate(findTemplate("MicrosoftWindows"), pk.cert, ms);
  assert.deepEqual(cns(win.db), ["Microsoft Windows Production PCA 2011"]);
  assert.deepEqual(cns(win.KEK), ["Microsoft Corporation KEK CA 2011"]);
  assert.deepEqual(cns(win.PK), ["Template test PK"]);
  assert.deepEqual(win.unavailable, ["Microsoft Corporation KEK 2K CA 2023", "Windows UEFI CA 2023"]);
  for (const name of ["MicrosoftUEFICertificateAuthority", "OpenSourceShieldedVM"]) {
    const t = resolveTemplate(findTemplate(name), pk.cert, ms);
    assert.deepEqual(cns(t.db), ["Microsoft Corporation UEFI CA 2011"]);
    assert.deepEqual(cns(t.dbx), ["sha256"]);
  }
  assert.equal(BUILTIN_TEMPLATES.length, 3);
});

test("built stores are deterministic and report what the firmware will do", () => {
  const t = resolveTemplate(findTemplate("MicrosoftUEFICertificateAuthority"), pk.cert, ms);
  const a = buildSecureBootVarStore({ template: t });
  const b = buildSecureBootVarStore({ template: t });
  assert.deepEqual(a, b);
  assert.equal(a.length, 540672);
  const on = reportVarStore(parseVarStore(a), a.length);
  assert.equal(on.secureBoot, "enabled");
  assert.deepEqual(
    on.policy.map((p) => p.name),
    ["PK", "KEK", "db", "dbx"],
  );
  const off = buildSecureBootVarStore({ template: t, secureBoot: false, size: "2m" });
  assert.equal(off.length, 131072);
  assert.equal(reportVarStore(parseVarStore(off), off.length).secureBoot, "disabled");
});

test("re-applying a template to an existing store replaces the policy and keeps other variables", () => {
  const t = resolveTemplate(findTemplate("MicrosoftUEFICertificateAuthority"), pk.cert, ms);
  const first = buildSecureBootVarStore({ template: t });
  const withBoot = encodeVarStore(
    setVariable(parseVarStore(first), {
      name: "BootOrder",
      guid: Guids.EFI_GLOBAL_VARIABLE,
      attributes: 7,
      data: new Uint8Array([1, 0]),
    }),
  );
  const noDbx = { ...resolveTemplate(findTemplate("MicrosoftWindows"), pk.cert, ms), dbx: [] };
  const second = parseVarStore(
    buildSecureBootVarStore({ template: noDbx, secureBoot: false, base: withBoot }),
  );
  const r = reportVarStore(second, 0);
  assert.equal(r.secureBoot, "disabled");
  assert.deepEqual(
    r.policy.map((p) => p.name),
    ["PK", "KEK", "db"],
    "the old dbx is gone",
  );
  assert.deepEqual(
    cns(decodeSignatureDatabase(getVariable(second, "db", Guids.EFI_IMAGE_SECURITY_DATABASE_GUID)!.data)),
    ["Microsoft Windows Production PCA 2011"],
  );
  assert.ok(getVariable(second, "BootOrder", Guids.EFI_GLOBAL_VARIABLE), "boot entries are kept");
});

test("import sources: PEM (several), DER, ESL and SHA-256 hash lists are detected by content", () => {
  const k1 = makeKey("One");
  const k2 = makeKey("Two");
  const pem = `# comment\n${k1.certPem}${k2.certPem}`;
  assert.deepEqual(cns(signatureListsFromFile(new TextEncoder().encode(pem), "pem")), ["One", "Two"]);
  assert.deepEqual(cns(signatureListsFromFile(k1.cert, "der")), ["One"]);
  const esl = encodeSignatureDatabase([x509List(k2.cert, Guids.MICROSOFT_VENDOR)]);
  const fromEsl = signatureListsFromFile(esl, "esl");
  assert.equal(fromEsl[0]?.entries[0]?.owner, Guids.MICROSOFT_VENDOR, "ESL owners are kept");
  const h = createHash("sha256").update("x").digest("hex");
  const hashes = signatureListsFromFile(
    new TextEncoder().encode(`# revoked\n${h}\n${h.toUpperCase()}\n`),
    "hashes",
  );
  assert.equal(hashes[0]?.type, Guids.EFI_CERT_SHA256_GUID);
  assert.equal(hashes[0]?.entries.length, 2);
  assert.equal(hashes[0]?.entries[0]?.owner, BULWARK_OWNER_GUID);
  assert.throws(() => signatureListsFromFile(new TextEncoder().encode("hello"), "junk"), {
    code: "UEFI_ERR_TEMPLATE_INVALID",
  });
});

test("custom templates round-trip through their file form; names and IDs are unique", () => {
  const k = makeKey("Custom db");
  const h = createHash("sha256").update("revoked").digest();
  const vars = {
    PK: encodeSignatureDatabase(signatureListsFromFile(pk.cert, "pk")),
    KEK: encodeSignatureDatabase(signatureListsFromFile(k.cert, "kek")),
    db: encodeSignatureDatabase(signatureListsFromFile(k.cert, "db")),
    dbx: encodeSignatureDatabase(
      signatureListsFromFile(new TextEncoder().encode(`${h.toString("hex")}\n`), "dbx"),
    ),
  };
  assert.deepEqual(cns(decodeSignatureDatabase(vars.PK)), ["Template test PK"]);
  assert.deepEqual(cns(decodeSignatureDatabase(vars.db)), ["Custom db"]);
  const t = makeCustomTemplate(
    { name: "CustomImport", source: "pk.pem, db.pem", vars },
    [],
    () => "00000000-0000-4000-8000-00000000000a",
  );
  const back = parseCustomTemplate(serializeCustomTemplate(t), "t.json");
  assert.deepEqual(back, t);
  assert.throws(
    () =>
      makeCustomTemplate(
        { name: "microsoftwindows", source: "x", vars },
        [],
        () => "00000000-0000-4000-8000-00000000000b",
      ),
    {
      code: "UEFI_ERR_TEMPLATE_EXISTS",
    },
  );
  assert.throws(() => makeCustomTemplate({ name: "Other", id: t.id, source: "x", vars }, [t], () => t.id), {
    code: "UEFI_ERR_TEMPLATE_EXISTS",
  });
  assert.equal(findTemplate("customimport", [t]).id, t.id);
  const resolved = resolveTemplate(t, makeKey("unused").cert);
  assert.deepEqual(
    cns(resolved.PK),
    ["Template test PK"],
    "a template's own PK wins over the installation PK",
  );
});

test("fast-check: stored custom templates parse to a template or a typed error", () => {
  const good = JSON.parse(
    serializeCustomTemplate(
      makeCustomTemplate(
        {
          name: "Fuzz",
          source: "x",
          vars: {
            KEK: encodeSignatureDatabase([x509List(pk.cert, BULWARK_OWNER_GUID)]),
            db: new Uint8Array(0),
            dbx: new Uint8Array(0),
          },
        },
        [],
        () => "00000000-0000-4000-8000-0000000000ff",
      ),
    ),
  ) as Record<string, unknown>;
  const field = fc.constantFrom("format", "name", "id", "description", "source", "PK", "KEK", "db", "dbx");
  const value = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.base64String({ maxLength: 80 }),
    fc.integer(),
    fc.constant(null),
  );
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string({ maxLength: 100 }),
        fc.dictionary(field, value).map((d) => JSON.stringify({ ...good, ...d })),
      ),
      (text) => {
        try {
          parseCustomTemplate(text, "fuzz.json");
        } catch (e) {
          assert.ok(isBulwarkError(e), String(e));
        }
      },
    ),
    { numRuns: 10_000 },
  );
});

test("fast-check: import parsers return lists or a typed error for any input", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 400 }),
        fc.string({ maxLength: 200 }).map((s) => new TextEncoder().encode(s)),
      ),
      (b) => {
        try {
          signatureListsFromFile(b, "fuzz");
        } catch (e) {
          assert.ok(isBulwarkError(e), String(e));
        }
      },
    ),
    { numRuns: 10_000 },
  );
});
