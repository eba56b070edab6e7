/**
 * Secure Boot templates as data, addressable by Hyper-V's names and IDs
 * (`Set-VMFirmware -SecureBootTemplate NAME` / `-SecureBootTemplateId GUID`), and custom templates
 * imported from certificates, signature lists, hash lists or Azure's documented
 * `securityProfile.uefiSettings` (azure-uefi-settings.ts). Pure: the Microsoft certificates come in as a {@link MicrosoftSet} (extracted at setup
 * from Debian's OVMF_VARS_4M.ms.fd), the installation's PK as a certificate.
 *
 * Every template gets this installation's own PK unless a custom template brings one: Bulwark
 * holds the PK private key, as Hyper-V holds its own.
 */
import { X509Certificate } from "node:crypto";
import { pemBlocks } from "../asn1/x509.js";
import { isBulwarkError } from "../core/errors.js";
import { BULWARK_OWNER_GUID, Guids, isGuid, parseGuid, type Guid } from "./guid.js";
import { uefiError } from "./errors.js";
import type { MicrosoftRole, MicrosoftSet } from "./ms-certs.js";
import { MICROSOFT_ROLES } from "./ms-certs.js";
import { sbatLevelVariableData } from "./sbat.js";
import { NV_BS_ATTRS } from "./variables.js";
import { decodeSignatureDatabase, sha256List, x509List, type EfiSignatureList } from "./siglist.js";

export interface BuiltinTemplate {
  readonly kind: "builtin";
  readonly name: string;
  readonly id: Guid;
  readonly description: string;
  /** Microsoft certificates for KEK and db; `optional` ones are used when setup found them. */
  readonly kek: readonly { role: MicrosoftRole; optional?: boolean }[];
  readonly db: readonly { role: MicrosoftRole; optional?: boolean }[];
  /** dbx: the revocations extracted with the Microsoft certificates. */
  readonly dbx: "microsoft";
  /** Pre-seed shim's SbatLevel with the newest level of Debian's signed shim (when setup had one). */
  readonly sbatLevel?: "latest";
  readonly notes: readonly string[];
}

/** The three Hyper-V templates (names and IDs as Hyper-V's Get-VMFirmware reports them). */
export const BUILTIN_TEMPLATES: readonly BuiltinTemplate[] = [
  {
    kind: "builtin",
    name: "MicrosoftWindows",
    id: "1734c6e8-3154-4dda-ba5f-a874cc483422",
    description: "Windows guests: db trusts Microsoft Windows Production PCA 2011 (Windows boot managers).",
    kek: [{ role: "kek-ca-2011" }, { role: "kek-2k-ca-2023", optional: true }],
    db: [{ role: "windows-production-pca-2011" }, { role: "windows-uefi-ca-2023", optional: true }],
    dbx: "microsoft",
    notes: ["Refuses shim-based Linux: the third-party Microsoft UEFI CA is not in db."],
  },
  {
    kind: "builtin",
    name: "MicrosoftUEFICertificateAuthority",
    id: "272e7447-90a4-4563-a4b9-8e4ab00526ce",
    description:
      "Linux and other third-party loaders: db trusts Microsoft Corporation UEFI CA 2011 (shim-based Linux boots).",
    kek: [{ role: "kek-ca-2011" }, { role: "kek-2k-ca-2023", optional: true }],
    db: [{ role: "uefi-ca-2011" }, { role: "uefi-ca-2023", optional: true }],
    dbx: "microsoft",
    notes: ["Refuses Windows boot managers: Microsoft Windows Production PCA 2011 is not in db."],
  },
  {
    kind: "builtin",
    name: "OpenSourceShieldedVM",
    id: "4292ae2b-ee2c-42b5-a969-dd8f8689f6f3",
    description: "Linux shielded VMs: the Microsoft UEFI CA chain with the revocations (dbx) pre-seeded.",
    kek: [{ role: "kek-ca-2011" }, { role: "kek-2k-ca-2023", optional: true }],
    db: [{ role: "uefi-ca-2011" }, { role: "uefi-ca-2023", optional: true }],
    dbx: "microsoft",
    sbatLevel: "latest",
    notes: [
      "Hyper-V's own template is signed off by a Microsoft key that is not public; this is Bulwark's reconstruction from its published meaning, not a copy.",
      "The dbx is whatever the setup source holds: Debian's OVMF_VARS_4M.ms.fd carries a placeholder dbx (one SHA-256 of empty input), not Microsoft's current revocation list. Import a current dbx (e.g. as ESL or Azure uefiSettings JSON) into a custom template to enforce it.",
      "SbatLevel (shim's SBAT revocations, NV|BS so the OS cannot lower it) is pre-seeded with the 'latest' level from the .sbatlevel section of Debian's signed shim when setup was given that shim; shim never lowers a newer level, so revocations it only applies on request are enforced from the first boot.",
    ],
  },
];

export interface CustomTemplate {
  readonly kind: "custom";
  readonly name: string;
  readonly id: Guid;
  readonly description: string;
  /** Where it was imported from (file names or "uefiSettings FILE"). */
  readonly source: string;
  /** Encoded signature databases; PK undefined = use the installation PK. */
  readonly PK?: Uint8Array;
  readonly KEK: Uint8Array;
  readonly db: Uint8Array;
  readonly dbx: Uint8Array;
}

export type Template = BuiltinTemplate | CustomTemplate;

/** What a VM's NVRAM gets from a template. */
export interface ResolvedTemplate {
  readonly name: string;
  readonly id: Guid;
  readonly PK: readonly EfiSignatureList[];
  readonly KEK: readonly EfiSignatureList[];
  readonly db: readonly EfiSignatureList[];
  readonly dbx: readonly EfiSignatureList[];
  /** Optional Microsoft certificates this machine's setup did not find (e.g. the 2023 CAs). */
  readonly unavailable: readonly string[];
  /** Further variables to write (shim's SbatLevel). */
  readonly extraVariables: readonly { name: string; guid: Guid; attributes: number; data: Uint8Array }[];
}

/** Finds a template by Hyper-V name (case-insensitive) or ID. */
export function findTemplate(nameOrId: string, custom: readonly CustomTemplate[] = []): Template {
  const all: Template[] = [...BUILTIN_TEMPLATES, ...custom];
  const key = nameOrId
    .trim()
    .toLowerCase()
    .replace(/^\{|\}$/g, "");
  const t = all.find((x) => x.name.toLowerCase() === key || x.id === key);
  if (!t)
    throw uefiError("UEFI_ERR_TEMPLATE_NOT_FOUND", `no Secure Boot template '${nameOrId.slice(0, 80)}'`);
  return t;
}

function microsoftLists(
  refs: readonly { role: MicrosoftRole; optional?: boolean }[],
  ms: MicrosoftSet,
  unavailable: string[],
): EfiSignatureList[] {
  const out: EfiSignatureList[] = [];
  for (const ref of refs) {
    const c = ms.certificates.find((x) => x.role === ref.role);
    if (c) out.push(x509List(c.der, Guids.MICROSOFT_VENDOR));
    else if (ref.optional) unavailable.push(MICROSOFT_ROLES[ref.role]);
    else
      throw uefiError("UEFI_ERR_MS_CERTS_MISSING", `${MICROSOFT_ROLES[ref.role]} was not extracted at setup`);
  }
  return out;
}

/**
 * The PK/KEK/db/dbx a template gives. `installationPk` is this installation's PK certificate;
 * `ms` is required for built-in templates.
 */
export function resolveTemplate(
  t: Template,
  installationPk: Uint8Array,
  ms?: MicrosoftSet,
): ResolvedTemplate {
  const pk = [x509List(installationPk, BULWARK_OWNER_GUID)];
  if (t.kind === "custom") {
    return {
      name: t.name,
      id: t.id,
      PK: t.PK ? decodeSignatureDatabase(t.PK) : pk,
      KEK: decodeSignatureDatabase(t.KEK),
      db: decodeSignatureDatabase(t.db),
      dbx: decodeSignatureDatabase(t.dbx),
      unavailable: [],
      extraVariables: [],
    };
  }
  if (!ms)
    throw uefiError("UEFI_ERR_MS_CERTS_MISSING", `template ${t.name} needs the Microsoft certificates`);
  const unavailable: string[] = [];
  const extraVariables: ResolvedTemplate["extraVariables"][number][] = [];
  if (t.sbatLevel) {
    if (ms.sbat) {
      extraVariables.push({
        name: "SbatLevel",
        guid: Guids.SHIM_LOCK_GUID,
        attributes: NV_BS_ATTRS,
        data: sbatLevelVariableData(ms.sbat.levels.latest),
      });
    } else unavailable.push("SBAT level (setup was not given a signed shim)");
  }
  return {
    name: t.name,
    id: t.id,
    PK: pk,
    KEK: microsoftLists(t.kek, ms, unavailable),
    db: microsoftLists(t.db, ms, unavailable),
    dbx: decodeSignatureDatabase(ms.dbx),
    unavailable,
    extraVariables,
  };
}

// ---------------------------------------------------------------------------------------------
// Import sources

function templateInvalid(message: string): never {
  throw uefiError("UEFI_ERR_TEMPLATE_INVALID", message);
}

function checkedCertificate(der: Uint8Array, what: string): Uint8Array {
  try {
    new X509Certificate(der);
  } catch (e) {
    templateInvalid(`${what}: not an X.509 certificate (${e instanceof Error ? e.message : String(e)})`);
  }
  return der;
}

const HEX64 = /^[0-9a-fA-F]{64}$/;

/**
 * Signature lists from one input file, detected by content: PEM certificate(s), a DER
 * certificate, a text list of SHA-256 hashes (one hex digest per line, `#` comments), or an
 * EFI_SIGNATURE_LIST file (ESL, as efitools/sbsiglist write).
 */
export function signatureListsFromFile(
  bytes: Uint8Array,
  what: string,
  owner: Guid = BULWARK_OWNER_GUID,
): EfiSignatureList[] {
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes.subarray(0, 1 << 20));
  if (text.includes("-----BEGIN CERTIFICATE-----")) {
    const blocks = pemBlocks(text);
    if (!blocks.length) templateInvalid(`${what}: no PEM certificate`);
    return blocks.map((der, i) => x509List(checkedCertificate(der, `${what} certificate ${i + 1}`), owner));
  }
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.replace(/#.*/, "").trim())
    .filter(Boolean);
  if (lines.length > 0 && lines.every((l) => HEX64.test(l)) && /^[\s0-9a-fA-F#]/.test(text)) {
    return [
      sha256List(
        lines.map((l) => Uint8Array.from(Buffer.from(l, "hex"))),
        owner,
      ),
    ];
  }
  if (bytes[0] === 0x30) {
    try {
      new X509Certificate(bytes);
      return [x509List(Uint8Array.from(bytes), owner)];
    } catch {
      // not a DER certificate: try ESL below
    }
  }
  try {
    const lists = decodeSignatureDatabase(bytes);
    if (lists.length) return lists;
  } catch (e) {
    if (!isBulwarkError(e)) throw e;
  }
  return templateInvalid(`${what}: not a PEM/DER certificate, SHA-256 hash list or EFI_SIGNATURE_LIST file`);
}

export interface ImportedVars {
  readonly PK?: Uint8Array;
  readonly KEK: Uint8Array;
  readonly db: Uint8Array;
  readonly dbx: Uint8Array;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Builds a custom template, checking the name and ID against the existing ones. */
export function makeCustomTemplate(
  opts: { name: string; id?: string; description?: string; source: string; vars: ImportedVars },
  existing: readonly CustomTemplate[],
  newId: () => Guid,
): CustomTemplate {
  if (!NAME_RE.test(opts.name))
    templateInvalid(`template name '${opts.name.slice(0, 80)}': use letters, digits, . _ - (max 64)`);
  const id = opts.id === undefined ? newId() : parseGuid(opts.id);
  for (const t of [...BUILTIN_TEMPLATES, ...existing]) {
    if (t.name.toLowerCase() === opts.name.toLowerCase() || t.id === id) {
      throw uefiError("UEFI_ERR_TEMPLATE_EXISTS", `template ${t.name} (${t.id}) already exists`);
    }
  }
  if (opts.vars.db.length === 0 && opts.vars.KEK.length === 0)
    templateInvalid("a template needs db or KEK entries");
  return {
    kind: "custom",
    name: opts.name,
    id,
    description: opts.description ?? `Custom template imported from ${opts.source}`,
    source: opts.source,
    ...(opts.vars.PK ? { PK: opts.vars.PK } : {}),
    KEK: opts.vars.KEK,
    db: opts.vars.db,
    dbx: opts.vars.dbx,
  };
}

export const TEMPLATE_FORMAT = "bulwark.secureboot.template/1";

export function serializeCustomTemplate(t: CustomTemplate): string {
  const b64 = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString("base64") : null);
  return `${JSON.stringify(
    {
      format: TEMPLATE_FORMAT,
      name: t.name,
      id: t.id,
      description: t.description,
      source: t.source,
      PK: b64(t.PK),
      KEK: b64(t.KEK),
      db: b64(t.db),
      dbx: b64(t.dbx),
    },
    null,
    2,
  )}\n`;
}

/** Parses a stored custom template; every database must decode. */
export function parseCustomTemplate(text: string, where: string): CustomTemplate {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return templateInvalid(`${where}: not JSON`);
  }
  if (v["format"] !== TEMPLATE_FORMAT) templateInvalid(`${where}: format is not ${TEMPLATE_FORMAT}`);
  const str = (k: string) =>
    typeof v[k] === "string" ? (v[k] as string) : templateInvalid(`${where}: ${k} missing`);
  const db64 = (k: string): Uint8Array => {
    const b = Uint8Array.from(Buffer.from(str(k), "base64"));
    try {
      decodeSignatureDatabase(b);
    } catch (e) {
      if (isBulwarkError(e)) templateInvalid(`${where}: ${k}: ${e.message}`);
      throw e;
    }
    return b;
  };
  const id = str("id");
  if (!isGuid(id)) templateInvalid(`${where}: id is not a GUID`);
  return {
    kind: "custom",
    name: str("name"),
    id: parseGuid(id),
    description: str("description"),
    source: str("source"),
    ...(typeof v["PK"] === "string" ? { PK: db64("PK") } : {}),
    KEK: db64("KEK"),
    db: db64("db"),
    dbx: db64("dbx"),
  };
}
