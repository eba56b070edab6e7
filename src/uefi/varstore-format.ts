/**
 * The on-flash structures of an edk2/OVMF non-volatile variable store, declared once.
 *
 * - EFI_FIRMWARE_VOLUME_HEADER and EFI_FV_BLOCK_MAP_ENTRY: UEFI Platform Initialization
 *   Specification 1.8, Volume 3, section 3.2.1 "Firmware Volume Header".
 * - VARIABLE_STORE_HEADER and AUTHENTICATED_VARIABLE_HEADER: edk2
 *   MdeModulePkg/Include/Guid/VariableFormat.h.
 * - EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER, EFI_FAULT_TOLERANT_WRITE_HEADER and
 *   EFI_FAULT_TOLERANT_WRITE_RECORD: edk2 MdeModulePkg/Include/Guid/SystemNvDataGuid.h and
 *   MdeModulePkg/Universal/FaultTolerantWriteDxe/FaultTolerantWrite.h (bit fields are stored with
 *   erase polarity 1: a flag is "set" when its bit is 0).
 */
import { constant, fixedBytes, struct, u16le, u32le, u64le, u8, type Infer } from "../core/codec.js";
import { EFI_GUID } from "./guid.js";
import { EFI_TIME } from "./variables.js";

/** "_FVH" as a little-endian UINT32 (EFI_FVH_SIGNATURE). */
export const EFI_FVH_SIGNATURE = 0x4856465f;

/** EFI_FIRMWARE_VOLUME_HEADER up to (not including) BlockMap[]: 56 bytes. */
export const EFI_FIRMWARE_VOLUME_HEADER = struct("EFI_FIRMWARE_VOLUME_HEADER", {
  ZeroVector: fixedBytes(16),
  FileSystemGuid: EFI_GUID,
  FvLength: u64le,
  Signature: constant(u32le, EFI_FVH_SIGNATURE),
  Attributes: u32le,
  HeaderLength: u16le,
  Checksum: u16le,
  ExtHeaderOffset: u16le,
  Reserved: u8,
  Revision: u8,
});
export type FvHeader = Infer<typeof EFI_FIRMWARE_VOLUME_HEADER>;
export const FV_HEADER_FIXED_SIZE = 56;

export const EFI_FV_BLOCK_MAP_ENTRY = struct("EFI_FV_BLOCK_MAP_ENTRY", {
  NumBlocks: u32le,
  Length: u32le,
});
export type FvBlockMapEntry = Infer<typeof EFI_FV_BLOCK_MAP_ENTRY>;

/** VARIABLE_STORE_FORMATTED and VARIABLE_STORE_HEALTHY (VariableFormat.h). */
export const VARIABLE_STORE_FORMATTED = 0x5a;
export const VARIABLE_STORE_HEALTHY = 0xfe;

/** VARIABLE_STORE_HEADER: 28 bytes. */
export const VARIABLE_STORE_HEADER = struct("VARIABLE_STORE_HEADER", {
  Signature: EFI_GUID,
  Size: u32le,
  Format: u8,
  State: u8,
  Reserved: u16le,
  Reserved1: u32le,
});
export type VariableStoreHeader = Infer<typeof VARIABLE_STORE_HEADER>;
export const VARIABLE_STORE_HEADER_SIZE = 28;

/** VARIABLE_DATA: AUTHENTICATED_VARIABLE_HEADER.StartId. */
export const VARIABLE_DATA = 0x55aa;
/** Variable states (VariableFormat.h); bits are cleared as a variable moves through its life. */
export const VarState = {
  VAR_IN_DELETED_TRANSITION: 0xfe,
  VAR_DELETED: 0xfd,
  VAR_HEADER_VALID_ONLY: 0x7f,
  VAR_ADDED: 0x3f,
} as const;
/** HEADER_ALIGNMENT: each variable header starts on a 4-byte boundary. */
export const HEADER_ALIGNMENT = 4;

/** AUTHENTICATED_VARIABLE_HEADER: 60 bytes, followed by Name[NameSize] and Data[DataSize]. */
export const AUTHENTICATED_VARIABLE_HEADER = struct("AUTHENTICATED_VARIABLE_HEADER", {
  StartId: u16le,
  State: u8,
  Reserved: u8,
  Attributes: u32le,
  MonotonicCount: u64le,
  TimeStamp: EFI_TIME,
  PubKeyIndex: u32le,
  NameSize: u32le,
  DataSize: u32le,
  VendorGuid: EFI_GUID,
});
export type AuthenticatedVariableHeader = Infer<typeof AUTHENTICATED_VARIABLE_HEADER>;
export const AUTHENTICATED_VARIABLE_HEADER_SIZE = 60;

/** EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER: 32 bytes. */
export const EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER = struct("EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER", {
  Signature: EFI_GUID,
  Crc: u32le,
  /** Bit 0 WorkingBlockValid, bit 1 WorkingBlockInvalid, bits 2..7 Reserved. */
  Flags: u8,
  Reserved3: fixedBytes(3),
  WriteQueueSize: u64le,
});
export type FtwWorkingBlockHeader = Infer<typeof EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER>;
export const FTW_WORKING_BLOCK_HEADER_SIZE = 32;

/** EFI_FAULT_TOLERANT_WRITE_HEADER: 40 bytes (natural alignment: GUID at 4, UINT64s at 24). */
export const EFI_FAULT_TOLERANT_WRITE_HEADER = struct("EFI_FAULT_TOLERANT_WRITE_HEADER", {
  /** Bit 0 HeaderAllocated, bit 1 WritesAllocated, bit 2 Complete. */
  Flags: u8,
  Pad: fixedBytes(3),
  CallerId: EFI_GUID,
  Pad2: fixedBytes(4),
  NumberOfWrites: u64le,
  PrivateDataSize: u64le,
});
export const FTW_WRITE_HEADER_SIZE = 40;

/** EFI_FAULT_TOLERANT_WRITE_RECORD: 40 bytes, followed by PrivateData[PrivateDataSize]. */
export const EFI_FAULT_TOLERANT_WRITE_RECORD = struct("EFI_FAULT_TOLERANT_WRITE_RECORD", {
  /** Bit 0 BootBlockUpdate, bit 1 SpareComplete, bit 2 DestinationComplete. */
  Flags: u8,
  Pad: fixedBytes(7),
  Lba: u64le,
  Offset: u64le,
  Length: u64le,
  RelativeOffset: u64le,
});
export const FTW_WRITE_RECORD_SIZE = 40;
