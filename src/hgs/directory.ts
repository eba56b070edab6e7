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
import { existsSync, mkdirSync, readFileSync } from "node:fs";
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

export interface InitResult {
  readonly dir: HgsDirectory;
  readonly adminCredential: string;
  readonly adminCredentialFile: string;
}

function keyPem(k: KeyObject): string {
  return k.export({ type: "pkcs8", format: "pem" }).toString();
}

/** Creates the directory's files (not the database: see context.ts `initHgs`). Refuses to overwrite. */
export function createDirectory(dir: string, opts: InitOptions = {}): InitResult {
  const abs = path.resolve(dir);
  if (existsSync(path.join(abs, files.config))) {
    throw hgsError("HGS_ERR_EXISTS", `${abs} already holds an HGS (${files.config}); nothing was changed`);
  }
  const db = opts.db ?? `sqlite:${path.join(abs, "hgs.db")}`;
  if (!parseDbSpec(db)) throw hgsError("HGS_ERR_CONFIG", "--db must be sqlite:PATH or postgres://…");
  mkdirSync(abs, { recursive: true, mode: 0o700 });

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
  const config: HgsConfigFile = { version: 1, db, listen: opts.listen ?? DEFAULT_LISTEN };
  const credential = newAdminCredential();

  writeFileAtomicSync(path.join(abs, files.guardian), exportGuardianPem(guardian), 0o600);
  writeFileAtomicSync(path.join(abs, files.guardianPublic), exportGuardianPublicPem(guardian), 0o644);
  writeFileAtomicSync(path.join(abs, files.signerKey), keyPem(signer.privateKey), 0o600);
  writeFileAtomicSync(path.join(abs, files.signerCert), derToPem(signerCert), 0o644);
  writeFileAtomicSync(path.join(abs, files.tlsKey), keyPem(tls.privateKey), 0o600);
  writeFileAtomicSync(path.join(abs, files.tlsCert), derToPem(tlsCert), 0o644);
  writeFileAtomicSync(path.join(abs, files.adminCredential), `${credential}\n`, 0o600);
  writeFileAtomicSync(path.join(abs, files.config), `${JSON.stringify(config, null, 2)}\n`, 0o600);
  return {
    dir: loadDirectory(abs),
    adminCredential: credential,
    adminCredentialFile: path.join(abs, files.adminCredential),
  };
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
