/**
 * The binary structures of TCG PC Client event logs, each declared once (STYLE.md habit 2).
 * All integers are little-endian.
 *
 * Source: TCG PC Client Platform Firmware Profile Specification (PFP), Version 1.05
 * Revision 23, section 10 "Event Logging" (10.2.1 TCG_PCClientPCREvent, 10.2.2 TCG_PCR_EVENT2,
 * 10.4.5.1 TCG_EfiSpecIdEvent, 10.4.5.3 TCG_EfiStartupLocalityEvent, 10.4.4 UEFI_VARIABLE_DATA,
 * UEFI_IMAGE_LOAD_EVENT, UEFI_PLATFORM_FIRMWARE_BLOB(2), UEFI_HANDOFF_TABLE_POINTERS(2),
 * UEFI_GPT_DATA) and TCG EFI Protocol Specification section 5.2 "Crypto Agile Log Entry Format".
 */
import type { Reader } from "../core/codec.js";
import {
  fixedBytes,
  list,
  rest,
  sizedBytes,
  struct,
  u16le,
  u32le,
  u64le,
  u8,
  type Codec,
  type Infer,
} from "../core/codec.js";
import { EFI_GUID } from "../uefi/guid.js";
import { eventlogError } from "./errors.js";

/** Largest event data we accept (well above any firmware's log area). */
export const MAX_EVENT_DATA = 64 << 20;
/** Digests per event: the TCG algorithm registry has fewer hashes than this. */
export const MAX_DIGESTS = 16;

/** A UINT64 length or count, capped before it is used (PFP uses UINT64 for UINTN fields). */
function u64Count(max: number, name: string): Codec<number> {
  return {
    name,
    decode: (r) => {
      const at = r.offset;
      const v = r.u64(true);
      if (v > BigInt(max)) r.fail("CORE_ERR_LIMIT", `${name} ${v} exceeds ${max}`, at);
      return Number(v);
    },
    encode: (w, v) => w.u64(BigInt(v), true),
  };
}

/** Bytes whose length is an earlier field, in units of `unit` bytes. */
function bytesOf(units: number | undefined, unit: number, name: string): Codec<Uint8Array> {
  return {
    name,
    decode: (r) => r.take((units ?? 0) * unit),
    encode: (w, v) => w.bytes(v),
  };
}

/** PFP 10.2.1: TCG_PCClientPCREvent, the SHA-1 event used by legacy logs and as every log's header. */
export const TCG_PCClientPCREvent = struct("TCG_PCClientPCREvent", {
  PCRIndex: u32le,
  EventType: u32le,
  Digest: fixedBytes(20, "TCG_DIGEST"),
  Event: sizedBytes(u32le, MAX_EVENT_DATA, "Event"),
});
export type TCG_PCClientPCREvent = Infer<typeof TCG_PCClientPCREvent>;

/** PFP 10.4.5.1: one entry of TCG_EfiSpecIdEvent.digestSizes. */
export const TCG_EfiSpecIdEventAlgorithmSize = struct("TCG_EfiSpecIdEventAlgorithmSize", {
  algorithmId: u16le,
  digestSize: u16le,
});

/** PFP 10.4.5.1: TCG_EfiSpecIdEvent, the data of the crypto-agile log's first (header) event. */
export const TCG_EfiSpecIdEvent = struct("TCG_EfiSpecIdEvent", {
  signature: fixedBytes(16, "signature"),
  platformClass: u32le,
  specVersionMinor: u8,
  specVersionMajor: u8,
  specErrata: u8,
  uintnSize: u8,
  digestSizes: list(u32le, MAX_DIGESTS, TCG_EfiSpecIdEventAlgorithmSize, "digestSizes"),
  vendorInfo: sizedBytes(u8, 255, "vendorInfo"),
});
export type TCG_EfiSpecIdEvent = Infer<typeof TCG_EfiSpecIdEvent>;

export interface TPMT_HA {
  readonly hashAlg: number;
  readonly digest: Uint8Array;
}

/**
 * TPMT_HA (TPM 2.0 Library Part 2, Table 80) with the digest size taken from the log's
 * TCG_EfiSpecIdEvent, as PFP 10.2.2 requires: an algorithm the header did not declare cannot be
 * skipped, so it is an error.
 */
export function TPMT_HA(sizes: ReadonlyMap<number, number>): Codec<TPMT_HA> {
  return {
    name: "TPMT_HA",
    decode: (r) => {
      const at = r.offset;
      const hashAlg = r.at("hashAlg", () => r.u16(true));
      const size = sizes.get(hashAlg);
      if (size === undefined) {
        throw eventlogError(
          "EVENTLOG_ERR_ALGORITHM",
          `digest algorithm 0x${hashAlg.toString(16).padStart(4, "0")} at offset ${at} is not declared in the TCG_EfiSpecIdEvent`,
          { offset: at, path: r.path, alg: hashAlg },
        );
      }
      return { hashAlg, digest: r.at("digest", () => r.take(size)) };
    },
    encode: (w, v) => {
      w.u16(v.hashAlg, true);
      w.bytes(v.digest);
    },
  };
}

/** PFP 10.2.2: TCG_PCR_EVENT2, the crypto-agile event; `sizes` comes from TCG_EfiSpecIdEvent. */
export function TCG_PCR_EVENT2(sizes: ReadonlyMap<number, number>) {
  return struct("TCG_PCR_EVENT2", {
    PCRIndex: u32le,
    EventType: u32le,
    Digests: list(u32le, MAX_DIGESTS, TPMT_HA(sizes), "TPML_DIGEST_VALUES"),
    Event: sizedBytes(u32le, MAX_EVENT_DATA, "Event"),
  });
}
export type TCG_PCR_EVENT2 = Infer<ReturnType<typeof TCG_PCR_EVENT2>>;

/** PFP 10.4.5.3: TCG_EfiStartupLocalityEvent (EV_NO_ACTION data, signature "StartupLocality\0"). */
export const TCG_EfiStartupLocalityEvent = struct("TCG_EfiStartupLocalityEvent", {
  Signature: fixedBytes(16, "Signature"),
  StartupLocality: u8,
});

interface VariableData {
  VariableName: string;
  UnicodeNameLength: number;
  VariableDataLength: number;
  UnicodeName: Uint8Array;
  VariableData: Uint8Array;
}

/**
 * PFP 10.4.4 (Table "UEFI_VARIABLE_DATA"): the data of EV_EFI_VARIABLE_DRIVER_CONFIG,
 * EV_EFI_VARIABLE_BOOT(2) and EV_EFI_VARIABLE_AUTHORITY. UnicodeName is UCS-2LE without a
 * terminator; UnicodeNameLength counts CHAR16s.
 */
export const UEFI_VARIABLE_DATA: Codec<VariableData> = struct<VariableData>("UEFI_VARIABLE_DATA", {
  VariableName: EFI_GUID,
  UnicodeNameLength: u64Count(MAX_EVENT_DATA, "UnicodeNameLength"),
  VariableDataLength: u64Count(MAX_EVENT_DATA, "VariableDataLength"),
  UnicodeName: (p) => bytesOf(p.UnicodeNameLength, 2, "UnicodeName"),
  VariableData: (p) => bytesOf(p.VariableDataLength, 1, "VariableData"),
});
export type UEFI_VARIABLE_DATA = VariableData;

/** PFP 10.4.4 (Table "UEFI_IMAGE_LOAD_EVENT"): data of EV_EFI_BOOT_SERVICES_APPLICATION and drivers. */
interface ImageLoadEvent {
  ImageLocationInMemory: bigint;
  ImageLengthInMemory: bigint;
  ImageLinkTimeAddress: bigint;
  LengthOfDevicePath: number;
  DevicePath: Uint8Array;
}
export const UEFI_IMAGE_LOAD_EVENT: Codec<ImageLoadEvent> = struct<ImageLoadEvent>("UEFI_IMAGE_LOAD_EVENT", {
  ImageLocationInMemory: u64le,
  ImageLengthInMemory: u64le,
  ImageLinkTimeAddress: u64le,
  LengthOfDevicePath: u64Count(MAX_EVENT_DATA, "LengthOfDevicePath"),
  DevicePath: (p) => bytesOf(p.LengthOfDevicePath, 1, "DevicePath"),
});
export type UEFI_IMAGE_LOAD_EVENT = ImageLoadEvent;

/** PFP 10.4.4: UEFI_PLATFORM_FIRMWARE_BLOB, data of EV_EFI_PLATFORM_FIRMWARE_BLOB. */
export const UEFI_PLATFORM_FIRMWARE_BLOB = struct("UEFI_PLATFORM_FIRMWARE_BLOB", {
  BlobBase: u64le,
  BlobLength: u64le,
});

/** PFP 10.4.4: UEFI_PLATFORM_FIRMWARE_BLOB2, data of EV_EFI_PLATFORM_FIRMWARE_BLOB2. */
export const UEFI_PLATFORM_FIRMWARE_BLOB2 = struct("UEFI_PLATFORM_FIRMWARE_BLOB2", {
  BlobDescription: sizedBytes(u8, 255, "BlobDescription"),
  BlobBase: u64le,
  BlobLength: u64le,
});

/** UEFI 2.10 section 4.6: EFI_CONFIGURATION_TABLE (as measured: VendorGuid, UINT64 pointer). */
export const EFI_CONFIGURATION_TABLE = struct("EFI_CONFIGURATION_TABLE", {
  VendorGuid: EFI_GUID,
  VendorTable: u64le,
});

/** PFP 10.4.4: UEFI_HANDOFF_TABLE_POINTERS, data of EV_EFI_HANDOFF_TABLES. */
export const UEFI_HANDOFF_TABLE_POINTERS = struct("UEFI_HANDOFF_TABLE_POINTERS", {
  TableEntry: list(u64Count(4096, "NumberOfTables"), 4096, EFI_CONFIGURATION_TABLE, "TableEntry"),
});

/** PFP 10.4.4: UEFI_HANDOFF_TABLE_POINTERS2, data of EV_EFI_HANDOFF_TABLES2. */
export const UEFI_HANDOFF_TABLE_POINTERS2 = struct("UEFI_HANDOFF_TABLE_POINTERS2", {
  TableDescription: sizedBytes(u8, 255, "TableDescription"),
  TableEntry: list(u64Count(4096, "NumberOfTables"), 4096, EFI_CONFIGURATION_TABLE, "TableEntry"),
});

/** UEFI 2.10 section 5.3.2, Table 5-5: EFI_PARTITION_TABLE_HEADER (the 92 bytes edk2 measures). */
export const EFI_PARTITION_TABLE_HEADER = struct("EFI_PARTITION_TABLE_HEADER", {
  Signature: u64le,
  Revision: u32le,
  HeaderSize: u32le,
  HeaderCRC32: u32le,
  Reserved: u32le,
  MyLBA: u64le,
  AlternateLBA: u64le,
  FirstUsableLBA: u64le,
  LastUsableLBA: u64le,
  DiskGUID: EFI_GUID,
  PartitionEntryLBA: u64le,
  NumberOfPartitionEntries: u32le,
  SizeOfPartitionEntry: u32le,
  PartitionEntryArrayCRC32: u32le,
});
export type EFI_PARTITION_TABLE_HEADER = Infer<typeof EFI_PARTITION_TABLE_HEADER>;

/** UEFI 2.10 section 5.3.3, Table 5-6: EFI_PARTITION_ENTRY (first 128 bytes; larger entries keep the rest). */
export const EFI_PARTITION_ENTRY = struct("EFI_PARTITION_ENTRY", {
  PartitionTypeGUID: EFI_GUID,
  UniquePartitionGUID: EFI_GUID,
  StartingLBA: u64le,
  EndingLBA: u64le,
  Attributes: u64le,
  PartitionName: fixedBytes(72, "PartitionName"),
  Extra: rest,
});
export type EFI_PARTITION_ENTRY = Infer<typeof EFI_PARTITION_ENTRY>;

export interface UEFI_GPT_DATA {
  readonly UEFIPartitionHeader: EFI_PARTITION_TABLE_HEADER;
  readonly Partitions: EFI_PARTITION_ENTRY[];
}

/** PFP 10.4.4: UEFI_GPT_DATA, data of EV_EFI_GPT_EVENT; entries are SizeOfPartitionEntry bytes each. */
export const UEFI_GPT_DATA: Codec<UEFI_GPT_DATA> = {
  name: "UEFI_GPT_DATA",
  decode: (r) => {
    const header = r.at("UEFIPartitionHeader", () => EFI_PARTITION_TABLE_HEADER.decode(r));
    const count = r.at("NumberOfPartitions", () => u64Count(1024, "NumberOfPartitions").decode(r));
    const size = header.SizeOfPartitionEntry;
    if (size < 128 || size > 4096)
      r.fail("CORE_ERR_INVALID", `SizeOfPartitionEntry ${size} outside 128..4096`);
    const parts: EFI_PARTITION_ENTRY[] = [];
    for (let i = 0; i < count; i++) {
      const sub: Reader = r.at(`Partitions[${i}]`, () => r.sub(size));
      parts.push(sub.at(`Partitions[${i}]`, () => EFI_PARTITION_ENTRY.decode(sub)));
    }
    return { UEFIPartitionHeader: header, Partitions: parts };
  },
  encode: (w, v) => {
    EFI_PARTITION_TABLE_HEADER.encode(w, v.UEFIPartitionHeader);
    w.u64(BigInt(v.Partitions.length), true);
    for (const p of v.Partitions) EFI_PARTITION_ENTRY.encode(w, p);
  },
};

/** UEFI 2.10 section 3.1.3: EFI_LOAD_OPTION, the data of Boot#### variables. */
export const EFI_LOAD_OPTION = struct("EFI_LOAD_OPTION", {
  Attributes: u32le,
  FilePathListLength: u16le,
  Description: {
    name: "Description",
    decode: (r: Reader) => {
      const start = r.offset;
      while (r.u16(true) !== 0) {
        /* scan to the CHAR16 NUL; Reader.u16 fails at the end of the data */
      }
      return r.bytes.subarray(start, r.offset);
    },
    encode: (w, v: Uint8Array) => w.bytes(v),
  } satisfies Codec<Uint8Array>,
  FilePathList: (p: Partial<{ FilePathListLength: number }>) =>
    bytesOf(p.FilePathListLength, 1, "FilePathList"),
  OptionalData: rest,
});

/** UCS-2LE text up to the first NUL (or the end). */
export function ucs2(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i + 1 < b.length; i += 2) {
    const c = b[i]! | (b[i + 1]! << 8);
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

/** Printable ASCII/UTF-8 text of event data, without trailing NULs. */
export function asciiz(b: Uint8Array): string {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return Buffer.from(b.subarray(0, end)).toString("utf8");
}
