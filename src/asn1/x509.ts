/**
 * X.509 v3 certificates (RFC 5280 section 4.1): create, parse (keeping received bytes), verify a
 * certificate's signature, PEM helpers.
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
 * Parsing does not check validity periods, name constraints or policies; callers decide.
 */
import { createHash, createPublicKey, randomBytes, X509Certificate, type KeyObject } from "node:crypto";
import {
  asn1Fail,
  child,
  der,
  expectTag,
  isContext,
  parseDer,
  readBitString,
  readBoolean,
  readInteger,
  readOctetString,
  readOid,
  readSmallInt,
  readTime,
  sequence,
  Tag,
  type DerNode,
} from "./der.js";
import { Asn1Error } from "./errors.js";
import { decodeName, encodeName, type NameInput, type ParsedName } from "./name.js";
import { OID, oidName, type HashName } from "./oid.js";
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
  readonly subjectKeyId: Uint8Array | undefined;
  readonly authorityKeyId: Uint8Array | undefined;
  readonly keyUsage: readonly KeyUsage[] | undefined;
  readonly extKeyUsage: readonly string[] | undefined;
}

const TEN_YEARS_MS = 3652 * 24 * 3600 * 1000;

function keyUsageBits(usages: readonly KeyUsage[]): Uint8Array {
  let hi = -1;
  const bits = new Set(usages.map((u) => KEY_USAGE_BITS[u]));
  for (const b of bits) hi = Math.max(hi, b);
  if (hi < 0) return der.bitString(new Uint8Array(0));
  const n = Math.floor(hi / 8) + 1;
  const bytes = new Uint8Array(n);
  for (const b of bits) bytes[b >> 3] = (bytes[b >> 3] as number) | (0x80 >> (b & 7));
  // DER named bit list (X.690 11.2.2): no trailing zero bits.
  return der.bitString(bytes, n * 8 - (hi + 1));
}

function ipBytes(ip: string): Uint8Array {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (v4) return Uint8Array.from(v4.slice(1).map(Number));
  if (ip.includes(":")) {
    const [head, tail] = ip.split("::") as [string, string | undefined];
    const hs = head ? head.split(":") : [];
    const ts = tail ? tail.split(":") : [];
    const fill = tail === undefined ? [] : new Array<string>(8 - hs.length - ts.length).fill("0");
    const groups = [...hs, ...fill, ...ts];
    if (groups.length === 8) {
      const out = new Uint8Array(16);
      groups.forEach((g, i) => {
        const v = parseInt(g, 16);
        out[2 * i] = v >> 8;
        out[2 * i + 1] = v & 0xff;
      });
      return out;
    }
  }
  throw new Asn1Error("ASN1_ERR_INVALID_VALUE", `invalid IP address '${ip}'`);
}

function spkiOf(key: KeyObject): Uint8Array {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  return new Uint8Array(pub.export({ type: "spki", format: "der" }));
}

/** RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING value. */
export function keyIdentifier(spkiDer: Uint8Array): Uint8Array {
  const spki = parseDer(spkiDer, "SubjectPublicKeyInfo");
  const [, bits] = sequence(spki, 2) as [DerNode, DerNode];
  return new Uint8Array(createHash("sha1").update(readBitString(bits).bytes).digest());
}

function extension(oid: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical
    ? der.sequence(der.oid(oid), der.boolean(true), der.octetString(value))
    : der.sequence(der.oid(oid), der.octetString(value));
}

function randomSerial(): Uint8Array {
  const b = new Uint8Array(randomBytes(16));
  b[0] = ((b[0] as number) & 0x7f) | 0x40; // positive, 16 octets, never zero
  return b;
}

/** Creates a DER X.509 v3 certificate; see the module comment for the options. */
export function createCertificate(opts: CreateCertificateOptions): Uint8Array {
  const spki = spkiOf(opts.publicKey);
  const issuerCert = opts.issuerCertificate ? parseCertificate(opts.issuerCertificate) : undefined;
  const signerSpki = spkiOf(opts.signingKey);
  const expectedSignerSpki = issuerCert ? issuerCert.spkiRaw : opts.issuer === undefined ? spki : undefined;
  if (expectedSignerSpki && Buffer.compare(Buffer.from(expectedSignerSpki), Buffer.from(signerSpki)) !== 0) {
    throw new Asn1Error(
      "ASN1_ERR_KEY_MISMATCH",
      issuerCert
        ? "signingKey is not the key of issuerCertificate"
        : "self-signed certificate: signingKey is not the private half of publicKey",
    );
  }
  const scheme = schemeFor(opts.signingKey, opts.hash);
  const subject = encodeName(opts.subject);
  const issuer =
    opts.issuer !== undefined ? encodeName(opts.issuer) : issuerCert ? issuerCert.subject.raw : subject;
  const notBefore = opts.notBefore ?? new Date(Math.floor(Date.now() / 1000) * 1000);
  const notAfter = opts.notAfter ?? new Date(notBefore.getTime() + TEN_YEARS_MS);
  const serial = opts.serialNumber ?? randomSerial();

  const ski =
    opts.subjectKeyId === false
      ? undefined
      : opts.subjectKeyId instanceof Uint8Array
        ? opts.subjectKeyId
        : keyIdentifier(spki);
  const selfSigned = !issuerCert && opts.issuer === undefined;
  const aki = issuerCert ? issuerCert.subjectKeyId : selfSigned ? ski : undefined;

  const exts: Uint8Array[] = [];
  if (opts.ca !== undefined) {
    const bc: Uint8Array[] = [];
    if (opts.ca) bc.push(der.boolean(true));
    if (opts.ca && opts.pathLength !== undefined) bc.push(der.integer(opts.pathLength));
    exts.push(extension(OID.basicConstraints, true, der.sequence(...bc)));
  }
  const usages =
    opts.keyUsage ?? (opts.ca ? (["keyCertSign", "cRLSign", "digitalSignature"] as const) : undefined);
  if (usages) exts.push(extension(OID.keyUsage, true, keyUsageBits(usages)));
  if (opts.extKeyUsage?.length) {
    const oids = opts.extKeyUsage.map((e) => {
      const oid = (OID as Record<string, string>)[e] ?? e;
      if (!/^[0-2](\.\d+)+$/.test(oid))
        throw new Asn1Error("ASN1_ERR_INVALID_VALUE", `unknown extKeyUsage '${e}'`);
      return der.oid(oid);
    });
    exts.push(extension(OID.extKeyUsage, false, der.sequence(...oids)));
  }
  const san = opts.subjectAltNames;
  if (san && (san.dns?.length || san.ip?.length || san.uri?.length || san.email?.length)) {
    const enc = new TextEncoder();
    const names = [
      ...(san.email ?? []).map((e) => der.contextPrimitive(1, enc.encode(e))),
      ...(san.dns ?? []).map((d) => der.contextPrimitive(2, enc.encode(d))),
      ...(san.uri ?? []).map((u) => der.contextPrimitive(6, enc.encode(u))),
      ...(san.ip ?? []).map((i) => der.contextPrimitive(7, ipBytes(i))),
    ];
    exts.push(extension(OID.subjectAltName, false, der.sequence(...names)));
  }
  if (ski) exts.push(extension(OID.subjectKeyIdentifier, false, der.octetString(ski)));
  if (aki)
    exts.push(extension(OID.authorityKeyIdentifier, false, der.sequence(der.contextPrimitive(0, aki))));

  const tbs = der.sequence(
    der.explicit(0, der.integer(2)), // v3
    der.integer(serial),
    scheme.algorithmIdentifier,
    issuer,
    der.sequence(der.time(notBefore), der.time(notAfter)),
    subject,
    spki,
    ...(exts.length ? [der.explicit(3, der.sequence(...exts))] : []),
  );
  const signature = signBytes(opts.signingKey, scheme.hash, tbs);
  return der.sequence(tbs, scheme.algorithmIdentifier, der.bitString(signature));
}

function readAlgorithmOid(node: DerNode): string {
  expectTag(node, Tag.SEQUENCE, "AlgorithmIdentifier");
  return readOid(child(node, 0, "algorithm"));
}

function parseExtensions(node: DerNode): Extension[] {
  expectTag(node, Tag.SEQUENCE, "Extensions");
  return node.children.map((e) => {
    const parts = sequence(e, 2, 3);
    const oid = readOid(parts[0] as DerNode);
    const critical = parts.length === 3 ? readBoolean(parts[1] as DerNode) : false;
    const value = readOctetString(parts[parts.length - 1] as DerNode);
    return { oid, critical, value };
  });
}

/** Parses a DER certificate (RFC 5280 4.1), keeping received bytes; fails with typed errors. */
export function parseCertificate(bytes: Uint8Array, root?: DerNode): Certificate {
  const node = root ?? parseDer(bytes, "Certificate");
  const [tbs, sigAlg, sigVal] = sequence(node, 3) as [DerNode, DerNode, DerNode];
  const f = sequence(tbs, 6, 10);
  let i = 0;
  let version = 1;
  const first = f[0] as DerNode;
  if (isContext(first, 0) && first.constructed) {
    version = readSmallInt(child(first, 0, "version"), 2) + 1;
    i = 1;
  }
  const at = (k: number, what: string): DerNode => child(tbs, i + k, what);
  const serialNode = at(0, "serialNumber");
  const serialNumber = readInteger(serialNode);
  readAlgorithmOid(at(1, "signature"));
  const issuer = decodeName(at(2, "issuer"));
  const validity = at(3, "validity");
  const [nb, na] = sequence(validity, 2) as [DerNode, DerNode];
  const subject = decodeName(at(4, "subject"));
  const spki = at(5, "subjectPublicKeyInfo");
  const [spkiAlg, spkiBits] = sequence(spki, 2) as [DerNode, DerNode];
  readBitString(spkiBits);
  let extensions: Extension[] = [];
  for (const opt of f.slice(i + 6)) {
    if (isContext(opt, 3) && opt.constructed) extensions = parseExtensions(child(opt, 0, "extensions"));
    else if (!(isContext(opt, 1) || isContext(opt, 2))) {
      asn1Fail(
        "ASN1_ERR_UNEXPECTED_TAG",
        "unexpected element after subjectPublicKeyInfo",
        opt.offset,
        opt.path,
      );
    }
  }
  const ext = (oid: string): Extension | undefined => extensions.find((e) => e.oid === oid);
  const sub = (e: Extension, name: string): DerNode => parseDer(e.value, name);

  let ca: boolean | undefined;
  const bc = ext(OID.basicConstraints);
  if (bc) {
    const n = sub(bc, "BasicConstraints");
    const parts = sequence(n, 0, 2);
    ca = parts[0]?.tag === Tag.BOOLEAN ? readBoolean(parts[0]) : false;
  }
  const skiExt = ext(OID.subjectKeyIdentifier);
  const subjectKeyId = skiExt ? readOctetString(sub(skiExt, "SubjectKeyIdentifier")) : undefined;
  let authorityKeyId: Uint8Array | undefined;
  const akiExt = ext(OID.authorityKeyIdentifier);
  if (akiExt) {
    const n = sub(akiExt, "AuthorityKeyIdentifier");
    expectTag(n, Tag.SEQUENCE);
    const kid = n.children.find((c) => isContext(c, 0) && !c.constructed);
    authorityKeyId = kid?.content;
  }
  let keyUsage: KeyUsage[] | undefined;
  const kuExt = ext(OID.keyUsage);
  if (kuExt) {
    const bits = readBitString(sub(kuExt, "KeyUsage"));
    keyUsage = (Object.entries(KEY_USAGE_BITS) as [KeyUsage, number][])
      .filter(([, b]) => (((bits.bytes[b >> 3] ?? 0) >> (7 - (b & 7))) & 1) === 1)
      .map(([k]) => k);
  }
  let extKeyUsage: string[] | undefined;
  const ekuExt = ext(OID.extKeyUsage);
  if (ekuExt) {
    const n = sub(ekuExt, "ExtKeyUsageSyntax");
    expectTag(n, Tag.SEQUENCE);
    extKeyUsage = n.children.map((c) => oidName(readOid(c)));
  }
  const sigBits = readBitString(sigVal);
  if (sigBits.unusedBits !== 0)
    asn1Fail("ASN1_ERR_INVALID_VALUE", "signature has unused bits", sigVal.offset, sigVal.path);
  return {
    raw: node.raw,
    tbsRaw: tbs.raw,
    version,
    serialNumber,
    serialRaw: serialNode.content,
    issuer,
    subject,
    notBefore: readTime(nb),
    notAfter: readTime(na),
    spkiRaw: spki.raw,
    publicKeyAlgorithm: readAlgorithmOid(spkiAlg),
    signatureAlgorithm: readAlgorithmOid(sigAlg),
    signatureValue: sigBits.bytes,
    extensions,
    ca,
    subjectKeyId,
    authorityKeyId,
    keyUsage,
    extKeyUsage,
  };
}

/** Like {@link parseCertificate} but any failure becomes ASN1_ERR_INVALID_CERTIFICATE (with the cause). */
export function parseCertificateStrict(bytes: Uint8Array): Certificate {
  try {
    return parseCertificate(bytes);
  } catch (e) {
    if (e instanceof Asn1Error) {
      throw new Asn1Error(
        "ASN1_ERR_INVALID_CERTIFICATE",
        `invalid X.509 certificate: ${e.message}`,
        e.details,
      );
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

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return (
    a.length === b.length &&
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.length),
      Buffer.from(b.buffer, b.byteOffset, b.length),
    ) === 0
  );
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
      throw new Asn1Error("ASN1_ERR_INVALID_PEM", `bad base64 in PEM ${label}`);
    out.push(new Uint8Array(Buffer.from(body, "base64")));
  }
  return out;
}

/** The first PEM block with `label`; ASN1_ERR_INVALID_PEM if there is none. */
export function pemToDer(text: string, label = "CERTIFICATE"): Uint8Array {
  const [first] = pemBlocks(text, label);
  if (!first) throw new Asn1Error("ASN1_ERR_INVALID_PEM", `no '-----BEGIN ${label}-----' block`);
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
