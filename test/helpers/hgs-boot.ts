/**
 * The "boot" of an HGS test host: the real TCG event log of our guest's boot (OVMF Secure Boot
 * with Microsoft keys, Debian shim → grub → kernel; test/vectors/eventlog/<REAL_BOOT_VECTOR>/,
 * captured by eventlog-capture-guest.ts), and unhealthy boots derived from it by editing the
 * events that would have been measured differently, with their digests recomputed the way the
 * measuring component computes them:
 *
 *   - Secure Boot off: SecureBoot's UEFI_VARIABLE_DATA with VariableData 00; edk2 hashes the
 *     whole UEFI_VARIABLE_DATA of EV_EFI_VARIABLE_DRIVER_CONFIG (PFP 1.05 section 10.4.4);
 *   - firmware debug mode: an EV_EFI_ACTION "UEFI Debug Mode" first in PCR 7 (PFP 1.05 section
 *     3.3.4.8), hashed over its data like the log's other EV_EFI_ACTION events;
 *   - another db: an EFI_CERT_SHA256 list appended to db's VariableData;
 *   - another kernel: other PE/Authenticode digests for the kernel images shim/firmware measured
 *     into PCR 4 after grub's `linux` command, other file digests for grub's PCR 9 reads of it;
 *   - another kernel command line: grub's PCR 8 strings (`grub_cmd: menuentry …`, `grub_cmd:
 *     linux …`, `kernel_cmdline: …`; grub hashes the text after the prefix, without the NUL) and
 *     the grub.cfg file grub measured into PCR 9.
 *
 * Each rule is first checked against the real log (it must reproduce the real event's digests in
 * every bank) before it is used to compute an edited event. Everything else stays byte-identical.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { decode, encode, Writer } from "../../src/core/codec.js";
import {
  digestOf,
  EventType,
  GRUB_PREFIXES,
  parseEventLog,
  type EventLog,
  type TcgEvent,
} from "../../src/eventlog/index.js";
import { TCG_PCR_EVENT2, UEFI_VARIABLE_DATA } from "../../src/eventlog/structures.js";
import { TPM_ALG } from "../../src/tpm/alg.js";
import type { Tpm } from "../../src/tpm/client.js";
import { encodeSignatureDatabase, sha256List } from "../../src/uefi/siglist.js";
import { repoPath } from "./paths.js";

export const REAL_BOOT_VECTOR = "debian-shim-grub-kernel-ms-secureboot";

export interface BootConfig {
  /** false: the SecureBoot variable measured as 00. */
  readonly secureBoot?: boolean;
  /** true: the firmware runs in debug mode ("UEFI Debug Mode" action in PCR 7). */
  readonly debugMode?: boolean;
  /** The kernel's arguments (after the kernel path) in grub.cfg; default: the real boot's. */
  readonly kernelCmdline?: string;
  /** false: the kernel arguments without their IOMMU options (intel_iommu=, amd_iommu=, iommu=). */
  readonly iommu?: boolean;
  /** Another kernel: a label from which its image (PCR 4) and file (PCR 9) digests are derived. */
  readonly bootChain?: string;
  /** Another Secure Boot db: a label whose SHA-256 is appended to db as an EFI_CERT_SHA256 entry. */
  readonly db?: string;
}

export interface BootDigest {
  readonly alg: number;
  readonly digest: Uint8Array;
}

/** One event after the log's Spec ID header, with a digest for every bank of the log. */
export interface BootEvent {
  readonly pcr: number;
  readonly type: number;
  readonly data: Uint8Array;
  readonly digests: readonly BootDigest[];
}

interface RealBoot {
  readonly log: EventLog;
  readonly events: readonly BootEvent[];
  readonly grubCfg: string;
  readonly kernelPath: string;
  readonly kernelArgs: string;
  /** Indices (into `events`) of the events the variants edit. */
  readonly at: {
    readonly secureBoot: number;
    readonly db: number;
    readonly firstPcr7: number;
    readonly grubCfg: number;
    readonly grubStrings: readonly number[];
    readonly kernelImages: readonly number[];
    readonly kernelFiles: readonly number[];
  };
}

const latin1 = (b: Uint8Array) => Buffer.from(b).toString("latin1");
const withoutNul = (s: string) => s.replace(/\0+$/, "");
const IOMMU_OPTION = /^(?:intel_iommu|amd_iommu|iommu)=/;
/** Owner GUID of the entry the `db` variant adds. */
const TEST_OWNER = "b01a7e57-0000-4000-8000-000000000db0";

let real: RealBoot | undefined;

function vectorFile(name: string): Buffer {
  return readFileSync(repoPath("test/vectors/eventlog", REAL_BOOT_VECTOR, name));
}

/** Digests of `bytes` (a string: its latin1 bytes) in every bank of `log`. */
function hashIn(log: EventLog, bytes: Uint8Array | string): BootDigest[] {
  const b = typeof bytes === "string" ? new Uint8Array(Buffer.from(bytes, "latin1")) : bytes;
  return log.banks.map((bank) => {
    const digest = digestOf(bank.alg, b);
    if (!digest) throw new Error(`cannot hash the ${bank.bank} bank on this host`);
    return { alg: bank.alg, digest };
  });
}

/** Digests of `bytes` in every bank of the real log. */
function measure(bytes: Uint8Array | string): BootDigest[] {
  return hashIn(realBoot().log, bytes);
}

function sameDigests(a: readonly BootDigest[], b: readonly BootDigest[]): boolean {
  return (
    a.length === b.length &&
    a.every((d, i) => d.alg === b[i]?.alg && Buffer.from(d.digest).equals(b[i]?.digest ?? new Uint8Array()))
  );
}

function grubText(e: BootEvent): { prefix: string; text: string } | undefined {
  if (e.pcr !== 8 || e.type !== EventType.EV_IPL) return undefined;
  const s = latin1(e.data);
  const prefix = GRUB_PREFIXES.find((p) => s.startsWith(p));
  return prefix ? { prefix, text: withoutNul(s.slice(prefix.length)) } : undefined;
}

function variableName(e: BootEvent): string | undefined {
  if (e.type !== EventType.EV_EFI_VARIABLE_DRIVER_CONFIG) return undefined;
  return Buffer.from(decode(UEFI_VARIABLE_DATA, e.data).UnicodeName).toString("utf16le");
}

function loadRealBoot(): RealBoot {
  const bytes = new Uint8Array(vectorFile("binary_bios_measurements"));
  const log = parseEventLog(bytes);
  const grubCfg = vectorFile("grub.cfg").toString("latin1");
  const provenance = JSON.parse(vectorFile("provenance.json").toString("utf8")) as {
    bootChainSha256: { vmlinuz: string };
  };
  const events: BootEvent[] = log.events.slice(1).map((e: TcgEvent) => ({
    pcr: e.pcrIndex,
    type: e.eventType,
    data: e.data,
    digests: e.digests.map((d) => ({ alg: d.alg, digest: d.digest })),
  }));
  const rule = (i: number, measured: Uint8Array | string, what: string) => {
    if (!sameDigests(hashIn(log, measured), events[i]!.digests))
      throw new Error(`${REAL_BOOT_VECTOR}: ${what} does not reproduce event ${i + 1}'s digests`);
  };
  const find = (pred: (e: BootEvent) => boolean, what: string): number => {
    const i = events.findIndex(pred);
    if (i < 0) throw new Error(`${REAL_BOOT_VECTOR}: no ${what} in the log`);
    return i;
  };

  const secureBoot = find((e) => e.pcr === 7 && variableName(e) === "SecureBoot", "SecureBoot variable");
  rule(secureBoot, events[secureBoot]!.data, "SHA(UEFI_VARIABLE_DATA) of SecureBoot");
  const db = find((e) => e.pcr === 7 && variableName(e) === "db", "db variable");
  rule(db, events[db]!.data, "SHA(UEFI_VARIABLE_DATA) of db");
  const action = find((e) => e.type === EventType.EV_EFI_ACTION, "EV_EFI_ACTION");
  rule(action, events[action]!.data, "SHA(EV_EFI_ACTION data)");
  const firstPcr7 = find((e) => e.pcr === 7, "PCR 7 event");

  const grubStrings: number[] = [];
  events.forEach((e, i) => {
    const g = grubText(e);
    if (!g) return;
    rule(i, g.text, `grub's SHA(text after '${g.prefix}' without the NUL)`);
    grubStrings.push(i);
  });
  const cmdline = find((e) => grubText(e)?.prefix === "kernel_cmdline: ", "kernel_cmdline");
  const line = grubText(events[cmdline]!)!.text;
  const space = line.indexOf(" ");
  const kernelPath = space < 0 ? line : line.slice(0, space);
  const kernelArgs = space < 0 ? "" : line.slice(space + 1);
  const linux = find((e) => grubText(e)?.text.startsWith(`linux ${kernelPath}`) === true, "grub linux");

  const grubCfgAt = find(
    (e) => e.pcr === 9 && e.type === EventType.EV_IPL && withoutNul(latin1(e.data)).endsWith("/grub.cfg"),
    "grub.cfg read",
  );
  rule(grubCfgAt, grubCfg, "SHA(grub.cfg)");
  const kernelFiles = events
    .map((e, i) => ({ e, i }))
    .filter(
      ({ e }) =>
        e.pcr === 9 && e.type === EventType.EV_IPL && withoutNul(latin1(e.data)).endsWith(kernelPath),
    )
    .map(({ i }) => i);
  for (const i of kernelFiles) {
    const sha256 = events[i]!.digests.find((d) => d.alg === TPM_ALG.SHA256)!.digest;
    if (Buffer.from(sha256).toString("hex") !== provenance.bootChainSha256.vmlinuz)
      throw new Error(`${REAL_BOOT_VECTOR}: event ${i + 1} is not the SHA-256 of the kernel file booted`);
  }
  const kernelImages = events
    .map((e, i) => ({ e, i }))
    .filter(
      ({ e, i }) =>
        i > linux && i < cmdline && e.pcr === 4 && e.type === EventType.EV_EFI_BOOT_SERVICES_APPLICATION,
    )
    .map(({ i }) => i);
  if (kernelFiles.length === 0 || kernelImages.length === 0)
    throw new Error(`${REAL_BOOT_VECTOR}: the kernel's PCR 4 / PCR 9 measurements are not where expected`);

  const loaded: RealBoot = {
    log,
    events,
    grubCfg,
    kernelPath,
    kernelArgs,
    at: { secureBoot, db, firstPcr7, grubCfg: grubCfgAt, grubStrings, kernelImages, kernelFiles },
  };
  if (!Buffer.from(encodeLogOf(log, events)).equals(bytes))
    throw new Error(`${REAL_BOOT_VECTOR}: the events do not re-encode to the stored log`);
  return loaded;
}

function realBoot(): RealBoot {
  real ??= loadRealBoot();
  return real;
}

/** The kernel arguments of the real boot (after the kernel path). */
export function realKernelArgs(): string {
  return realBoot().kernelArgs;
}

function setVariableData(e: BootEvent, data: Uint8Array): BootEvent {
  const v = decode(UEFI_VARIABLE_DATA, e.data);
  const bytes = encode(UEFI_VARIABLE_DATA, { ...v, VariableDataLength: data.length, VariableData: data });
  return { ...e, data: bytes, digests: measure(bytes) };
}

/** A grub PCR 8 string event with other text, its digests computed as grub computes them. */
export function withGrubText(e: BootEvent, text: string): BootEvent {
  const g = grubText(e);
  if (!g) throw new Error("not a grub string event");
  return {
    ...e,
    data: new Uint8Array(Buffer.from(`${g.prefix}${text}\0`, "latin1")),
    digests: measure(text),
  };
}

/** The events of one boot, in order (the real boot, edited as `c` asks). */
export function bootEvents(c: BootConfig = {}): BootEvent[] {
  const r = realBoot();
  const ev = [...r.events];
  if (c.secureBoot === false) {
    const v = decode(UEFI_VARIABLE_DATA, ev[r.at.secureBoot]!.data);
    if (v.VariableData.length !== 1 || v.VariableData[0] !== 1)
      throw new Error("the real boot's SecureBoot variable is not 01");
    ev[r.at.secureBoot] = setVariableData(ev[r.at.secureBoot]!, Uint8Array.of(0));
  }
  if (c.db !== undefined) {
    const v = decode(UEFI_VARIABLE_DATA, ev[r.at.db]!.data);
    const extra = encodeSignatureDatabase([
      sha256List([new Uint8Array(createHash("sha256").update(c.db).digest())], TEST_OWNER),
    ]);
    ev[r.at.db] = setVariableData(ev[r.at.db]!, Buffer.concat([v.VariableData, extra]));
  }
  if (c.bootChain !== undefined) {
    for (const i of r.at.kernelImages)
      ev[i] = { ...ev[i]!, digests: measure(`${c.bootChain}: kernel PE/Authenticode`) };
    for (const i of r.at.kernelFiles) ev[i] = { ...ev[i]!, digests: measure(`${c.bootChain}: kernel file`) };
  }
  let args = c.kernelCmdline ?? r.kernelArgs;
  if (c.iommu === false)
    args = args
      .split(/\s+/)
      .filter((o) => o !== "" && !IOMMU_OPTION.test(o))
      .join(" ");
  if (args !== r.kernelArgs) {
    const from = `${r.kernelPath} ${r.kernelArgs}`;
    const to = args === "" ? r.kernelPath : `${r.kernelPath} ${args}`;
    const replaceOnce = (s: string, what: string) => {
      const parts = s.split(from);
      if (parts.length !== 2)
        throw new Error(`${what} holds the kernel command line ${parts.length - 1} times`);
      return parts.join(to);
    };
    const cfg = replaceOnce(r.grubCfg, "grub.cfg");
    ev[r.at.grubCfg] = { ...ev[r.at.grubCfg]!, digests: measure(cfg) };
    let edited = 0;
    for (const i of r.at.grubStrings) {
      const g = grubText(ev[i]!)!;
      if (!g.text.includes(from)) continue;
      ev[i] = withGrubText(ev[i]!, replaceOnce(g.text, `event ${i + 1}`));
      edited++;
    }
    if (edited < 2) throw new Error(`only ${edited} grub strings carry the kernel command line`);
  }
  if (c.debugMode) {
    const data = new Uint8Array(Buffer.from("UEFI Debug Mode", "latin1"));
    ev.splice(r.at.firstPcr7, 0, { pcr: 7, type: EventType.EV_EFI_ACTION, data, digests: measure(data) });
  }
  return ev;
}

function encodeLogOf(log: EventLog, events: readonly BootEvent[]): Uint8Array {
  const w = new Writer(log.raw.length + 4096);
  w.bytes(log.events[0]!.raw);
  const codec = TCG_PCR_EVENT2(new Map(log.banks.map((b) => [b.alg, b.digestSize])));
  for (const e of events) {
    codec.encode(w, {
      PCRIndex: e.pcr,
      EventType: e.type,
      Digests: e.digests.map((d) => ({ hashAlg: d.alg, digest: d.digest })),
      Event: e.data,
    });
  }
  return w.finish();
}

/** A crypto-agile log of `events` under the real log's Spec ID header (its four banks). */
export function encodeLog(events: readonly BootEvent[]): Uint8Array {
  return encodeLogOf(realBoot().log, events);
}

/** Extends every measured event's sha256 digest (the bank HGS quotes) into the TPM, in order. */
export async function extendBoot(tpm: Tpm, events: readonly BootEvent[]): Promise<void> {
  for (const e of events) {
    if (e.type === EventType.EV_NO_ACTION) continue;
    const d = e.digests.find((x) => x.alg === TPM_ALG.SHA256);
    if (!d) throw new Error(`event on PCR ${e.pcr} has no sha256 digest`);
    await tpm.pcrExtend(e.pcr, [{ hashAlg: TPM_ALG.SHA256, digest: d.digest }]);
  }
}
