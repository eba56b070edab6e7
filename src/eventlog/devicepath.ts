/**
 * EFI_DEVICE_PATH_PROTOCOL (UEFI Specification 2.10, section 10.2 "EFI Device Path Protocol",
 * node types in 10.3) and its text form (section 10.6.1.6 "Text Device Node Reference"), for
 * the device paths inside UEFI_IMAGE_LOAD_EVENT and EFI_LOAD_OPTION.
 *
 * Only the node types firmware puts in boot paths are rendered by name; any other node is
 * rendered generically as `Path(type,subtype,hexdata)`, as the specification prescribes.
 */
import { Reader } from "../core/codec.js";
import { DecodeError } from "../core/errors.js";
import { guidFromBytes } from "../uefi/guid.js";
import { eventlogError } from "./errors.js";
import { ucs2 } from "./structures.js";
import { toHex } from "../core/bytes.js";

export interface DevicePathNode {
  readonly type: number;
  readonly subType: number;
  /** Node data after the 4-byte header, as received. */
  readonly data: Uint8Array;
  /** Text form per UEFI 2.10 section 10.6.1.6. */
  readonly text: string;
}

export interface DevicePath {
  /** Instances (separated by End-Instance nodes); each a list of nodes without the End node. */
  readonly instances: readonly (readonly DevicePathNode[])[];
  readonly text: string;
}

const h = (n: number | bigint) => `0x${n.toString(16)}`;

function eisaId(id: number): string {
  // Compressed EISA ID (ACPI 6.x section 6.1.5; edk2 EisaIdText): three 5-bit letters in the low
  // 16 bits, then a 16-bit product id. EISA_PNP_ID(0x0501) = 0x050141d0 is "PNP0501".
  const vendor = id & 0xffff;
  const c = (v: number) => String.fromCharCode((v & 0x1f) + 0x40);
  const product = (id >>> 16).toString(16).toUpperCase().padStart(4, "0");
  return `${c(vendor >> 10)}${c(vendor >> 5)}${c(vendor)}${product}`;
}

/** Renders one node; `d` reads the node data. */
function nodeText(type: number, sub: number, data: Uint8Array): string {
  const d = new Reader(data);
  const generic = () => `Path(${type},${sub}${data.length ? `,${toHex(data)}` : ""})`;
  const withRest = (s: string) => (d.remaining ? `${s.slice(0, -1)},${toHex(d.take(d.remaining))})` : s);
  try {
    switch (type) {
      case 1: // Hardware
        if (sub === 1) {
          const fn = d.u8();
          const dev = d.u8();
          return `Pci(${h(dev)},${h(fn)})`;
        }
        if (sub === 4) return withRest(`VenHw(${guidFromBytes(d.take(16))})`);
        if (sub === 5) return `Ctrl(${h(d.u32(true))})`;
        if (sub === 3) return `MemoryMapped(${h(d.u32(true))},${h(d.u64(true))},${h(d.u64(true))})`;
        return generic();
      case 2: // ACPI
        if (sub === 1) {
          const hid = d.u32(true);
          const uid = d.u32(true);
          if (hid === 0x0a0341d0) return `PciRoot(${h(uid)})`;
          if (hid === 0x0a0841d0) return `PcieRoot(${h(uid)})`;
          return `Acpi(${eisaId(hid)},${h(uid)})`;
        }
        return generic();
      case 3: // Messaging
        switch (sub) {
          case 1: {
            const primary = d.u8();
            const slave = d.u8();
            const lun = d.u16(true);
            return `Ata(${primary ? "Secondary" : "Primary"},${slave ? "Slave" : "Master"},${h(lun)})`;
          }
          case 2:
            return `Scsi(${h(d.u16(true))},${h(d.u16(true))})`;
          case 5:
            return `USB(${h(d.u8())},${h(d.u8())})`;
          case 10:
            return withRest(`VenMsg(${guidFromBytes(d.take(16))})`);
          case 11: {
            const mac = d.take(32);
            const ifType = d.u8();
            return `MAC(${toHex(mac.subarray(0, ifType === 0 || ifType === 1 ? 6 : 32))},${h(ifType)})`;
          }
          case 12: {
            const ip = (b: Uint8Array) => Array.from(b).join(".");
            const local = ip(d.take(4));
            const remote = ip(d.take(4));
            return `IPv4(${remote},${local})`;
          }
          case 18:
            return `Sata(${h(d.u16(true))},${h(d.u16(true))},${h(d.u16(true))})`;
          case 23: {
            const nsid = d.u32(true);
            const eui = Array.from(d.take(8), (x) => x.toString(16).padStart(2, "0").toUpperCase()).join("-");
            return `NVMe(${h(nsid)},${eui})`;
          }
          case 24:
            return `Uri(${Buffer.from(d.take(d.remaining)).toString("utf8")})`;
          default:
            return generic();
        }
      case 4: // Media
        switch (sub) {
          case 1: {
            const part = d.u32(true);
            const start = d.u64(true);
            const size = d.u64(true);
            const sig = d.take(16);
            const mbrType = d.u8();
            const sigType = d.u8();
            const s =
              sigType === 2
                ? `GPT,${guidFromBytes(sig)}`
                : sigType === 1
                  ? `MBR,${h(new DataView(sig.buffer, sig.byteOffset, 4).getUint32(0, true))}`
                  : `${sigType},${toHex(sig)}`;
            return `HD(${part},${s},${h(start)},${h(size)}${mbrType === 1 || mbrType === 2 ? "" : `,${mbrType}`})`;
          }
          case 2:
            return `CDROM(${h(d.u32(true))},${h(d.u64(true))},${h(d.u64(true))})`;
          case 3:
            return withRest(`VenMedia(${guidFromBytes(d.take(16))})`);
          case 4:
            return ucs2(d.take(d.remaining));
          case 5:
            return `Media(${guidFromBytes(d.take(16))})`;
          case 6:
            return `FvFile(${guidFromBytes(d.take(16))})`;
          case 7:
            return `Fv(${guidFromBytes(d.take(16))})`;
          case 8: {
            d.u32(true);
            return `Offset(${h(d.u64(true))},${h(d.u64(true))})`;
          }
          default:
            return generic();
        }
      case 5:
        if (sub === 1) return `BBS(${h(d.u16(true))},${h(d.u16(true))})`;
        return generic();
      default:
        return generic();
    }
  } catch (e) {
    if (e instanceof DecodeError) return generic();
    throw e;
  }
}

/** Hard cap on nodes: every node takes at least 4 bytes, so this only bounds pathological input. */
const MAX_NODES = 4096;

/** Parses a device path; malformed node lengths are EVENTLOG_ERR_MALFORMED. */
export function parseDevicePath(bytes: Uint8Array): DevicePath {
  const r = new Reader(bytes);
  const instances: DevicePathNode[][] = [[]];
  let nodes = 0;
  while (r.remaining > 0) {
    const at = r.offset;
    if (r.remaining < 4 || ++nodes > MAX_NODES) {
      throw eventlogError("EVENTLOG_ERR_MALFORMED", `device path node at offset ${at} is truncated`, {
        offset: at,
        path: "EFI_DEVICE_PATH_PROTOCOL",
      });
    }
    const type = r.u8();
    const subType = r.u8();
    const length = r.u16(true);
    if (length < 4 || length - 4 > r.remaining) {
      throw eventlogError(
        "EVENTLOG_ERR_MALFORMED",
        `device path node at offset ${at} has length ${length} (${r.remaining + 4} bytes left)`,
        { offset: at, path: "EFI_DEVICE_PATH_PROTOCOL" },
      );
    }
    const data = r.take(length - 4);
    if (type === 0x7f) {
      if (subType === 0xff) break; // End Entire Device Path
      instances.push([]); // End This Instance
      continue;
    }
    instances[instances.length - 1]!.push({ type, subType, data, text: nodeText(type, subType, data) });
  }
  const live = instances.filter((i, n) => i.length > 0 || n === 0);
  return { instances: live, text: live.map((i) => i.map((n) => n.text).join("/")).join(",") };
}
