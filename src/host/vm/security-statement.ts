/**
 * The VM's security statement: the settings that decide its exposure, signed by the owner of its
 * key protector (src/protector/signed-settings.ts, docs/formats/signed-settings.md) and kept next
 * to the protector as `signed-settings.bss`. What is signed:
 * - the policy, Secure Boot on/off and template, vTPM on, state encryption on;
 * - the ways in: console, guest agent, shares, debug stub (all off when shielded);
 * - what the NVRAM really holds: the Secure Boot state the firmware will derive, and digests of
 *   PK, KEK, db and dbx (attributes and data, as in nvram.fd), plus dbx's entries so a
 *   guest-applied dbx update (entries only added) still matches;
 * - the VM's id; the protector id binds it to this VM's key protector.
 * Not signed, because none of them exposes the guest: processors, memory, disks, network and the
 * fw_cfg files handed to the guest (see docs/security-model.md).
 *
 * Before any key is released (keys.ts `unlockVm`, every key source) and before any QEMU starts,
 * the files are checked against the statement; a mismatch is VM_ERR_SETTINGS_TAMPERED naming
 * what differs, a key protector without a statement is VM_ERR_SETTINGS_UNSIGNED. The settings
 * verbs (settings.ts) re-sign wherever the owner's private key is on the host.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { bytesEqual } from "../../core/bytes.js";
import { isBulwarkError } from "../../core/errors.js";
import { writeFileAtomic } from "../../io/atomic.js";
import { guardianThumbprint, type Guardian } from "../../protector/guardian.js";
import { parseKeyProtector, verifyOwnerSignature, type KeyProtector } from "../../protector/key-protector.js";
import {
  parseSignedSettings,
  signSettings,
  verifySignedSettings,
  type SignedSettings,
} from "../../protector/signed-settings.js";
import { decodeSignatureDatabase } from "../../uefi/siglist.js";
import { SECURE_BOOT_VAR_NAMES, secureBootVarGuid } from "../../uefi/variables.js";
import { getVariable, parseVarStore } from "../../uefi/varstore.js";
import { secureBootState } from "../../uefi/varstore-report.js";
import { readFileIfExists } from "../file-errors.js";
import type { SecurityPolicy, VmConfig } from "./config.js";
import type { VmKeyFiles } from "./context.js";
import { distinctCopies, readVmKeyFilesIfAny } from "./key-files.js";
import { vmError } from "./errors.js";
import type { VmPaths } from "./store.js";

export const STATEMENT_FORMAT = "bulwark-vm-settings/1";

/** What the NVRAM holds that decides what boots. */
export interface NvramFacts {
  readonly secureBoot: "enabled" | "disabled" | "setup-mode" | "unreadable";
  /** sha256(attributes u32be || data) of each policy variable, null when absent. */
  readonly PK: string | null;
  readonly KEK: string | null;
  readonly db: string | null;
  readonly dbx: string | null;
  /** dbx entries as "type:sha256(data)", sorted (a dbx that only grew still matches). */
  readonly dbxEntries: readonly string[];
}

/** The signed settings (the statement's payload, canonical JSON in this key order). */
export interface StatementSettings {
  readonly format: typeof STATEMENT_FORMAT;
  readonly vmId: string;
  readonly policy: SecurityPolicy;
  readonly secureBoot: boolean;
  readonly template: string;
  readonly tpm: boolean;
  readonly encryptStateAndMigration: boolean;
  readonly console: boolean;
  readonly guestAgent: boolean;
  readonly shares: readonly { readonly tag: string; readonly path: string }[];
  readonly debugStub: boolean;
  readonly nvram: NvramFacts;
}

/** Where a VM's statement lives, and the copy verified at start that the running VM's gate reads. */
export function statementPaths(p: VmPaths): { readonly file: string; readonly runCopy: string } {
  return {
    file: path.join(p.dir, "signed-settings.bss"),
    runCopy: path.join(p.runDir, "signed-settings.bss"),
  };
}

const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

/** Reads the facts of an NVRAM image; an image that does not parse is "unreadable" (never matches). */
export function nvramFacts(bytes: Uint8Array | undefined): NvramFacts {
  const none: NvramFacts = {
    secureBoot: "unreadable",
    PK: null,
    KEK: null,
    db: null,
    dbx: null,
    dbxEntries: [],
  };
  if (!bytes) return none;
  try {
    const store = parseVarStore(bytes);
    const digests: Record<string, string | null> = {};
    let dbxEntries: string[] = [];
    for (const name of SECURE_BOOT_VAR_NAMES) {
      const v = getVariable(store, name, secureBootVarGuid(name) as string);
      if (!v) {
        digests[name] = null;
        continue;
      }
      const attrs = Buffer.alloc(4);
      attrs.writeUInt32BE(v.attributes >>> 0);
      digests[name] = createHash("sha256").update(attrs).update(v.data).digest("hex");
      if (name === "dbx") {
        try {
          dbxEntries = decodeSignatureDatabase(v.data).flatMap((l) =>
            l.entries.map((e) => `${l.type}:${sha256(e.data)}`),
          );
        } catch (e) {
          if (!isBulwarkError(e)) throw e;
          dbxEntries = []; // a malformed dbx revokes nothing: only its exact digest can match
        }
      }
    }
    return {
      secureBoot: secureBootState(store),
      PK: digests["PK"] ?? null,
      KEK: digests["KEK"] ?? null,
      db: digests["db"] ?? null,
      dbx: digests["dbx"] ?? null,
      dbxEntries: [...new Set(dbxEntries)].sort(),
    };
  } catch (e) {
    if (!isBulwarkError(e)) throw e;
    return none;
  }
}

/** The settings of a config and its NVRAM, as the statement records them. */
export function settingsOf(c: VmConfig, nvram: NvramFacts): StatementSettings {
  return {
    format: STATEMENT_FORMAT,
    vmId: c.id,
    policy: c.security.policy,
    secureBoot: c.firmware.secureBoot,
    template: c.firmware.template,
    tpm: c.tpm.enabled,
    encryptStateAndMigration: c.security.encryptStateAndMigration,
    console: c.console,
    guestAgent: c.guestAgent,
    shares: c.shares.map((s) => ({ tag: s.tag, path: s.path })),
    debugStub: c.debugStub,
    nvram,
  };
}

function tampered(name: string, message: string, details: Record<string, unknown> = {}): never {
  throw vmError("VM_ERR_SETTINGS_TAMPERED", `VM '${name}': ${message}; no key is released`, details);
}

/** Decodes a statement's payload; anything but the expected shape is tampering. */
function decodePayload(name: string, payload: Uint8Array): StatementSettings {
  let s: StatementSettings;
  try {
    s = JSON.parse(Buffer.from(payload).toString("utf8")) as StatementSettings;
  } catch {
    return tampered(name, "the signed settings are not readable");
  }
  if (
    typeof s !== "object" ||
    s === null ||
    s.format !== STATEMENT_FORMAT ||
    typeof s.nvram !== "object" ||
    s.nvram === null ||
    !Array.isArray(s.shares) ||
    !Array.isArray(s.nvram.dbxEntries)
  ) {
    return tampered(name, `the signed settings are not in the ${STATEMENT_FORMAT} format`);
  }
  return s;
}

/** The names of the settings in which the files differ from what the owner signed. */
export function differences(signed: StatementSettings, actual: StatementSettings): string[] {
  const out: string[] = [];
  const plain = [
    "vmId",
    "policy",
    "secureBoot",
    "template",
    "tpm",
    "encryptStateAndMigration",
    "console",
    "guestAgent",
    "debugStub",
  ] as const;
  for (const k of plain) if (signed[k] !== actual[k]) out.push(k);
  if (JSON.stringify(signed.shares) !== JSON.stringify(actual.shares)) out.push("shares");
  const a = actual.nvram;
  const s = signed.nvram;
  if (a.secureBoot !== s.secureBoot)
    out.push(`nvram Secure Boot state (${a.secureBoot}, signed ${s.secureBoot})`);
  for (const v of ["PK", "KEK", "db"] as const) if (a[v] !== s[v]) out.push(`nvram ${v}`);
  if (a.dbx !== s.dbx) {
    // dbx may grow (the guest applied a signed revocation update); it never loses an entry.
    const now = new Set(a.dbxEntries);
    const lost = s.dbxEntries.filter((e) => !now.has(e));
    if (a.dbx === null || lost.length > 0 || s.dbxEntries.length === 0) out.push("nvram dbx");
  }
  return out;
}

function parseSignedStatement(name: string, statement: Uint8Array): SignedSettings {
  try {
    return parseSignedSettings(statement);
  } catch (e) {
    if (!isBulwarkError(e)) throw e;
    return tampered(name, `the signed settings do not decode: ${e.message}`, { reason: e.code });
  }
}

/** The decodable copies of the VM's key protector (current, last known good) whose owner signature holds. */
function ownerSignedProtectors(files: VmKeyFiles): KeyProtector[] {
  const out: KeyProtector[] = [];
  for (const { model } of distinctCopies(files)) {
    if (!model) continue; // a copy that does not decode cannot unwrap anything: it needs no statement
    try {
      verifyOwnerSignature(model, files.checked);
      out.push(model);
    } catch (e) {
      if (!isBulwarkError(e)) throw e;
    }
  }
  return out;
}

/** The outcome of checking a VM's files against its statement. */
export type SettingsCheck =
  /** No key protector: nothing to release, nothing signed (policy None by construction). */
  | { readonly kind: "unprotected" }
  | {
      readonly kind: "verified";
      readonly settings: StatementSettings;
      /** The statement's exact bytes and their SHA-256 (what the running VM is bound to). */
      readonly statement: Uint8Array;
      readonly digest: string;
    };

/**
 * Checks config.json's settings and nvram.fd against the owner-signed statement. The statement
 * must verify under the owner of every copy of the key protector that could unwrap (current and
 * last known good), so whichever copy the key source ends up using, its owner signed these
 * settings. Throws VM_ERR_SETTINGS_UNSIGNED or VM_ERR_SETTINGS_TAMPERED (nothing is released).
 */
export async function verifySettings(c: VmConfig, p: VmPaths): Promise<SettingsCheck> {
  return verifySettingsOver(c, p, await readVmKeyFilesIfAny(p));
}

/**
 * {@link verifySettings} over key files the caller read (undefined: the VM has none), so that
 * the copies checked here are the ones it then hands to the key source.
 */
export async function verifySettingsOver(
  c: VmConfig,
  p: VmPaths,
  files: VmKeyFiles | undefined,
): Promise<SettingsCheck> {
  if (!files) return { kind: "unprotected" };
  const protectors = ownerSignedProtectors(files);
  const statement = await readFileIfExists(statementPaths(p).file);
  if (!statement) {
    throw vmError(
      "VM_ERR_SETTINGS_UNSIGNED",
      `VM '${c.name}' has a key protector but no settings signed by its owner: run 'bulwark vm settings sign ${c.name}' on a host holding the owner's key; no key is released`,
    );
  }
  if (protectors.length === 0)
    tampered(c.name, "no copy of the key protector carries a valid owner signature");
  // Copies of another protector id (a crash inside `key-protector set` leaves the new protector's
  // last-known-good copy beside the old protector) are not this statement's: the unwrap uses only
  // the copy the VM secrets are sealed for (keys.ts), and those copies open no secrets of this
  // statement's protector. Every copy of the statement's own protector must carry its owner's
  // signature over it; at least one copy must be of it.
  const boundTo = parseSignedStatement(c.name, statement).protectorId;
  const own = protectors.filter((kp) => bytesEqual(kp.protectorId, boundTo));
  let payload: Uint8Array | undefined;
  for (const kp of own.length > 0 ? own : protectors) {
    try {
      payload = verifySignedSettings(statement, kp).payload;
    } catch (e) {
      if (!isBulwarkError(e) || !e.code.startsWith("PROTECTOR_ERR_")) throw e;
      tampered(c.name, `the signed settings do not hold: ${e.message}`, {
        reason: e.code,
        owner: { name: kp.owner.name, thumbprint: guardianThumbprint(kp.owner) },
      });
    }
  }
  const signed = decodePayload(c.name, payload as Uint8Array);
  const actual = settingsOf(c, nvramFacts(await readFileIfExists(p.nvram)));
  const differ = differences(signed, actual);
  if (differ.length > 0) {
    tampered(c.name, `the files differ from the settings its owner signed: ${differ.join(", ")}`, {
      differences: differ,
    });
  }
  return { kind: "verified", settings: signed, statement, digest: sha256(statement) };
}

/**
 * Signs the VM's current settings (config and NVRAM as on disk) with the owner's key and writes
 * the statement atomically. `owner` must own the VM's current key protector.
 */
export async function signSettingsFor(c: VmConfig, p: VmPaths, owner: Guardian): Promise<StatementSettings> {
  const kp = parseKeyProtector(new Uint8Array(await readFile(p.keyProtector)));
  const settings = settingsOf(c, nvramFacts(await readFileIfExists(p.nvram)));
  if (settings.nvram.secureBoot === "unreadable") {
    // Signing "no NVRAM" would let any NVRAM written at the next start pass once.
    throw vmError("VM_ERR_INVALID_CONFIG", `nvram.fd of VM '${c.name}' is not a readable variable store`, {
      field: "nvram",
    });
  }
  const statement = signSettings(kp, owner, Buffer.from(JSON.stringify(settings), "utf8"));
  await writeFileAtomic(statementPaths(p).file, statement);
  return settings;
}

/** The settings a running VM was started with: the run-dir copy, when its digest is the one QEMU was given. */
export async function settingsVerifiedAtStart(
  p: VmPaths,
  digest: string,
): Promise<StatementSettings | undefined> {
  const copy = await readFileIfExists(statementPaths(p).runCopy);
  if (!copy || sha256(copy) !== digest) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(parseSignedSettings(copy).payload).toString("utf8")) as unknown;
    const s = payload as StatementSettings;
    return s.format === STATEMENT_FORMAT ? s : undefined;
  } catch {
    return undefined;
  }
}

/** What `vm show` reports: the check's outcome, without throwing. */
export interface SettingsVerdict {
  readonly status: "verified" | "unprotected" | "unsigned" | "tampered";
  /** The settings that differ from the signed ones (tampered). */
  readonly differences?: readonly string[];
  readonly message?: string;
  /** The Secure Boot state the firmware will derive from nvram.fd, whatever config.json says. */
  readonly nvramSecureBoot: NvramFacts["secureBoot"];
}

export async function settingsVerdict(c: VmConfig, p: VmPaths): Promise<SettingsVerdict> {
  const nvramSecureBoot = nvramFacts(await readFileIfExists(p.nvram)).secureBoot;
  try {
    const v = await verifySettings(c, p);
    return { status: v.kind, nvramSecureBoot };
  } catch (e) {
    if (!isBulwarkError(e)) throw e;
    if (e.code === "VM_ERR_SETTINGS_UNSIGNED")
      return { status: "unsigned", message: e.message, nvramSecureBoot };
    if (e.code !== "VM_ERR_SETTINGS_TAMPERED") throw e;
    const differ = e.details["differences"];
    return {
      status: "tampered",
      message: e.message,
      ...(Array.isArray(differ) ? { differences: differ as string[] } : {}),
      nvramSecureBoot,
    };
  }
}
