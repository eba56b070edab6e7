/**
 * Authenticode for UEFI images: the image digest, the signature's SpcIndirectDataContent, and
 * the Secure Boot decision.
 *
 * Digest: Microsoft "Windows Authenticode Portable Executable Signature Format" (2008), section
 * "Calculating the PE Image Hash", as edk2's DxeImageVerificationLib HashPeImage implements it:
 * the headers up to SizeOfHeaders without OptionalHeader.CheckSum and the Certificate Table data
 * directory entry; then each section's raw data in ascending PointerToRawData order (empty ones
 * skipped); then any data after SizeOfHeaders + ΣSizeOfRawData up to the file size minus the
 * certificate table size. The certificate table itself is never hashed.
 *
 * Signature: PKCS #7 SignedData (RFC 2315) whose content type is SPC_INDIRECT_DATA_OBJID and
 * whose content is SpcIndirectDataContent (declared in authenticode-spc.ts).
 *
 * Decision ({@link verifyImage}), as edk2 DxeImageVerificationHandler (SecurityPkg) decides with
 * db/dbx given as plain lists ({@link SignatureDatabaseModel}):
 *   - unsigned (no certificate table): refused if the SHA-256 image hash is in dbx; allowed if it
 *     is in db; otherwise refused;
 *   - signed, per WIN_CERTIFICATE carrying PKCS #7: refused if a dbx certificate anchors the
 *     signer's chain (the PKCS #7 signature must verify; the image hash need not match — edk2's
 *     IsForbiddenByDbx); allowed-candidate if a db certificate anchors the chain AND the
 *     SpcIndirectDataContent digest equals the image digest (edk2's IsAllowedByDb /
 *     AuthenticodeVerify); refused if the image hash (in the signature's digest algorithm) is in
 *     dbx; allowed-candidate if it is in db. "Anchors" = is a certificate of the chain built from
 *     the signer through the PKCS #7 certificates bag (signer included), or verifiably issued one
 *     (OpenSSL partial-chain semantics that edk2's Pkcs7Verify uses), over a path that keeps the
 *     RFC 5280 rules OpenSSL applies (asn1/chain.ts: no repeated extension, no unrecognised
 *     critical one, pathLenConstraint); a dbx certificate revokes regardless of those rules.
 *   - a corrupt certificate table is refused.
 * The result is a verdict (core/verdict.ts): `ok` is the decision, see {@link ImageVerdict}.
 * NOT checked (as in edk2): certificate validity periods (UEFI has no trusted time: a signer
 * valid from 0001-01-01, Go's zero time, signs as well as any), key usages / EKUs, timestamps
 * (counter-signatures), the revocation times of EFI_CERT_X509_SHA256 entries, non-SHA-256 hash entries
 * (the model holds X.509 certificates and SHA-256 hashes only), SBAT (shim's job).
 */
import { createHash } from "node:crypto";
import { anchorMatch, buildChain, trusts } from "../asn1/chain.js";
import { bagCertificates, parseSignedData, verifySigners, type SignedData } from "../asn1/cms.js";
import { isAsn1Error } from "../asn1/errors.js";
import { DIGEST_BY_OID, OID, oidName, type HashName } from "../asn1/oid.js";
import { decodeAs } from "../asn1/schema.js";
import { fingerprint256, parseCertificate, type Certificate } from "../asn1/x509.js";
import { bytesEqual, toHex } from "../core/bytes.js";
import { VerdictBuilder, type Finding, type Verdict } from "../core/verdict.js";
import { SpcIndirectDataContent as SpcSchema } from "./authenticode-spc.js";
import { isUefiPeError, uefiPeError } from "./errors-pe.js";
import { IMAGE_DIRECTORY_ENTRY_SECURITY, parsePe, type PeImage, type WinCertificateEntry } from "./pe.js";

export interface ByteRange {
  readonly offset: number;
  readonly length: number;
}

/** The file ranges the Authenticode digest covers, in hashing order. */
export function authenticodeRanges(pe: PeImage): ByteRange[] {
  const out: ByteRange[] = [];
  const add = (start: number, end: number): void => {
    if (end > start) out.push({ offset: start, length: end - start });
  };
  add(0, pe.checkSumOffset);
  if (pe.securityDirectoryOffset === undefined) {
    add(pe.checkSumOffset + 4, pe.sizeOfHeaders);
  } else {
    add(pe.checkSumOffset + 4, pe.securityDirectoryOffset);
    add(pe.securityDirectoryOffset + 8, pe.sizeOfHeaders);
  }
  let sum = pe.sizeOfHeaders;
  const sorted = pe.sections
    .map((s, i) => ({ s, i }))
    .sort((a, b) => a.s.PointerToRawData - b.s.PointerToRawData || a.i - b.i);
  for (const { s } of sorted) {
    if (s.SizeOfRawData === 0) continue;
    add(s.PointerToRawData, s.PointerToRawData + s.SizeOfRawData);
    sum += s.SizeOfRawData;
  }
  const certSize =
    pe.securityDirectoryOffset === undefined
      ? 0
      : (pe.dataDirectories[IMAGE_DIRECTORY_ENTRY_SECURITY]?.Size ?? 0);
  if (pe.bytes.length > sum + certSize) add(sum, pe.bytes.length - certSize);
  return out;
}

/** The Authenticode digest of an image. */
export function authenticodeDigest(pe: PeImage, hash: HashName = "sha256"): Uint8Array {
  const h = createHash(hash);
  for (const r of authenticodeRanges(pe)) h.update(pe.bytes.subarray(r.offset, r.offset + r.length));
  return new Uint8Array(h.digest());
}

export interface SpcIndirectDataContent {
  /** Received DER of SpcIndirectDataContent. */
  readonly raw: Uint8Array;
  /** SpcAttributeTypeAndOptionalValue.type, normally SPC_PE_IMAGE_DATAOBJ. */
  readonly dataType: string;
  readonly digestAlgorithm: string;
  /** node:crypto name of the digest algorithm, when supported. */
  readonly hash: HashName | undefined;
  readonly digest: Uint8Array;
}

export interface AuthenticodeSignature {
  readonly signedData: SignedData;
  readonly indirect: SpcIndirectDataContent;
}

function invalid(message: string, cause?: unknown): never {
  const details = isAsn1Error(cause) ? cause.details : {};
  throw uefiPeError("UEFI_ERR_AUTHENTICODE_INVALID", message, details, { cause });
}

/** Parses an Authenticode PKCS #7 blob (zero padding after the DER allowed). */
export function parseAuthenticode(bytes: Uint8Array): AuthenticodeSignature {
  let sd: SignedData;
  try {
    sd = parseSignedData(bytes, { allowZeroPadding: true });
  } catch (e) {
    if (isAsn1Error(e)) invalid(`PKCS #7 SignedData: ${e.message}`, e);
    throw e;
  }
  if (sd.contentType !== OID.SPC_INDIRECT_DATA_OBJID) {
    invalid(`content type ${oidName(sd.contentType)} is not SPC_INDIRECT_DATA_OBJID`);
  }
  if (!sd.content) invalid("SpcIndirectDataContent is absent");
  let spc: SpcSchema;
  try {
    spc = decodeAs(sd.content, SpcSchema, "ASN1_ERR_INVALID_CMS", "SpcIndirectDataContent");
  } catch (e) {
    if (isAsn1Error(e)) invalid(e.message, e);
    throw e;
  }
  const digestAlgorithm = spc.messageDigest.digestAlgorithm.algorithm;
  return {
    signedData: sd,
    indirect: {
      raw: sd.content.raw,
      dataType: spc.data.type,
      digestAlgorithm,
      hash: DIGEST_BY_OID[digestAlgorithm],
      digest: new Uint8Array(spc.messageDigest.digest.buffer),
    },
  };
}

/** db / dbx as plain lists (EFI_CERT_X509_GUID and EFI_CERT_SHA256_GUID entries). */
export interface SignatureDatabaseModel {
  readonly x509: readonly Uint8Array[];
  readonly sha256: readonly Uint8Array[];
  /**
   * EFI_CERT_X509_SHA256_GUID entries (dbx only): SHA-256 of a certificate's TBSCertificate.
   * edk2 (IsCertHashFoundInDbx) refuses a signer chain holding such a certificate unless the
   * signature carries a timestamp older than the entry's revocation time; we do not read
   * timestamps, so a match always refuses (the stricter reading).
   */
  readonly x509Sha256?: readonly Uint8Array[];
}

export interface CertificateSummary {
  readonly subject: string;
  readonly issuer: string;
  readonly serialNumber: string;
  readonly fingerprint256: string;
}

export interface DatabaseMatch {
  readonly database: "db" | "dbx";
  readonly kind: "certificate" | "sha256" | "x509Sha256";
  /** The matching database certificate, for certificate matches. */
  readonly certificate?: CertificateSummary;
  /** "member": the database certificate is in the chain; "issuer": it issued a chain certificate. */
  readonly how?: "member" | "issuer";
}

export interface SignatureReport {
  /** Index of the WIN_CERTIFICATE in the certificate table. */
  readonly index: number;
  readonly wCertificateType: number;
  /** Why the entry could not be used (unsupported type, malformed PKCS #7 ...). */
  readonly error: string | undefined;
  readonly digestAlgorithm: string | undefined;
  /** Image digest in this signature's algorithm (hex). */
  readonly imageDigest: string | undefined;
  /** SpcIndirectDataContent digest (hex). */
  readonly signedDigest: string | undefined;
  readonly digestMatches: boolean;
  readonly signers: readonly {
    readonly certificate: CertificateSummary | undefined;
    readonly signatureValid: boolean;
    /** Chain from the signer through the bag, leaf first. */
    readonly chain: readonly CertificateSummary[];
    readonly findings: readonly Finding[];
  }[];
  readonly dbMatch: DatabaseMatch | undefined;
  readonly dbxMatch: DatabaseMatch | undefined;
  /** A db certificate anchors a chain, but over a path RFC 5280 refuses (asn1/chain.ts): why. */
  readonly chainProblem: string | undefined;
}

/**
 * `ok`: Secure Boot would run the image. The decision is the one error-severity finding
 * `authenticode.decision` (present only when refused); per-signature findings are warnings,
 * because another signature may still allow the image, except a dbx match, which refuses.
 */
export interface ImageVerdict extends Verdict {
  /** One sentence: why allowed or refused. */
  readonly reason: string;
  /** SHA-256 Authenticode digest (hex). */
  readonly digest: string;
  readonly signed: boolean;
  readonly signatures: readonly SignatureReport[];
}

export function summarize(c: Certificate): CertificateSummary {
  return {
    subject: c.subject.text,
    issuer: c.issuer.text,
    serialNumber: c.serialNumber.toString(16),
    fingerprint256: fingerprint256(c),
  };
}

const hex = toHex;

function parseAll(list: readonly Uint8Array[]): Certificate[] {
  const out: Certificate[] = [];
  for (const raw of list) {
    try {
      out.push(parseCertificate(raw));
    } catch (e) {
      if (!isAsn1Error(e)) throw e;
    }
  }
  return out;
}

function containsHash(list: readonly Uint8Array[], digest: Uint8Array): boolean {
  return list.some((h) => bytesEqual(h, digest));
}

interface Anchored {
  readonly anchor: Certificate;
  readonly how: "member" | "issuer";
  readonly problem: string | undefined;
}

/**
 * The first anchor among `anchors` of any chain. With `trustedOnly` (db), only a match over a
 * valid path counts, and the first invalid path is returned as `rejected` to explain a refusal;
 * without (dbx), any match counts: a revocation is not weakened by a broken chain.
 */
function findAnchor(
  chains: readonly Certificate[][],
  anchors: readonly Certificate[],
  trustedOnly: boolean,
): { found: Anchored | undefined; rejected: Anchored | undefined } {
  let rejected: Anchored | undefined;
  for (const chain of chains) {
    for (const a of anchors) {
      const m = anchorMatch(chain, a);
      if (!m) continue;
      const anchored = { anchor: a, how: m.how, problem: m.problem };
      if (!trustedOnly || trusts(m)) return { found: anchored, rejected };
      rejected ??= anchored;
    }
  }
  return { found: undefined, rejected };
}

/** Reports one WIN_CERTIFICATE against db/dbx (no decision; {@link verifyImage} decides). */
function examine(
  pe: PeImage,
  entry: WinCertificateEntry,
  index: number,
  digests: Map<HashName, Uint8Array>,
  db: Certificate[],
  dbx: Certificate[],
  policy: { db: SignatureDatabaseModel; dbx: SignatureDatabaseModel },
): SignatureReport {
  const base = {
    index,
    wCertificateType: entry.wCertificateType,
    digestAlgorithm: undefined,
    imageDigest: undefined,
    signedDigest: undefined,
    digestMatches: false,
    signers: [],
    dbMatch: undefined,
    dbxMatch: undefined,
    chainProblem: undefined,
  };
  if (!entry.signedData) {
    return {
      ...base,
      error: `WIN_CERTIFICATE type 0x${entry.wCertificateType.toString(16)} carries no PKCS #7 SignedData`,
    };
  }
  let sig: AuthenticodeSignature;
  try {
    sig = parseAuthenticode(entry.signedData);
  } catch (e) {
    if (isUefiPeError(e)) return { ...base, error: e.message };
    throw e;
  }
  const hash = sig.indirect.hash;
  if (!hash)
    return {
      ...base,
      digestAlgorithm: oidName(sig.indirect.digestAlgorithm),
      error: "unsupported digest algorithm",
    };
  let imageDigest = digests.get(hash);
  if (!imageDigest) {
    imageDigest = authenticodeDigest(pe, hash);
    digests.set(hash, imageDigest);
  }
  const digestMatches = bytesEqual(imageDigest, sig.indirect.digest);
  const verdicts = verifySigners(sig.signedData);
  const bag = bagCertificates(sig.signedData);
  const validChains: Certificate[][] = [];
  const signers = verdicts.map((v) => {
    const chain = v.certificate ? buildChain(v.certificate, bag) : [];
    if (v.ok && v.certificate) validChains.push(chain);
    return {
      certificate: v.certificate ? summarize(v.certificate) : undefined,
      signatureValid: v.ok,
      chain: chain.map(summarize),
      findings: v.findings,
    };
  });
  let dbxMatch: DatabaseMatch | undefined;
  const dbxCert = findAnchor(validChains, dbx, false).found;
  const revokedTbs = policy.dbx.x509Sha256?.length
    ? validChains
        .flat()
        .find((c) =>
          containsHash(
            policy.dbx.x509Sha256 ?? [],
            new Uint8Array(createHash("sha256").update(c.tbsRaw).digest()),
          ),
        )
    : undefined;
  if (revokedTbs) dbxMatch = { database: "dbx", kind: "x509Sha256", certificate: summarize(revokedTbs) };
  else if (dbxCert)
    dbxMatch = {
      database: "dbx",
      kind: "certificate",
      certificate: summarize(dbxCert.anchor),
      how: dbxCert.how,
    };
  else if (hash === "sha256" && containsHash(policy.dbx.sha256, imageDigest))
    dbxMatch = { database: "dbx", kind: "sha256" };
  let dbMatch: DatabaseMatch | undefined;
  const dbFound = digestMatches ? findAnchor(validChains, db, true) : undefined;
  const dbCert = dbFound?.found;
  if (dbCert)
    dbMatch = { database: "db", kind: "certificate", certificate: summarize(dbCert.anchor), how: dbCert.how };
  else if (hash === "sha256" && containsHash(policy.db.sha256, imageDigest))
    dbMatch = { database: "db", kind: "sha256" };
  return {
    ...base,
    error: undefined,
    digestAlgorithm: oidName(sig.indirect.digestAlgorithm),
    imageDigest: hex(imageDigest),
    signedDigest: hex(sig.indirect.digest),
    digestMatches,
    signers,
    dbMatch,
    dbxMatch,
    chainProblem: dbCert ? undefined : dbFound?.rejected?.problem,
  };
}

/**
 * Decides like UEFI firmware (edk2 DxeImageVerificationLib) whether Secure Boot would run the
 * image with these db/dbx; see the module comment. Throws UEFI_ERR_PE_INVALID for non-PE input.
 */
export function verifyImage(
  image: Uint8Array | PeImage,
  policy: { readonly db: SignatureDatabaseModel; readonly dbx: SignatureDatabaseModel },
): ImageVerdict {
  const d = decide(image, policy);
  return {
    ...verdictOf(d, policy),
    reason: d.reason,
    digest: d.digest,
    signed: d.signed,
    signatures: d.signatures,
  };
}

/** Secure Boot's answer as a pure function of the verdict: run the image or not. */
export function imageAllowed(v: ImageVerdict): boolean {
  return v.ok;
}

function verdictOf(
  d: Decision,
  policy: { readonly db: SignatureDatabaseModel; readonly dbx: SignatureDatabaseModel },
): Verdict {
  const b = new VerdictBuilder<Finding>();
  // A database certificate we cannot parse takes no part in the decision: say so.
  for (const [name, model] of [
    ["db", policy.db],
    ["dbx", policy.dbx],
  ] as const) {
    model.x509.forEach((raw, i) => {
      try {
        parseCertificate(raw);
      } catch (e) {
        if (!isAsn1Error(e)) throw e;
        b.fail(
          `authenticode.${name}.x509.${i}`,
          "an X.509 certificate",
          e.message,
          `ignored: ${e.message}`,
          "warning",
        );
      }
    });
  }
  if (!d.signed) {
    b.check(
      "authenticode.image.dbx",
      !policy.dbx.sha256.some((h) => hex(h) === d.digest),
      "not in dbx",
      d.digest,
      "unsigned image: its SHA-256 Authenticode digest is in dbx",
    );
  }
  for (const s of d.signatures) {
    const at = `authenticode.signature.${s.index}`;
    if (s.error) {
      b.fail(`${at}.format`, "PKCS #7 SignedData with SpcIndirectDataContent", s.error, s.error, "warning");
      continue;
    }
    b.check(
      `${at}.digest`,
      s.digestMatches,
      s.signedDigest ?? "",
      s.imageDigest ?? "",
      `SpcIndirectDataContent ${s.digestAlgorithm ?? "?"} digest differs from the image digest`,
      "warning",
    );
    s.signers.forEach((signer, j) =>
      b.check(
        `${at}.signer.${j}.signature`,
        signer.signatureValid,
        "verifies",
        signer.findings.map((f) => f.id).join(", "),
        `PKCS #7 signature by ${signer.certificate?.subject ?? "(certificate not in bag)"} does not verify`,
        "warning",
      ),
    );
    if (s.chainProblem)
      b.fail(
        `${at}.chain`,
        "a valid path to a db certificate",
        s.chainProblem,
        `db certificate refused: ${s.chainProblem}`,
        "warning",
      );
    b.check(
      `${at}.dbx`,
      s.dbxMatch === undefined,
      "nothing in dbx",
      s.dbxMatch
        ? `${s.dbxMatch.kind}${s.dbxMatch.certificate ? ` ${s.dbxMatch.certificate.subject}` : ""}`
        : "",
      "dbx matches this signature",
    );
    if (s.dbMatch) b.pass(`${at}.db`);
  }
  b.check("authenticode.decision", d.allowed, "allowed", "refused", d.reason);
  return b.verdict();
}

/** What {@link decide} found, before it becomes a verdict. */
interface Decision extends Omit<ImageVerdict, keyof Verdict> {
  readonly allowed: boolean;
}

function decide(
  image: Uint8Array | PeImage,
  policy: { readonly db: SignatureDatabaseModel; readonly dbx: SignatureDatabaseModel },
): Decision {
  const pe = image instanceof Uint8Array ? parsePe(image) : image;
  const sha256 = authenticodeDigest(pe, "sha256");
  const digest = hex(sha256);
  const signed = pe.certificateTable !== undefined;
  if (!signed) {
    if (containsHash(policy.dbx.sha256, sha256))
      return {
        allowed: false,
        reason: "unsigned image whose hash is in dbx",
        digest,
        signed,
        signatures: [],
      };
    if (containsHash(policy.db.sha256, sha256))
      return { allowed: true, reason: "unsigned image whose hash is in db", digest, signed, signatures: [] };
    return {
      allowed: false,
      reason: "unsigned image whose hash is not in db",
      digest,
      signed,
      signatures: [],
    };
  }
  if (pe.certificateTableProblem) {
    return {
      allowed: false,
      reason: `certificate table is corrupt: ${pe.certificateTableProblem}`,
      digest,
      signed,
      signatures: [],
    };
  }
  const db = parseAll(policy.db.x509);
  const dbx = parseAll(policy.dbx.x509);
  const digests = new Map<HashName, Uint8Array>([["sha256", sha256]]);
  const signatures = pe.certificates.map((e, i) => examine(pe, e, i, digests, db, dbx, policy));
  // edk2 walks the entries in order and stops at the first dbx match.
  let allowedBy: SignatureReport | undefined;
  for (const s of signatures) {
    if (s.dbxMatch) {
      const what =
        s.dbxMatch.kind === "sha256"
          ? "the image hash"
          : s.dbxMatch.kind === "x509Sha256"
            ? `the TBS hash of certificate '${s.dbxMatch.certificate?.subject ?? "?"}' in the signer chain`
            : `certificate '${s.dbxMatch.certificate?.subject ?? "?"}' in the signer chain`;
      return {
        allowed: false,
        reason: `signature ${s.index}: ${what} is in dbx`,
        digest,
        signed,
        signatures,
      };
    }
    if (!allowedBy && s.dbMatch) allowedBy = s;
  }
  if (allowedBy?.dbMatch) {
    const m = allowedBy.dbMatch;
    const reason =
      m.kind === "sha256"
        ? `the image hash (${allowedBy.digestAlgorithm ?? "sha256"}) is in db`
        : `signature ${allowedBy.index} chains to db certificate '${m.certificate?.subject ?? "?"}' (${m.how === "member" ? "in the chain" : "issuer of the chain"})`;
    return { allowed: true, reason, digest, signed, signatures };
  }
  const broken = signatures.find((s) => s.chainProblem);
  const why = signatures.some((s) => s.error)
    ? signatures
        .map((s) => s.error)
        .filter(Boolean)
        .join("; ")
    : signatures.some((s) => s.digestAlgorithm && !s.digestMatches)
      ? "the signed digest does not match the image (modified after signing)"
      : broken
        ? `signature ${broken.index} chains to db only over an invalid path: ${broken.chainProblem ?? ""}`
        : "no signature chains to a certificate in db and the image hash is not in db";
  return { allowed: false, reason: why, digest, signed, signatures };
}

/** Signatures of an image with integrity only (no db/dbx): for `--list`-style output. */
export function inspectImage(image: Uint8Array | PeImage): ImageVerdict {
  return verifyImage(image, { db: { x509: [], sha256: [] }, dbx: { x509: [], sha256: [] } });
}
