/**
 * EFI_SIGNATURE_LIST and EFI_SIGNATURE_DATA (UEFI Specification 2.10, section 32.4.1 "Signature
 * Database", Figure 32-6 and the table of EFI_CERT_* types): the data of PK, KEK, db and dbx is a
 * concatenation of signature lists, each holding entries of one type and one size.
 *
 *   EFI_SIGNATURE_LIST  { SignatureType: EFI_GUID, SignatureListSize: UINT32,
 *                         SignatureHeaderSize: UINT32, SignatureSize: UINT32,
 *                         SignatureHeader[SignatureHeaderSize], Signatures[...] }
 *   EFI_SIGNATURE_DATA  { SignatureOwner: EFI_GUID, SignatureData[SignatureSize - 16] }
 *
 * X.509 (EFI_CERT_X509_GUID) and SHA-256 (EFI_CERT_SHA256_GUID) entries are decoded by
 * {@link describeEntry}; every other type is kept as opaque bytes. Entries keep their received
 * bytes (views into the input), so decode→encode is byte-identical.
 */
import { createHash, X509Certificate } from "node:crypto";
import { parseCertificate } from "../asn1/x509.js";
import { Reader, Writer } from "../core/codec.js";
import { isBulwarkError } from "../core/errors.js";
import { EFI_GUID, Guids, guidName, type Guid } from "./guid.js";
import { uefiError } from "./errors.js";

export interface EfiSignatureData {
  /** SignatureOwner: the agent that added the entry (e.g. Microsoft's 77fa9abd-...). */
  readonly owner: Guid;
  /** SignatureData: DER certificate, digest, or opaque bytes. */
  readonly data: Uint8Array;
}

export interface EfiSignatureList {
  /** SignatureType: EFI_CERT_X509_GUID, EFI_CERT_SHA256_GUID, ... */
  readonly type: Guid;
  /** SignatureHeader (empty for every type the spec defines today). */
  readonly header: Uint8Array;
  /** SignatureSize: 16 + the data size shared by all entries. */
  readonly signatureSize: number;
  readonly entries: readonly EfiSignatureData[];
}

/** A signature database: the value of PK, KEK, db or dbx. */
export type SignatureDatabase = readonly EfiSignatureList[];

const LIST_HEADER = 28;
const OWNER = 16;
/** Fixed SignatureData sizes of the digest types (UEFI 2.10 section 32.4.1 table). */
const FIXED_DATA_SIZE: Readonly<Record<string, number>> = {
  [Guids.EFI_CERT_SHA256_GUID]: 32,
  [Guids.EFI_CERT_SHA1_GUID]: 20,
  [Guids.EFI_CERT_SHA224_GUID]: 28,
  [Guids.EFI_CERT_SHA384_GUID]: 48,
  [Guids.EFI_CERT_SHA512_GUID]: 64,
  [Guids.EFI_CERT_RSA2048_GUID]: 256,
  [Guids.EFI_CERT_RSA2048_SHA256_GUID]: 256,
  [Guids.EFI_CERT_RSA2048_SHA1_GUID]: 256,
  [Guids.EFI_CERT_X509_SHA256_GUID]: 48,
  [Guids.EFI_CERT_X509_SHA384_GUID]: 64,
  [Guids.EFI_CERT_X509_SHA512_GUID]: 80,
};

function invalid(r: Reader, message: string, offset: number): never {
  throw uefiError("UEFI_ERR_SIGLIST_INVALID", `${message} at offset ${offset}`, {
    offset,
    path: r.path,
  });
}

/** Wraps core decode errors of this structure into UEFI_ERR_SIGLIST_INVALID. */
function guarded<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (isBulwarkError(e) && e.code.startsWith("CORE_ERR_")) {
      throw uefiError("UEFI_ERR_SIGLIST_INVALID", e.message, e.details, { cause: e });
    }
    throw e;
  }
}

/** Decodes one EFI_SIGNATURE_LIST at the reader's position. */
export function decodeSignatureList(r: Reader): EfiSignatureList {
  const start = r.offset;
  const type = r.at("SignatureType", () => EFI_GUID.decode(r));
  const listSize = r.at("SignatureListSize", () => r.u32(true));
  const headerSize = r.at("SignatureHeaderSize", () => r.u32(true));
  const signatureSize = r.at("SignatureSize", () => r.u32(true));
  if (listSize < LIST_HEADER || listSize - LIST_HEADER > r.remaining) {
    invalid(
      r,
      `SignatureListSize ${listSize} outside ${LIST_HEADER}..${LIST_HEADER + r.remaining}`,
      start + 16,
    );
  }
  const body = listSize - LIST_HEADER;
  if (headerSize > body) invalid(r, `SignatureHeaderSize ${headerSize} exceeds the list`, start + 20);
  if (signatureSize < OWNER) invalid(r, `SignatureSize ${signatureSize} is below 16`, start + 24);
  const entriesBytes = body - headerSize;
  if (entriesBytes % signatureSize !== 0) {
    invalid(
      r,
      `${entriesBytes} bytes of entries are not a multiple of SignatureSize ${signatureSize}`,
      start + 24,
    );
  }
  const fixed = FIXED_DATA_SIZE[type];
  if (fixed !== undefined && signatureSize !== OWNER + fixed) {
    invalid(r, `${guidName(type)} entries must be ${OWNER + fixed} bytes, not ${signatureSize}`, start + 24);
  }
  if (type === Guids.EFI_CERT_X509_GUID && signatureSize === OWNER) {
    invalid(r, "EFI_CERT_X509_GUID entry without certificate bytes", start + 24);
  }
  const header = r.at("SignatureHeader", () => r.take(headerSize));
  const entries: EfiSignatureData[] = [];
  const count = entriesBytes / signatureSize;
  for (let i = 0; i < count; i++) {
    entries.push(
      r.at(`Signatures[${i}]`, () => {
        const owner = r.at("SignatureOwner", () => EFI_GUID.decode(r));
        const data = r.at("SignatureData", () => r.take(signatureSize - OWNER));
        return { owner, data };
      }),
    );
  }
  return { type, header, signatureSize, entries };
}

export function encodeSignatureList(w: Writer, list: EfiSignatureList): void {
  const dataSize = list.signatureSize - OWNER;
  if (!Number.isInteger(dataSize) || dataSize < 0) {
    throw uefiError("UEFI_ERR_SIGLIST_INVALID", `SignatureSize ${list.signatureSize} is below 16`);
  }
  for (const e of list.entries) {
    if (e.data.length !== dataSize) {
      throw uefiError(
        "UEFI_ERR_SIGLIST_INVALID",
        `entry of ${e.data.length} bytes in a list of ${dataSize}-byte entries`,
      );
    }
  }
  const listSize = LIST_HEADER + list.header.length + list.entries.length * list.signatureSize;
  EFI_GUID.encode(w, list.type);
  w.u32(listSize, true);
  w.u32(list.header.length, true);
  w.u32(list.signatureSize, true);
  w.bytes(list.header);
  for (const e of list.entries) {
    EFI_GUID.encode(w, e.owner);
    w.bytes(e.data);
  }
}

/** Decodes a whole signature database (the data of PK, KEK, db or dbx). */
export function decodeSignatureDatabase(bytes: Uint8Array): EfiSignatureList[] {
  return guarded(() => {
    const r = new Reader(bytes);
    const lists: EfiSignatureList[] = [];
    while (r.remaining > 0) {
      const i = lists.length;
      lists.push(r.at(`EFI_SIGNATURE_LIST[${i}]`, () => decodeSignatureList(r)));
    }
    return lists;
  });
}

export function encodeSignatureDatabase(lists: SignatureDatabase): Uint8Array {
  const w = new Writer(1024);
  for (const l of lists) encodeSignatureList(w, l);
  return w.finish();
}

/** A list holding one DER X.509 certificate (one certificate per list, as edk2 and Windows write). */
export function x509List(der: Uint8Array, owner: Guid): EfiSignatureList {
  return {
    type: Guids.EFI_CERT_X509_GUID,
    header: new Uint8Array(0),
    signatureSize: OWNER + der.length,
    entries: [{ owner, data: der }],
  };
}

/** A list of SHA-256 digests (e.g. image hashes in db or dbx). */
export function sha256List(digests: readonly Uint8Array[], owner: Guid): EfiSignatureList {
  for (const d of digests) {
    if (d.length !== 32) throw uefiError("UEFI_ERR_SIGLIST_INVALID", `SHA-256 digest of ${d.length} bytes`);
  }
  return {
    type: Guids.EFI_CERT_SHA256_GUID,
    header: new Uint8Array(0),
    signatureSize: OWNER + 32,
    entries: digests.map((data) => ({ owner, data })),
  };
}

/** What an entry is, for `vars show` and templates. */
export type EntryDescription =
  | {
      readonly kind: "x509";
      readonly owner: Guid;
      readonly subject: string;
      readonly issuer: string;
      readonly serialNumber: string;
      readonly notBefore: string;
      readonly notAfter: string;
      /** SHA-256 of the DER certificate (the thumbprint tools like certutil show). */
      readonly sha256: string;
    }
  | { readonly kind: "x509-unparsed"; readonly owner: Guid; readonly sha256: string; readonly error: string }
  | { readonly kind: "sha256"; readonly owner: Guid; readonly hash: string }
  | {
      readonly kind: "opaque";
      readonly owner: Guid;
      readonly type: Guid;
      readonly typeName?: string;
      readonly size: number;
      readonly sha256: string;
    };

const sha256Hex = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** One-line-per-attribute subject ("CN=..., O=...") from node's "\n"-separated form. */
function nameText(s: string): string {
  return s.split("\n").filter(Boolean).reverse().join(", ");
}

/**
 * notBefore/notAfter as ISO strings, read from the certificate's bytes: node prints year 0001
 * (Go's zero time) as "1 GMT", which Date reads as 2001. Node's strings only if we cannot parse.
 */
function validityOf(der: Uint8Array, c: X509Certificate): { notBefore: string; notAfter: string } {
  try {
    const { notBefore, notAfter } = parseCertificate(der);
    return { notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString() };
  } catch {
    return { notBefore: new Date(c.validFrom).toISOString(), notAfter: new Date(c.validTo).toISOString() };
  }
}

/** Describes one entry: X.509 subject/issuer/thumbprint, SHA-256 hash, or an opaque summary. */
export function describeEntry(type: Guid, e: EfiSignatureData): EntryDescription {
  if (type === Guids.EFI_CERT_SHA256_GUID) {
    return { kind: "sha256", owner: e.owner, hash: Buffer.from(e.data).toString("hex") };
  }
  if (type === Guids.EFI_CERT_X509_GUID) {
    try {
      const c = new X509Certificate(e.data);
      return {
        kind: "x509",
        owner: e.owner,
        subject: nameText(c.subject),
        issuer: nameText(c.issuer),
        serialNumber: c.serialNumber.toLowerCase(),
        ...validityOf(e.data, c),
        sha256: sha256Hex(e.data),
      };
    } catch (err) {
      return {
        kind: "x509-unparsed",
        owner: e.owner,
        sha256: sha256Hex(e.data),
        error: err instanceof Error ? err.message : String(err),
      };
    }
  }
  const typeName = guidName(type);
  return {
    kind: "opaque",
    owner: e.owner,
    type,
    ...(typeName === undefined ? {} : { typeName }),
    size: e.data.length,
    sha256: sha256Hex(e.data),
  };
}

/** Every entry of a database, described. */
export function describeDatabase(lists: SignatureDatabase): EntryDescription[] {
  return lists.flatMap((l) => l.entries.map((e) => describeEntry(l.type, e)));
}

/** The DER certificates of a database's X.509 entries, in order. */
export function x509Certificates(lists: SignatureDatabase): Uint8Array[] {
  return lists
    .filter((l) => l.type === Guids.EFI_CERT_X509_GUID)
    .flatMap((l) => l.entries.map((e) => e.data));
}

/** The SHA-256 digests of a database's EFI_CERT_SHA256_GUID entries, as hex. */
export function sha256Digests(lists: SignatureDatabase): string[] {
  return lists
    .filter((l) => l.type === Guids.EFI_CERT_SHA256_GUID)
    .flatMap((l) => l.entries.map((e) => Buffer.from(e.data).toString("hex")));
}
