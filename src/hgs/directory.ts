/**
 * The HGS directory: configuration and key material of one HGS fabric. Every node of a fabric
 * uses the same directory contents (copy it, mode 0700, to each node) and the same database.
 *
 *   hgs.json                 { version, db, listen }          (0600: a PostgreSQL URL may hold a password)
 *   guardian.pem             the HGS guardian, private keys   (0600)
 *   guardian-public.pem      the HGS guardian, certificates   (what `hgs guardian export` prints)
 *   attestation-signer.pem   P-256 key signing health certificates (0600)
 *   attestation-signer.crt   its self-signed certificate
 *   tls.key / tls.crt        the HTTPS identity (self-signed at init; replace both to use your own)
 *   admin-credential         the admin bearer credential, written once at init (0600); only its
 *                            SHA-256 is stored in the database
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  X509Certificate,
  type KeyObject,
} from "node:crypto";
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
} from "node:fs";
import { hostname } from "node:os";
import path from "node:path";
import { createCertificate, derToPem } from "../asn1/x509.js";
import {
  createGuardian,
  exportGuardianPem,
  exportGuardianPublicPem,
  importGuardianPem,
  type Guardian,
} from "../protector/guardian.js";
import type { GuardianKeyType } from "../protector/keys.js";
import { hgsError } from "../attest/errors.js";
import { writeFileAtomicSync } from "../io/atomic.js";
import { parseDbSpec, type DbSpec } from "./store/driver.js";

export const DEFAULT_LISTEN = "127.0.0.1:8443";

export interface HgsConfigFile {
  readonly version: 1;
  readonly db: string;
  readonly listen: string;
}

export interface HgsDirectory {
  readonly dir: string;
  readonly config: HgsConfigFile;
  readonly db: DbSpec;
  readonly guardian: Guardian;
  readonly guardianPublicPem: string;
  readonly attestationSigner: KeyObject;
  readonly attestationSignerCertificatePem: string;
  readonly tlsKeyPem: string;
  readonly tlsCertPem: string;
}

export const files = {
  config: "hgs.json",
  guardian: "guardian.pem",
  guardianPublic: "guardian-public.pem",
  signerKey: "attestation-signer.pem",
  signerCert: "attestation-signer.crt",
  tlsKey: "tls.key",
  tlsCert: "tls.crt",
  adminCredential: "admin-credential",
} as const;

export function hashCredential(credential: string): string {
  return createHash("sha256").update(credential, "utf8").digest("hex");
}

/** A fresh admin credential: 256 random bits; high entropy, so a plain SHA-256 at rest suffices. */
export function newAdminCredential(): string {
  return `hgsadm_${randomBytes(32).toString("base64url")}`;
}

export interface InitOptions {
  readonly db?: string;
  readonly listen?: string;
  readonly guardianName?: string;
  readonly guardianKeyType?: GuardianKeyType;
  /** Extra DNS names / IPs for the TLS certificate. */
  readonly tlsNames?: readonly string[];
}

function keyPem(k: KeyObject): string {
  return k.export({ type: "pkcs8", format: "pem" }).toString();
}

/**
 * `hgs init` is all or nothing: the files are written to a staging directory inside DIR
 * (`.hgs-init-XXXX`, 0700), the database is initialised, and only then are the files renamed
 * into place, `hgs.json` last (its presence is what "initialised" means). A failure before that
 * removes the staging directory, a SQLite file this init created, and the directories it
 * created, so a retry starts from the same state. A process killed midway can leave the
 * staging directory behind (never `hgs.json`); delete it by hand.
 */
export interface StagedDirectory {
  /** The directory as it will be once committed (`dir` is the final path). */
  readonly dir: HgsDirectory;
  readonly adminCredential: string;
  readonly adminCredentialFile: string;
  /** Moves the staged files into place, `hgs.json` last, and removes the staging directory. */
  commit(): void;
  /** Removes everything this init wrote: staged files, a SQLite file it created, new directories. */
  abort(): void;
}

/** Other users' access bits: a directory holding private keys, or a database, has none. */
const OTHERS = 0o077;

function unsafe(what: string, p: string, fix: string): never {
  throw hgsError(
    "HGS_ERR_UNSAFE_PERMISSIONS",
    `${what} ${p} is accessible to other users or owned by another user; ${fix}, or choose a new path (nothing was written)`,
    { path: p },
  );
}

function ownedByUs(st: { uid: number }): boolean {
  return process.getuid === undefined || st.uid === process.getuid();
}

/**
 * An existing directory is used only when it is ours and closed to others. `hgs init` does not
 * chmod a directory it did not create: the operator may share it with something else, and a
 * directory opened by mistake (`--dir /srv`) is better refused than silently closed.
 */
function prepareRoot(abs: string): string[] {
  let st;
  try {
    st = statSync(abs);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    return makeDirectories(abs);
  }
  if (!st.isDirectory()) throw hgsError("HGS_ERR_CONFIG", `${abs} exists and is not a directory`);
  if ((st.mode & OTHERS) !== 0 || !ownedByUs(st)) unsafe("the directory", abs, `\`chmod 700 ${abs}\``);
  return [];
}

/** mkdir -p, 0700 for each directory made; returns them, deepest first (for {@link removeMade}). */
function makeDirectories(abs: string): string[] {
  const made: string[] = [];
  for (let d = abs; !existsSync(d); d = path.dirname(d)) made.push(d);
  for (const d of [...made].reverse()) {
    mkdirSync(d, { mode: 0o700 });
    chmodSync(d, 0o700); // the umask could have taken bits from the owner
  }
  return made;
}

function removeMade(made: readonly string[]): void {
  for (const d of made) {
    try {
      rmdirSync(d);
    } catch {
      return; // not empty: something else lives there now
    }
  }
}

/** Refuses an existing SQLite database file that is not ours or is open to others. */
function checkSqliteFile(file: string): void {
  const st = statSync(file, { throwIfNoEntry: false });
  if (st?.isFile() && ((st.mode & OTHERS) !== 0 || !ownedByUs(st)))
    unsafe("the SQLite database", file, `\`chmod 600 ${file}\``);
}

/**
 * Creates a missing SQLite database file, 0600, before SQLite opens it (SQLite gives the -wal
 * and -shm files the mode of the database file, so they are 0600 too); true when it did.
 */
function createSqliteFile(file: string): boolean {
  try {
    closeSync(openSync(file, "wx", 0o600));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw hgsError("HGS_ERR_STORE", `cannot create the SQLite database ${file}: ${(e as Error).message}`);
  }
}

/** Writes the directory's files to a staging directory (the database is context.ts's `initHgs`). */
export function stageDirectory(dir: string, opts: InitOptions = {}): StagedDirectory {
  const abs = path.resolve(dir);
  if (existsSync(path.join(abs, files.config))) {
    throw hgsError("HGS_ERR_EXISTS", `${abs} already holds an HGS (${files.config}); nothing was changed`);
  }
  const dbText = opts.db ?? `sqlite:${path.join(abs, "hgs.db")}`;
  const db = parseDbSpec(dbText);
  if (!db) throw hgsError("HGS_ERR_CONFIG", "--db must be sqlite:PATH or postgres://…");
  // Checked before anything is made, so a refusal leaves nothing behind.
  if (db.kind === "sqlite") checkSqliteFile(db.path);
  const made = prepareRoot(abs);
  let stage: string | undefined;
  let createdDb: string | undefined;
  const abort = () => {
    if (stage) rmSync(stage, { recursive: true, force: true });
    if (createdDb)
      for (const f of [createdDb, `${createdDb}-wal`, `${createdDb}-shm`, `${createdDb}-journal`])
        rmSync(f, { force: true });
    removeMade(made);
  };
  try {
    stage = mkdtempSync(path.join(abs, ".hgs-init-"));
    chmodSync(stage, 0o700);
    const staged = writeFiles(stage, { ...opts, db: dbText });
    if (db.kind === "sqlite" && createSqliteFile(db.path)) createdDb = db.path;
    const stageDir = stage;
    return {
      dir: { ...loadDirectory(stageDir), dir: abs },
      adminCredential: staged.credential,
      adminCredentialFile: path.join(abs, files.adminCredential),
      commit() {
        // hgs.json last: until it is there, the directory is not an HGS.
        const order = Object.values(files).filter((f) => f !== files.config);
        for (const f of [...order, files.config]) renameSync(path.join(stageDir, f), path.join(abs, f));
        fsyncDirectory(abs);
        rmdirSync(stageDir);
      },
      abort,
    };
  } catch (e) {
    abort();
    throw e;
  }
}

function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The key material and configuration, written into `into`. */
function writeFiles(into: string, opts: InitOptions & { readonly db: string }): { credential: string } {
  const guardian = createGuardian(opts.guardianName ?? "HGS", {
    signingKeyType: opts.guardianKeyType ?? "p256",
    host: hostname() || "hgs",
  });
  const signer = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const signerCert = createCertificate({
    subject: [{ type: "CN", value: "Bulwark HGS Attestation Signer" }],
    publicKey: signer.publicKey,
    signingKey: signer.privateKey,
    keyUsage: ["digitalSignature"],
  });
  const tls = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const names = ["localhost", hostname(), ...(opts.tlsNames ?? [])].filter(Boolean);
  const ips = ["127.0.0.1", "::1", ...names.filter((n) => /^[\d.]+$|:/.test(n))];
  const tlsCert = createCertificate({
    subject: [{ type: "CN", value: "Bulwark HGS" }],
    publicKey: tls.publicKey,
    signingKey: tls.privateKey,
    keyUsage: ["digitalSignature"],
    extKeyUsage: ["1.3.6.1.5.5.7.3.1"],
    subjectAltNames: { dns: [...new Set(names.filter((n) => !/^[\d.]+$|:/.test(n)))], ip: [...new Set(ips)] },
  });
  const config: HgsConfigFile = { version: 1, db: opts.db, listen: opts.listen ?? DEFAULT_LISTEN };
  const credential = newAdminCredential();

  writeFileAtomicSync(path.join(into, files.guardian), exportGuardianPem(guardian), 0o600);
  writeFileAtomicSync(path.join(into, files.guardianPublic), exportGuardianPublicPem(guardian), 0o644);
  writeFileAtomicSync(path.join(into, files.signerKey), keyPem(signer.privateKey), 0o600);
  writeFileAtomicSync(path.join(into, files.signerCert), derToPem(signerCert), 0o644);
  writeFileAtomicSync(path.join(into, files.tlsKey), keyPem(tls.privateKey), 0o600);
  writeFileAtomicSync(path.join(into, files.tlsCert), derToPem(tlsCert), 0o644);
  writeFileAtomicSync(path.join(into, files.adminCredential), `${credential}\n`, 0o600);
  writeFileAtomicSync(path.join(into, files.config), `${JSON.stringify(config, null, 2)}\n`, 0o600);
  return { credential };
}

function read(dir: string, name: string): string {
  try {
    return readFileSync(path.join(dir, name), "utf8");
  } catch (e) {
    throw hgsError(
      "HGS_ERR_CONFIG",
      `cannot read ${path.join(dir, name)}; run \`bulwark hgs init --dir ${dir}\``,
      {},
      { cause: e },
    );
  }
}

export function loadDirectory(dir: string): HgsDirectory {
  const abs = path.resolve(dir);
  const configText = read(abs, files.config);
  let config: HgsConfigFile;
  try {
    config = JSON.parse(configText) as HgsConfigFile;
  } catch {
    throw hgsError("HGS_ERR_CONFIG", `${files.config} is not valid JSON`);
  }
  const db = typeof config.db === "string" ? parseDbSpec(config.db) : undefined;
  if (config.version !== 1 || !db || typeof config.listen !== "string") {
    throw hgsError("HGS_ERR_CONFIG", `${path.join(abs, files.config)} is not a version-1 HGS configuration`);
  }
  const signerCertPem = read(abs, files.signerCert);
  const attestationSigner = createPrivateKey(read(abs, files.signerKey));
  const certKey = new X509Certificate(signerCertPem).publicKey;
  if (
    !certKey.equals(createPublicKey(attestationSigner)) ||
    attestationSigner.asymmetricKeyDetails?.namedCurve !== "prime256v1"
  ) {
    throw hgsError("HGS_ERR_CONFIG", "the attestation signer key is not the P-256 key of its certificate");
  }
  return {
    dir: abs,
    config,
    db,
    guardian: importGuardianPem(read(abs, files.guardian)),
    guardianPublicPem: read(abs, files.guardianPublic),
    attestationSigner,
    attestationSignerCertificatePem: signerCertPem,
    tlsKeyPem: read(abs, files.tlsKey),
    tlsCertPem: read(abs, files.tlsCert),
  };
}

/** Replaces the listen address in hgs.json (atomically). */
export function setListen(dir: HgsDirectory, listen: string): void {
  writeFileAtomicSync(
    path.join(dir.dir, files.config),
    `${JSON.stringify({ ...dir.config, listen }, null, 2)}\n`,
    0o600,
  );
}
