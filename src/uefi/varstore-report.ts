/**
 * A readable account of a variable store's Secure Boot policy: each PK/KEK/db/dbx entry's type,
 * subject or hash, SHA-256 thumbprint and owner, and the Secure Boot state the firmware will
 * derive at boot (edk2 AuthVariableLibInitialize, see varstore-build.ts).
 */
import { Guids, guidName, type Guid } from "./guid.js";
import { isBulwarkError } from "../core/errors.js";
import { decodeSignatureDatabase, describeDatabase, type EntryDescription } from "./siglist.js";
import { attrText, efiTimeText, SECURE_BOOT_VAR_NAMES, secureBootVarGuid } from "./variables.js";
import { getVariable, listVariables, type Edk2VarStore } from "./varstore.js";

export interface PolicyVariableReport {
  readonly name: string;
  readonly guid: Guid;
  readonly attributes: string;
  readonly timestamp: string;
  readonly size: number;
  readonly entries: readonly EntryDescription[];
  /** Set when the data is not a well-formed signature database. */
  readonly error?: string;
}

export interface VarStoreReport {
  readonly size: number;
  readonly variableCount: number;
  /** What the firmware will make of it at boot. */
  readonly secureBoot: "enabled" | "disabled" | "setup-mode";
  readonly secureBootEnable: number | null;
  readonly customMode: number | null;
  readonly ftwPendingWrite: boolean;
  readonly policy: readonly PolicyVariableReport[];
  readonly others: readonly {
    name: string;
    guid: Guid;
    guidName?: string;
    attributes: string;
    size: number;
  }[];
}

/**
 * The Secure Boot state the firmware will derive at boot, alone (no entry is described): setup
 * mode without a PK holding at least one entry of a well-formed signature database, disabled
 * when SecureBootEnable is 0, enabled otherwise.
 */
export function secureBootState(store: Edk2VarStore): VarStoreReport["secureBoot"] {
  const pk = getVariable(store, "PK", secureBootVarGuid("PK") as Guid);
  let pkEntries = 0;
  try {
    if (pk) pkEntries = decodeSignatureDatabase(pk.data).reduce((n, l) => n + l.entries.length, 0);
  } catch (e) {
    if (!isBulwarkError(e)) throw e;
  }
  if (pkEntries === 0) return "setup-mode";
  const sbe = getVariable(store, "SecureBootEnable", Guids.EFI_SECURE_BOOT_ENABLE_DISABLE);
  return sbe && sbe.data.length >= 1 && sbe.data[0] === 0 ? "disabled" : "enabled";
}

export function reportVarStore(store: Edk2VarStore, fileSize: number): VarStoreReport {
  const policy: PolicyVariableReport[] = [];
  for (const name of SECURE_BOOT_VAR_NAMES) {
    const guid = secureBootVarGuid(name) as Guid;
    const v = getVariable(store, name, guid);
    if (!v) continue;
    let entries: EntryDescription[] = [];
    let error: string | undefined;
    try {
      entries = describeDatabase(decodeSignatureDatabase(v.data));
    } catch (e) {
      if (!isBulwarkError(e)) throw e;
      error = e.message;
    }
    policy.push({
      name,
      guid,
      attributes: attrText(v.attributes),
      timestamp: efiTimeText(v.timestamp),
      size: v.data.length,
      entries,
      ...(error === undefined ? {} : { error }),
    });
  }
  const byte = (name: string, guid: Guid): number | null => {
    const v = getVariable(store, name, guid);
    return v && v.data.length >= 1 ? v.data[0]! : null;
  };
  const sbe = byte("SecureBootEnable", Guids.EFI_SECURE_BOOT_ENABLE_DISABLE);
  const secureBoot = secureBootState(store);
  const policyKeys = new Set(policy.map((p) => `${p.guid}/${p.name}`));
  const all = listVariables(store);
  return {
    size: fileSize,
    variableCount: all.length,
    secureBoot,
    secureBootEnable: sbe,
    customMode: byte("CustomMode", Guids.EFI_CUSTOM_MODE_ENABLE_GUID),
    ftwPendingWrite: store.ftw?.pendingWrite ?? false,
    policy,
    others: all
      .filter((v) => !policyKeys.has(`${v.guid}/${v.name}`))
      .map((v) => {
        const gn = guidName(v.guid);
        return {
          name: v.name,
          guid: v.guid,
          ...(gn ? { guidName: gn } : {}),
          attributes: attrText(v.attributes),
          size: v.data.length,
        };
      }),
  };
}

/** One line per entry: `x509  CN=...  sha256:...  owner ...`. */
export function entryLine(e: EntryDescription): string {
  switch (e.kind) {
    case "x509":
      return `x509    ${e.subject}  sha256:${e.sha256}  owner ${e.owner}`;
    case "x509-unparsed":
      return `x509    (unparseable: ${e.error})  sha256:${e.sha256}  owner ${e.owner}`;
    case "sha256":
      return `sha256  ${e.hash}  owner ${e.owner}`;
    case "opaque":
      return `${e.typeName ?? e.type}  ${e.size} bytes  sha256:${e.sha256}  owner ${e.owner}`;
  }
}

export function reportText(r: VarStoreReport, file: string): string {
  const lines = [
    `${file}: OVMF variable store, ${r.size} bytes, ${r.variableCount} variables`,
    `Secure Boot at next boot: ${r.secureBoot}${r.secureBootEnable === null ? "" : ` (SecureBootEnable=${r.secureBootEnable})`}`,
  ];
  if (r.ftwPendingWrite)
    lines.push("WARNING: unfinished fault-tolerant write; the firmware will complete it at boot");
  for (const p of r.policy) {
    lines.push("", `${p.name}  [${p.attributes}]  ${p.entries.length} entries  timestamp ${p.timestamp}`);
    if (p.error) lines.push(`  malformed: ${p.error}`);
    for (const e of p.entries) lines.push(`  ${entryLine(e)}`);
  }
  for (const n of SECURE_BOOT_VAR_NAMES)
    if (!r.policy.some((p) => p.name === n)) lines.push("", `${n}  (not set)`);
  return lines.join("\n");
}

/** db or dbx as plain certificate and SHA-256 lists (the shape the Authenticode verifier takes). */
export interface SignatureDatabaseLists {
  readonly x509: readonly Uint8Array[];
  readonly sha256: readonly Uint8Array[];
}

function databaseLists(store: Edk2VarStore, name: "db" | "dbx"): SignatureDatabaseLists {
  const v = getVariable(store, name, Guids.EFI_IMAGE_SECURITY_DATABASE_GUID);
  if (!v || v.data.length === 0) return { x509: [], sha256: [] };
  const lists = decodeSignatureDatabase(v.data);
  return {
    x509: lists
      .filter((l) => l.type === Guids.EFI_CERT_X509_GUID)
      .flatMap((l) => l.entries.map((e) => e.data)),
    sha256: lists
      .filter((l) => l.type === Guids.EFI_CERT_SHA256_GUID)
      .flatMap((l) => l.entries.map((e) => e.data)),
  };
}

/** The db and dbx a store enforces, for image verification (uefi-authenticode's verifyImage). */
export function imagePolicyOf(store: Edk2VarStore): {
  db: SignatureDatabaseLists;
  dbx: SignatureDatabaseLists;
} {
  return { db: databaseLists(store, "db"), dbx: databaseLists(store, "dbx") };
}
