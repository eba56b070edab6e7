/**
 * Azure's documented `securityProfile.uefiSettings` (signatureTemplateNames +
 * additionalSignatures.{pk,kek,db,dbx}), imported and exported.
 *
 * The fixtures in test/vectors/uefi/azure are written in the shape Microsoft documents on
 * "Secure Boot UEFI keys" (https://learn.microsoft.com/azure/virtual-machines/trusted-launch-secure-boot-custom-uefi,
 * scenarios 1–3, and its generic ARM template for a Microsoft.Compute/galleries/images/versions
 * resource) and in the REST/SDK models GalleryImageVersionUefiSettings, UefiKeySignatures
 * (pk: UefiKey; kek, db, dbx: UefiKey[]) and UefiKey {type: "sha256" | "x509", value: string[]}.
 * Their certificates are the real Microsoft ones from Debian's OVMF_VARS_4M.ms.fd.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { isBulwarkError } from "../../src/core/errors.js";
import {
  AZURE_SIGNATURE_TEMPLATES,
  azureDocumentForLists,
  azureDocumentForTemplate,
  parseAzureUefiSettings,
  varsFromAzureUefiSettings,
} from "../../src/uefi/azure-uefi-settings.js";
import { extractMicrosoftSet } from "../../src/uefi/ms-certs.js";
import {
  decodeSignatureDatabase,
  describeDatabase,
  encodeSignatureDatabase,
  type SignatureDatabase,
} from "../../src/uefi/siglist.js";
import {
  findTemplate,
  makeCustomTemplate,
  resolveTemplate,
  type ImportedVars,
} from "../../src/uefi/templates.js";
import { debianOvmf, makeKey } from "../helpers/uefi-varstore-fixtures.js";
import { repoPath } from "../helpers/paths.js";

const ms = extractMicrosoftSet(debianOvmf("OVMF_VARS_4M.ms.fd"), "/usr/share/OVMF/OVMF_VARS_4M.ms.fd");
const pk = makeKey("Azure test PK");
const fixture = (name: string) => readFileSync(repoPath("test/vectors/uefi/azure", name), "utf8");
const cns = (db: Uint8Array | SignatureDatabase) =>
  describeDatabase(db instanceof Uint8Array ? decodeSignatureDatabase(db) : db).map((d) =>
    d.kind === "x509" ? /CN=([^,]+)/.exec(d.subject)?.[1] : `${d.kind}:${d.kind === "sha256" ? d.hash : ""}`,
  );
const sha = (s: string) => `sha256:${createHash("sha256").update(s).digest("hex")}`;

/**
 * The signature entries of each variable, in order. Owner GUIDs and how entries are grouped
 * into EFI_SIGNATURE_LISTs are not part of Azure's format, so a round trip keeps these.
 */
const content = (v: ImportedVars) =>
  Object.fromEntries(
    (["PK", "KEK", "db", "dbx"] as const).map((k) => [
      k,
      v[k] === undefined
        ? null
        : decodeSignatureDatabase(v[k]).flatMap((l) =>
            l.entries.map((e) => `${l.type}:${Buffer.from(e.data).toString("hex")}`),
          ),
    ]),
  );

function importDoc(text: string): ImportedVars {
  return varsFromAzureUefiSettings(parseAzureUefiSettings(text), ms).vars;
}

test("scenario 1 in a whole ARM template (resources[], image version): every key replaced", () => {
  const s = parseAzureUefiSettings(fixture("arm-image-version-replace-all.json"));
  assert.deepEqual(s.signatureTemplateNames, ["NoSignatureTemplate"]);
  assert.match(s.where, /resources\[0\]\.properties\.securityProfile\.uefiSettings/);
  const { vars, templates } = varsFromAzureUefiSettings(s);
  assert.deepEqual(templates, []);
  assert.deepEqual(cns(vars.PK!), ["Microsoft Corporation KEK CA 2011"]);
  assert.deepEqual(cns(vars.KEK), ["Microsoft Corporation KEK CA 2011"]);
  assert.deepEqual(cns(vars.db), [
    "Microsoft Windows Production PCA 2011",
    "Microsoft Corporation UEFI CA 2011",
  ]);
  assert.deepEqual(cns(vars.dbx), [sha(""), sha("revoked by the fixture")]);
});

test("scenario 2 (securityProfile block): a template plus appended db and dbx entries", () => {
  const vars = importDoc(fixture("security-profile-append.json"));
  const uefiCa = resolveTemplate(findTemplate("MicrosoftUEFICertificateAuthority"), pk.cert, ms);
  assert.equal(vars.PK, undefined, "no pk: the installation's PK, as for every built-in template");
  assert.deepEqual(vars.KEK, encodeSignatureDatabase(uefiCa.KEK));
  assert.deepEqual(cns(vars.db), [
    "Microsoft Corporation UEFI CA 2011",
    "Microsoft Windows Production PCA 2011",
  ]);
  assert.deepEqual(cns(vars.dbx), [...cns(uefiCa.dbx), sha("revoked by the fixture")]);
});

test("scenario 3: two templates are their union, each certificate once", () => {
  const vars = importDoc(fixture("security-profile-two-templates.json"));
  assert.deepEqual(cns(vars.KEK), ["Microsoft Corporation KEK CA 2011"]);
  assert.deepEqual(cns(vars.db), [
    "Microsoft Corporation UEFI CA 2011",
    "Microsoft Windows Production PCA 2011",
  ]);
  assert.deepEqual(cns(vars.dbx), cns(decodeSignatureDatabase(ms.dbx)));
});

test("Azure's template names map to the built-in templates' content; NoSignatureTemplate to none", () => {
  assert.deepEqual(
    AZURE_SIGNATURE_TEMPLATES.map((t) => [t.azure, t.bulwark]),
    [
      ["MicrosoftWindowsTemplate", "MicrosoftWindows"],
      ["MicrosoftUefiCertificateAuthorityTemplate", "MicrosoftUEFICertificateAuthority"],
      ["NoSignatureTemplate", null],
    ],
  );
  for (const { azure, bulwark } of AZURE_SIGNATURE_TEMPLATES) {
    if (!bulwark) continue;
    const doc = { securityProfile: { uefiSettings: { signatureTemplateNames: [azure] } } };
    const vars = importDoc(JSON.stringify(doc));
    const builtin = resolveTemplate(findTemplate(bulwark), pk.cert, ms);
    assert.equal(vars.PK, undefined, azure);
    assert.deepEqual(vars.KEK, encodeSignatureDatabase(builtin.KEK), azure);
    assert.deepEqual(vars.db, encodeSignatureDatabase(builtin.db), azure);
    assert.deepEqual(vars.dbx, encodeSignatureDatabase(builtin.dbx), azure);
    // and back: a mapped built-in exports as just its Azure name
    const out = azureDocumentForTemplate(findTemplate(bulwark), builtin);
    assert.deepEqual(out.document, doc, bulwark);
  }
  // OpenSourceShieldedVM has no Azure template: its lists are written out, SbatLevel cannot be.
  const shielded = findTemplate("OpenSourceShieldedVM");
  const resolved = resolveTemplate(shielded, pk.cert, ms);
  const out = azureDocumentForTemplate(shielded, resolved);
  const settings = (out.document["securityProfile"] as { uefiSettings: Record<string, unknown> })
    .uefiSettings;
  assert.deepEqual(settings["signatureTemplateNames"], ["NoSignatureTemplate"]);
  const back = content(importDoc(JSON.stringify(out.document)));
  const want = content({
    KEK: encodeSignatureDatabase(resolved.KEK),
    db: encodeSignatureDatabase(resolved.db),
    dbx: encodeSignatureDatabase(resolved.dbx),
  });
  assert.deepEqual(back, want);
  assert.equal(back["PK"], null, "the installation PK is not exported");
  assert.ok(
    out.notes.some((n) => /OpenSourceShieldedVM has no Azure equivalent/.test(n)),
    out.notes.join(),
  );
});

test("round trip: import → custom template → export → import gives the same databases", () => {
  for (const name of [
    "arm-image-version-replace-all.json",
    "security-profile-append.json",
    "security-profile-two-templates.json",
  ]) {
    const vars = importDoc(fixture(name));
    const t = makeCustomTemplate(
      { name: "Rt", source: name, vars },
      [],
      () => "00000000-0000-4000-8000-0000000000aa",
    );
    const { document, skipped } = azureDocumentForTemplate(t, resolveTemplate(t, pk.cert));
    assert.deepEqual(skipped, [], name);
    const again = importDoc(JSON.stringify(document));
    assert.deepEqual(content(again), content(vars), name);
  }
  // a store's lists (vars show --uefi-settings) likewise, PK included
  const vars = importDoc(fixture("arm-image-version-replace-all.json"));
  const lists = {
    PK: decodeSignatureDatabase(vars.PK!),
    KEK: decodeSignatureDatabase(vars.KEK),
    db: decodeSignatureDatabase(vars.db),
    dbx: decodeSignatureDatabase(vars.dbx),
  };
  assert.deepEqual(content(importDoc(JSON.stringify(azureDocumentForLists(lists).document))), content(vars));
});

test("Bulwark's former invented shape is refused with the documented one named", () => {
  const old = {
    properties: {
      uefiSettings: {
        signatureMode: "Replace",
        signatures: { db: [{ type: "x509", value: [Buffer.from(pk.cert).toString("base64")] }] },
      },
    },
  };
  for (const doc of [old, old.properties, old.properties.uefiSettings]) {
    assert.throws(
      () => parseAzureUefiSettings(JSON.stringify(doc)),
      (e: unknown) =>
        isBulwarkError(e) &&
        e.code === "UEFI_ERR_TEMPLATE_INVALID" &&
        /securityProfile\.uefiSettings/.test(e.message) &&
        /signatureTemplateNames/.test(e.message) &&
        /additionalSignatures/.test(e.message),
    );
  }
});

test("what Azure's schema does not allow is refused with a typed error", () => {
  const cert = Buffer.from(pk.cert).toString("base64");
  const wrap = (uefiSettings: unknown) => JSON.stringify({ securityProfile: { uefiSettings } });
  const bad: [string, string][] = [
    ["not JSON", "nope"],
    ["no uefiSettings", JSON.stringify({ securityProfile: {} })],
    ["no template names", wrap({ additionalSignatures: { db: [{ type: "x509", value: [cert] }] } })],
    ["unknown template", wrap({ signatureTemplateNames: ["OpenSourceShieldedVM"] })],
    [
      "None with another",
      wrap({ signatureTemplateNames: ["NoSignatureTemplate", "MicrosoftWindowsTemplate"] }),
    ],
    [
      "unknown uefiSettings key",
      wrap({ signatureTemplateNames: ["NoSignatureTemplate"], signatureMode: "x" }),
    ],
    [
      "unknown variable",
      wrap({ signatureTemplateNames: ["NoSignatureTemplate"], additionalSignatures: { dbt: [] } }),
    ],
    [
      "pk as a list",
      wrap({
        signatureTemplateNames: ["NoSignatureTemplate"],
        additionalSignatures: { pk: [{ type: "x509", value: [cert] }] },
      }),
    ],
    [
      "pk with two certificates",
      wrap({
        signatureTemplateNames: ["NoSignatureTemplate"],
        additionalSignatures: { pk: { type: "x509", value: [cert, cert] } },
      }),
    ],
    [
      "pk a hash",
      wrap({
        signatureTemplateNames: ["NoSignatureTemplate"],
        additionalSignatures: { pk: { type: "sha256", value: [Buffer.alloc(32).toString("base64")] } },
      }),
    ],
    [
      "kek a hash",
      wrap({
        signatureTemplateNames: ["NoSignatureTemplate"],
        additionalSignatures: { kek: [{ type: "sha256", value: [Buffer.alloc(32).toString("base64")] }] },
      }),
    ],
    [
      "db not a list",
      wrap({
        signatureTemplateNames: ["NoSignatureTemplate"],
        additionalSignatures: { db: { type: "x509", value: [cert] } },
      }),
    ],
    [
      "bad base64",
      wrap({
        signatureTemplateNames: ["NoSignatureTemplate"],
        additionalSignatures: { db: [{ type: "x509", value: ["!!"] }] },
      }),
    ],
    [
      "short hash",
      wrap({
        signatureTemplateNames: ["NoSignatureTemplate"],
        additionalSignatures: { dbx: [{ type: "sha256", value: [Buffer.alloc(20).toString("base64")] }] },
      }),
    ],
    [
      "not a certificate",
      wrap({
        signatureTemplateNames: ["NoSignatureTemplate"],
        additionalSignatures: { db: [{ type: "x509", value: [Buffer.from("hello").toString("base64")] }] },
      }),
    ],
    [
      "empty value",
      wrap({
        signatureTemplateNames: ["NoSignatureTemplate"],
        additionalSignatures: { db: [{ type: "x509", value: [] }] },
      }),
    ],
    [
      "one variable spelt twice",
      wrap({
        signatureTemplateNames: ["NoSignatureTemplate"],
        additionalSignatures: { db: [{ type: "x509", value: [cert] }], DB: [] },
      }),
    ],
    [
      "unknown type",
      wrap({
        signatureTemplateNames: ["NoSignatureTemplate"],
        additionalSignatures: { db: [{ type: "md5", value: [cert] }] },
      }),
    ],
    [
      "ARM template without uefiSettings",
      JSON.stringify({ resources: [{ type: "Microsoft.Compute/galleries", properties: {} }] }),
    ],
    [
      "two resources with uefiSettings",
      JSON.stringify({
        resources: [1, 2].map((n) => ({
          name: `v${n}`,
          properties: {
            securityProfile: { uefiSettings: { signatureTemplateNames: ["MicrosoftWindowsTemplate"] } },
          },
        })),
      }),
    ],
  ];
  const depth = 5_000; // written as text: JSON.stringify itself cannot nest this deep
  bad.push([
    `resources nested ${depth} deep`,
    `${'{"resources":['.repeat(depth)}{"properties":{}}${"]}".repeat(depth)}`,
  ]);
  for (const [what, text] of bad) {
    assert.throws(() => parseAzureUefiSettings(text), { code: "UEFI_ERR_TEMPLATE_INVALID" }, what);
  }
  // Template names need the Microsoft certificates extracted at setup.
  assert.throws(
    () =>
      varsFromAzureUefiSettings(
        parseAzureUefiSettings(wrap({ signatureTemplateNames: ["MicrosoftWindowsTemplate"] })),
      ),
    { code: "UEFI_ERR_MS_CERTS_MISSING" },
  );
});

test("fast-check: any document parses to settings or a typed error", () => {
  const key = fc.record({
    type: fc.constantFrom("x509", "sha256", "X509", "other", 5),
    value: fc.array(fc.oneof(fc.base64String({ maxLength: 60 }), fc.integer()), { maxLength: 3 }),
  });
  const settings = fc.record(
    {
      signatureTemplateNames: fc.array(
        fc.constantFrom(
          "NoSignatureTemplate",
          "MicrosoftWindowsTemplate",
          "microsoftuefiCertificateAuthorityTemplate",
          "x",
          3,
        ),
        { maxLength: 3 },
      ),
      additionalSignatures: fc.dictionary(
        fc.constantFrom("pk", "kek", "db", "dbx", "PK", "x"),
        fc.oneof(key, fc.array(key, { maxLength: 2 })),
      ),
    },
    { requiredKeys: [] },
  );
  fc.assert(
    fc.property(
      fc.oneof(
        fc.json(),
        settings.map((s) => JSON.stringify({ securityProfile: { uefiSettings: s } })),
        settings.map((s) =>
          JSON.stringify({ resources: [{ properties: { securityProfile: { uefiSettings: s } } }] }),
        ),
      ),
      (text) => {
        try {
          varsFromAzureUefiSettings(parseAzureUefiSettings(text), ms);
        } catch (e) {
          assert.ok(isBulwarkError(e), String(e));
        }
      },
    ),
    { numRuns: 5_000 },
  );
});
