/**
 * CMS / PKCS #7 SignedData: RFC 5652 section 5 (CMS) and RFC 2315 section 9 (PKCS #7 v1.5,
 * which Authenticode and UEFI authenticated variables use).
 *
 *   ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }          (RFC 5652 3)
 *   SignedData ::= SEQUENCE { version, digestAlgorithms SET OF AlgorithmIdentifier,
 *     encapContentInfo SEQUENCE { eContentType OID, eContent [0] EXPLICIT ANY OPTIONAL },
 *     certificates [0] IMPLICIT SET OF Certificate OPTIONAL, crls [1] IMPLICIT OPTIONAL,
 *     signerInfos SET OF SignerInfo }                                                (RFC 5652 5.1)
 *   SignerInfo ::= SEQUENCE { version, sid (IssuerAndSerialNumber | [0] SubjectKeyIdentifier),
 *     digestAlgorithm, signedAttrs [0] IMPLICIT SET OF Attribute OPTIONAL,
 *     signatureAlgorithm, signature OCTET STRING, unsignedAttrs [1] IMPLICIT OPTIONAL } (RFC 5652 5.3)
 *
 * Parsing keeps the received bytes of every part. The content digest is taken over the contents
 * octets of the eContent element (RFC 5652 5.4; RFC 2315 9.3 for PKCS #7 v1.5 `ANY` content, which
 * is how Authenticode's SpcIndirectDataContent is hashed). Signed attributes are verified over the
 * received DER with the [0] IMPLICIT tag replaced by the SET tag (RFC 5652 5.4).
 *
 * Verification ({@link verifySigners}) checks, per SignerInfo: a certificate in the bag matches
 * the sid; contentType and messageDigest attributes (when signed attributes are present); the
 * signature. It does NOT check certificate chains, validity periods, key usages or revocation —
 * callers (Authenticode policy, UEFI variable checks) decide trust.
 */
import { createHash, type KeyObject } from "node:crypto";
import {
  child,
  compareDer,
  contextTag,
  der,
  expectTag,
  isContext,
  parseDer,
  parseDerPrefix,
  readInteger,
  readOctetString,
  readOid,
  readSmallInt,
  sequence,
  Tag,
  type DerLimits,
  type DerNode,
} from "./der.js";
import { Asn1Error } from "./errors.js";
import { decodeName, type ParsedName } from "./name.js";
import { DIGEST_BY_OID, OID, OID_BY_DIGEST, oidName, type HashName } from "./oid.js";
import { defaultHashFor, resolveSignatureAlgorithm, signBytes, verifyBytes } from "./sigalg.js";
import { bytesEqual, parseCertificate, type Certificate } from "./x509.js";

export interface Attribute {
  readonly oid: string;
  readonly values: readonly DerNode[];
  readonly raw: Uint8Array;
}

export interface SignerInfo {
  readonly raw: Uint8Array;
  readonly version: number;
  readonly sid:
    | { readonly kind: "issuerAndSerialNumber"; readonly issuer: ParsedName; readonly serialNumber: bigint }
    | { readonly kind: "subjectKeyIdentifier"; readonly keyId: Uint8Array };
  readonly digestAlgorithm: string;
  /** Signed attributes as received, [0] IMPLICIT tag included. */
  readonly signedAttrsRaw: Uint8Array | undefined;
  readonly signedAttrs: readonly Attribute[] | undefined;
  readonly signatureAlgorithm: string;
  readonly signature: Uint8Array;
  readonly unsignedAttrs: readonly Attribute[] | undefined;
}

export interface SignedData {
  /** Received bytes of the outer ContentInfo, when the input had one. */
  readonly contentInfoRaw: Uint8Array | undefined;
  /** Received bytes of the SignedData SEQUENCE. */
  readonly raw: Uint8Array;
  readonly version: number;
  readonly digestAlgorithms: readonly string[];
  readonly contentType: string;
  /** The eContent element inside [0] EXPLICIT, when present (attached content). */
  readonly content: DerNode | undefined;
  /** Certificates in the bag, as received (other CertificateChoices are skipped). */
  readonly certificates: readonly Uint8Array[];
  readonly signerInfos: readonly SignerInfo[];
}

function cmsFail(node: DerNode, message: string): never {
  throw new Asn1Error("ASN1_ERR_INVALID_CMS", `${message} at offset ${node.offset} (${node.path})`, {
    offset: node.offset,
    path: node.path,
  });
}

function parseAttributes(node: DerNode): Attribute[] {
  return node.children.map((a) => {
    const [t, vals] = sequence(a, 2) as [DerNode, DerNode];
    expectTag(vals, Tag.SET, "AttributeValues");
    return { oid: readOid(t), values: vals.children, raw: a.raw };
  });
}

function algorithmOid(node: DerNode): string {
  expectTag(node, Tag.SEQUENCE, "AlgorithmIdentifier");
  return readOid(child(node, 0, "algorithm"));
}

function parseSignerInfo(node: DerNode): SignerInfo {
  const f = sequence(node, 5, 7);
  const version = readSmallInt(f[0] as DerNode, 5);
  const sidNode = f[1] as DerNode;
  let sid: SignerInfo["sid"];
  if (sidNode.tag === Tag.SEQUENCE) {
    const [iss, ser] = sequence(sidNode, 2) as [DerNode, DerNode];
    sid = { kind: "issuerAndSerialNumber", issuer: decodeName(iss), serialNumber: readInteger(ser) };
  } else if (isContext(sidNode, 0) && !sidNode.constructed) {
    sid = { kind: "subjectKeyIdentifier", keyId: sidNode.content };
  } else {
    return cmsFail(sidNode, "SignerInfo.sid is neither IssuerAndSerialNumber nor [0]");
  }
  const digestAlgorithm = algorithmOid(f[2] as DerNode);
  let k = 3;
  let signedAttrsRaw: Uint8Array | undefined;
  let signedAttrs: Attribute[] | undefined;
  const maybeSigned = f[k] as DerNode;
  if (isContext(maybeSigned, 0)) {
    if (!maybeSigned.constructed) cmsFail(maybeSigned, "signedAttrs must be constructed");
    signedAttrsRaw = maybeSigned.raw;
    signedAttrs = parseAttributes(maybeSigned);
    k++;
  }
  const sigAlgNode = f[k];
  const sigNode = f[k + 1];
  if (!sigAlgNode || !sigNode) return cmsFail(node, "SignerInfo lacks signatureAlgorithm or signature");
  const signatureAlgorithm = algorithmOid(sigAlgNode);
  const signature = readOctetString(sigNode);
  let unsignedAttrs: Attribute[] | undefined;
  const rest = f.slice(k + 2);
  if (rest.length > 1) cmsFail(node, "extra elements in SignerInfo");
  if (rest[0]) {
    if (!isContext(rest[0], 1) || !rest[0].constructed) cmsFail(rest[0], "expected unsignedAttrs [1]");
    unsignedAttrs = parseAttributes(rest[0]);
  }
  return {
    raw: node.raw,
    version,
    sid,
    digestAlgorithm,
    signedAttrsRaw,
    signedAttrs,
    signatureAlgorithm,
    signature,
    unsignedAttrs,
  };
}

/** Parses SignedData from a parsed node: either a ContentInfo (id-signedData) or a bare SignedData. */
export function signedDataFromNode(root: DerNode): SignedData {
  expectTag(root, Tag.SEQUENCE, "ContentInfo or SignedData");
  let sd = root;
  let contentInfoRaw: Uint8Array | undefined;
  if (root.children[0]?.tag === Tag.OBJECT_IDENTIFIER) {
    const [ct, wrapped] = sequence(root, 2) as [DerNode, DerNode];
    const type = readOid(ct);
    if (type !== OID.signedData) cmsFail(ct, `ContentInfo.contentType is ${oidName(type)}, not signedData`);
    if (!isContext(wrapped, 0) || !wrapped.constructed)
      cmsFail(wrapped, "ContentInfo.content is not [0] EXPLICIT");
    sd = sequence(wrapped, 1, 1, wrapped.tag)[0] as DerNode;
    contentInfoRaw = root.raw;
  }
  const f = sequence(sd, 4, 6);
  const version = readSmallInt(f[0] as DerNode, 5);
  const digestSet = expectTag(f[1] as DerNode, Tag.SET, "digestAlgorithms");
  const digestAlgorithms = digestSet.children.map(algorithmOid);
  const encap = f[2] as DerNode;
  const encapParts = sequence(encap, 1, 2);
  const contentType = readOid(encapParts[0] as DerNode);
  let content: DerNode | undefined;
  if (encapParts[1]) {
    const wrapper = encapParts[1];
    if (!isContext(wrapper, 0) || !wrapper.constructed) cmsFail(wrapper, "eContent is not [0] EXPLICIT");
    content = sequence(wrapper, 1, 1, wrapper.tag)[0] as DerNode;
  }
  const certificates: Uint8Array[] = [];
  let k = 3;
  for (; k < f.length - 1; k++) {
    const n = f[k] as DerNode;
    if (isContext(n, 0) && n.constructed) {
      for (const c of n.children) if (c.tag === Tag.SEQUENCE) certificates.push(c.raw);
    } else if (!(isContext(n, 1) && n.constructed)) {
      cmsFail(n, "expected certificates [0] or crls [1]");
    }
  }
  const signerSet = expectTag(f[f.length - 1] as DerNode, Tag.SET, "signerInfos");
  const signerInfos = signerSet.children.map(parseSignerInfo);
  return {
    contentInfoRaw,
    raw: sd.raw,
    version,
    digestAlgorithms,
    contentType,
    content,
    certificates,
    signerInfos,
  };
}

export interface ParseSignedDataOptions extends DerLimits {
  /** Accept zero bytes after the DER (WIN_CERTIFICATE padding to 8 bytes, PE/COFF spec 4.1). */
  readonly allowZeroPadding?: boolean;
}

/** Parses DER ContentInfo(SignedData) or bare SignedData (UEFI 2.10 section 8.2.2 allows both). */
export function parseSignedData(bytes: Uint8Array, opts: ParseSignedDataOptions = {}): SignedData {
  let root: DerNode;
  if (opts.allowZeroPadding) {
    root = parseDerPrefix(bytes, "SignedData", opts);
    for (let i = root.raw.length; i < bytes.length; i++) {
      if (bytes[i] !== 0) {
        throw new Asn1Error("ASN1_ERR_TRAILING", `non-zero byte after SignedData at offset ${i}`, {
          offset: i,
        });
      }
    }
  } else {
    root = parseDer(bytes, "SignedData", opts);
  }
  return signedDataFromNode(root);
}

// ---------------------------------------------------------------------------------------------
// Verification

export interface Finding {
  /** Stable id, e.g. `cms.signer.signature`. */
  readonly id: string;
  readonly ok: boolean;
  readonly severity: "error" | "warning" | "info";
  readonly message: string;
  readonly expected?: string;
  readonly got?: string;
}

export interface SignerVerdict {
  readonly index: number;
  readonly ok: boolean;
  /** The signer's certificate from the bag, when found. */
  readonly certificate: Certificate | undefined;
  readonly digestAlgorithm: HashName | undefined;
  /** Digest of the signed content (eContent contents octets or the detached data). */
  readonly contentDigest: Uint8Array | undefined;
  readonly findings: readonly Finding[];
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** Parsed certificates of the bag; unparseable entries are skipped (reported by callers who care). */
export function bagCertificates(sd: SignedData): Certificate[] {
  const out: Certificate[] = [];
  for (const raw of sd.certificates) {
    try {
      out.push(parseCertificate(raw));
    } catch (e) {
      if (!(e instanceof Asn1Error)) throw e;
    }
  }
  return out;
}

/** The bag certificate matching a SignerInfo's sid (RFC 5652 5.3). */
export function findSignerCertificate(
  sd: SignedData,
  si: SignerInfo,
  bag = bagCertificates(sd),
): Certificate | undefined {
  const sid = si.sid;
  return bag.find((c) =>
    sid.kind === "issuerAndSerialNumber"
      ? c.serialNumber === sid.serialNumber && bytesEqual(c.issuer.raw, sid.issuer.raw)
      : c.subjectKeyId !== undefined && bytesEqual(c.subjectKeyId, sid.keyId),
  );
}

/**
 * Verifies every SignerInfo of `sd` against its certificate in the bag. For detached signatures
 * pass `detachedContent` (the signed bytes); when given it is verified even if the SignedData
 * also carries content (as OpenSSL's PKCS7_verify with a data BIO, which edk2 uses). Never
 * throws for a bad signature: returns verdicts.
 */
export function verifySigners(sd: SignedData, opts: { detachedContent?: Uint8Array } = {}): SignerVerdict[] {
  const bag = bagCertificates(sd);
  return sd.signerInfos.map((si, index) => verifyOneSigner(sd, si, index, bag, opts.detachedContent));
}

function verifyOneSigner(
  sd: SignedData,
  si: SignerInfo,
  index: number,
  bag: Certificate[],
  detached: Uint8Array | undefined,
): SignerVerdict {
  const findings: Finding[] = [];
  const add = (f: Finding): void => void findings.push(f);
  const done = (
    certificate?: Certificate,
    digestAlgorithm?: HashName,
    contentDigest?: Uint8Array,
  ): SignerVerdict => ({
    index,
    ok: findings.every((f) => f.ok || f.severity !== "error"),
    certificate,
    digestAlgorithm,
    contentDigest,
    findings,
  });
  const hash = DIGEST_BY_OID[si.digestAlgorithm];
  if (!hash) {
    add({
      id: "cms.signer.digestAlgorithm",
      ok: false,
      severity: "error",
      message: "unsupported digest algorithm",
      got: oidName(si.digestAlgorithm),
    });
    return done();
  }
  const cert = findSignerCertificate(sd, si, bag);
  add({
    id: "cms.signer.certificate",
    ok: cert !== undefined,
    severity: "error",
    message: cert
      ? `signer certificate ${cert.subject.text}`
      : "no certificate in the bag matches the signer identifier",
  });
  // Data the caller names wins over attached content: "does this signature cover THIS data?"
  const data = detached ?? sd.content?.content;
  if (!data) {
    add({
      id: "cms.content",
      ok: false,
      severity: "error",
      message: "no content: attached content absent and no detached content given",
    });
    return done(cert, hash);
  }
  const digest = new Uint8Array(createHash(hash).update(data).digest());
  let signedBytes: Uint8Array;
  if (si.signedAttrsRaw && si.signedAttrs) {
    const ct = si.signedAttrs.find((a) => a.oid === OID.contentType);
    let ctValue: string | undefined;
    try {
      ctValue = ct && ct.values.length === 1 ? readOid(ct.values[0] as DerNode) : undefined;
    } catch {
      ctValue = undefined;
    }
    add({
      id: "cms.signer.contentType",
      ok: ctValue === sd.contentType,
      severity: "error",
      message: "contentType signed attribute equals eContentType (RFC 5652 11.1)",
      expected: oidName(sd.contentType),
      got: ctValue ? oidName(ctValue) : "(absent)",
    });
    const md = si.signedAttrs.find((a) => a.oid === OID.messageDigest);
    const mdValue =
      md && md.values.length === 1 && md.values[0]?.tag === Tag.OCTET_STRING
        ? md.values[0].content
        : undefined;
    add({
      id: "cms.signer.messageDigest",
      ok: mdValue !== undefined && bytesEqual(mdValue, digest),
      severity: "error",
      message: "messageDigest signed attribute equals the content digest (RFC 5652 11.2)",
      expected: hex(digest),
      got: mdValue ? hex(mdValue) : "(absent)",
    });
    signedBytes = si.signedAttrsRaw.slice();
    signedBytes[0] = Tag.SET; // RFC 5652 5.4: the DER of SET OF Attribute, not the [0] IMPLICIT tag
  } else {
    signedBytes = data;
  }
  if (cert) {
    let ok = false;
    let why = "";
    try {
      const alg = resolveSignatureAlgorithm(si.signatureAlgorithm, si.digestAlgorithm);
      if (alg.hash !== hash) why = ` (signature hash ${alg.hash} differs from digest ${hash})`;
      else ok = verifyBytes(cert.spkiRaw, alg, signedBytes, si.signature);
    } catch (e) {
      if (!(e instanceof Asn1Error)) throw e;
      why = ` (${e.message})`;
    }
    add({
      id: "cms.signer.signature",
      ok,
      severity: "error",
      message: `signature ${oidName(si.signatureAlgorithm)} verifies with the signer certificate${why}`,
    });
  }
  return done(cert, hash, digest);
}

// ---------------------------------------------------------------------------------------------
// Building

export interface SignerInput {
  readonly key: KeyObject;
  /** The signer's certificate DER. */
  readonly certificate: Uint8Array;
  /** Default: the key's default (SHA-256 for RSA and P-256). */
  readonly hash?: HashName;
  /**
   * Signed attributes: false → none (UEFI authenticated variables); true (default) → contentType
   * and messageDigest; an array → those two plus the given Attribute DERs (e.g. SpcSpOpusInfo).
   */
  readonly signedAttributes?: boolean | readonly Uint8Array[];
}

export interface BuildSignedDataOptions {
  readonly contentType: string;
  /** Attached content: one complete DER element placed in eContent [0] EXPLICIT. */
  readonly content?: Uint8Array;
  /** Detached content: the bytes that are signed but not embedded. */
  readonly detachedContent?: Uint8Array;
  readonly signers: readonly SignerInput[];
  /** Certificates for the bag; default: each signer's certificate. */
  readonly certificates?: readonly Uint8Array[];
  /** Wrap in ContentInfo (default true). */
  readonly wrapContentInfo?: boolean;
}

/** DER Attribute ::= SEQUENCE { attrType OID, attrValues SET OF ANY }. */
export function attribute(oid: string, ...values: Uint8Array[]): Uint8Array {
  return der.sequence(der.oid(oid), der.setOf(...values));
}

/** Builds SignedData (RFC 5652 5 / RFC 2315 9.1, version 1, IssuerAndSerialNumber signers). */
export function buildSignedData(opts: BuildSignedDataOptions): Uint8Array {
  if (!opts.content === !opts.detachedContent) {
    throw new Asn1Error("ASN1_ERR_INVALID_CMS", "give exactly one of content and detachedContent");
  }
  const data = opts.content
    ? parseDer(opts.content, "content").content
    : (opts.detachedContent as Uint8Array);
  const digestOids = new Set<string>();
  const signerInfos = opts.signers.map((s) => {
    const cert = parseCertificate(s.certificate);
    const hash = s.hash ?? defaultHashFor(s.key);
    digestOids.add(OID_BY_DIGEST[hash]);
    const digestAlg = der.sequence(der.oid(OID_BY_DIGEST[hash]), der.null());
    // OpenSSL, sbsign and edk2 use rsaEncryption for RSA signers; ECDSA names its hash.
    const sigAlg =
      s.key.asymmetricKeyType === "rsa"
        ? der.sequence(der.oid(OID.rsaEncryption), der.null())
        : der.sequence(
            der.oid(
              hash === "sha384"
                ? OID.ecdsaWithSHA384
                : hash === "sha512"
                  ? OID.ecdsaWithSHA512
                  : OID.ecdsaWithSHA256,
            ),
          );
    const sid = der.sequence(cert.issuer.raw, der.tlv(Tag.INTEGER, cert.serialRaw));
    let signedAttrs: Uint8Array | undefined;
    let toSign = data;
    if (s.signedAttributes !== false) {
      const extra = Array.isArray(s.signedAttributes) ? (s.signedAttributes as readonly Uint8Array[]) : [];
      const set = der.setOf(
        attribute(OID.contentType, der.oid(opts.contentType)),
        attribute(OID.messageDigest, der.octetString(new Uint8Array(createHash(hash).update(data).digest()))),
        ...extra,
      );
      toSign = set;
      signedAttrs = der.implicit(0, set);
    }
    const signature = signBytes(s.key, hash, toSign);
    return der.sequence(
      der.integer(1),
      sid,
      digestAlg,
      ...(signedAttrs ? [signedAttrs] : []),
      sigAlg,
      der.octetString(signature),
    );
  });
  const certs = opts.certificates ?? opts.signers.map((s) => s.certificate);
  const signedData = der.sequence(
    der.integer(1),
    der.setOf(...[...digestOids].map((o) => der.sequence(der.oid(o), der.null()))),
    der.sequence(der.oid(opts.contentType), ...(opts.content ? [der.explicit(0, opts.content)] : [])),
    ...(certs.length ? [der.tlv(contextTag(0, true), der.concat([...certs].sort(compareDer)))] : []),
    der.setOf(...signerInfos),
  );
  return opts.wrapContentInfo === false
    ? signedData
    : der.sequence(der.oid(OID.signedData), der.explicit(0, signedData));
}
