/**
 * Guardians: a name plus a signing and an encryption certificate (X.509, RFC 5280), with the
 * private keys when the guardian is local. As in Hyper-V, the signing certificate is
 * self-signed ("Shielded VM Signing Certificate (<name>)"); unlike Hyper-V, the encryption
 * certificate ("Shielded VM Encryption Certificate (<name>)") is issued by the signing key,
 * so the pair cannot be recombined with another guardian's certificate unnoticed.
 *
 * Identity: a guardian's `thumbprint` is the SHA-256 of its signing certificate DER; the
 * `encryptionThumbprint` is the SHA-256 of its encryption certificate DER. Both are lowercase hex.
 *
 * Export/import: PEM (RFC 7468) text with the certificates (`CERTIFICATE`) and, for a private
 * export, PKCS#8 keys (`PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with a passphrase, RFC 5958).
 * PKCS#12 is in ./pkcs12.ts.
 */
import { createHash, createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from "node:crypto";
import { createCertificate } from "../asn1/x509.js";
import { BoundedMap, contentKey } from "../core/memo.js";
import { protectorError } from "./errors.js";
import {
  generateGuardianKeyPair,
  guardianKeyType,
  isSigningKeyType,
  type GuardianKeyType,
  type SigningKeyType,
} from "./keys.js";

/** The name of a host's own local guardian (Hyper-V's local-mode guardian). */
export const UNTRUSTED_GUARDIAN = "UntrustedGuardian";

/** The public half of a guardian: what key protectors list and what is shared to be granted. */
export interface GuardianPublic {
  readonly name: string;
  /** DER X.509 certificate of the signing key (self-signed). */
  readonly signingCertificate: Uint8Array;
  /** DER X.509 certificate of the encryption key (issued by the signing key). */
  readonly encryptionCertificate: Uint8Array;
}

/** A local guardian: certificates plus private keys (the host stores it mode 0600). */
export interface Guardian extends GuardianPublic {
  readonly signingKey: KeyObject;
  readonly encryptionKey: KeyObject;
}

export interface GuardianSummary {
  readonly name: string;
  readonly thumbprint: string;
  readonly encryptionThumbprint: string;
  readonly signingKeyType: SigningKeyType;
  readonly encryptionKeyType: GuardianKeyType;
  readonly notBefore: string;
  readonly notAfter: string;
}

const MAX_NAME_BYTES = 256;

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** SHA-256 of the signing certificate: the guardian's identity. */
export function guardianThumbprint(g: GuardianPublic): string {
  return sha256Hex(g.signingCertificate);
}

export function encryptionThumbprint(g: GuardianPublic): string {
  return sha256Hex(g.encryptionCertificate);
}

/** Names are 1..256 UTF-8 bytes without control characters (they appear in PEM text and messages). */
export function checkGuardianName(name: string): void {
  const bytes = Buffer.byteLength(name, "utf8");
  // eslint-disable-next-line no-control-regex
  if (bytes === 0 || bytes > MAX_NAME_BYTES || /[\u0000-\u001f\u007f]/.test(name) || name.trim() !== name) {
    throw protectorError(
      "PROTECTOR_ERR_INVALID_ARGUMENT",
      `guardian name must be 1..${MAX_NAME_BYTES} UTF-8 bytes, without control characters or surrounding spaces`,
    );
  }
}

function x509(der: Uint8Array, what: string): X509Certificate {
  try {
    return new X509Certificate(Buffer.from(der.buffer, der.byteOffset, der.length));
  } catch (e) {
    throw protectorError(
      "PROTECTOR_ERR_CERTIFICATE",
      `${what} is not a valid X.509 certificate`,
      {},
      { cause: e },
    );
  }
}

function spki(key: KeyObject): Buffer {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  return pub.export({ type: "spki", format: "der" });
}

export interface GuardianCertificates {
  readonly signing: X509Certificate;
  readonly encryption: X509Certificate;
  readonly signingKeyType: SigningKeyType;
  readonly encryptionKeyType: GuardianKeyType;
}

/**
 * Checks a guardian's certificates: both parse, both keys are supported types, the signing
 * certificate is self-signed and the encryption certificate is issued by the signing key.
 * Validity periods are not checked (a VM must still start after a guardian certificate expires).
 * Checks anew on every call; a service that sees the same guardians again keeps a
 * {@link GuardianChecker}.
 */
export function checkGuardianPublic(g: GuardianPublic): GuardianCertificates {
  checkGuardianName(g.name);
  return checkGuardianCertificates(g);
}

/**
 * Guardian checks memoised by content, owned by the service that makes them (a key service sees
 * the same few guardians in every key protector). The check is a pure function of the name and
 * the two certificates' bytes, and X.509 parsing plus two signature checks cost far more than
 * hashing them (≈ 0.34 ms against ≈ 0.01 ms). Only successes are kept (a refused guardian is
 * checked anew every time); bounded, least recently used out first. Two checkers share nothing.
 */
export class GuardianChecker {
  private readonly checked: BoundedMap<string, GuardianCertificates>;

  constructor(max = 512) {
    this.checked = new BoundedMap(max);
  }

  /** {@link checkGuardianPublic}, memoised: treat the returned objects as read-only. */
  check(g: GuardianPublic): GuardianCertificates {
    checkGuardianName(g.name);
    const key = contentKey(g.name, g.signingCertificate, g.encryptionCertificate);
    const known = this.checked.get(key);
    if (known) return known;
    const certs = Object.freeze(checkGuardianCertificates(g));
    this.checked.set(key, certs);
    return certs;
  }
}

function checkGuardianCertificates(g: GuardianPublic): GuardianCertificates {
  const signing = x509(g.signingCertificate, `guardian '${g.name}' signing certificate`);
  const encryption = x509(g.encryptionCertificate, `guardian '${g.name}' encryption certificate`);
  const signingKeyType = guardianKeyType(publicKeyOf(signing, `guardian '${g.name}' signing certificate`));
  if (!isSigningKeyType(signingKeyType)) {
    throw protectorError(
      "PROTECTOR_ERR_CERTIFICATE",
      `guardian '${g.name}' signing certificate holds an X25519 key, which cannot sign`,
    );
  }
  const encryptionKeyType = guardianKeyType(
    publicKeyOf(encryption, `guardian '${g.name}' encryption certificate`),
  );
  if (!safeVerify(signing, signing.publicKey)) {
    throw protectorError(
      "PROTECTOR_ERR_CERTIFICATE",
      `guardian '${g.name}' signing certificate is not self-signed`,
    );
  }
  if (!safeVerify(encryption, signing.publicKey)) {
    throw protectorError(
      "PROTECTOR_ERR_CERTIFICATE",
      `guardian '${g.name}' encryption certificate is not issued by its signing key`,
    );
  }
  return { signing, encryption, signingKeyType, encryptionKeyType };
}

/** The certificate's public key; an undecodable SubjectPublicKeyInfo is PROTECTOR_ERR_CERTIFICATE. */
function publicKeyOf(cert: X509Certificate, what: string): KeyObject {
  try {
    return cert.publicKey;
  } catch (e) {
    throw protectorError(
      "PROTECTOR_ERR_CERTIFICATE",
      `${what} has an unreadable public key`,
      {},
      { cause: e },
    );
  }
}

function safeVerify(cert: X509Certificate, key: KeyObject): boolean {
  try {
    return cert.verify(key);
  } catch {
    return false;
  }
}

/** Checks a local guardian: its public half, and that each private key matches its certificate. */
export function checkGuardian(g: Guardian, checker?: GuardianChecker): GuardianCertificates {
  const certs = checker ? checker.check(g) : checkGuardianPublic(g);
  if (g.signingKey.type !== "private" || g.encryptionKey.type !== "private") {
    throw protectorError("PROTECTOR_ERR_INVALID_ARGUMENT", `guardian '${g.name}' needs private keys`);
  }
  if (!spki(g.signingKey).equals(spki(certs.signing.publicKey))) {
    throw protectorError(
      "PROTECTOR_ERR_CERTIFICATE",
      `guardian '${g.name}' signing key does not match its certificate`,
    );
  }
  if (!spki(g.encryptionKey).equals(spki(certs.encryption.publicKey))) {
    throw protectorError(
      "PROTECTOR_ERR_CERTIFICATE",
      `guardian '${g.name}' encryption key does not match its certificate`,
    );
  }
  return certs;
}

export function summarizeGuardian(g: GuardianPublic): GuardianSummary {
  const c = checkGuardianPublic(g);
  return {
    name: g.name,
    thumbprint: guardianThumbprint(g),
    encryptionThumbprint: encryptionThumbprint(g),
    signingKeyType: c.signingKeyType,
    encryptionKeyType: c.encryptionKeyType,
    notBefore: new Date(c.signing.validFrom).toISOString(),
    notAfter: new Date(c.signing.validTo).toISOString(),
  };
}

export interface CreateGuardianOptions {
  /** Default `p384`; `x25519` is refused (PROTECTOR_ERR_INVALID_ARGUMENT): it cannot sign. */
  readonly signingKeyType?: GuardianKeyType;
  /**
   * Default `x25519` beside an EC signing key (key protectors then wrap with
   * DHKEM(X25519), format version 2: about 3× cheaper per wrap than P-256, issue 12); beside an
   * RSA signing key, the signing key type (whoever picks RSA keeps to RSA).
   */
  readonly encryptionKeyType?: GuardianKeyType;
  /** Appended to the certificate subjects like Hyper-V does, e.g. the host name. */
  readonly host?: string;
  readonly notBefore?: Date;
  /** Default notBefore + 10 years. */
  readonly notAfter?: Date;
}

function subject(
  kind: "Signing" | "Encryption",
  name: string,
  host?: string,
): { type: string; value: string }[] {
  return [{ type: "CN", value: `Shielded VM ${kind} Certificate (${name})${host ? ` (${host})` : ""}` }];
}

/** Creates a guardian with fresh keys and its two certificates. */
export function createGuardian(name: string, opts: CreateGuardianOptions = {}): Guardian {
  checkGuardianName(name);
  if (opts.host !== undefined) checkGuardianName(opts.host);
  const signingType = opts.signingKeyType ?? "p384";
  if (!isSigningKeyType(signingType)) {
    throw protectorError(
      "PROTECTOR_ERR_INVALID_ARGUMENT",
      "an X25519 key cannot sign: it is an encryption key type",
    );
  }
  const encryptionType = opts.encryptionKeyType ?? (signingType.startsWith("rsa") ? signingType : "x25519");
  const signing = generateGuardianKeyPair(signingType);
  const encryption = generateGuardianKeyPair(encryptionType);
  const validity = {
    ...(opts.notBefore ? { notBefore: opts.notBefore } : {}),
    ...(opts.notAfter ? { notAfter: opts.notAfter } : {}),
  };
  const signingCertificate = createCertificate({
    subject: subject("Signing", name, opts.host),
    publicKey: signing.publicKey,
    signingKey: signing.privateKey,
    // It issues the guardian's encryption certificate, so it is a (path-length 0) CA: RFC 5280 §4.2.1.9.
    ca: true,
    pathLength: 0,
    keyUsage: ["digitalSignature", "keyCertSign"],
    ...validity,
  });
  const encryptionCertificate = createCertificate({
    subject: subject("Encryption", name, opts.host),
    issuerCertificate: signingCertificate,
    publicKey: encryption.publicKey,
    signingKey: signing.privateKey,
    keyUsage: encryptionType.startsWith("rsa") ? ["keyEncipherment"] : ["keyAgreement"],
    ...validity,
  });
  return {
    name,
    signingCertificate,
    encryptionCertificate,
    signingKey: signing.privateKey,
    encryptionKey: encryption.privateKey,
  };
}

/** The public half of a guardian (drops the private keys). */
export function publicGuardian(g: GuardianPublic): GuardianPublic {
  return {
    name: g.name,
    signingCertificate: g.signingCertificate,
    encryptionCertificate: g.encryptionCertificate,
  };
}

// ---------------------------------------------------------------------------------------------
// PEM (RFC 7468). Text outside the encapsulation boundaries is explanatory (§2): the exporter
// writes the guardian's name there as `Bulwark guardian: <name>`.

const NAME_LINE = /^Bulwark guardian: (.+)$/m;
const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]*?)-----END \1-----/g;
const MAX_PEM_CHARS = 1 << 20;

function pemBlock(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64");
  return `-----BEGIN ${label}-----\n${(b64.match(/.{1,64}/g) ?? []).join("\n")}\n-----END ${label}-----\n`;
}

export interface ExportGuardianOptions {
  /** Encrypts the private keys (PKCS#8, AES-256-CBC + PBKDF2). Ignored for a public export. */
  readonly passphrase?: string | Uint8Array;
}

/** PEM text of a guardian's certificates (share this to be granted access). */
export function exportGuardianPublicPem(g: GuardianPublic): string {
  checkGuardianName(g.name);
  return [
    `Bulwark guardian: ${g.name}\n`,
    `Signing certificate (SHA-256 ${guardianThumbprint(g)}):\n`,
    pemBlock("CERTIFICATE", g.signingCertificate),
    `Encryption certificate (SHA-256 ${encryptionThumbprint(g)}):\n`,
    pemBlock("CERTIFICATE", g.encryptionCertificate),
  ].join("");
}

function keyPem(key: KeyObject, passphrase: string | Uint8Array | undefined): string {
  const pem =
    passphrase === undefined
      ? key.export({ type: "pkcs8", format: "pem" })
      : key.export({
          type: "pkcs8",
          format: "pem",
          cipher: "aes-256-cbc",
          passphrase: Buffer.from(passphrase),
        });
  return pem.toString();
}

/** PEM text of a guardian with its private keys. Store it mode 0600; it is a secret. */
export function exportGuardianPem(g: Guardian, opts: ExportGuardianOptions = {}): string {
  checkGuardian(g);
  return [
    exportGuardianPublicPem(g),
    "Signing private key:\n",
    keyPem(g.signingKey, opts.passphrase),
    "Encryption private key:\n",
    keyPem(g.encryptionKey, opts.passphrase),
  ].join("");
}

interface PemParts {
  readonly name: string;
  readonly certificates: Buffer[];
  readonly keys: { label: string; text: string }[];
}

function parsePem(text: string): PemParts {
  if (text.length > MAX_PEM_CHARS)
    throw protectorError("PROTECTOR_ERR_PEM", "guardian PEM text is too large");
  const nameMatch = NAME_LINE.exec(text);
  const certificates: Buffer[] = [];
  const keys: { label: string; text: string }[] = [];
  for (const m of text.matchAll(BLOCK)) {
    const label = m[1] as string;
    if (label === "CERTIFICATE")
      certificates.push(Buffer.from((m[2] as string).replace(/\s+/g, ""), "base64"));
    else if (label === "PRIVATE KEY" || label === "ENCRYPTED PRIVATE KEY") keys.push({ label, text: m[0] });
    else throw protectorError("PROTECTOR_ERR_PEM", `unexpected PEM block '${label}' in guardian file`);
  }
  if (certificates.length !== 2) {
    throw protectorError(
      "PROTECTOR_ERR_PEM",
      `a guardian PEM file holds 2 certificates (signing, then encryption); found ${certificates.length}`,
    );
  }
  const name = nameMatch?.[1]?.trim() ?? nameFromSubject(certificates[0] as Buffer);
  return { name, certificates, keys };
}

function nameFromSubject(der: Buffer): string {
  const m = /CN=Shielded VM Signing Certificate \((.+?)\)/.exec(x509(der, "signing certificate").subject);
  if (!m?.[1])
    throw protectorError("PROTECTOR_ERR_PEM", "guardian PEM file has no 'Bulwark guardian: <name>' line");
  return m[1];
}

/** Reads a guardian's public half from PEM (private keys, if present, are ignored). */
export function importGuardianPublicPem(text: string): GuardianPublic {
  const p = parsePem(text);
  const g: GuardianPublic = {
    name: p.name,
    signingCertificate: new Uint8Array(p.certificates[0] as Buffer),
    encryptionCertificate: new Uint8Array(p.certificates[1] as Buffer),
  };
  checkGuardianPublic(g);
  return g;
}

/** Reads a local guardian (certificates and private keys) from PEM written by {@link exportGuardianPem}. */
export function importGuardianPem(text: string, opts: ExportGuardianOptions = {}): Guardian {
  const pub = importGuardianPublicPem(text);
  const p = parsePem(text);
  if (p.keys.length !== 2) {
    throw protectorError(
      "PROTECTOR_ERR_PEM",
      `a private guardian PEM file holds 2 private keys; found ${p.keys.length}`,
    );
  }
  const keys = p.keys.map((k) => {
    if (k.label === "ENCRYPTED PRIVATE KEY" && opts.passphrase === undefined) {
      throw protectorError(
        "PROTECTOR_ERR_PEM",
        "the guardian's private keys are encrypted: a passphrase is needed",
      );
    }
    try {
      return createPrivateKey({
        key: k.text,
        format: "pem",
        ...(opts.passphrase !== undefined ? { passphrase: Buffer.from(opts.passphrase) } : {}),
      });
    } catch (e) {
      throw protectorError(
        "PROTECTOR_ERR_PEM",
        "a guardian private key cannot be read (malformed, or wrong passphrase)",
        {},
        { cause: e },
      );
    }
  });
  const signingSpki = spki(x509(pub.signingCertificate, "signing certificate").publicKey);
  const signingKey = keys.find((k) => spki(k).equals(signingSpki));
  const encryptionKey = keys.find((k) => k !== signingKey);
  if (!signingKey || !encryptionKey) {
    throw protectorError("PROTECTOR_ERR_PEM", "no private key in the file matches the signing certificate");
  }
  const g: Guardian = { ...pub, signingKey, encryptionKey };
  checkGuardian(g);
  return g;
}
