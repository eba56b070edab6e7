/**
 * X.509 v3 certificates (RFC 5280 section 4.1): create, parse (keeping received bytes), verify a
 * certificate's signature, PEM helpers. The structures are @peculiar/asn1-x509's; what is ours
 * is the option set below, reading raw bytes through the DER gate, and signing with node:crypto.
 *
 * API (used for guardian certificates, Secure Boot PK/KEK/db keys and HGS TLS certificates):
 *
 *   createCertificate({
 *     subject,              // "CN=Example PK, O=Org" or [{ type: "CN", value: "..." }, ...]
 *     issuer?,              // default: issuerCertificate's subject (its exact bytes), else subject (self-signed)
 *     serialNumber?,        // bigint or unsigned bytes; default 16 random bytes, positive
 *     notBefore?, notAfter?,// default now (whole seconds) and notBefore + 10 years
 *     publicKey,            // KeyObject (public or private: the public half is certified)
 *     signingKey,           // private KeyObject: RSA (PKCS#1 v1.5), EC P-256 or P-384
 *     hash?,                // default SHA-256 (RSA, P-256) / SHA-384 (P-384)
 *     issuerCertificate?,   // DER of the issuer; its subject and key identifier are used
 *     ca?, pathLength?,     // basicConstraints (critical) when `ca` is given
 *     keyUsage?,            // e.g. ["digitalSignature", "keyCertSign"] (critical)
 *     extKeyUsage?,         // names ("codeSigning", "serverAuth", ...) or dotted OIDs
 *     subjectAltNames?,     // { dns?: string[], ip?: string[], uri?: string[], email?: string[] }
 *     subjectKeyId?,        // true (default: SHA-1 of the public key, RFC 5280 4.2.1.2 method 1), false, or bytes
 *   }) → Uint8Array         // DER Certificate
 *
 *   parseCertificate(der) → Certificate   // raw, tbsRaw, names (raw + text), validity, extensions, ...
 *   verifyCertificateSignature(cert, issuer) → boolean   // over the received TBSCertificate bytes
 *   isIssuedBy(cert, issuer) → boolean     // issuer name bytes match and the signature verifies
 *   pemToDer(text, label?) / derToPem(der, label?)
 *   toNodeX509(der) → node:crypto X509Certificate (for fingerprints, checkHost, ...)
 *
 * Creation is deterministic given serialNumber, notBefore, notAfter and a deterministic
 * signature (RSA PKCS#1 v1.5 is; ECDSA in node:crypto is randomised).
 * Parsing does not check validity periods, name constraints or policies; callers decide
 * (chain.ts holds the rules a chain must meet).
 */
import { createHash, createPublicKey, randomBytes, X509Certificate, type KeyObject } from "node:crypto";
import { BitString, OctetString } from "@peculiar/asn1-schema";
import type { Name } from "@peculiar/asn1-x509";
import {
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate as AsnCertificate,
  ExtendedKeyUsage,
  Extension as AsnExtension,
  Extensions,
  GeneralName,
  KeyIdentifier,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Time,
  Validity,
  Version,
} from "@peculiar/asn1-x509";
import { bytesEqual } from "../core/bytes.js";
import { parseDer, readInteger, readTime, type DerNode } from "./der.js";
import { asn1Error, isAsn1Error } from "./errors.js";
import { decodeName, nameOf, type NameInput, type ParsedName } from "./name.js";
import { OID, oidName, type HashName } from "./oid.js";
import { decodeAs, encodeDer, received } from "./schema.js";
import { resolveSignatureAlgorithm, schemeFor, signBytes, verifyBytes } from "./sigalg.js";

export const KEY_USAGE_BITS = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
  encipherOnly: 7,
  decipherOnly: 8,
} as const;
export type KeyUsage = keyof typeof KEY_USAGE_BITS;

export interface SubjectAltNames {
  readonly dns?: readonly string[];
  readonly ip?: readonly string[];
  readonly uri?: readonly string[];
  readonly email?: readonly string[];
}

export interface CreateCertificateOptions {
  readonly subject: NameInput;
  readonly issuer?: NameInput;
  readonly serialNumber?: bigint | Uint8Array;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly publicKey: KeyObject;
  readonly signingKey: KeyObject;
  readonly hash?: HashName;
  readonly issuerCertificate?: Uint8Array;
  readonly ca?: boolean;
  readonly pathLength?: number;
  readonly keyUsage?: readonly KeyUsage[];
  readonly extKeyUsage?: readonly string[];
  readonly subjectAltNames?: SubjectAltNames;
  readonly subjectKeyId?: boolean | Uint8Array;
}

export interface Extension {
  readonly oid: string;
  readonly critical: boolean;
  /** extnValue contents (the DER inside the OCTET STRING). */
  readonly value: Uint8Array;
}

export interface Certificate {
  /** The received certificate DER. */
  readonly raw: Uint8Array;
  /** The received TBSCertificate DER: the signed bytes. */
  readonly tbsRaw: Uint8Array;
  readonly version: number;
  readonly serialNumber: bigint;
  /** Serial number contents octets as received (two's complement). */
  readonly serialRaw: Uint8Array;
  readonly issuer: ParsedName;
  readonly subject: ParsedName;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SubjectPublicKeyInfo DER as received. */
  readonly spkiRaw: Uint8Array;
  readonly publicKeyAlgorithm: string;
  readonly signatureAlgorithm: string;
  readonly signatureValue: Uint8Array;
  readonly extensions: readonly Extension[];
  /** basicConstraints cA (undefined when the extension is absent). */
  readonly ca: boolean | undefined;
  /** basicConstraints pathLenConstraint of a CA (undefined: absent or no limit). */
  readonly pathLength: number | undefined;
  readonly subjectKeyId: Uint8Array | undefined;
  readonly authorityKeyId: Uint8Array | undefined;
  readonly keyUsage: readonly KeyUsage[] | undefined;
  readonly extKeyUsage: readonly string[] | undefined;
}

const TEN_YEARS_MS = 3652 * 24 * 3600 * 1000;

function keyUsageBits(usages: readonly KeyUsage[]): BitString {
  let hi = -1;
  const bits = new Set(usages.map((u) => KEY_USAGE_BITS[u]));
  for (const b of bits) hi = Math.max(hi, b);
  if (hi < 0) return new BitString(new Uint8Array(0));
  const n = Math.floor(hi / 8) + 1;
  const bytes = new Uint8Array(n);
  for (const b of bits) bytes[b >> 3] = (bytes[b >> 3] as number) | (0x80 >> (b & 7));
  // DER named bit list (X.690 11.2.2): no trailing zero bits.
  return new BitString(bytes, n * 8 - (hi + 1));
}

function spkiOf(key: KeyObject): Uint8Array {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  return new Uint8Array(pub.export({ type: "spki", format: "der" }));
}

/** RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING value. */
export function keyIdentifier(spkiDer: Uint8Array): Uint8Array {
  const spki = decodeAs(
    parseDer(spkiDer, "SubjectPublicKeyInfo"),
    SubjectPublicKeyInfo,
    "ASN1_ERR_INVALID_VALUE",
    "SubjectPublicKeyInfo",
  );
  return new Uint8Array(createHash("sha1").update(new Uint8Array(spki.subjectPublicKey)).digest());
}

function extension(oid: string, critical: boolean, value: object): AsnExtension {
  return new AsnExtension({ extnID: oid, critical, extnValue: new OctetString(encodeDer(value)) });
}

function randomSerial(): Uint8Array {
  const b = new Uint8Array(randomBytes(16));
  b[0] = ((b[0] as number) & 0x7f) | 0x40; // positive, 16 octets, never zero
  return b;
}

/** INTEGER contents (minimal two's complement) of a positive serial number. */
function serialContents(v: bigint | Uint8Array): Uint8Array {
  let mag: Uint8Array;
  if (v instanceof Uint8Array) {
    let i = 0;
    while (i < v.length - 1 && v[i] === 0) i++;
    mag = v.subarray(i);
  } else {
    if (v < 0n) throw asn1Error("ASN1_ERR_INVALID_VALUE", "serialNumber must not be negative");
    const h = v.toString(16);
    mag = new Uint8Array(Buffer.from(h.length % 2 ? `0${h}` : h, "hex"));
  }
  if (mag.length === 0) return Uint8Array.of(0);
  return (mag[0] as number) >= 0x80 ? Uint8Array.from([0, ...mag]) : mag.slice();
}

/** RFC 5280 4.1.2.5: UTCTime for 1950 through 2049, GeneralizedTime otherwise. */
function timeOf(d: Date): Time {
  const y = d.getUTCFullYear();
  return new Time(y >= 1950 && y < 2050 ? { utcTime: d } : { generalTime: d });
}

/** Creates a DER X.509 v3 certificate; see the module comment for the options. */
export function createCertificate(opts: CreateCertificateOptions): Uint8Array {
  const spki = spkiOf(opts.publicKey);
  const issuerCert = opts.issuerCertificate ? parseCertificate(opts.issuerCertificate) : undefined;
  const signerSpki = spkiOf(opts.signingKey);
  const expectedSignerSpki = issuerCert ? issuerCert.spkiRaw : opts.issuer === undefined ? spki : undefined;
  if (expectedSignerSpki && !bytesEqual(expectedSignerSpki, signerSpki)) {
    throw asn1Error(
      "ASN1_ERR_KEY_MISMATCH",
      issuerCert
        ? "signingKey is not the key of issuerCertificate"
        : "self-signed certificate: signingKey is not the private half of publicKey",
    );
  }
  const scheme = schemeFor(opts.signingKey, opts.hash);
  const subject = nameOf(opts.subject);
  // The issuer certificate's subject goes in as its exact bytes: chains compare names byte-wise.
  const issuer =
    opts.issuer !== undefined
      ? nameOf(opts.issuer)
      : issuerCert
        ? received<Name>(issuerCert.subject.raw)
        : subject;
  const notBefore = opts.notBefore ?? new Date(Math.floor(Date.now() / 1000) * 1000);
  const notAfter = opts.notAfter ?? new Date(notBefore.getTime() + TEN_YEARS_MS);
  const serial = serialContents(opts.serialNumber ?? randomSerial());

  const ski =
    opts.subjectKeyId === false
      ? undefined
      : opts.subjectKeyId instanceof Uint8Array
        ? opts.subjectKeyId
        : keyIdentifier(spki);
  const selfSigned = !issuerCert && opts.issuer === undefined;
  const aki = issuerCert ? issuerCert.subjectKeyId : selfSigned ? ski : undefined;

  const exts: AsnExtension[] = [];
  if (opts.ca !== undefined) {
    const bc = new BasicConstraints({ cA: opts.ca });
    if (opts.ca && opts.pathLength !== undefined) bc.pathLenConstraint = opts.pathLength;
    exts.push(extension(OID.basicConstraints, true, bc));
  }
  const usages =
    opts.keyUsage ?? (opts.ca ? (["keyCertSign", "cRLSign", "digitalSignature"] as const) : undefined);
  if (usages) exts.push(extension(OID.keyUsage, true, keyUsageBits(usages)));
  if (opts.extKeyUsage?.length) {
    const oids = opts.extKeyUsage.map((e) => {
      const oid = (OID as Record<string, string>)[e] ?? e;
      if (!/^[0-2](\.\d+)+$/.test(oid))
        throw asn1Error("ASN1_ERR_INVALID_VALUE", `unknown extKeyUsage '${e}'`);
      return oid;
    });
    exts.push(extension(OID.extKeyUsage, false, new ExtendedKeyUsage(oids)));
  }
  const san = opts.subjectAltNames;
  if (san && (san.dns?.length || san.ip?.length || san.uri?.length || san.email?.length)) {
    const names = [
      ...(san.email ?? []).map((e) => new GeneralName({ rfc822Name: e })),
      ...(san.dns ?? []).map((d) => new GeneralName({ dNSName: d })),
      ...(san.uri ?? []).map((u) => new GeneralName({ uniformResourceIdentifier: u })),
      ...(san.ip ?? []).map((i) => new GeneralName({ iPAddress: i })),
    ];
    exts.push(extension(OID.subjectAltName, false, new SubjectAlternativeName(names)));
  }
  if (ski) exts.push(extension(OID.subjectKeyIdentifier, false, new SubjectKeyIdentifier(ski)));
  if (aki)
    exts.push(
      extension(
        OID.authorityKeyIdentifier,
        false,
        new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(aki) }),
      ),
    );

  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: serial.buffer as ArrayBuffer,
    signature: scheme.algorithmIdentifier,
    issuer,
    validity: new Validity(),
    subject,
    subjectPublicKeyInfo: decodeAs(
      parseDer(spki, "SubjectPublicKeyInfo"),
      SubjectPublicKeyInfo,
      "ASN1_ERR_INVALID_VALUE",
      "SubjectPublicKeyInfo",
    ),
    ...(exts.length ? { extensions: new Extensions(exts) } : {}),
  });
  tbs.validity.notBefore = timeOf(notBefore);
  tbs.validity.notAfter = timeOf(notAfter);
  let tbsDer: Uint8Array;
  let certDer: Uint8Array;
  try {
    tbsDer = encodeDer(tbs);
    const signature = signBytes(opts.signingKey, scheme.hash, tbsDer);
    certDer = encodeDer(
      new AsnCertificate({
        tbsCertificate: tbs,
        signatureAlgorithm: scheme.algorithmIdentifier,
        signatureValue: signature.slice().buffer,
      }),
    );
  } catch (e) {
    if (isAsn1Error(e)) throw e;
    // The encoder refuses values it cannot write (an IP address that is none, a Date out of range).
    throw asn1Error(
      "ASN1_ERR_INVALID_VALUE",
      `cannot encode the certificate: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  // What was signed must be what is sent: the encoder is deterministic, and this proves it here.
  if (!bytesEqual(parseCertificate(certDer).tbsRaw, tbsDer))
    throw asn1Error("ASN1_ERR_INVALID_VALUE", "the encoded TBSCertificate differs from the signed one");
  return certDer;
}

/** The element at `i` of a node the schema already validated (so it exists). */
function at(node: DerNode, i: number): DerNode {
  return node.children[i] as DerNode;
}

/**
 * Parses a DER certificate (RFC 5280 4.1) with @peculiar/asn1-x509, after the strict DER gate;
 * raw bytes (certificate, TBSCertificate, names, SubjectPublicKeyInfo) are views of the input.
 * Validity times are read from their received bytes: asn1js maps GeneralizedTime years 0-99 to
 * 1900-1999, and Go writes notBefore 0001-01-01 (its zero time) into test keys.
 * Extensions are listed as received, duplicates included; chain.ts refuses what RFC 5280
 * refuses (duplicates, unknown critical extensions). Malformed known extensions fail here.
 */
export function parseCertificate(bytes: Uint8Array): Certificate {
  const node = parseDer(bytes, "Certificate");
  const asn = decodeAs(node, AsnCertificate, "ASN1_ERR_INVALID_CERTIFICATE", "Certificate");
  const tbsNode = at(node, 0);
  const t = asn.tbsCertificate;
  // TBSCertificate fields after the optional [0] version: serial, signature, issuer, validity, subject, spki.
  const v = tbsNode.children[0]?.tag === 0xa0 ? 1 : 0;
  const validity = at(tbsNode, v + 3);
  const extensions: Extension[] = (t.extensions ?? []).map((e) => ({
    oid: e.extnID,
    critical: e.critical,
    value: new Uint8Array(e.extnValue.buffer),
  }));
  const ext = (oid: string): Extension | undefined => extensions.find((e) => e.oid === oid);
  const sub = <T>(e: Extension, type: new () => T, name: string): T =>
    decodeAs(parseDer(e.value, name), type, "ASN1_ERR_INVALID_CERTIFICATE", name);

  const bc = ext(OID.basicConstraints);
  const basic = bc ? sub(bc, BasicConstraints, "BasicConstraints") : undefined;
  const skiExt = ext(OID.subjectKeyIdentifier);
  const subjectKeyId = skiExt
    ? new Uint8Array(sub(skiExt, SubjectKeyIdentifier, "SubjectKeyIdentifier").buffer)
    : undefined;
  const akiExt = ext(OID.authorityKeyIdentifier);
  const akid = akiExt
    ? sub(akiExt, AuthorityKeyIdentifier, "AuthorityKeyIdentifier").keyIdentifier
    : undefined;
  let keyUsage: KeyUsage[] | undefined;
  const kuExt = ext(OID.keyUsage);
  if (kuExt) {
    const bits = new Uint8Array(sub(kuExt, BitString, "KeyUsage").value);
    keyUsage = (Object.entries(KEY_USAGE_BITS) as [KeyUsage, number][])
      .filter(([, b]) => (((bits[b >> 3] ?? 0) >> (7 - (b & 7))) & 1) === 1)
      .map(([k]) => k);
  }
  const ekuExt = ext(OID.extKeyUsage);
  const extKeyUsage = ekuExt
    ? [...sub(ekuExt, ExtendedKeyUsage, "ExtKeyUsageSyntax")].map(oidName)
    : undefined;
  const serialNode = at(tbsNode, v);
  return {
    raw: node.raw,
    tbsRaw: tbsNode.raw,
    version: t.version + 1,
    serialNumber: readInteger(serialNode),
    serialRaw: serialNode.content,
    issuer: decodeName(at(tbsNode, v + 2)),
    subject: decodeName(at(tbsNode, v + 4)),
    notBefore: readTime(at(validity, 0)),
    notAfter: readTime(at(validity, 1)),
    spkiRaw: at(tbsNode, v + 5).raw,
    publicKeyAlgorithm: t.subjectPublicKeyInfo.algorithm.algorithm,
    signatureAlgorithm: asn.signatureAlgorithm.algorithm,
    signatureValue: new Uint8Array(asn.signatureValue),
    extensions,
    ca: basic ? basic.cA : undefined,
    pathLength: basic?.cA ? basic.pathLenConstraint : undefined,
    subjectKeyId,
    authorityKeyId: akid ? new Uint8Array(akid.buffer) : undefined,
    keyUsage,
    extKeyUsage,
  };
}

/** Like {@link parseCertificate} but any failure becomes ASN1_ERR_INVALID_CERTIFICATE (with the cause). */
export function parseCertificateStrict(bytes: Uint8Array): Certificate {
  try {
    return parseCertificate(bytes);
  } catch (e) {
    if (isAsn1Error(e)) {
      throw asn1Error("ASN1_ERR_INVALID_CERTIFICATE", `invalid X.509 certificate: ${e.message}`, e.details);
    }
    throw e;
  }
}

/** Verifies `cert`'s signature over its received TBSCertificate with `issuer`'s public key. */
export function verifyCertificateSignature(cert: Certificate, issuer: Certificate | KeyObject): boolean {
  let alg;
  try {
    alg = resolveSignatureAlgorithm(cert.signatureAlgorithm);
  } catch {
    return false;
  }
  const key = "spkiRaw" in issuer ? issuer.spkiRaw : issuer;
  try {
    return verifyBytes(key, alg, cert.tbsRaw, cert.signatureValue);
  } catch {
    return false; // an issuer key node:crypto cannot load
  }
}

/** True when `issuer`'s subject bytes equal `cert`'s issuer bytes and `issuer`'s key verifies `cert`. */
export function isIssuedBy(cert: Certificate, issuer: Certificate): boolean {
  return bytesEqual(cert.issuer.raw, issuer.subject.raw) && verifyCertificateSignature(cert, issuer);
}

/** SHA-256 of the certificate DER, hex (the "fingerprint"). */
export function fingerprint256(cert: Uint8Array | Certificate): string {
  const raw = cert instanceof Uint8Array ? cert : cert.raw;
  return createHash("sha256").update(raw).digest("hex");
}

export function toNodeX509(derBytes: Uint8Array): X509Certificate {
  return new X509Certificate(Buffer.from(derBytes));
}

/** All PEM blocks with `label` (default CERTIFICATE) in `text`, decoded. */
export function pemBlocks(text: string, label = "CERTIFICATE"): Uint8Array[] {
  const re = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`, "g");
  const out: Uint8Array[] = [];
  for (const m of text.matchAll(re)) {
    const body = (m[1] as string).replace(/\s+/g, "");
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body))
      throw asn1Error("ASN1_ERR_INVALID_PEM", `bad base64 in PEM ${label}`);
    out.push(new Uint8Array(Buffer.from(body, "base64")));
  }
  return out;
}

/** The first PEM block with `label`; ASN1_ERR_INVALID_PEM if there is none. */
export function pemToDer(text: string, label = "CERTIFICATE"): Uint8Array {
  const [first] = pemBlocks(text, label);
  if (!first) throw asn1Error("ASN1_ERR_INVALID_PEM", `no '-----BEGIN ${label}-----' block`);
  return first;
}

export function derToPem(derBytes: Uint8Array, label = "CERTIFICATE"): string {
  const b64 = Buffer.from(derBytes).toString("base64");
  return `-----BEGIN ${label}-----\n${b64.replace(/(.{64})/g, "$1\n").replace(/\n$/, "")}\n-----END ${label}-----\n`;
}

/** Accepts a certificate file's contents as DER or PEM and returns the DER. */
export function certificateBytes(fileContents: Uint8Array): Uint8Array {
  if (fileContents[0] === 0x30) return fileContents;
  return pemToDer(Buffer.from(fileContents).toString("latin1"));
}
