/**
 * One-line human summaries of events, for `bulwark eventlog show` and reports. Summaries are
 * labels read from event data; whether a digest proves that data is a separate question
 * ({@link proveEvent}).
 */
import { decode } from "../core/codec.js";
import { parseDevicePath } from "./devicepath.js";
import { EventType } from "./event-types.js";
import type { TcgEvent } from "./parse.js";
import { proveEvent } from "./proof.js";
import { readImageLoadEvent, readShimAuthority, SHIM_AUTHORITY_EXTRA_BYTE } from "./quirks.js";
import {
  asciiz,
  TCG_EfiSpecIdEvent,
  UEFI_IMAGE_LOAD_EVENT,
  UEFI_HANDOFF_TABLE_POINTERS,
  UEFI_HANDOFF_TABLE_POINTERS2,
  UEFI_PLATFORM_FIRMWARE_BLOB,
  UEFI_PLATFORM_FIRMWARE_BLOB2,
  UEFI_VARIABLE_DATA,
  ucs2,
  type UEFI_VARIABLE_DATA as VariableDataType,
} from "./structures.js";

const MAX = 160;
const clip = (s: string) => {
  // eslint-disable-next-line no-control-regex
  const t = s.replace(/[\u0000-\u001f\u007f]/g, "·");
  return t.length > MAX ? `${t.slice(0, MAX - 1)}…` : t;
};

function printable(b: Uint8Array): boolean {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  if (end === 0) return false;
  for (let i = 0; i < end; i++) if (b[i]! < 0x20 || b[i]! > 0x7e) return false;
  return true;
}

/**
 * `firstApplication`: the log's first application event (quirks.ts `firstApplicationIndex`),
 * needed to recognise shim's quirks; an event read through a quirk says so (`[quirk ID]`).
 */
export function describeEvent(e: TcgEvent, firstApplication = -1): string {
  try {
    return describeStrictly(e);
  } catch {
    const quirky = describeQuirky(e, firstApplication);
    if (quirky !== undefined) return quirky;
    return `${e.data.length} bytes (undecodable)`;
  }
}

/** The reading of quirks.ts, tried only after the strict one failed. */
function describeQuirky(e: TcgEvent, firstApplication: number): string | undefined {
  try {
    if (e.eventType === EventType.EV_EFI_VARIABLE_AUTHORITY) {
      if (proveEvent(e, firstApplication).quirk !== SHIM_AUTHORITY_EXTRA_BYTE) return undefined;
      const v = readShimAuthority(e);
      return v && `${variableSummary(v)} [quirk ${SHIM_AUTHORITY_EXTRA_BYTE}]`;
    }
    if (e.eventType === EventType.EV_EFI_BOOT_SERVICES_APPLICATION) {
      const { value, quirk } = readImageLoadEvent(e);
      return `${clip(parseDevicePath(value.DevicePath).text || "(no device path)")}${quirk ? ` [quirk ${quirk}]` : ""}`;
    }
  } catch {
    return undefined;
  }
  return undefined;
}

function variableSummary(v: VariableDataType): string {
  const value =
    v.VariableData.length <= 8
      ? Buffer.from(v.VariableData).toString("hex")
      : `${v.VariableData.length} bytes`;
  return clip(`${ucs2(v.UnicodeName)} (${v.VariableName}) = ${value}`);
}

function describeStrictly(e: TcgEvent): string {
  switch (e.eventType) {
    case EventType.EV_NO_ACTION: {
      if (e.index === 0 && e.data.length >= 16) {
        const s = decode(TCG_EfiSpecIdEvent, e.data);
        return clip(
          `${asciiz(s.signature)}: ${s.digestSizes.length} algorithm(s), spec ${s.specVersionMajor}.${s.specVersionMinor} errata ${s.specErrata}`,
        );
      }
      return clip(asciiz(e.data.subarray(0, 16)));
    }
    case EventType.EV_EFI_VARIABLE_DRIVER_CONFIG:
    case EventType.EV_EFI_VARIABLE_BOOT:
    case EventType.EV_EFI_VARIABLE_BOOT2:
    case EventType.EV_EFI_VARIABLE_AUTHORITY: {
      return variableSummary(decode(UEFI_VARIABLE_DATA, e.data));
    }
    case EventType.EV_EFI_BOOT_SERVICES_APPLICATION:
    case EventType.EV_EFI_BOOT_SERVICES_DRIVER:
    case EventType.EV_EFI_RUNTIME_SERVICES_DRIVER: {
      const img = decode(UEFI_IMAGE_LOAD_EVENT, e.data);
      return clip(parseDevicePath(img.DevicePath).text || "(no device path)");
    }
    case EventType.EV_EFI_PLATFORM_FIRMWARE_BLOB: {
      const b = decode(UEFI_PLATFORM_FIRMWARE_BLOB, e.data);
      return `base 0x${b.BlobBase.toString(16)} length 0x${b.BlobLength.toString(16)}`;
    }
    case EventType.EV_EFI_PLATFORM_FIRMWARE_BLOB2: {
      const b = decode(UEFI_PLATFORM_FIRMWARE_BLOB2, e.data);
      return clip(
        `${asciiz(b.BlobDescription)}: base 0x${b.BlobBase.toString(16)} length 0x${b.BlobLength.toString(16)}`,
      );
    }
    case EventType.EV_EFI_HANDOFF_TABLES:
    case EventType.EV_EFI_HANDOFF_TABLES2: {
      const t =
        e.eventType === EventType.EV_EFI_HANDOFF_TABLES
          ? { description: "", entries: decode(UEFI_HANDOFF_TABLE_POINTERS, e.data).TableEntry }
          : (() => {
              const x = decode(UEFI_HANDOFF_TABLE_POINTERS2, e.data);
              return { description: `${asciiz(x.TableDescription)}: `, entries: x.TableEntry };
            })();
      return clip(`${t.description}${t.entries.map((x) => x.VendorGuid).join(", ")}`);
    }
    case EventType.EV_SEPARATOR:
      return Buffer.from(e.data).toString("hex");
    case EventType.EV_S_CRTM_VERSION:
      return clip(`"${ucs2(e.data)}"`);
    default:
      if (printable(e.data)) return clip(asciiz(e.data));
      return `${e.data.length} bytes`;
  }
}
