/**
 * File adapter for Secure Boot state (the only module of the UEFI variable code that touches the
 * file system). The key directory (default /var/lib/bulwark/secureboot, or <state-dir>/secureboot)
 * holds:
 *
 *   PK.key, PK.crt, PK.der        this installation's platform key (key 0600, never logged)
 *   <kind>.key/.crt/.der/.esl     further keys made by `bulwark secureboot keys create`
 *   microsoft/<role>.der          Microsoft certificates extracted at setup, plus dbx.esl and
 *   microsoft/manifest.json       where they came from (path and SHA-256 of the source store)
 *   templates/<id>.json           custom templates
 *
 * Every write is atomic (temp file in the same directory, fsync, rename, fsync of the directory),
 * so a failure never leaves a partial file.
 */
import { createHash, generateKeyPairSync, createPrivateKey, type KeyObject } from "node:crypto";
import { mkdir, readFile, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../io/atomic.js";
import { createCertificate, derToPem } from "../asn1/x509.js";
import { type UefiError, uefiError } from "../uefi/errors.js";
import {
  extractMicrosoftSet,
  MICROSOFT_ROLES,
  type MicrosoftRole,
  type MicrosoftSet,
} from "../uefi/ms-certs.js";
import { sbatLevelsFromShim, type SbatLevels } from "../uefi/sbat.js";
import { encodeSignatureDatabase, x509List } from "../uefi/siglist.js";
import { BULWARK_OWNER_GUID } from "../uefi/guid.js";
import {
  findTemplate,
  parseCustomTemplate,
  resolveTemplate,
  serializeCustomTemplate,
  type CustomTemplate,
} from "../uefi/templates.js";
import { buildSecureBootVarStore } from "../uefi/varstore-build.js";
import type { VarStoreSize } from "../uefi/varstore.js";

export const DEFAULT_STATE_DIR = "/var/lib/bulwark";
export const DEFAULT_MS_SOURCE = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";

/** The Secure Boot key directory for a state directory (default /var/lib/bulwark). */
export function secureBootDir(stateDir?: string): string {
  return path.join(stateDir ?? process.env["BULWARK_STATE_DIR"] ?? DEFAULT_STATE_DIR, "secureboot");
}

function ioError(what: string, file: string, e: unknown): UefiError {
  const reason = e instanceof Error && "code" in e ? String((e as NodeJS.ErrnoException).code) : String(e);
  return uefiError("UEFI_ERR_IO", `${what} ${file}: ${reason}`, { path: file }, { cause: e });
}

/** Writes `data` to `file` atomically with `mode` (see io/atomic.ts), creating its directory 0700. */
export async function atomicWrite(file: string, data: Uint8Array | string, mode = 0o644): Promise<void> {
  try {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFileAtomic(file, data, mode);
  } catch (e) {
    throw ioError("cannot write", file, e);
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function readBytes(file: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (e) {
    throw ioError("cannot read", file, e);
  }
}

export interface MicrosoftManifest {
  readonly source: string;
  readonly sourceSha256: string;
  readonly certificates: readonly { role: MicrosoftRole; subject: string; sha256: string; file: string }[];
  readonly dbx: { file: string; bytes: number };
  /** SBAT levels of a signed shim given to setup (source path and SHA-256 kept for provenance). */
  readonly sbat?: { source: string; sourceSha256: string; levels: SbatLevels };
}

/**
 * The setup step: extracts the Microsoft certificates and dbx from Debian's
 * OVMF_VARS_4M.ms.fd (or `source`) into <key dir>/microsoft/. Idempotent; returns the manifest.
 */
export async function installMicrosoftCertificates(
  opts: { stateDir?: string; source?: string; shim?: string } = {},
): Promise<MicrosoftManifest> {
  const source = opts.source ?? DEFAULT_MS_SOURCE;
  if (!(await exists(source))) {
    throw uefiError(
      "UEFI_ERR_MS_CERTS_MISSING",
      `${source} not found (install Debian's ovmf package: apt-get install ovmf)`,
      { path: source },
    );
  }
  const set = extractMicrosoftSet(await readBytes(source), source);
  const dir = path.join(secureBootDir(opts.stateDir), "microsoft");
  for (const c of set.certificates) await atomicWrite(path.join(dir, `${c.role}.der`), c.der);
  await atomicWrite(path.join(dir, "dbx.esl"), set.dbx);
  let manifest: MicrosoftManifest = {
    source: set.source,
    sourceSha256: set.sourceSha256,
    certificates: set.certificates.map((c) => ({
      role: c.role,
      subject: c.subject,
      sha256: c.sha256,
      file: `${c.role}.der`,
    })),
    dbx: { file: "dbx.esl", bytes: set.dbx.length },
  };
  if (opts.shim) {
    const shim = await readBytes(opts.shim);
    manifest = {
      ...manifest,
      sbat: {
        source: opts.shim,
        sourceSha256: createHash("sha256").update(shim).digest("hex"),
        levels: sbatLevelsFromShim(shim),
      },
    };
  }
  await atomicWrite(path.join(dir, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** Loads the extracted Microsoft set; UEFI_ERR_MS_CERTS_MISSING when setup has not run. */
export async function loadMicrosoftSet(stateDir?: string): Promise<MicrosoftSet> {
  const dir = path.join(secureBootDir(stateDir), "microsoft");
  const manifestFile = path.join(dir, "manifest.json");
  if (!(await exists(manifestFile))) {
    throw uefiError(
      "UEFI_ERR_MS_CERTS_MISSING",
      `no Microsoft certificates in ${dir}; run the setup step (npm run bootstrap)`,
      { path: dir },
    );
  }
  const manifest = JSON.parse(new TextDecoder().decode(await readBytes(manifestFile))) as MicrosoftManifest;
  const certificates = [];
  for (const c of manifest.certificates) {
    if (!(c.role in MICROSOFT_ROLES)) continue;
    certificates.push({
      role: c.role,
      subject: c.subject,
      sha256: c.sha256,
      der: await readBytes(path.join(dir, c.file)),
    });
  }
  return {
    source: manifest.source,
    sourceSha256: manifest.sourceSha256,
    certificates,
    dbx: await readBytes(path.join(dir, manifest.dbx.file)),
    ...(manifest.sbat ? { sbat: manifest.sbat } : {}),
  };
}

export type KeyKind = "PK" | "KEK" | "db";

export interface KeyFiles {
  readonly kind: KeyKind;
  readonly dir: string;
  readonly keyFile: string;
  readonly certFile: string;
  readonly derFile: string;
  readonly eslFile: string;
  readonly subject: string;
}

function keyPaths(dir: string, kind: KeyKind) {
  return {
    keyFile: path.join(dir, `${kind}.key`),
    certFile: path.join(dir, `${kind}.crt`),
    derFile: path.join(dir, `${kind}.der`),
    eslFile: path.join(dir, `${kind}.esl`),
  };
}

/**
 * Creates an RSA-2048 key and a self-signed certificate (CN=`cn`, valid 20 years) in `dir`:
 * <kind>.key (PKCS#8 PEM, mode 0600), <kind>.crt (PEM), <kind>.der, <kind>.esl (an
 * EFI_SIGNATURE_LIST holding the certificate). Refuses to overwrite (UEFI_ERR_KEYS_EXIST).
 */
export async function createKeyFiles(opts: {
  cn: string;
  dir: string;
  kind?: KeyKind;
  now?: Date;
}): Promise<KeyFiles> {
  const kind = opts.kind ?? "PK";
  const p = keyPaths(opts.dir, kind);
  if ((await exists(p.keyFile)) || (await exists(p.certFile))) {
    throw uefiError("UEFI_ERR_KEYS_EXIST", `${p.keyFile} already exists`, { path: p.keyFile });
  }
  if (!opts.cn || opts.cn.length > 64)
    throw uefiError("UEFI_ERR_TEMPLATE_INVALID", "--cn must be 1..64 characters");
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const now = opts.now ?? new Date();
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(now.getUTCFullYear() + 20);
  const der = createCertificate({
    subject: [{ type: "CN", value: opts.cn }],
    publicKey,
    signingKey: privateKey,
    notBefore: now,
    notAfter,
    ca: true,
    keyUsage: ["digitalSignature", "keyCertSign"],
  });
  await mkdir(opts.dir, { recursive: true, mode: 0o700 });
  await atomicWrite(p.keyFile, privateKey.export({ type: "pkcs8", format: "pem" }) as string, 0o600);
  await atomicWrite(p.certFile, derToPem(der));
  await atomicWrite(p.derFile, der);
  await atomicWrite(p.eslFile, encodeSignatureDatabase([x509List(der, BULWARK_OWNER_GUID)]));
  return { kind, dir: opts.dir, ...p, subject: `CN=${opts.cn}` };
}

export interface LoadedKey {
  readonly key: KeyObject;
  readonly cert: Uint8Array;
}

/** Loads <kind>.key and <kind>.der from `dir`; UEFI_ERR_KEYS_MISSING when absent. */
export async function loadKey(dir: string, kind: KeyKind = "PK"): Promise<LoadedKey> {
  const p = keyPaths(dir, kind);
  if (!(await exists(p.keyFile)) || !(await exists(p.derFile))) {
    throw uefiError("UEFI_ERR_KEYS_MISSING", `no ${kind} key in ${dir}`, { path: dir });
  }
  const key = createPrivateKey(new TextDecoder().decode(await readBytes(p.keyFile)));
  return { key, cert: await readBytes(p.derFile) };
}

/** The certificate of this installation's PK, creating the key on first use. */
export async function ensureInstallationPk(
  stateDir?: string,
  cn = "Bulwark Platform Key",
): Promise<Uint8Array> {
  const dir = secureBootDir(stateDir);
  const der = keyPaths(dir, "PK").derFile;
  if (!(await exists(der))) await createKeyFiles({ cn, dir, kind: "PK" });
  return readBytes(der);
}

/** Reads a user-supplied input file (certificate, ESL, hash list, JSON). */
export async function readInputFile(file: string): Promise<Uint8Array> {
  return readBytes(file);
}

export async function writeOutputFile(file: string, data: Uint8Array | string, mode = 0o644): Promise<void> {
  await atomicWrite(file, data, mode);
}

/** Custom templates: <key dir>/templates/<id>.json. */
export async function listCustomTemplateFiles(stateDir?: string): Promise<string[]> {
  const dir = path.join(secureBootDir(stateDir), "templates");
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith(".json"))
    .sort()
    .map((n) => path.join(dir, n));
}

export function customTemplateFile(stateDir: string | undefined, id: string): string {
  return path.join(secureBootDir(stateDir), "templates", `${id}.json`);
}

/** The custom templates stored in the key directory. */
export async function loadCustomTemplates(stateDir?: string): Promise<CustomTemplate[]> {
  const out: CustomTemplate[] = [];
  for (const f of await listCustomTemplateFiles(stateDir)) {
    out.push(parseCustomTemplate(new TextDecoder().decode(await readBytes(f)), f));
  }
  return out;
}

export async function saveCustomTemplate(stateDir: string | undefined, t: CustomTemplate): Promise<string> {
  const file = customTemplateFile(stateDir, t.id);
  await atomicWrite(file, serializeCustomTemplate(t));
  return file;
}

export interface VmNvramOptions {
  /** Template name or ID (Hyper-V's, or a custom template's). */
  readonly template: string;
  readonly out: string;
  /** Default true. */
  readonly secureBoot?: boolean;
  /** Default "4m". */
  readonly size?: VarStoreSize;
  readonly stateDir?: string;
}

export interface VmNvramSummary {
  readonly file: string;
  readonly template: string;
  readonly id: string;
  readonly secureBoot: boolean;
  readonly size: VarStoreSize;
  readonly bytes: number;
  readonly unavailable: readonly string[];
}

/**
 * Writes a VM's NVRAM file (mode 0600, atomically) from a template: the call the VM runtime and
 * `bulwark secureboot vars create` make. Creates this installation's PK on first use.
 */
export async function writeVmNvram(o: VmNvramOptions): Promise<VmNvramSummary> {
  const t = findTemplate(o.template, await loadCustomTemplates(o.stateDir));
  const ms = t.kind === "builtin" ? await loadMicrosoftSet(o.stateDir) : undefined;
  const pk = await ensureInstallationPk(o.stateDir);
  const resolved = resolveTemplate(t, pk, ms);
  const size = o.size ?? "4m";
  const secureBoot = o.secureBoot ?? true;
  const bytes = buildSecureBootVarStore({ template: resolved, secureBoot, size });
  await atomicWrite(o.out, bytes, 0o600);
  return {
    file: o.out,
    template: t.name,
    id: t.id,
    secureBoot,
    size,
    bytes: bytes.length,
    unavailable: resolved.unavailable,
  };
}
