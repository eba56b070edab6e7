/**
 * Facts extracted from an event log, each with the {@link Proof} that says whether a digest
 * binds it (see proof.ts). A fact is evidence about the boot only when (1) its proof is
 * `proven` and (2) the PCR it sits in replays to the value the TPM reports (verdict.ts checks
 * both). Facts whose proof is not proven are reported for people to read; no decision may
 * rest on them.
 *
 * Sources: TCG PC Client PFP 1.05 section 3.3.4 "PCR usage" and 10.4.4 (what each PCR and event
 * type records), UEFI 2.10 section 32 (Secure Boot variables), shim (rhboot/shim: MokList in
 * PCR 14, SbatLevel and its verifying certificates as EV_EFI_VARIABLE_AUTHORITY in PCR 7) and
 * grub (grub-core/commands/tpm.c: commands and command lines in PCR 8, files in PCR 9).
 */
import { hash } from "node:crypto";
import { decode } from "../core/codec.js";
import { BoundedMap } from "../core/memo.js";
import { guidFromBytes, Guids } from "../uefi/guid.js";
import { describeEntry, decodeSignatureDatabase, type EntryDescription } from "../uefi/siglist.js";
import { parseDevicePath } from "./devicepath.js";
import { EventType } from "./event-types.js";
import type { EventLog, TcgEvent } from "./parse.js";
import { GRUB_PREFIXES, proveEvent, type Proof, type ProofBanks } from "./proof.js";
import {
  firstApplicationIndex,
  readImageLoadEvent,
  readShimAuthority,
  SHIM_AUTHORITY_EXTRA_BYTE,
} from "./quirks.js";
import {
  asciiz,
  EFI_LOAD_OPTION,
  UEFI_GPT_DATA,
  UEFI_PLATFORM_FIRMWARE_BLOB,
  UEFI_VARIABLE_DATA,
  ucs2,
} from "./structures.js";
import { toHex } from "../core/bytes.js";

/** Where a fact came from and whether a digest proves it. */
export interface Evidence {
  /** Index of the event (as in `EventLog.events`). */
  readonly event: number;
  readonly pcr: number;
  readonly proof: Proof;
}

export interface SecureBootFact extends Evidence {
  /** The measured SecureBoot variable's value: 1 = enabled. */
  readonly enabled: boolean;
}

export interface VariableFact extends Evidence {
  readonly name: string;
  readonly guid: string;
  readonly size: number;
  /** SHA-256 of the variable data (for baselines). */
  readonly sha256: string;
  /** Signature database entries, when the variable is PK, KEK, db, dbx, dbt or dbr. */
  readonly entries?: readonly EntryDescription[];
  readonly entriesError?: string;
}

export interface AuthorityFact extends Evidence {
  /** Variable the authority came from (db, MokList, Shim, ...). */
  readonly variable: string;
  readonly guid: string;
  /** The EFI_SIGNATURE_DATA entry that verified an image (certificate or hash), when decodable. */
  readonly entry: EntryDescription | null;
  readonly sha256: string;
}

export interface ImageFact extends Evidence {
  readonly typeName: string;
  /** The measured digest per bank: this is what the PCR binds (the image hash). */
  readonly digests: Readonly<Record<string, string>>;
  readonly imageLength: string | null;
  /** Device path text; NOT covered by any digest. */
  readonly devicePath: string | null;
  readonly devicePathError?: string;
  /** The quirk (quirks.ts) the event data was read through, when the strict reading failed. */
  readonly quirk?: string;
}

export interface TextFact extends Evidence {
  readonly text: string;
}

export interface SeparatorFact extends Evidence {
  readonly value: string;
  /** 00000000 is a normal separator; FFFFFFFF marks a firmware error (PFP 10.4.4, EV_SEPARATOR). */
  readonly kind: "normal" | "error" | "other";
}

export interface MeasuredBlobFact extends Evidence {
  /** A label the log gives the measured content (file path, variable name); NOT covered. */
  readonly label: string;
  readonly digests: Readonly<Record<string, string>>;
}

export interface GptFact extends Evidence {
  readonly diskGuid: string;
  readonly partitions: readonly { type: string; guid: string; name: string; start: string; end: string }[];
}

export interface BootVariableFact extends Evidence {
  readonly name: string;
  readonly guid: string;
  /** BootOrder entries, or the Boot#### option's description and device path. */
  readonly order?: readonly string[];
  readonly description?: string;
  readonly devicePath?: string;
}

export interface EventLogFacts {
  /** The SecureBoot variable measured in PCR 7; null when the log does not measure it. */
  readonly secureBoot: SecureBootFact | null;
  /** PK, KEK, db, dbx (and any other EV_EFI_VARIABLE_DRIVER_CONFIG in PCR 7), in log order. */
  readonly secureBootVariables: readonly VariableFact[];
  /** EV_EFI_VARIABLE_AUTHORITY: the db/MokList/shim entries that verified boot images. */
  readonly authorities: readonly AuthorityFact[];
  /** EV_EFI_BOOT_SERVICES_APPLICATION (and drivers): image digests with device paths. */
  readonly bootApplications: readonly ImageFact[];
  readonly drivers: readonly ImageFact[];
  readonly separators: readonly SeparatorFact[];
  readonly efiActions: readonly TextFact[];
  readonly bootVariables: readonly BootVariableFact[];
  /** grub: `grub_cmd:` strings in PCR 8. */
  readonly grubCommands: readonly TextFact[];
  /** grub: `kernel_cmdline:` (and `module_cmdline:`) strings in PCR 8, prefix removed. */
  readonly kernelCommandLines: readonly TextFact[];
  /** grub: files measured in PCR 9 (label = path; the digest covers the file). */
  readonly grubFiles: readonly MeasuredBlobFact[];
  /** Other EV_IPL events (e.g. systemd-boot, shim strings outside PCR 14). */
  readonly iplEvents: readonly MeasuredBlobFact[];
  readonly shim: {
    /** MokList, MokListX, MokListTrusted, MokSBState... measured by shim in PCR 14 (digest covers the content). */
    readonly mokMeasurements: readonly MeasuredBlobFact[];
    /** The SbatLevel variable shim measures in PCR 7 (EV_EFI_VARIABLE_AUTHORITY). */
    readonly sbatLevel: TextFact | null;
  };
  readonly gpt: readonly GptFact[];
  readonly firmware: {
    readonly crtmVersion: TextFact | null;
    readonly blobs: readonly (MeasuredBlobFact & { base: string; length: string })[];
  };
  /** True when "Exit Boot Services Invocation" was logged (the OS took over). */
  readonly exitBootServices: TextFact | null;
}

const sha256 = (b: Uint8Array) => hash("sha256", b, "hex");
const digestsOf = (e: TcgEvent) => Object.fromEntries(e.digests.map((d) => [d.bank, toHex(d.digest)]));
const evidence = (m: FactMemo, e: TcgEvent, first: number): Evidence => ({
  event: e.index,
  pcr: e.pcrIndex,
  proof: m.proof(e, first),
});

const SIGNATURE_DATABASES = new Set(["PK", "KEK", "db", "dbx", "dbt", "dbr"]);

/**
 * What fact extraction remembers: each event's proof (the facts and the verdict ask about the
 * same events, so a log is hashed once) and certificate descriptions by content (every host of a
 * fleet measures the same db/KEK, and parsing an X.509 certificate costs far more than hashing
 * it). The caller owns it: {@link extractFacts} makes one per call unless given one, and a
 * service that sees many logs keeps one. Proofs are held weakly by event; descriptions are
 * bounded. Every entry is a pure function of the bytes it is keyed by.
 */
export class FactMemo {
  private readonly proofs = new WeakMap<TcgEvent, { first: number; proof: Proof }>();
  private readonly described = new BoundedMap<string, EntryDescription>(512);

  /**
   * `proofBanks`: prove event data in these banks only (see proof.ts {@link ProofBanks}); the
   * default proves it in every bank this host can hash.
   */
  constructor(private readonly proofBanks?: ProofBanks) {}

  /**
   * `first`: the log's first application event (quirks.ts `firstApplicationIndex`); without it
   * (-1) the quirks of loaded applications are not tried, and the proof is remembered apart.
   */
  proof(e: TcgEvent, first = -1): Proof {
    const hit = this.proofs.get(e);
    if (hit && hit.first === first) return hit.proof;
    const proof = proveEvent(e, first, this.proofBanks);
    this.proofs.set(e, { first, proof });
    return proof;
  }

  describe(type: string, e: { owner: string; data: Uint8Array }): EntryDescription {
    const key = `${type}/${e.owner}/${sha256(e.data)}`;
    let d = this.described.get(key);
    if (!d) {
      d = describeEntry(type, e);
      this.described.set(key, d);
    }
    return d;
  }
}

function authorityEntry(m: FactMemo, data: Uint8Array): EntryDescription | null {
  if (data.length < 17) return null;
  const owner = guidFromBytes(data.subarray(0, 16));
  const body = data.subarray(16);
  const type =
    body[0] === 0x30 ? Guids.EFI_CERT_X509_GUID : body.length === 32 ? Guids.EFI_CERT_SHA256_GUID : null;
  return type ? m.describe(type, { owner, data: body }) : null;
}

function imageFact(m: FactMemo, e: TcgEvent, first: number): ImageFact {
  const base = { ...evidence(m, e, first), typeName: e.typeName, digests: digestsOf(e) };
  try {
    const { value: img, quirk } = readImageLoadEvent(e);
    try {
      return {
        ...base,
        imageLength: img.ImageLengthInMemory.toString(),
        devicePath: parseDevicePath(img.DevicePath).text,
        ...(quirk ? { quirk } : {}),
      };
    } catch (err) {
      return {
        ...base,
        imageLength: img.ImageLengthInMemory.toString(),
        devicePath: null,
        devicePathError: String(err),
      };
    }
  } catch (err) {
    return {
      ...base,
      imageLength: null,
      devicePath: null,
      devicePathError: `UEFI_IMAGE_LOAD_EVENT: ${String(err)}`,
    };
  }
}

function bootVariableFact(m: FactMemo, e: TcgEvent, first: number): BootVariableFact | null {
  let v;
  try {
    v = decode(UEFI_VARIABLE_DATA, e.data);
  } catch {
    return null;
  }
  const name = ucs2(v.UnicodeName);
  const base = { ...evidence(m, e, first), name, guid: v.VariableName };
  if (name === "BootOrder") {
    const order: string[] = [];
    for (let i = 0; i + 1 < v.VariableData.length && order.length < 1024; i += 2) {
      order.push(
        `Boot${(v.VariableData[i]! | (v.VariableData[i + 1]! << 8)).toString(16).toUpperCase().padStart(4, "0")}`,
      );
    }
    return { ...base, order };
  }
  if (/^Boot[0-9A-F]{4}$/.test(name)) {
    try {
      const opt = decode(EFI_LOAD_OPTION, v.VariableData);
      let devicePath: string | undefined;
      try {
        devicePath = parseDevicePath(opt.FilePathList).text;
      } catch {
        devicePath = undefined;
      }
      return {
        ...base,
        description: ucs2(opt.Description),
        ...(devicePath === undefined ? {} : { devicePath }),
      };
    } catch {
      return base;
    }
  }
  return base;
}

/** Extracts every fact the log offers; pure, never throws on a parsed log. */
export function extractFacts(log: EventLog, m: FactMemo = new FactMemo()): EventLogFacts {
  const first = firstApplicationIndex(log.events);
  let secureBoot: SecureBootFact | null = null;
  const secureBootVariables: VariableFact[] = [];
  const authorities: AuthorityFact[] = [];
  const bootApplications: ImageFact[] = [];
  const drivers: ImageFact[] = [];
  const separators: SeparatorFact[] = [];
  const efiActions: TextFact[] = [];
  const bootVariables: BootVariableFact[] = [];
  const grubCommands: TextFact[] = [];
  const kernelCommandLines: TextFact[] = [];
  const grubFiles: MeasuredBlobFact[] = [];
  const iplEvents: MeasuredBlobFact[] = [];
  const mokMeasurements: MeasuredBlobFact[] = [];
  let sbatLevel: TextFact | null = null;
  const gpt: GptFact[] = [];
  let crtmVersion: TextFact | null = null;
  const blobs: (MeasuredBlobFact & { base: string; length: string })[] = [];

  for (const e of log.events) {
    switch (e.eventType) {
      case EventType.EV_EFI_VARIABLE_DRIVER_CONFIG: {
        let v;
        try {
          v = decode(UEFI_VARIABLE_DATA, e.data);
        } catch {
          break;
        }
        const name = ucs2(v.UnicodeName);
        if (name === "SecureBoot" && v.VariableName === Guids.EFI_GLOBAL_VARIABLE && e.pcrIndex === 7) {
          secureBoot = {
            ...evidence(m, e, first),
            enabled: v.VariableData.length === 1 && v.VariableData[0] === 1,
          };
          break;
        }
        const fact: VariableFact = {
          ...evidence(m, e, first),
          name,
          guid: v.VariableName,
          size: v.VariableData.length,
          sha256: sha256(v.VariableData),
        };
        if (SIGNATURE_DATABASES.has(name)) {
          try {
            const lists = decodeSignatureDatabase(v.VariableData);
            secureBootVariables.push({
              ...fact,
              entries: lists.flatMap((l) => l.entries.map((x) => m.describe(l.type, x))),
            });
          } catch (err) {
            secureBootVariables.push({
              ...fact,
              entriesError: err instanceof Error ? err.message : String(err),
            });
          }
        } else {
          secureBootVariables.push(fact);
        }
        break;
      }
      case EventType.EV_EFI_VARIABLE_AUTHORITY: {
        let v;
        try {
          v = decode(UEFI_VARIABLE_DATA, e.data);
        } catch {
          // Read through shim's quirk only when its digest was matched that way (quirks.ts).
          v = m.proof(e, first).quirk === SHIM_AUTHORITY_EXTRA_BYTE ? readShimAuthority(e) : undefined;
          if (!v) break;
        }
        const name = ucs2(v.UnicodeName);
        if (name === "SbatLevel") {
          sbatLevel = { ...evidence(m, e, first), text: asciiz(v.VariableData) };
          break;
        }
        authorities.push({
          ...evidence(m, e, first),
          variable: name,
          guid: v.VariableName,
          entry: authorityEntry(m, v.VariableData),
          sha256: sha256(v.VariableData),
        });
        break;
      }
      case EventType.EV_EFI_BOOT_SERVICES_APPLICATION:
        bootApplications.push(imageFact(m, e, first));
        break;
      case EventType.EV_EFI_BOOT_SERVICES_DRIVER:
      case EventType.EV_EFI_RUNTIME_SERVICES_DRIVER:
        drivers.push(imageFact(m, e, first));
        break;
      case EventType.EV_SEPARATOR: {
        const value = toHex(e.data);
        const kind = value === "00000000" ? "normal" : value === "ffffffff" ? "error" : "other";
        separators.push({ ...evidence(m, e, first), value, kind });
        break;
      }
      case EventType.EV_EFI_ACTION:
      case EventType.EV_ACTION:
        efiActions.push({ ...evidence(m, e, first), text: asciiz(e.data) });
        break;
      case EventType.EV_EFI_VARIABLE_BOOT:
      case EventType.EV_EFI_VARIABLE_BOOT2: {
        const f = bootVariableFact(m, e, first);
        if (f) bootVariables.push(f);
        break;
      }
      case EventType.EV_IPL: {
        const text = asciiz(e.data);
        const prefix = GRUB_PREFIXES.find((p) => text.startsWith(p));
        if (e.pcrIndex === 8 && prefix) {
          const fact = { ...evidence(m, e, first), text: text.slice(prefix.length) };
          if (prefix === "grub_cmd: ") grubCommands.push(fact);
          else kernelCommandLines.push(fact);
        } else if (e.pcrIndex === 9) {
          grubFiles.push({ ...evidence(m, e, first), label: text, digests: digestsOf(e) });
        } else if (e.pcrIndex === 14) {
          mokMeasurements.push({ ...evidence(m, e, first), label: text, digests: digestsOf(e) });
        } else {
          iplEvents.push({ ...evidence(m, e, first), label: text, digests: digestsOf(e) });
        }
        break;
      }
      case EventType.EV_EFI_GPT_EVENT: {
        try {
          const g = decode(UEFI_GPT_DATA, e.data);
          gpt.push({
            ...evidence(m, e, first),
            diskGuid: g.UEFIPartitionHeader.DiskGUID,
            partitions: g.Partitions.map((p) => ({
              type: p.PartitionTypeGUID,
              guid: p.UniquePartitionGUID,
              name: ucs2(p.PartitionName),
              start: p.StartingLBA.toString(),
              end: p.EndingLBA.toString(),
            })),
          });
        } catch {
          /* a GPT event we cannot decode gives no fact */
        }
        break;
      }
      case EventType.EV_S_CRTM_VERSION:
        crtmVersion = { ...evidence(m, e, first), text: ucs2(e.data) };
        break;
      case EventType.EV_EFI_PLATFORM_FIRMWARE_BLOB: {
        try {
          const b = decode(UEFI_PLATFORM_FIRMWARE_BLOB, e.data);
          blobs.push({
            ...evidence(m, e, first),
            label: "firmware volume",
            digests: digestsOf(e),
            base: `0x${b.BlobBase.toString(16)}`,
            length: `0x${b.BlobLength.toString(16)}`,
          });
        } catch {
          /* undecodable blob description: no fact */
        }
        break;
      }
      default:
        break;
    }
  }
  const exitBootServices = efiActions.find((a) => a.text === "Exit Boot Services Invocation") ?? null;
  return {
    secureBoot,
    secureBootVariables,
    authorities,
    bootApplications,
    drivers,
    separators,
    efiActions,
    bootVariables,
    grubCommands,
    kernelCommandLines,
    grubFiles,
    iplEvents,
    shim: { mokMeasurements, sbatLevel },
    gpt,
    firmware: { crtmVersion, blobs },
    exitBootServices,
  };
}
