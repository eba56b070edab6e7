/**
 * Azure's `securityProfile.uefiSettings`, as Microsoft documents it for custom Secure Boot keys
 * ("Secure Boot UEFI keys", learn.microsoft.com/azure/virtual-machines/trusted-launch-secure-boot-custom-uefi)
 * and as the Compute REST API declares it (GalleryImageVersionUefiSettings):
 *
 * ```json
 * "securityProfile": { "uefiSettings": {
 *   "signatureTemplateNames": ["MicrosoftUefiCertificateAuthorityTemplate"],
 *   "additionalSignatures": {
 *     "pk":  { "type": "x509", "value": ["<base64 DER>"] },            // UefiKey (one object)
 *     "kek": [{ "type": "x509", "value": ["<base64 DER>", ...] }],     // UefiKey[]
 *     "db":  [{ "type": "x509" | "sha256", "value": [...] }],         // UefiKey[]
 *     "dbx": [{ "type": "x509" | "sha256", "value": [...] }] } } }     // UefiKey[]
 * ```
 *
 * found in a whole ARM template (`resources[]`, e.g. a Microsoft.Compute/galleries/images/versions
 * resource), in one resource (`properties.securityProfile`), in a `securityProfile` block, or as
 * the `uefiSettings` object itself.
 *
 * Azure's template names map to Bulwark's built-in templates (their KEK/db/dbx; the PK is this
 * installation's, as for every built-in template): MicrosoftWindowsTemplate → MicrosoftWindows,
 * MicrosoftUefiCertificateAuthorityTemplate → MicrosoftUEFICertificateAuthority,
 * NoSignatureTemplate → nothing (only the additional signatures). Bulwark's OpenSourceShieldedVM
 * has no Azure equivalent: it is exported as NoSignatureTemplate plus its lists (its SbatLevel
 * cannot be expressed). Several templates are their union, each entry once.
 *
 * Not expressible in this format, so not kept by a round trip: signature owner GUIDs (imported
 * entries get Microsoft's vendor GUID), how entries are grouped into EFI_SIGNATURE_LISTs, and
 * entry types other than X.509 and SHA-256. Pure: no files (src/host reads and writes them).
 */
import { X509Certificate } from "node:crypto";
import { Guids } from "./guid.js";
import { uefiError } from "./errors.js";
import type { MicrosoftSet } from "./ms-certs.js";
import { encodeSignatureDatabase, sha256List, x509List, type EfiSignatureList } from "./siglist.js";
import {
  findTemplate,
  resolveTemplate,
  type ImportedVars,
  type ResolvedTemplate,
  type Template,
} from "./templates.js";

/** Azure's UefiSignatureTemplateName values and the built-in template each stands for. */
export const AZURE_SIGNATURE_TEMPLATES = [
  { azure: "MicrosoftWindowsTemplate", bulwark: "MicrosoftWindows" },
  { azure: "MicrosoftUefiCertificateAuthorityTemplate", bulwark: "MicrosoftUEFICertificateAuthority" },
  { azure: "NoSignatureTemplate", bulwark: null },
] as const;

export type AzureTemplateName = (typeof AZURE_SIGNATURE_TEMPLATES)[number]["azure"];

export interface AzureUefiSettings {
  /** Where in the document the settings were found, e.g. `resources[0].properties.securityProfile.uefiSettings`. */
  readonly where: string;
  readonly signatureTemplateNames: readonly AzureTemplateName[];
  readonly additionalSignatures: {
    readonly pk?: EfiSignatureList;
    readonly kek: readonly EfiSignatureList[];
    readonly db: readonly EfiSignatureList[];
    readonly dbx: readonly EfiSignatureList[];
  };
}

const DOCUMENTED_SHAPE =
  '`securityProfile.uefiSettings` with `signatureTemplateNames` (e.g. ["NoSignatureTemplate"]) and `additionalSignatures.{pk,kek,db,dbx}` (pk one {type, value}; kek, db, dbx arrays of {type: "x509"|"sha256", value: [base64…]})';

/** Entries per UefiKey and UefiKeys per variable: far above any real dbx (~450 hashes). */
const MAX_VALUES = 10_000;

function invalid(message: string): never {
  throw uefiError("UEFI_ERR_TEMPLATE_INVALID", message);
}

type Json = Record<string, unknown>;
const object = (v: unknown): Json | undefined =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Json) : undefined;

/** `obj[key]` with the key matched case-insensitively (ARM property names are). */
function prop(obj: Json, key: string): unknown {
  const k = Object.keys(obj).find((x) => x.toLowerCase() === key.toLowerCase());
  return k === undefined ? undefined : obj[k];
}

/**
 * Refuses properties outside `allowed`, and one property spelt twice (`pk` and `PK`): with
 * case-insensitive names either could be read, so neither is.
 */
function onlyKeys(obj: Json, allowed: readonly string[], where: string, why: string): void {
  const seen = new Set<string>();
  for (const k of Object.keys(obj)) {
    const lower = k.toLowerCase();
    if (!allowed.some((a) => a.toLowerCase() === lower)) invalid(`${where}.${k.slice(0, 40)}: ${why}`);
    if (seen.has(lower)) invalid(`${where}.${k.slice(0, 40)}: given twice (names are case-insensitive)`);
    seen.add(lower);
  }
}

function refuseInventedShape(obj: Json, where: string): void {
  if (prop(obj, "signatures") !== undefined || prop(obj, "signatureMode") !== undefined) {
    invalid(
      `${where}: \`signatures\`/\`signatureMode\` is not a shape Azure documents (Bulwark's exports used it before); write ${DOCUMENTED_SHAPE}`,
    );
  }
}

/** `properties.securityProfile.uefiSettings` of a resource. */
function securityProfileSettings(resource: Json): Json | undefined {
  const properties = object(prop(resource, "properties"));
  const securityProfile = properties && object(prop(properties, "securityProfile"));
  return securityProfile && object(prop(securityProfile, "uefiSettings"));
}

/** ARM nests child resources a few levels deep; a deeper document is refused, never recursed into. */
const MAX_RESOURCE_DEPTH = 16;

/** Resources of an ARM template (nested child resources included) that carry uefiSettings. */
function armResources(
  resources: unknown[],
  where: string,
  found: { where: string; settings: Json }[],
  depth = 0,
): void {
  if (depth >= MAX_RESOURCE_DEPTH) invalid(`${where}: resources nested more than ${MAX_RESOURCE_DEPTH} deep`);
  resources.forEach((r, i) => {
    const res = object(r);
    if (!res) return;
    const at = `${where}[${i}]`;
    const settings = securityProfileSettings(res);
    if (settings) found.push({ where: `${at}.properties.securityProfile.uefiSettings`, settings });
    const children = prop(res, "resources");
    if (Array.isArray(children)) armResources(children, `${at}.resources`, found, depth + 1);
  });
}

function locate(root: Json): { where: string; settings: Json } {
  const resources = prop(root, "resources");
  if (Array.isArray(resources)) {
    const found: { where: string; settings: Json }[] = [];
    armResources(resources, "resources", found);
    if (found.length === 1) return found[0]!;
    return invalid(
      found.length === 0
        ? `no resource in this ARM template has properties.securityProfile.uefiSettings; write ${DOCUMENTED_SHAPE}`
        : `${found.length} resources carry uefiSettings (${found.map((f) => f.where).join(", ")}); import one at a time`,
    );
  }
  const properties = object(prop(root, "properties"));
  const securityProfile = object(prop(root, "securityProfile"));
  const candidates: [string, Json | undefined][] = [
    ["properties.securityProfile.uefiSettings", securityProfileSettings(root)],
    ["securityProfile.uefiSettings", securityProfile && object(prop(securityProfile, "uefiSettings"))],
    ["uefiSettings", object(prop(root, "uefiSettings"))],
  ];
  for (const [where, settings] of candidates) if (settings) return { where, settings };
  if (properties)
    refuseInventedShape(object(prop(properties, "uefiSettings")) ?? {}, "properties.uefiSettings");
  refuseInventedShape(root, "document");
  if (prop(root, "signatureTemplateNames") !== undefined || prop(root, "additionalSignatures") !== undefined)
    return { where: "(document)", settings: root };
  return invalid(`no uefiSettings found; write ${DOCUMENTED_SHAPE}`);
}

function base64(v: unknown, where: string): Uint8Array {
  if (typeof v !== "string") invalid(`${where}: expected a base64 string`);
  const s = v.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0 || s.length === 0)
    invalid(`${where}: not base64`);
  return Uint8Array.from(Buffer.from(s, "base64"));
}

/** One UefiKey → signature lists (one per certificate; one for all hashes). */
function uefiKey(v: unknown, where: string, allowHashes: boolean): EfiSignatureList[] {
  const key = object(v) ?? invalid(`${where}: expected a UefiKey {type, value}`);
  onlyKeys(key, ["type", "value"], where, "not a UefiKey property");
  const type = prop(key, "type");
  const values = prop(key, "value");
  if (!Array.isArray(values) || values.length === 0)
    invalid(`${where}.value: expected a non-empty array of base64 strings`);
  if (values.length > MAX_VALUES) invalid(`${where}.value: more than ${MAX_VALUES} entries`);
  const bytes = values.map((x, i) => base64(x, `${where}.value[${i}]`));
  const t = typeof type === "string" ? type.toLowerCase() : "";
  if (t === "x509") {
    return bytes.map((der, i) => {
      try {
        new X509Certificate(der);
      } catch (e) {
        invalid(
          `${where}.value[${i}]: not an X.509 certificate (${e instanceof Error ? e.message : String(e)})`,
        );
      }
      return x509List(der, Guids.MICROSOFT_VENDOR);
    });
  }
  if (t === "sha256") {
    if (!allowHashes) invalid(`${where}.type: only x509 belongs here`);
    bytes.forEach(
      (d, i) => d.length !== 32 && invalid(`${where}.value[${i}]: a SHA-256 is 32 bytes, not ${d.length}`),
    );
    return [sha256List(bytes, Guids.MICROSOFT_VENDOR)];
  }
  return invalid(`${where}.type: expected "x509" or "sha256"`);
}

function uefiKeys(v: unknown, where: string, allowHashes: boolean): EfiSignatureList[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) invalid(`${where}: expected an array of UefiKey {type, value}`);
  if (v.length > MAX_VALUES) invalid(`${where}: more than ${MAX_VALUES} keys`);
  return v.flatMap((k, i) => uefiKey(k, `${where}[${i}]`, allowHashes));
}

/** Reads the documented shape; refuses anything else with UEFI_ERR_TEMPLATE_INVALID. */
export function parseAzureUefiSettings(jsonText: string): AzureUefiSettings {
  let doc: unknown;
  try {
    doc = JSON.parse(jsonText);
  } catch (e) {
    return invalid(`uefiSettings: not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const root = object(doc) ?? invalid(`uefiSettings: expected a JSON object with ${DOCUMENTED_SHAPE}`);
  const { where, settings } = locate(root);
  refuseInventedShape(settings, where);
  onlyKeys(
    settings,
    ["signatureTemplateNames", "additionalSignatures"],
    where,
    `not a uefiSettings property (${DOCUMENTED_SHAPE})`,
  );

  const names = prop(settings, "signatureTemplateNames");
  if (!Array.isArray(names) || names.length === 0)
    invalid(
      `${where}.signatureTemplateNames: name the templates (["NoSignatureTemplate"] for only the additional signatures)`,
    );
  const templateNames = names.map((n, i) => {
    const t = AZURE_SIGNATURE_TEMPLATES.find(
      (x) => typeof n === "string" && x.azure.toLowerCase() === n.toLowerCase(),
    );
    if (!t)
      invalid(
        `${where}.signatureTemplateNames[${i}]: '${String(n).slice(0, 60)}' is not one of ${AZURE_SIGNATURE_TEMPLATES.map((x) => x.azure).join(", ")}`,
      );
    return t.azure;
  });
  if (templateNames.includes("NoSignatureTemplate") && templateNames.length > 1)
    invalid(`${where}.signatureTemplateNames: NoSignatureTemplate cannot be combined with other templates`);

  const additional = prop(settings, "additionalSignatures");
  const add =
    additional === undefined
      ? {}
      : (object(additional) ?? invalid(`${where}.additionalSignatures: expected an object`));
  onlyKeys(add, ["pk", "kek", "db", "dbx"], `${where}.additionalSignatures`, "expected pk, kek, db or dbx");
  const at = `${where}.additionalSignatures`;
  const pkValue = prop(add, "pk");
  let pk: EfiSignatureList | undefined;
  if (pkValue !== undefined && pkValue !== null) {
    if (Array.isArray(pkValue))
      invalid(`${at}.pk: the Platform Key is one UefiKey {type, value}, not an array`);
    const lists = uefiKey(pkValue, `${at}.pk`, false);
    if (lists.length !== 1) invalid(`${at}.pk.value: the Platform Key is exactly one certificate`);
    pk = lists[0];
  }
  return {
    where,
    signatureTemplateNames: templateNames,
    additionalSignatures: {
      ...(pk ? { pk } : {}),
      kek: uefiKeys(prop(add, "kek"), `${at}.kek`, false),
      db: uefiKeys(prop(add, "db"), `${at}.db`, true),
      dbx: uefiKeys(prop(add, "dbx"), `${at}.dbx`, true),
    },
  };
}

/** Lists with every (type, entry) seen before removed; empty lists dropped. */
function union(...groups: (readonly EfiSignatureList[])[]): EfiSignatureList[] {
  const seen = new Set<string>();
  const out: EfiSignatureList[] = [];
  for (const l of groups.flat()) {
    const entries = l.entries.filter((e) => {
      const key = `${l.type}/${Buffer.from(e.data).toString("hex")}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    if (entries.length) out.push(entries.length === l.entries.length ? l : { ...l, entries });
  }
  return out;
}

/**
 * The PK/KEK/db/dbx the settings give: the named templates' KEK/db/dbx (from `ms`, extracted at
 * setup) then the additional signatures, each entry once. PK: the additional pk, or none (the
 * installation's PK, as for the built-in templates).
 */
export function varsFromAzureUefiSettings(
  s: AzureUefiSettings,
  ms?: MicrosoftSet,
): { vars: ImportedVars; templates: string[]; unavailable: string[] } {
  const resolved: ResolvedTemplate[] = [];
  const templates: string[] = [];
  for (const name of s.signatureTemplateNames) {
    const bulwark = AZURE_SIGNATURE_TEMPLATES.find((t) => t.azure === name)?.bulwark;
    if (!bulwark) continue;
    templates.push(bulwark);
    // The PK argument is unused here: only KEK/db/dbx are taken from a template.
    resolved.push(resolveTemplate(findTemplate(bulwark), new Uint8Array(0), ms));
  }
  const a = s.additionalSignatures;
  return {
    vars: {
      ...(a.pk ? { PK: encodeSignatureDatabase([a.pk]) } : {}),
      KEK: encodeSignatureDatabase(union(...resolved.map((r) => r.KEK), a.kek)),
      db: encodeSignatureDatabase(union(...resolved.map((r) => r.db), a.db)),
      dbx: encodeSignatureDatabase(union(...resolved.map((r) => r.dbx), a.dbx)),
    },
    templates,
    unavailable: [...new Set(resolved.flatMap((r) => r.unavailable))],
  };
}

type UefiKey = { type: "x509" | "sha256"; value: string[] };

/**
 * A `{ securityProfile: { uefiSettings } }` document for explicit lists (NoSignatureTemplate +
 * additionalSignatures): one UefiKey per EFI_SIGNATURE_LIST. Entry types Azure cannot express are
 * listed in `skipped`; a PK list of more than one certificate cannot be a UefiKey pk either.
 */
export function azureDocumentForLists(vars: {
  readonly PK?: readonly EfiSignatureList[];
  readonly KEK: readonly EfiSignatureList[];
  readonly db: readonly EfiSignatureList[];
  readonly dbx: readonly EfiSignatureList[];
}): { document: Record<string, unknown>; skipped: string[] } {
  const skipped: string[] = [];
  const keys = (name: string, lists: readonly EfiSignatureList[]): UefiKey[] =>
    lists.flatMap((l) => {
      const type =
        l.type === Guids.EFI_CERT_X509_GUID
          ? "x509"
          : l.type === Guids.EFI_CERT_SHA256_GUID
            ? "sha256"
            : undefined;
      if (!type) {
        skipped.push(`${name}: ${l.entries.length} entries of type ${l.type}`);
        return [];
      }
      return [{ type, value: l.entries.map((e) => Buffer.from(e.data).toString("base64")) }];
    });
  const additionalSignatures: Record<string, unknown> = {};
  if (vars.PK?.length) {
    const pk = keys("pk", vars.PK);
    if (pk.length === 1 && pk[0]!.type === "x509" && pk[0]!.value.length === 1)
      additionalSignatures["pk"] = pk[0];
    else skipped.push("pk: not exactly one X.509 certificate");
  }
  for (const [name, lists] of [
    ["kek", vars.KEK],
    ["db", vars.db],
    ["dbx", vars.dbx],
  ] as const) {
    const k = keys(name, lists);
    if (k.length) additionalSignatures[name] = k;
  }
  return {
    document: {
      securityProfile: {
        uefiSettings: { signatureTemplateNames: ["NoSignatureTemplate"], additionalSignatures },
      },
    },
    skipped,
  };
}

/**
 * A template as Azure's documented `securityProfile`: a built-in template Azure also has is just
 * its name; anything else is NoSignatureTemplate plus its lists (a custom template's own PK
 * included; the installation PK never). `notes` say what Azure's side does differently.
 */
export function azureDocumentForTemplate(
  t: Template,
  resolved: ResolvedTemplate,
): { document: Record<string, unknown>; skipped: string[]; notes: string[] } {
  const mapped = AZURE_SIGNATURE_TEMPLATES.find((x) => x.bulwark === t.name && t.kind === "builtin");
  if (mapped) {
    return {
      document: { securityProfile: { uefiSettings: { signatureTemplateNames: [mapped.azure] } } },
      skipped: [],
      notes: [
        `${mapped.azure}: Azure supplies its own PK and its current revocations with it; imported here, the template's KEK/db/dbx are this machine's ${t.name} and the PK is the installation's`,
      ],
    };
  }
  const { document, skipped } = azureDocumentForLists({
    ...(t.kind === "custom" && t.PK ? { PK: resolved.PK } : {}),
    KEK: resolved.KEK,
    db: resolved.db,
    dbx: resolved.dbx,
  });
  const notes: string[] = [];
  if (t.kind === "builtin") {
    notes.push(`${t.name} has no Azure equivalent: written as NoSignatureTemplate with its KEK, db and dbx`);
    for (const v of resolved.extraVariables) skipped.push(`${v.name}: not expressible in uefiSettings`);
  }
  if (resolved.unavailable.length)
    notes.push(`not available on this machine: ${resolved.unavailable.join(", ")}`);
  return { document, skipped, notes };
}
