/**
 * PE/COFF images as UEFI loads them: Microsoft "PE Format" specification (PE/COFF spec rev 11+),
 * sections "MS-DOS Stub", "Signature", "COFF File Header", "Optional Header" (PE32 / PE32+),
 * "Optional Header Data Directories", "Section Table", "The Attribute Certificate Table".
 *
 * {@link parsePe} is total and bounded: every header, the section table and the attribute
 * certificate table are checked against the file size before use, and failures are
 * UEFI_ERR_PE_INVALID / UEFI_ERR_PE_CERT_TABLE with the offset and structure path. The parsed
 * image keeps the received bytes (`bytes`) and the file offsets of the fields the Authenticode
 * digest skips (CheckSum, the Certificate Table directory entry).
 */
import { decode, struct, u16le, u32le, u64le, fixedBytes, type Codec, type Infer } from "../core/codec.js";
import { DecodeError } from "../core/errors.js";
import { isUefiPeError, uefiPeError } from "./errors-pe.js";
import { bytesEqual } from "../core/bytes.js";

/** IMAGE_FILE_HEADER, "COFF File Header (Object and Image)". */
export const IMAGE_FILE_HEADER = struct("IMAGE_FILE_HEADER", {
  Machine: u16le,
  NumberOfSections: u16le,
  TimeDateStamp: u32le,
  PointerToSymbolTable: u32le,
  NumberOfSymbols: u32le,
  SizeOfOptionalHeader: u16le,
  Characteristics: u16le,
});
export type ImageFileHeader = Infer<typeof IMAGE_FILE_HEADER>;

/** IMAGE_SECTION_HEADER, "Section Table (Section Headers)": 40 bytes. */
export const IMAGE_SECTION_HEADER = struct("IMAGE_SECTION_HEADER", {
  Name: fixedBytes(8, "Name"),
  VirtualSize: u32le,
  VirtualAddress: u32le,
  SizeOfRawData: u32le,
  PointerToRawData: u32le,
  PointerToRelocations: u32le,
  PointerToLinenumbers: u32le,
  NumberOfRelocations: u16le,
  NumberOfLinenumbers: u16le,
  Characteristics: u32le,
});
export type ImageSectionHeader = Infer<typeof IMAGE_SECTION_HEADER>;

/** IMAGE_DATA_DIRECTORY, "Optional Header Data Directories". */
export const IMAGE_DATA_DIRECTORY = struct("IMAGE_DATA_DIRECTORY", { VirtualAddress: u32le, Size: u32le });
export type ImageDataDirectory = Infer<typeof IMAGE_DATA_DIRECTORY>;

/** The optional header fields up to (excluding) the data directories, PE32+ (Magic 0x20b). */
export const IMAGE_OPTIONAL_HEADER64 = struct("IMAGE_OPTIONAL_HEADER64", {
  Magic: u16le,
  MajorLinkerVersion: fixedBytes(1, "MajorLinkerVersion"),
  MinorLinkerVersion: fixedBytes(1, "MinorLinkerVersion"),
  SizeOfCode: u32le,
  SizeOfInitializedData: u32le,
  SizeOfUninitializedData: u32le,
  AddressOfEntryPoint: u32le,
  BaseOfCode: u32le,
  ImageBase: u64le,
  SectionAlignment: u32le,
  FileAlignment: u32le,
  OsVersion: u32le,
  ImageVersion: u32le,
  SubsystemVersion: u32le,
  Win32VersionValue: u32le,
  SizeOfImage: u32le,
  SizeOfHeaders: u32le,
  CheckSum: u32le,
  Subsystem: u16le,
  DllCharacteristics: u16le,
  SizeOfStackReserve: u64le,
  SizeOfStackCommit: u64le,
  SizeOfHeapReserve: u64le,
  SizeOfHeapCommit: u64le,
  LoaderFlags: u32le,
  NumberOfRvaAndSizes: u32le,
});

/** The optional header fields up to (excluding) the data directories, PE32 (Magic 0x10b). */
export const IMAGE_OPTIONAL_HEADER32 = struct("IMAGE_OPTIONAL_HEADER32", {
  Magic: u16le,
  MajorLinkerVersion: fixedBytes(1, "MajorLinkerVersion"),
  MinorLinkerVersion: fixedBytes(1, "MinorLinkerVersion"),
  SizeOfCode: u32le,
  SizeOfInitializedData: u32le,
  SizeOfUninitializedData: u32le,
  AddressOfEntryPoint: u32le,
  BaseOfCode: u32le,
  BaseOfData: u32le,
  ImageBase: u32le,
  SectionAlignment: u32le,
  FileAlignment: u32le,
  OsVersion: u32le,
  ImageVersion: u32le,
  SubsystemVersion: u32le,
  Win32VersionValue: u32le,
  SizeOfImage: u32le,
  SizeOfHeaders: u32le,
  CheckSum: u32le,
  Subsystem: u16le,
  DllCharacteristics: u16le,
  SizeOfStackReserve: u32le,
  SizeOfStackCommit: u32le,
  SizeOfHeapReserve: u32le,
  SizeOfHeapCommit: u32le,
  LoaderFlags: u32le,
  NumberOfRvaAndSizes: u32le,
});

/** WIN_CERTIFICATE header ("The Attribute Certificate Table"; UEFI 2.10 section 32.2.4). */
export const WIN_CERTIFICATE = struct("WIN_CERTIFICATE", {
  dwLength: u32le,
  wRevision: u16le,
  wCertificateType: u16le,
});

export const PE32_MAGIC = 0x10b;
export const PE32PLUS_MAGIC = 0x20b;
export const IMAGE_DIRECTORY_ENTRY_SECURITY = 4;
export const WIN_CERT_REVISION_2_0 = 0x0200;
export const WIN_CERT_TYPE_PKCS_SIGNED_DATA = 0x0002;
export const WIN_CERT_TYPE_EFI_PKCS115 = 0x0ef0;
export const WIN_CERT_TYPE_EFI_GUID = 0x0ef1;
/** EFI_CERT_TYPE_PKCS7_GUID 4aafd29d-68df-49ee-8aa9-347d375665a7 in its on-disk (mixed-endian) bytes. */
export const EFI_CERT_TYPE_PKCS7_GUID_BYTES = Uint8Array.from([
  0x9d, 0xd2, 0xaf, 0x4a, 0xdf, 0x68, 0xee, 0x49, 0x8a, 0xa9, 0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7,
]);

/** Caps: no UEFI image has more sections or directories than this (the format allows 96 / 16). */
const MAX_SECTIONS = 96;
const MAX_DATA_DIRECTORIES = 16;
const MAX_CERTIFICATES = 64;

export interface WinCertificateEntry {
  /** File offset of the WIN_CERTIFICATE header. */
  readonly offset: number;
  readonly dwLength: number;
  readonly wRevision: number;
  readonly wCertificateType: number;
  /** bCertificate as received (dwLength - 8 bytes; for EFI_GUID entries the 16-byte CertType is included). */
  readonly certificate: Uint8Array;
  /** The PKCS #7 SignedData bytes when the entry carries one (PKCS_SIGNED_DATA, or EFI_GUID with PKCS7 GUID). */
  readonly signedData: Uint8Array | undefined;
}

export interface PeImage {
  /** The received file. */
  readonly bytes: Uint8Array;
  readonly peHeaderOffset: number;
  readonly fileHeader: ImageFileHeader;
  readonly magic: typeof PE32_MAGIC | typeof PE32PLUS_MAGIC;
  readonly sizeOfHeaders: number;
  readonly checkSum: number;
  /** File offset of OptionalHeader.CheckSum (4 bytes, skipped by the Authenticode digest). */
  readonly checkSumOffset: number;
  readonly numberOfRvaAndSizes: number;
  readonly dataDirectories: readonly ImageDataDirectory[];
  /** File offset of DataDirectory[IMAGE_DIRECTORY_ENTRY_SECURITY], when the header has one. */
  readonly securityDirectoryOffset: number | undefined;
  readonly sections: readonly ImageSectionHeader[];
  /** File offset of the section table. */
  readonly sectionTableOffset: number;
  /** The attribute certificate table (file offset + size), when present (Size != 0). */
  readonly certificateTable: { readonly offset: number; readonly size: number } | undefined;
  readonly certificates: readonly WinCertificateEntry[];
  /**
   * Why the attribute certificate table is unusable, when it is (out of the file, an entry's
   * dwLength wrong, entries not filling the table). edk2 refuses such images; signing refuses them.
   */
  readonly certificateTableProblem: string | undefined;
}

function peFail(message: string, offset: number, path: string): never {
  throw uefiPeError("UEFI_ERR_PE_INVALID", `${message} at offset ${offset} (${path})`, { offset, path });
}

function certFail(message: string, offset: number): never {
  throw uefiPeError("UEFI_ERR_PE_CERT_TABLE", `${message} at offset ${offset}`, {
    offset,
    path: "WIN_CERTIFICATE",
  });
}

/** Decodes `codec` at `offset`, converting codec errors to UEFI_ERR_PE_INVALID. */
function at<T>(codec: Codec<T>, bytes: Uint8Array, offset: number): T {
  if (offset < 0 || offset > bytes.length) peFail("structure starts outside the file", offset, codec.name);
  try {
    return decode(codec, bytes.subarray(offset), { allowTrailing: true });
  } catch (e) {
    if (e instanceof DecodeError) {
      peFail(`${codec.name} truncated`, offset + (e.details.offset ?? 0), e.details.path ?? codec.name);
    }
    throw e;
  }
}

const u16At = (b: Uint8Array, o: number): number => (b[o] as number) | ((b[o + 1] as number) << 8);
const u32At = (b: Uint8Array, o: number): number =>
  ((b[o] as number) | ((b[o + 1] as number) << 8) | ((b[o + 2] as number) << 16)) +
  (b[o + 3] as number) * 0x1000000;

/** Parses a PE32 or PE32+ image; UEFI_ERR_PE_INVALID / UEFI_ERR_PE_CERT_TABLE on malformed input. */
export function parsePe(bytes: Uint8Array): PeImage {
  if (bytes.length < 0x40 || bytes[0] !== 0x4d || bytes[1] !== 0x5a)
    peFail("no MZ signature", 0, "IMAGE_DOS_HEADER.e_magic");
  const peHeaderOffset = u32At(bytes, 0x3c);
  if (peHeaderOffset + 4 > bytes.length)
    peFail("e_lfanew points outside the file", 0x3c, "IMAGE_DOS_HEADER.e_lfanew");
  if (u32At(bytes, peHeaderOffset) !== 0x00004550)
    peFail("no PE\\0\\0 signature", peHeaderOffset, "Signature");
  const coffOffset = peHeaderOffset + 4;
  const fileHeader = at(IMAGE_FILE_HEADER, bytes, coffOffset);
  const optOffset = coffOffset + 20;
  if (optOffset + 2 > bytes.length) peFail("optional header truncated", optOffset, "IMAGE_OPTIONAL_HEADER");
  const magic = u16At(bytes, optOffset);
  if (magic !== PE32_MAGIC && magic !== PE32PLUS_MAGIC) {
    peFail(
      `optional header Magic 0x${magic.toString(16)} is neither PE32 nor PE32+`,
      optOffset,
      "IMAGE_OPTIONAL_HEADER.Magic",
    );
  }
  const opt =
    magic === PE32PLUS_MAGIC
      ? at(IMAGE_OPTIONAL_HEADER64, bytes, optOffset)
      : at(IMAGE_OPTIONAL_HEADER32, bytes, optOffset);
  const fixedSize = magic === PE32PLUS_MAGIC ? 112 : 96;
  const checkSumOffset = optOffset + 64;
  const ddOffset = optOffset + fixedSize;
  if (opt.NumberOfRvaAndSizes > MAX_DATA_DIRECTORIES) {
    peFail(
      `NumberOfRvaAndSizes ${opt.NumberOfRvaAndSizes} > ${MAX_DATA_DIRECTORIES}`,
      optOffset + fixedSize - 4,
      "IMAGE_OPTIONAL_HEADER.NumberOfRvaAndSizes",
    );
  }
  if (fileHeader.SizeOfOptionalHeader < fixedSize + 8 * opt.NumberOfRvaAndSizes) {
    peFail(
      "SizeOfOptionalHeader smaller than its data directories",
      coffOffset + 16,
      "IMAGE_FILE_HEADER.SizeOfOptionalHeader",
    );
  }
  const dataDirectories: ImageDataDirectory[] = [];
  for (let i = 0; i < opt.NumberOfRvaAndSizes; i++)
    dataDirectories.push(at(IMAGE_DATA_DIRECTORY, bytes, ddOffset + 8 * i));
  const securityDirectoryOffset =
    opt.NumberOfRvaAndSizes > IMAGE_DIRECTORY_ENTRY_SECURITY
      ? ddOffset + 8 * IMAGE_DIRECTORY_ENTRY_SECURITY
      : undefined;

  if (fileHeader.NumberOfSections > MAX_SECTIONS) {
    peFail(
      `NumberOfSections ${fileHeader.NumberOfSections} > ${MAX_SECTIONS}`,
      coffOffset + 2,
      "IMAGE_FILE_HEADER.NumberOfSections",
    );
  }
  const sectionTableOffset = optOffset + fileHeader.SizeOfOptionalHeader;
  const sections: ImageSectionHeader[] = [];
  for (let i = 0; i < fileHeader.NumberOfSections; i++) {
    sections.push(at(IMAGE_SECTION_HEADER, bytes, sectionTableOffset + 40 * i));
  }
  const headersEnd = sectionTableOffset + 40 * sections.length;
  if (opt.SizeOfHeaders > bytes.length)
    peFail("SizeOfHeaders beyond the end of the file", optOffset + 60, "IMAGE_OPTIONAL_HEADER.SizeOfHeaders");
  // The digest skips CheckSum and the security entry inside the headers; they must lie within SizeOfHeaders.
  const lastSkipped =
    (securityDirectoryOffset ?? checkSumOffset) + (securityDirectoryOffset === undefined ? 4 : 8);
  if (opt.SizeOfHeaders < lastSkipped)
    peFail(
      "SizeOfHeaders ends inside the optional header",
      optOffset + 60,
      "IMAGE_OPTIONAL_HEADER.SizeOfHeaders",
    );
  if (headersEnd > bytes.length)
    peFail("section table beyond the end of the file", sectionTableOffset, "IMAGE_SECTION_HEADER");
  sections.forEach((s, i) => {
    if (s.SizeOfRawData !== 0 && s.PointerToRawData + s.SizeOfRawData > bytes.length) {
      peFail(
        `section ${i} raw data beyond the end of the file`,
        sectionTableOffset + 40 * i + 16,
        `IMAGE_SECTION_HEADER[${i}].SizeOfRawData`,
      );
    }
  });

  const sec =
    securityDirectoryOffset !== undefined ? dataDirectories[IMAGE_DIRECTORY_ENTRY_SECURITY] : undefined;
  let certificateTable: PeImage["certificateTable"];
  const certificates: WinCertificateEntry[] = [];
  let certificateTableProblem: string | undefined;
  if (sec && sec.Size !== 0) {
    certificateTable = { offset: sec.VirtualAddress, size: sec.Size };
    try {
      certificates.push(...readCertificateTable(bytes, sec, headersEnd, securityDirectoryOffset as number));
    } catch (e) {
      if (!isUefiPeError(e)) throw e;
      certificateTableProblem = e.message;
    }
  }
  return {
    bytes,
    peHeaderOffset,
    fileHeader,
    magic: magic as PeImage["magic"],
    sizeOfHeaders: opt.SizeOfHeaders,
    checkSum: opt.CheckSum,
    checkSumOffset,
    numberOfRvaAndSizes: opt.NumberOfRvaAndSizes,
    dataDirectories,
    securityDirectoryOffset,
    sections,
    sectionTableOffset,
    certificateTable,
    certificates,
    certificateTableProblem,
  };
}

/** "The Attribute Certificate Table": VirtualAddress is a file pointer; entries are quadword aligned. */
function readCertificateTable(
  bytes: Uint8Array,
  sec: ImageDataDirectory,
  headersEnd: number,
  dirOffset: number,
): WinCertificateEntry[] {
  if (sec.VirtualAddress < headersEnd || sec.VirtualAddress + sec.Size > bytes.length) {
    certFail("certificate table outside the file", dirOffset);
  }
  const certificates: WinCertificateEntry[] = [];
  let off = sec.VirtualAddress;
  const end = sec.VirtualAddress + sec.Size;
  // edk2 DxeImageVerificationLib: entries follow each other at dwLength rounded up to 8.
  while (off < end) {
    if (certificates.length >= MAX_CERTIFICATES) certFail(`more than ${MAX_CERTIFICATES} certificates`, off);
    if (end - off <= 8) certFail("WIN_CERTIFICATE header truncated", off);
    const h = at(WIN_CERTIFICATE, bytes, off);
    if (h.dwLength <= 8 || h.dwLength > end - off)
      certFail(`WIN_CERTIFICATE dwLength ${h.dwLength} invalid`, off);
    const certificate = bytes.subarray(off + 8, off + h.dwLength);
    let signedData: Uint8Array | undefined;
    if (h.wCertificateType === WIN_CERT_TYPE_PKCS_SIGNED_DATA) signedData = certificate;
    else if (
      h.wCertificateType === WIN_CERT_TYPE_EFI_GUID &&
      certificate.length > 16 &&
      bytesEqual(certificate.subarray(0, 16), EFI_CERT_TYPE_PKCS7_GUID_BYTES)
    ) {
      signedData = certificate.subarray(16);
    }
    certificates.push({
      offset: off,
      dwLength: h.dwLength,
      wRevision: h.wRevision,
      wCertificateType: h.wCertificateType,
      certificate,
      signedData,
    });
    off += (h.dwLength + 7) & ~7;
  }
  if (off !== end) certFail("WIN_CERTIFICATE entries do not end at the table end", off);
  return certificates;
}

/** A section's name as text (NUL-padded ASCII), without resolving "/n" long names. */
export function sectionName(s: ImageSectionHeader): string {
  const end = s.Name.indexOf(0);
  return Buffer.from(s.Name.subarray(0, end < 0 ? 8 : end)).toString("latin1");
}

/**
 * A section's full name: "/n" names are offsets into the COFF string table, which follows the
 * symbol table (PE Format "Section Table": "Name"; "COFF String Table"). GNU ld writes them for
 * names longer than 8 bytes (shim's ".vendor_cert", ".sbatlevel"). Falls back to the raw name.
 */
export function fullSectionName(pe: PeImage, s: ImageSectionHeader): string {
  const short = sectionName(s);
  const m = /^\/(\d{1,7})$/.exec(short);
  if (!m || pe.fileHeader.PointerToSymbolTable === 0) return short;
  const table = pe.fileHeader.PointerToSymbolTable + pe.fileHeader.NumberOfSymbols * 18;
  const at = table + Number(m[1]);
  if (at >= pe.bytes.length) return short;
  const end = pe.bytes.indexOf(0, at);
  if (end < 0 || end - at > 256) return short;
  return Buffer.from(pe.bytes.subarray(at, end)).toString("latin1");
}

/** The raw data of the first section called `name` (long names resolved), if any. */
export function sectionData(pe: PeImage, name: string): Uint8Array | undefined {
  const s = pe.sections.find((x) => fullSectionName(pe, x) === name);
  return s ? pe.bytes.subarray(s.PointerToRawData, s.PointerToRawData + s.SizeOfRawData) : undefined;
}

/**
 * The PE image checksum ("Optional Header Windows-Specific Fields", CheckSum; the algorithm of
 * imagehlp CheckSumMappedFile): 16-bit one's-complement-style sum of the file with the CheckSum
 * field as zero, folded, plus the file length.
 */
export function peChecksum(bytes: Uint8Array, checkSumOffset: number): number {
  let sum = 0;
  const n = bytes.length;
  for (let i = 0; i < n; i += 2) {
    if (i === checkSumOffset || i === checkSumOffset + 2) continue;
    sum += (bytes[i] as number) | ((i + 1 < n ? (bytes[i + 1] as number) : 0) << 8);
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  sum = (sum & 0xffff) + (sum >>> 16);
  return (sum + n) >>> 0;
}
