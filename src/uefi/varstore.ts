/**
 * edk2/OVMF variable store files (OVMF_VARS*.fd): parse to a model, set and delete variables,
 * write back with valid headers and checksums. Modelled on kraxel/virt-firmware's edk2 varstore.
 *
 * File layout (OvmfPkg/OvmfPkgDefines.fdf.inc; structures in varstore-format.ts):
 *
 *   | region                     | 128 KiB (OVMF_VARS.fd) | 528 KiB (OVMF_VARS_4M.fd) |
 *   | FV header + variable store | 0x00000, 0xe000        | 0x00000, 0x40000          |
 *   | event log (unused)         | 0x0e000, 0x1000        | 0x40000, 0x1000           |
 *   | FTW working block          | 0x0f000, 0x1000        | 0x41000, 0x1000           |
 *   | FTW spare area             | 0x10000, 0x10000       | 0x42000, 0x42000          |
 *
 * The whole file is one firmware volume (FileSystemGuid EFI_SYSTEM_NV_DATA_FV_GUID). Only the
 * variable store is rewritten; everything after it (event log, fault-tolerant-write working
 * block and spare) is kept byte for byte. A store whose working block records a write that the
 * firmware would replay from the spare area at the next boot (which would undo our changes) is
 * refused for modification (UEFI_ERR_VARSTORE_FTW_PENDING).
 *
 * Writer: records are written in model order, each padded to HEADER_ALIGNMENT with its received
 * padding (0xff for new records, as flash writes leave it), then the free space is filled with
 * 0xff (erased flash; edk2 reclaims a store whose free space is not erased). An unmodified store
 * whose free space is erased re-encodes byte-identically. Writing never produces a file that does
 * not fit: first deleted records are dropped, then UEFI_ERR_VARSTORE_FULL is thrown.
 */
import { crc32 } from "node:zlib";
import { Reader, Writer } from "../core/codec.js";
import { isBulwarkError } from "../core/errors.js";
import { EFI_GUID as EFI_GUID_CODEC, Guids, type Guid } from "./guid.js";
import { uefiError } from "./errors.js";
import { decodeVariableName, encodeVariableName, zeroTime, type EfiTime } from "./variables.js";
import {
  AUTHENTICATED_VARIABLE_HEADER,
  AUTHENTICATED_VARIABLE_HEADER_SIZE,
  EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER,
  EFI_FAULT_TOLERANT_WRITE_HEADER,
  EFI_FAULT_TOLERANT_WRITE_RECORD,
  EFI_FIRMWARE_VOLUME_HEADER,
  EFI_FV_BLOCK_MAP_ENTRY,
  FTW_WORKING_BLOCK_HEADER_SIZE,
  FTW_WRITE_HEADER_SIZE,
  FTW_WRITE_RECORD_SIZE,
  FV_HEADER_FIXED_SIZE,
  HEADER_ALIGNMENT,
  VARIABLE_DATA,
  VARIABLE_STORE_FORMATTED,
  VARIABLE_STORE_HEADER,
  VARIABLE_STORE_HEADER_SIZE,
  VARIABLE_STORE_HEALTHY,
  VarState,
  type FtwWorkingBlockHeader,
  type FvBlockMapEntry,
  type FvHeader,
  type VariableStoreHeader,
} from "./varstore-format.js";
import { bytesEqual } from "../core/bytes.js";

/** One AUTHENTICATED_VARIABLE_HEADER record with its name and data, live or deleted. */
export interface VariableRecord {
  readonly state: number;
  readonly reserved: number;
  readonly attributes: number;
  readonly monotonicCount: bigint;
  readonly timestamp: EfiTime;
  readonly pubKeyIndex: number;
  readonly guid: Guid;
  /** Name as stored: UCS-2LE including the NUL terminator. */
  readonly nameBytes: Uint8Array;
  readonly data: Uint8Array;
  /** Alignment bytes after the data as received (0xff for records Bulwark writes). */
  readonly pad: Uint8Array;
}

/** A live variable: what GetVariable() would return. */
export interface EfiVariable {
  readonly name: string;
  readonly guid: Guid;
  readonly attributes: number;
  readonly timestamp: EfiTime;
  readonly monotonicCount: bigint;
  readonly pubKeyIndex: number;
  readonly data: Uint8Array;
}

export interface FtwState {
  /** Offset of EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER in the file. */
  readonly offset: number;
  readonly header: FtwWorkingBlockHeader;
  readonly crcValid: boolean;
  /** A write the firmware would restart from the spare area at the next boot. */
  readonly pendingWrite: boolean;
}

export interface Edk2VarStore {
  readonly fv: FvHeader;
  readonly blockMap: readonly FvBlockMapEntry[];
  /** Bytes between the block map terminator and HeaderLength (normally none). */
  readonly fvHeaderExtra: Uint8Array;
  readonly storeHeader: VariableStoreHeader;
  /** File offset of VARIABLE_STORE_HEADER (= FV HeaderLength). */
  readonly storeOffset: number;
  readonly records: readonly VariableRecord[];
  /** False when the free space after the last record was not erased (0xff) in the input. */
  readonly freeSpaceErased: boolean;
  /** Everything after the variable store (event log, FTW working block, spare), kept verbatim. */
  readonly tail: Uint8Array;
  readonly ftw: FtwState | null;
  /** PcdMaxAuthVariableSize of the OVMF build this store size belongs to (header + name + data). */
  readonly maxVariableSize: number;
}

const align = (n: number) => (n + HEADER_ALIGNMENT - 1) & ~(HEADER_ALIGNMENT - 1);

function invalid(message: string, offset?: number): never {
  throw uefiError(
    "UEFI_ERR_VARSTORE_INVALID",
    offset === undefined ? message : `${message} at offset ${offset}`,
    offset === undefined ? {} : { offset },
  );
}

/** OVMF's PcdMaxAuthVariableSize by variable store size (OvmfPkg/OvmfPkgX64.dsc). */
function maxVariableSizeFor(storeSize: number): number {
  return storeSize > 0xe000 ? 0x8400 : 0x2800;
}

/** Sum of UINT16 words (PI 1.8 Vol 3 3.2.1: the header's words sum to zero). */
function sum16(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i + 1 < b.length; i += 2) s = (s + (b[i]! | (b[i + 1]! << 8))) & 0xffff;
  return s;
}

/** CRC32 of a working block header with Crc = 0xffffffff and the state byte erased (edk2 FtwLite). */
function workingBlockCrc(headerBytes: Uint8Array): number {
  const h = Uint8Array.from(headerBytes.subarray(0, FTW_WORKING_BLOCK_HEADER_SIZE));
  h.fill(0xff, 16, 21);
  return crc32(h) >>> 0;
}

function parseFtw(bytes: Uint8Array, from: number, end: number): FtwState | null {
  const sig = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const needle = Buffer.from(guidBytes(Guids.EDKII_WORKING_BLOCK_SIGNATURE_GUID));
  let at = sig.indexOf(needle, from);
  while (at >= 0 && at % 8 !== 0) at = sig.indexOf(needle, at + 1);
  if (at < 0 || at + FTW_WORKING_BLOCK_HEADER_SIZE > end) return null;
  const r = new Reader(bytes, at, end);
  const header = r.at("EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER", () =>
    EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER.decode(r),
  );
  const crcValid = workingBlockCrc(bytes.subarray(at)) === header.Crc;
  const queueSize = header.WriteQueueSize > BigInt(end) ? end : Number(header.WriteQueueSize);
  const queueEnd = Math.min(end, r.offset + queueSize);
  return { offset: at, header, crcValid, pendingWrite: ftwPending(bytes, r.offset, queueEnd) };
}

/**
 * Walks the write queue as edk2 FtwGetLastWriteHeader/FtwGetLastWriteRecord do: a header that is
 * allocated but not complete, with a record whose spare copy is complete and whose destination is
 * not, is what InitFtwProtocol would restart (copying the spare over the variable store).
 */
function ftwPending(bytes: Uint8Array, start: number, end: number): boolean {
  let pos = start;
  while (pos + FTW_WRITE_HEADER_SIZE <= end) {
    const r = new Reader(bytes, pos, end);
    const h = EFI_FAULT_TOLERANT_WRITE_HEADER.decode(r);
    const allocated = (h.Flags & 1) === 0;
    if (!allocated) return false;
    const complete = (h.Flags & 4) === 0;
    const n = h.NumberOfWrites;
    const recordSize = BigInt(FTW_WRITE_RECORD_SIZE) + h.PrivateDataSize;
    const total = n * recordSize;
    if (total > BigInt(end - r.offset)) return !complete;
    if (!complete) {
      let rp = r.offset;
      for (let i = 0n; i < n; i++) {
        const rr = new Reader(bytes, rp, end);
        const rec = EFI_FAULT_TOLERANT_WRITE_RECORD.decode(rr);
        const spareComplete = (rec.Flags & 2) === 0;
        const destinationComplete = (rec.Flags & 4) === 0;
        if (spareComplete && !destinationComplete) return true;
        rp += Number(recordSize);
      }
      return false;
    }
    pos = r.offset + Number(total);
  }
  return false;
}

function guidBytes(g: Guid): Uint8Array {
  const w = new Writer(16);
  EFI_GUID_CODEC.encode(w, g);
  return w.finish();
}

/** Parses an OVMF variable store file. Bounded and total: a model or UEFI_ERR_VARSTORE_INVALID. */
export function parseVarStore(bytes: Uint8Array): Edk2VarStore {
  try {
    return parseInner(bytes);
  } catch (e) {
    if (isBulwarkError(e) && e.code.startsWith("CORE_ERR_")) {
      throw uefiError("UEFI_ERR_VARSTORE_INVALID", e.message, e.details, { cause: e });
    }
    throw e;
  }
}

function parseInner(bytes: Uint8Array): Edk2VarStore {
  const r = new Reader(bytes);
  const fv = r.at("EFI_FIRMWARE_VOLUME_HEADER", () => EFI_FIRMWARE_VOLUME_HEADER.decode(r));
  if (fv.FileSystemGuid !== Guids.EFI_SYSTEM_NV_DATA_FV_GUID) {
    invalid(`firmware volume ${fv.FileSystemGuid} is not an NV data volume (EFI_SYSTEM_NV_DATA_FV_GUID)`, 16);
  }
  if (fv.FvLength !== BigInt(bytes.length)) {
    invalid(`FvLength ${fv.FvLength} differs from the file size ${bytes.length}`, 32);
  }
  const headerLength = fv.HeaderLength;
  if (headerLength < FV_HEADER_FIXED_SIZE + 8 || headerLength % 2 !== 0 || headerLength > bytes.length) {
    invalid(`HeaderLength ${headerLength} is not valid`, 48);
  }
  if (sum16(bytes.subarray(0, headerLength)) !== 0) invalid("firmware volume header checksum is wrong", 50);
  const hr = new Reader(bytes, FV_HEADER_FIXED_SIZE, headerLength);
  const blockMap: FvBlockMapEntry[] = [];
  let mapped = 0n;
  for (;;) {
    const e = hr.at(`BlockMap[${blockMap.length}]`, () => EFI_FV_BLOCK_MAP_ENTRY.decode(hr));
    if (e.NumBlocks === 0 && e.Length === 0) break;
    blockMap.push(e);
    mapped += BigInt(e.NumBlocks) * BigInt(e.Length);
  }
  if (mapped !== fv.FvLength)
    invalid(`block map covers ${mapped} bytes, FvLength is ${fv.FvLength}`, FV_HEADER_FIXED_SIZE);
  const fvHeaderExtra = hr.take(hr.remaining);

  r.offset = headerLength;
  const storeHeader = r.at("VARIABLE_STORE_HEADER", () => VARIABLE_STORE_HEADER.decode(r));
  if (storeHeader.Signature === Guids.EFI_VARIABLE_GUID) {
    invalid("variable store holds non-authenticated variables (not a Secure Boot OVMF build)", headerLength);
  }
  if (storeHeader.Signature !== Guids.EFI_AUTHENTICATED_VARIABLE_GUID) {
    invalid(`unknown variable store signature ${storeHeader.Signature}`, headerLength);
  }
  if (storeHeader.Format !== VARIABLE_STORE_FORMATTED || storeHeader.State !== VARIABLE_STORE_HEALTHY) {
    invalid(
      `variable store not formatted and healthy (format 0x${storeHeader.Format.toString(16)}, state 0x${storeHeader.State.toString(16)})`,
      headerLength + 20,
    );
  }
  const storeEnd = headerLength + storeHeader.Size;
  if (storeHeader.Size < VARIABLE_STORE_HEADER_SIZE || storeEnd > bytes.length) {
    invalid(`variable store size ${storeHeader.Size} does not fit the volume`, headerLength + 16);
  }

  const records: VariableRecord[] = [];
  let pos = align(headerLength + VARIABLE_STORE_HEADER_SIZE);
  while (pos + AUTHENTICATED_VARIABLE_HEADER_SIZE <= storeEnd) {
    if ((bytes[pos]! | (bytes[pos + 1]! << 8)) !== VARIABLE_DATA) break;
    const vr = new Reader(bytes, pos, storeEnd);
    const h = vr.at(`variable[${records.length}]`, () => AUTHENTICATED_VARIABLE_HEADER.decode(vr));
    const end = vr.offset + h.NameSize + h.DataSize;
    if (h.NameSize > storeEnd || h.DataSize > storeEnd || end > storeEnd) {
      invalid(`variable record sizes (name ${h.NameSize}, data ${h.DataSize}) run past the store`, pos);
    }
    const nameBytes = vr.take(h.NameSize);
    const data = vr.take(h.DataSize);
    const next = Math.min(align(end), storeEnd);
    records.push({
      state: h.State,
      reserved: h.Reserved,
      attributes: h.Attributes,
      monotonicCount: h.MonotonicCount,
      timestamp: h.TimeStamp,
      pubKeyIndex: h.PubKeyIndex,
      guid: h.VendorGuid,
      nameBytes,
      data,
      pad: bytes.subarray(end, next),
    });
    pos = next;
  }
  const freeSpaceErased = isErased(bytes.subarray(pos, storeEnd));
  return {
    fv,
    blockMap,
    fvHeaderExtra,
    storeHeader,
    storeOffset: headerLength,
    records,
    freeSpaceErased,
    tail: bytes.subarray(storeEnd),
    ftw: parseFtw(bytes, storeEnd, bytes.length),
    maxVariableSize: maxVariableSizeFor(storeHeader.Size),
  };
}

/** 64 KiB of erased flash, a constant to compare against. */
const ERASED_CHUNK = new Uint8Array(1 << 16).fill(0xff);
/** True when every byte is 0xff (erased flash), compared a chunk at a time. */
function isErased(b: Uint8Array): boolean {
  for (let at = 0; at < b.length; at += ERASED_CHUNK.length) {
    const part = b.subarray(at, Math.min(b.length, at + ERASED_CHUNK.length));
    if (!bytesEqual(part, ERASED_CHUNK.subarray(0, part.length))) return false;
  }
  return true;
}

function recordSize(rec: VariableRecord): number {
  return align(AUTHENTICATED_VARIABLE_HEADER_SIZE + rec.nameBytes.length + rec.data.length);
}

/** Encodes the store; drops deleted records only if they are needed to make room. */
export function encodeVarStore(store: Edk2VarStore): Uint8Array {
  const capacity =
    store.storeHeader.Size - (align(store.storeOffset + VARIABLE_STORE_HEADER_SIZE) - store.storeOffset);
  let records = store.records;
  const used = (rs: readonly VariableRecord[]) => rs.reduce((n, rec) => n + recordSize(rec), 0);
  if (used(records) > capacity) records = records.filter(isLiveRecord);
  const need = used(records);
  if (need > capacity) {
    throw uefiError("UEFI_ERR_VARSTORE_FULL", `variables need ${need} bytes, the store holds ${capacity}`, {
      need,
      capacity,
    });
  }
  const w = new Writer(store.storeOffset + store.storeHeader.Size + store.tail.length);
  EFI_FIRMWARE_VOLUME_HEADER.encode(w, { ...store.fv, Checksum: 0 });
  for (const e of store.blockMap) EFI_FV_BLOCK_MAP_ENTRY.encode(w, e);
  EFI_FV_BLOCK_MAP_ENTRY.encode(w, { NumBlocks: 0, Length: 0 });
  w.bytes(store.fvHeaderExtra);
  if (w.length !== store.storeOffset)
    throw uefiError("UEFI_ERR_VARSTORE_INVALID", "firmware volume header length mismatch");
  VARIABLE_STORE_HEADER.encode(w, store.storeHeader);
  while (w.length < align(store.storeOffset + VARIABLE_STORE_HEADER_SIZE)) w.u8(0xff);
  for (const rec of records) {
    AUTHENTICATED_VARIABLE_HEADER.encode(w, {
      StartId: VARIABLE_DATA,
      State: rec.state,
      Reserved: rec.reserved,
      Attributes: rec.attributes,
      MonotonicCount: rec.monotonicCount,
      TimeStamp: rec.timestamp,
      PubKeyIndex: rec.pubKeyIndex,
      NameSize: rec.nameBytes.length,
      DataSize: rec.data.length,
      VendorGuid: rec.guid,
    });
    w.bytes(rec.nameBytes);
    w.bytes(rec.data);
    const padLen =
      recordSize(rec) - (AUTHENTICATED_VARIABLE_HEADER_SIZE + rec.nameBytes.length + rec.data.length);
    w.bytes(rec.pad.length === padLen ? rec.pad : new Uint8Array(padLen).fill(0xff));
  }
  const storeEnd = store.storeOffset + store.storeHeader.Size;
  const free = storeEnd - w.length;
  w.bytes(new Uint8Array(free).fill(0xff));
  w.bytes(store.tail);
  const out = w.finish();
  const checksum = (0x10000 - sum16(out.subarray(0, store.storeOffset))) & 0xffff;
  out[50] = checksum & 0xff;
  out[51] = checksum >> 8;
  return out;
}

export function isLiveRecord(rec: VariableRecord): boolean {
  return (
    rec.state === VarState.VAR_ADDED ||
    rec.state === (VarState.VAR_ADDED & VarState.VAR_IN_DELETED_TRANSITION)
  );
}

/** Live variables in store order (edk2 FindVariable semantics: an ADDED copy wins over one in deleted transition). */
export function listVariables(store: Edk2VarStore): EfiVariable[] {
  const added = new Set(
    store.records
      .filter((r) => r.state === VarState.VAR_ADDED)
      .map((r) => `${r.guid}/${decodeVariableName(r.nameBytes)}`),
  );
  const out: EfiVariable[] = [];
  for (const rec of store.records) {
    if (!isLiveRecord(rec)) continue;
    const name = decodeVariableName(rec.nameBytes);
    if (rec.state !== VarState.VAR_ADDED && added.has(`${rec.guid}/${name}`)) continue;
    out.push({
      name,
      guid: rec.guid,
      attributes: rec.attributes,
      timestamp: rec.timestamp,
      monotonicCount: rec.monotonicCount,
      pubKeyIndex: rec.pubKeyIndex,
      data: rec.data,
    });
  }
  return out;
}

export function getVariable(store: Edk2VarStore, name: string, guid: Guid): EfiVariable | undefined {
  return listVariables(store).find((v) => v.name === name && v.guid === guid);
}

export interface VariableInput {
  readonly name: string;
  readonly guid: Guid;
  readonly attributes: number;
  readonly data: Uint8Array;
  readonly timestamp?: EfiTime;
  readonly monotonicCount?: bigint;
  readonly pubKeyIndex?: number;
}

/**
 * Refuses to change a store whose FTW state the firmware would act on at boot: a pending write
 * (replayed from the spare over the store), or a working block with a bad CRC (edk2
 * InitFtwProtocol then recovers the working block from the spare area and may replay a write).
 */
function refuseIfFtwPending(store: Edk2VarStore): void {
  if (store.ftw?.pendingWrite) {
    throw uefiError(
      "UEFI_ERR_VARSTORE_FTW_PENDING",
      "the store has a fault-tolerant write the firmware would replay over any change",
    );
  }
  if (store.ftw && !store.ftw.crcValid) {
    throw uefiError(
      "UEFI_ERR_VARSTORE_FTW_PENDING",
      "the fault-tolerant-write working block fails its CRC; the firmware would recover it from the spare area",
      { offset: store.ftw.offset },
    );
  }
}

const sameVar = (rec: VariableRecord, name: string, guid: Guid) =>
  isLiveRecord(rec) && rec.guid === guid && decodeVariableName(rec.nameBytes) === name;

/**
 * Returns a store with `v` set: it replaces the live record of the same name and GUID in place
 * (other copies are dropped) or is appended. Does not check that it fits; {@link encodeVarStore} does.
 */
export function setVariable(store: Edk2VarStore, v: VariableInput): Edk2VarStore {
  refuseIfFtwPending(store);
  const nameBytes = encodeVariableName(v.name);
  if (!Number.isInteger(v.attributes) || v.attributes < 0 || v.attributes > 0xffffffff) {
    throw uefiError("UEFI_ERR_VARIABLE_INVALID", `attributes ${v.attributes} out of range`);
  }
  const rec: VariableRecord = {
    state: VarState.VAR_ADDED,
    reserved: 0,
    attributes: v.attributes,
    monotonicCount: v.monotonicCount ?? 0n,
    timestamp: v.timestamp ?? zeroTime(),
    pubKeyIndex: v.pubKeyIndex ?? 0,
    guid: v.guid,
    nameBytes,
    data: Uint8Array.from(v.data),
    pad: new Uint8Array(0),
  };
  const size = AUTHENTICATED_VARIABLE_HEADER_SIZE + nameBytes.length + rec.data.length;
  if (size > store.maxVariableSize) {
    throw uefiError(
      "UEFI_ERR_VARSTORE_FULL",
      `variable ${v.name} needs ${size} bytes; this OVMF build accepts at most ${store.maxVariableSize} per variable (use a _4M store)`,
      { need: size, capacity: store.maxVariableSize },
    );
  }
  const records: VariableRecord[] = [];
  let placed = false;
  for (const r of store.records) {
    if (sameVar(r, v.name, v.guid)) {
      if (!placed) records.push(rec);
      placed = true;
    } else records.push(r);
  }
  if (!placed) records.push(rec);
  return { ...store, records };
}

/** Returns a store without the variable; UEFI_ERR_VARIABLE_NOT_FOUND if it is not there. */
export function deleteVariable(store: Edk2VarStore, name: string, guid: Guid): Edk2VarStore {
  refuseIfFtwPending(store);
  const records = store.records.filter((r) => !sameVar(r, name, guid));
  if (records.length === store.records.length) {
    throw uefiError("UEFI_ERR_VARIABLE_NOT_FOUND", `variable ${name} (${guid}) is not in the store`, {
      name,
      guid,
    });
  }
  return { ...store, records };
}

/** Drops deleted records (what the firmware's reclaim does). */
export function compactVarStore(store: Edk2VarStore): Edk2VarStore {
  return { ...store, records: store.records.filter(isLiveRecord) };
}

export type VarStoreSize = "2m" | "4m";

interface Geometry {
  readonly fvLength: number;
  readonly varStoreRegion: number;
  readonly eventLog: number;
  readonly working: number;
}
/** OvmfPkg/OvmfPkgDefines.fdf.inc NV storage layouts (block size 0x1000). */
const GEOMETRY: Record<VarStoreSize, Geometry> = {
  "2m": { fvLength: 0x20000, varStoreRegion: 0xe000, eventLog: 0x1000, working: 0x1000 },
  "4m": { fvLength: 0x84000, varStoreRegion: 0x40000, eventLog: 0x1000, working: 0x1000 },
};

/**
 * A freshly formatted, empty store as OVMF's build produces it (OVMF_VARS.fd for "2m", the 128 KiB
 * store of the 2 MiB firmware; OVMF_VARS_4M.fd for "4m").
 */
export function createEmptyVarStore(size: VarStoreSize): Uint8Array {
  const g = GEOMETRY[size];
  const headerLength = FV_HEADER_FIXED_SIZE + 16;
  const store: Edk2VarStore = {
    fv: {
      ZeroVector: new Uint8Array(16),
      FileSystemGuid: Guids.EFI_SYSTEM_NV_DATA_FV_GUID,
      FvLength: BigInt(g.fvLength),
      Signature: 0x4856465f,
      Attributes: 0x0004feff,
      HeaderLength: headerLength,
      Checksum: 0,
      ExtHeaderOffset: 0,
      Reserved: 0,
      Revision: 2,
    },
    blockMap: [{ NumBlocks: g.fvLength / 0x1000, Length: 0x1000 }],
    fvHeaderExtra: new Uint8Array(0),
    storeHeader: {
      Signature: Guids.EFI_AUTHENTICATED_VARIABLE_GUID,
      Size: g.varStoreRegion - headerLength,
      Format: VARIABLE_STORE_FORMATTED,
      State: VARIABLE_STORE_HEALTHY,
      Reserved: 0,
      Reserved1: 0,
    },
    storeOffset: headerLength,
    records: [],
    freeSpaceErased: true,
    tail: emptyTail(g),
    ftw: null,
    maxVariableSize: maxVariableSizeFor(g.varStoreRegion - headerLength),
  };
  return encodeVarStore(store);
}

function emptyTail(g: Geometry): Uint8Array {
  const tail = new Uint8Array(g.fvLength - g.varStoreRegion).fill(0xff);
  const w = new Writer(FTW_WORKING_BLOCK_HEADER_SIZE);
  const header: FtwWorkingBlockHeader = {
    Signature: Guids.EDKII_WORKING_BLOCK_SIGNATURE_GUID,
    Crc: 0,
    Flags: 0xfe,
    Reserved3: new Uint8Array([0xff, 0xff, 0xff]),
    WriteQueueSize: BigInt(g.working - FTW_WORKING_BLOCK_HEADER_SIZE),
  };
  EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER.encode(w, header);
  const hb = w.finish();
  const crc = workingBlockCrc(hb);
  new DataView(hb.buffer).setUint32(16, crc, true);
  tail.set(hb, g.eventLog);
  return tail;
}
