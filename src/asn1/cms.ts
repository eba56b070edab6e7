/**
 * CMS / PKCS #7 SignedData: RFC 5652 section 5 (CMS) and RFC 2315 section 9 (PKCS #7 v1.5,
 * which Authenticode and UEFI authenticated variables use). The structures are
 * @peculiar/asn1-cms's (ContentInfo, SignedData, SignerInfo, Attribute); what is ours is reading
 * the received bytes through the DER gate, and the signer verdicts.
 *
 * Parsing keeps the received bytes of every part that is hashed or signed. The content digest is
 * taken over the contents octets of the eContent element (RFC 5652 5.4; RFC 2315 9.3 for PKCS #7
 * v1.5 `ANY` content, which is how Authenticode's SpcIndirectDataContent is hashed). Signed
 * attributes are verified over the received DER with the [0] IMPLICIT tag replaced by the SET tag
 * (RFC 5652 5.4).
 *
 * Verification ({@link verifySigners}) checks, per SignerInfo: a certificate in the bag matches
 * the sid; contentType and messageDigest attributes (when signed attributes are present); the
 * signature. It does NOT check certificate chains, validity periods, key usages or revocation —
 * callers (Authenticode policy, UEFI variable checks) decide trust.
 *
 * Signed attributes are read by one of two rules ({@link SignedAttrsRule}): RFC 5652's (the
 * default), or OpenSSL's PKCS7_signatureVerify, the function edk2's Pkcs7Verify ends in (UEFI
 * authenticated variables are judged by it, so a verdict that must equal the firmware's uses it).
 */
import { createHash, type KeyObject } from "node:crypto";
import {
  Attribute as AsnAttribute,
  CertificateChoices,
  CertificateSet,
  CMSVersion,
  ContentInfo,
  DigestAlgorithmIdentifiers,
  EncapsulatedContent,
  EncapsulatedContentInfo,
  IssuerAndSerialNumber,
  SignedData as AsnSignedData,
  SignerIdentifier,
  SignerInfo as AsnSignerInfo,
  SignerInfos,
} from "@peculiar/asn1-cms";
import { AsnObjectIdentifierConverter, OctetString } from "@peculiar/asn1-schema";
import { AlgorithmIdentifier, Certificate as AsnCertificate, Name } from "@peculiar/asn1-x509";
import { bytesEqual, compareBytes, toHex } from "../core/bytes.js";
import { VerdictBuilder, type Finding, type Verdict } from "../core/verdict.js";
import {
  isContext,
  parseDer,
  parseDerPrefix,
  readInteger,
  readOid,
  Tag,
  type DerLimits,
  type DerNode,
} from "./der.js";
import { asn1Error, isAsn1Error } from "./errors.js";
import { decodeName, type ParsedName } from "./name.js";
import { DIGEST_BY_OID, OID, OID_BY_DIGEST, oidName, type HashName } from "./oid.js";
import { decodeAs, encodeDer, received } from "./schema.js";
import { defaultHashFor, resolveSignatureAlgorithm, signBytes, verifyBytes } from "./sigalg.js";
import { parseCertificate, type Certificate } from "./x509.js";

export interface Attribute {
  readonly oid: string;
  /** Each AttributeValue's received DER. */
  readonly values: readonly Uint8Array[];
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

const attributesOf = (list: readonly AsnAttribute[] | undefined): Attribute[] | undefined =>
  list?.map((a) => ({ oid: a.attrType, values: a.attrValues.map((v) => new Uint8Array(v)) }));

function signerInfoOf(node: DerNode, si: AsnSignerInfo): SignerInfo {
  // The schema validated the shape; the DER tree gives the received bytes at the same positions.
  const sidNode = node.children[1] as DerNode;
  const sid: SignerInfo["sid"] = si.sid.issuerAndSerialNumber
    ? {
        kind: "issuerAndSerialNumber",
        issuer: decodeName(sidNode.children[0] as DerNode),
        serialNumber: readInteger(sidNode.children[1] as DerNode),
      }
    : { kind: "subjectKeyIdentifier", keyId: sidNode.content };
  return {
    raw: node.raw,
    version: si.version,
    sid,
    digestAlgorithm: si.digestAlgorithm.algorithm,
    // After version, sid and digestAlgorithm: a subjectKeyIdentifier sid is itself a [0].
    signedAttrsRaw: node.children.slice(3).find((c) => isContext(c, 0))?.raw,
    signedAttrs: attributesOf(si.signedAttrs),
    signatureAlgorithm: si.signatureAlgorithm.algorithm,
    signature: new Uint8Array(si.signature.buffer),
    unsignedAttrs: attributesOf(si.unsignedAttrs),
  };
}

/** Parses SignedData from a parsed node: either a ContentInfo (id-signedData) or a bare SignedData. */
export function signedDataFromNode(root: DerNode): SignedData {
  let sdNode = root;
  let contentInfoRaw: Uint8Array | undefined;
  if (root.tag === Tag.SEQUENCE && root.children[0]?.tag === Tag.OBJECT_IDENTIFIER) {
    const ci = decodeAs(root, ContentInfo, "ASN1_ERR_INVALID_CMS", "ContentInfo");
    if (ci.contentType !== OID.signedData) {
      throw asn1Error(
        "ASN1_ERR_INVALID_CMS",
        `ContentInfo.contentType is ${oidName(ci.contentType)}, not signedData at offset ${root.offset}`,
        { offset: root.offset, path: root.path },
      );
    }
    sdNode = (root.children[1] as DerNode).children[0] as DerNode;
    contentInfoRaw = root.raw;
  }
  const sd = decodeAs(sdNode, AsnSignedData, "ASN1_ERR_INVALID_CMS", "SignedData");
  const encap = sdNode.children[2] as DerNode;
  const content = encap.children[1]?.children[0];
  // certificates [0] IMPLICIT CertificateSet: the bag, as received; other choices are skipped.
  const bag = sdNode.children.slice(3, -1).find((n) => isContext(n, 0));
  const certificates = (bag?.children ?? []).filter((c) => c.tag === Tag.SEQUENCE).map((c) => c.raw);
  const signerNodes = (sdNode.children[sdNode.children.length - 1] as DerNode).children;
  return {
    contentInfoRaw,
    raw: sdNode.raw,
    version: sd.version,
    digestAlgorithms: sd.digestAlgorithms.map((a) => a.algorithm),
    contentType: sd.encapContentInfo.eContentType,
    content,
    certificates,
    signerInfos: sd.signerInfos.map((si, i) => signerInfoOf(signerNodes[i] as DerNode, si)),
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
        throw asn1Error("ASN1_ERR_TRAILING", `non-zero byte after SignedData at offset ${i}`, {
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

/** One SignerInfo's verdict: `ok` when its certificate is in the bag and its signature verifies. */
export interface SignerVerdict extends Verdict {
  readonly index: number;
  /** The signer's certificate from the bag, when found. */
  readonly certificate: Certificate | undefined;
  readonly digestAlgorithm: HashName | undefined;
  /** Digest of the signed content (eContent contents octets or the detached data). */
  readonly contentDigest: Uint8Array | undefined;
}

/** Parsed certificates of the bag; unparseable entries are skipped (reported by callers who care). */
export function bagCertificates(sd: SignedData): Certificate[] {
  const out: Certificate[] = [];
  for (const raw of sd.certificates) {
    try {
      out.push(parseCertificate(raw));
    } catch (e) {
      if (!isAsn1Error(e)) throw e;
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
 * How a SignerInfo's signed attributes are judged.
 *
 * - "rfc5652" (default): RFC 5652 5.4 and 11: exactly one contentType attribute equal to
 *   eContentType, exactly one single-valued messageDigest equal to the content digest, the
 *   signature over the received attributes with the SET OF tag.
 * - "openssl-pkcs7": OpenSSL 1.1.1's PKCS7_signatureVerify and PKCS7_dataInit
 *   (crypto/pkcs7/pk7_doit.c), which edk2's Pkcs7Verify (CryptoPkg BaseCryptLib
 *   CryptPkcs7VerifyCommon.c, through PKCS7_verify) calls for UEFI authenticated variables:
 *   the signer must be named by issuerAndSerialNumber (PKCS7_SIGNER_INFO has no other choice,
 *   so d2i_PKCS7 fails on a subjectKeyIdentifier); the signer's digest algorithm must be one of SignedData.digestAlgorithms (OpenSSL keeps a
 *   digest per listed algorithm and finds none otherwise); an empty attribute set counts as none
 *   (`sk_X509_ATTRIBUTE_num(sk) != 0`); the contentType attribute is not looked at; the
 *   messageDigest is the first value of the first messageDigest attribute
 *   (X509at_get_attr_by_NID(sk, nid, -1), X509_ATTRIBUTE_get0_type(xa, 0)) and must be an OCTET
 *   STRING equal to the digest; the signature covers OpenSSL's re-encoding of the attributes
 *   (PKCS7_ATTR_VERIFY: received attribute order, SET tag, each attribute's values re-encoded as
 *   a DER SET OF, i.e. sorted).
 */
export type SignedAttrsRule = "rfc5652" | "openssl-pkcs7";

export interface VerifySignersOptions {
  readonly detachedContent?: Uint8Array;
  readonly signedAttrsRule?: SignedAttrsRule;
}

/**
 * Verifies every SignerInfo of `sd` against its certificate in the bag. For detached signatures
 * pass `detachedContent` (the signed bytes); when given it is verified even if the SignedData
 * also carries content (as OpenSSL's PKCS7_verify with a data BIO, which edk2 uses). Never
 * throws for a bad signature: returns verdicts.
 */
export function verifySigners(sd: SignedData, opts: VerifySignersOptions = {}): SignerVerdict[] {
  const bag = bagCertificates(sd);
  const rule = opts.signedAttrsRule ?? "rfc5652";
  return sd.signerInfos.map((si, index) => verifyOneSigner(sd, si, index, bag, opts.detachedContent, rule));
}

/** The value of attribute `oid` as a DER node: "single" → present once with one value; "first" → OpenSSL's first-of-first. */
function attributeValue(
  attrs: readonly Attribute[],
  oid: string,
  pick: "single" | "first",
): DerNode | undefined {
  const found = attrs.filter((x) => x.oid === oid);
  const a = found[0];
  if (!a || (pick === "single" && (found.length !== 1 || a.values.length !== 1))) return undefined;
  const v = a.values[0];
  if (!v) return undefined;
  try {
    return parseDer(v, oidName(oid));
  } catch (e) {
    if (isAsn1Error(e)) return undefined;
    throw e;
  }
}

/** DER TLV with a definite, minimal length (X.690 8.1.3). */
function derElement(tag: number, body: Uint8Array): Uint8Array {
  const n = body.length;
  const len =
    n < 0x80
      ? [n]
      : n < 0x100
        ? [0x81, n]
        : n < 0x10000
          ? [0x82, n >> 8, n & 0xff]
          : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  const out = new Uint8Array(1 + len.length + n);
  out[0] = tag;
  out.set(len, 1);
  out.set(body, 1 + len.length);
  return out;
}

const concatBytes = (parts: readonly Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

/**
 * OpenSSL's PKCS7_ATTR_VERIFY encoding of received signed attributes ([0] IMPLICIT element):
 * SET tag, attributes in received order, each attribute's values sorted as a DER SET OF. The
 * gate already made every element DER, so only the value order can differ from what was sent.
 */
function opensslAttributesEncoding(signedAttrsRaw: Uint8Array): Uint8Array {
  const attrs = parseDer(signedAttrsRaw, "signedAttrs").children.map((a) => {
    const [type, set] = a.children;
    if (!type || !set) return a.raw;
    const values = set.children.map((v) => v.raw);
    const sorted = [...values].sort(compareBytes);
    if (sorted.every((v, i) => v === values[i])) return a.raw;
    return derElement(Tag.SEQUENCE, concatBytes([type.raw, derElement(Tag.SET, concatBytes(sorted))]));
  });
  return derElement(Tag.SET, concatBytes(attrs));
}

function verifyOneSigner(
  sd: SignedData,
  si: SignerInfo,
  index: number,
  bag: Certificate[],
  detached: Uint8Array | undefined,
  rule: SignedAttrsRule,
): SignerVerdict {
  const b = new VerdictBuilder<Finding>();
  const done = (
    certificate?: Certificate,
    digestAlgorithm?: HashName,
    contentDigest?: Uint8Array,
  ): SignerVerdict => ({ ...b.verdict(), index, certificate, digestAlgorithm, contentDigest });
  const hash = DIGEST_BY_OID[si.digestAlgorithm];
  if (!hash) {
    b.fail(
      "cms.signer.digestAlgorithm",
      "sha1, sha256, sha384 or sha512",
      oidName(si.digestAlgorithm),
      "unsupported digest algorithm",
    );
    return done();
  }
  const cert = findSignerCertificate(sd, si, bag);
  b.check(
    "cms.signer.certificate",
    cert !== undefined,
    "a bag certificate matching the signer identifier",
    "none",
    "no certificate in the bag matches the signer identifier",
  );
  // Data the caller names wins over attached content: "does this signature cover THIS data?"
  const data = detached ?? sd.content?.content;
  if (!data) {
    b.fail(
      "cms.content",
      "content",
      "none",
      "no content: attached content absent and no detached content given",
    );
    return done(cert, hash);
  }
  const digest = new Uint8Array(createHash(hash).update(data).digest());
  const openssl = rule === "openssl-pkcs7";
  if (openssl) {
    b.check(
      "cms.signer.issuerAndSerialNumber",
      si.sid.kind === "issuerAndSerialNumber",
      "issuerAndSerialNumber",
      si.sid.kind,
      "the signer is named by subjectKeyIdentifier, which PKCS #7 (RFC 2315 9.2) and so OpenSSL's PKCS7 cannot read",
    );
    b.check(
      "cms.signer.digestAlgorithmListed",
      sd.digestAlgorithms.includes(si.digestAlgorithm),
      `one of ${sd.digestAlgorithms.map(oidName).join(", ")}`,
      oidName(si.digestAlgorithm),
      "the signer's digest algorithm is not in SignedData.digestAlgorithms (OpenSSL PKCS7_signatureVerify: no digest for it)",
    );
  }
  let signedBytes: Uint8Array;
  // OpenSSL treats an empty attribute set as no attributes at all.
  const hasAttrs = si.signedAttrsRaw && si.signedAttrs && (!openssl || si.signedAttrs.length > 0);
  if (hasAttrs && si.signedAttrsRaw && si.signedAttrs) {
    if (!openssl) {
      const ct = attributeValue(si.signedAttrs, OID.contentType, "single");
      let ctValue: string | undefined;
      try {
        ctValue = ct ? readOid(ct) : undefined;
      } catch (e) {
        if (!isAsn1Error(e)) throw e;
      }
      b.check(
        "cms.signer.contentType",
        ctValue === sd.contentType,
        oidName(sd.contentType),
        ctValue ? oidName(ctValue) : "(absent)",
        "the contentType signed attribute differs from eContentType (RFC 5652 11.1)",
      );
    }
    const md = attributeValue(si.signedAttrs, OID.messageDigest, openssl ? "first" : "single");
    const mdValue = md?.tag === Tag.OCTET_STRING ? md.content : undefined;
    b.check(
      "cms.signer.messageDigest",
      mdValue !== undefined && bytesEqual(mdValue, digest),
      toHex(digest),
      mdValue ? toHex(mdValue) : "(absent)",
      openssl
        ? "the first messageDigest attribute's first value is not an OCTET STRING equal to the content digest (OpenSSL PKCS7_signatureVerify)"
        : "the messageDigest signed attribute differs from the content digest (RFC 5652 11.2)",
    );
    if (openssl) {
      signedBytes = opensslAttributesEncoding(si.signedAttrsRaw);
    } else {
      signedBytes = si.signedAttrsRaw.slice();
      signedBytes[0] = Tag.SET; // RFC 5652 5.4: the DER of SET OF Attribute, not the [0] IMPLICIT tag
    }
  } else {
    signedBytes = data;
  }
  if (cert) {
    let ok = false;
    let why = "does not verify";
    try {
      const alg = resolveSignatureAlgorithm(si.signatureAlgorithm, si.digestAlgorithm);
      if (alg.hash !== hash) why = `signature hash ${alg.hash} differs from digest ${hash}`;
      else ok = verifyBytes(cert.spkiRaw, alg, signedBytes, si.signature);
    } catch (e) {
      if (!isAsn1Error(e)) throw e;
      why = e.message;
    }
    b.check(
      "cms.signer.signature",
      ok,
      "verifies with the signer certificate",
      why,
      `signature ${oidName(si.signatureAlgorithm)} by ${cert.subject.text} does not verify`,
    );
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
   * and messageDigest; an array → those two plus the given attributes (e.g. SpcSpOpusInfo).
   */
  readonly signedAttributes?: boolean | readonly AsnAttribute[];
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

const buf = (b: Uint8Array): ArrayBuffer => b.slice().buffer;

/** Attribute ::= SEQUENCE { attrType OID, attrValues SET OF ANY }, from its values' DER. */
export function attribute(oid: string, ...values: Uint8Array[]): AsnAttribute {
  return new AsnAttribute({ attrType: oid, attrValues: values.map(buf) });
}

/** Members of a SET OF in DER order (X.690 11.6: ascending encodings). */
function derSorted<T extends object>(items: readonly T[]): T[] {
  return items
    .map((item) => ({ item, der: encodeDer(item) }))
    .sort((a, b) => compareBytes(a.der, b.der))
    .map((x) => x.item);
}

/** A structure decoded from DER (so it is one), to be sent as exactly those bytes. */
function asReceived<T>(bytes: Uint8Array, type: new () => T, what: string): T {
  decodeAs(parseDer(bytes, what), type, "ASN1_ERR_INVALID_VALUE", what);
  return received<T>(bytes);
}

/** Builds SignedData (RFC 5652 5 / RFC 2315 9.1, version 1, IssuerAndSerialNumber signers). */
export function buildSignedData(opts: BuildSignedDataOptions): Uint8Array {
  if (!opts.content === !opts.detachedContent) {
    throw asn1Error("ASN1_ERR_INVALID_CMS", "give exactly one of content and detachedContent");
  }
  const data = opts.content
    ? parseDer(opts.content, "content").content
    : (opts.detachedContent as Uint8Array);
  const digestOids = new Set<string>();
  const signedAttrBytes: Uint8Array[] = [];
  const signerInfos = opts.signers.map((s) => {
    const cert = parseCertificate(s.certificate);
    const hash = s.hash ?? defaultHashFor(s.key);
    digestOids.add(OID_BY_DIGEST[hash]);
    // OpenSSL, sbsign and edk2 use rsaEncryption for RSA signers; ECDSA names its hash.
    const sigOid =
      s.key.asymmetricKeyType === "rsa"
        ? OID.rsaEncryption
        : hash === "sha384"
          ? OID.ecdsaWithSHA384
          : hash === "sha512"
            ? OID.ecdsaWithSHA512
            : OID.ecdsaWithSHA256;
    const si = new AsnSignerInfo({
      version: CMSVersion.v1,
      sid: new SignerIdentifier({
        issuerAndSerialNumber: new IssuerAndSerialNumber({
          issuer: asReceived(cert.issuer.raw, Name, "issuer Name"),
          serialNumber: buf(cert.serialRaw),
        }),
      }),
      digestAlgorithm: new AlgorithmIdentifier({ algorithm: OID_BY_DIGEST[hash], parameters: null }),
      signatureAlgorithm: new AlgorithmIdentifier(
        s.key.asymmetricKeyType === "rsa" ? { algorithm: sigOid, parameters: null } : { algorithm: sigOid },
      ),
    });
    if (s.signedAttributes === false) {
      si.signature = new OctetString(signBytes(s.key, hash, data));
      return si;
    }
    const extra = Array.isArray(s.signedAttributes) ? (s.signedAttributes as readonly AsnAttribute[]) : [];
    si.signedAttrs = derSorted([
      attribute(OID.contentType, encodeDer(AsnObjectIdentifierConverter.toASN(opts.contentType))),
      attribute(OID.messageDigest, encodeDer(new OctetString(createHash(hash).update(data).digest()))),
      ...extra,
    ]);
    // RFC 5652 5.4: the signature covers the DER of the SET OF (tag 0x31, not [0] IMPLICIT),
    // taken from the SignerInfo's own encoding; the result is checked against it below.
    const toSign = signedAttrsToVerify(parseDer(encodeDer(si), "SignerInfo"));
    si.signature = new OctetString(signBytes(s.key, hash, toSign));
    signedAttrBytes.push(toSign);
    return si;
  });
  const certs = opts.certificates ?? opts.signers.map((s) => s.certificate);
  const sd = new AsnSignedData({
    version: CMSVersion.v1,
    digestAlgorithms: new DigestAlgorithmIdentifiers(
      derSorted([...digestOids].map((o) => new AlgorithmIdentifier({ algorithm: o, parameters: null }))),
    ),
    encapContentInfo: new EncapsulatedContentInfo({
      eContentType: opts.contentType,
      ...(opts.content ? { eContent: new EncapsulatedContent({ any: buf(opts.content) }) } : {}),
    }),
    ...(certs.length
      ? {
          certificates: new CertificateSet(
            derSorted(
              certs.map(
                (c) =>
                  new CertificateChoices({ certificate: asReceived(c, AsnCertificate, "bag certificate") }),
              ),
            ),
          ),
        }
      : {}),
    signerInfos: new SignerInfos(derSorted(signerInfos)),
  });
  const out =
    opts.wrapContentInfo === false
      ? encodeDer(sd)
      : encodeDer(new ContentInfo({ contentType: OID.signedData, content: buf(encodeDer(sd)) }));
  // What was signed must be what is sent (STYLE.md habit 4): the encoder is deterministic, and
  // this proves it for every signer with signed attributes.
  const sent = parseSignedData(out).signerInfos.flatMap((si) =>
    si.signedAttrsRaw ? [si.signedAttrsRaw] : [],
  );
  for (const signed of signedAttrBytes) {
    if (!sent.some((raw) => bytesEqual(raw.subarray(1), signed.subarray(1))))
      throw asn1Error("ASN1_ERR_INVALID_CMS", "the encoded signed attributes differ from the signed ones");
  }
  return out;
}

/** RFC 5652 5.4: the signed attributes of a SignerInfo node as signed, with the SET tag. */
function signedAttrsToVerify(signerInfo: DerNode): Uint8Array {
  const attrs = signerInfo.children.slice(3).find((c) => isContext(c, 0));
  if (!attrs) throw asn1Error("ASN1_ERR_INVALID_CMS", "the encoder dropped the signed attributes");
  const bytes = attrs.raw.slice();
  bytes[0] = Tag.SET;
  return bytes;
}
