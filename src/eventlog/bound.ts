/**
 * The facts a decision may use: only those proven by their digest AND sitting in a PCR whose
 * replay equals the TPM's value ({@link isBound}). Everything else is left out (null or absent),
 * so a policy written against {@link BoundFacts} cannot rest on an unproven claim by accident.
 * Boot-application and grub-file digests need no data proof — the digest is the measurement —
 * but their PCR must still be bound.
 */
import type { EntryDescription } from "../uefi/siglist.js";
import type { Evidence } from "./facts.js";
import { isBound, type EventLogVerdict } from "./verdict.js";

export interface BoundFacts {
  /** SecureBoot variable value; null when not measured, not proven, or PCR 7 not bound. */
  readonly secureBoot: boolean | null;
  /** PK, KEK, db, dbx... as measured (SHA-256 of the variable data and its entries). */
  readonly secureBootDatabases: readonly {
    name: string;
    sha256: string;
    entries: readonly EntryDescription[];
  }[];
  /** The entries that verified boot images (db certificate, shim's vendor certificate, ...). */
  readonly authorities: readonly { variable: string; sha256: string; entry: EntryDescription | null }[];
  /** Image digests per bank, in load order (PCR 4 bound). */
  readonly bootApplications: readonly Readonly<Record<string, string>>[];
  readonly kernelCommandLines: readonly string[];
  readonly grubCommands: readonly string[];
  /** File digests grub measured into PCR 9 (labels omitted: they are not proven). */
  readonly grubFileDigests: readonly Readonly<Record<string, string>>[];
  readonly sbatLevel: string | null;
  /** True when PCRs 0..7 each carry a proven, bound, normal separator. */
  readonly separatorsOk: boolean;
  readonly exitBootServices: boolean;
  /** PCRs the facts above were allowed to come from. */
  readonly boundPcrs: readonly number[];
}

export function boundFacts(v: EventLogVerdict): BoundFacts {
  const f = v.facts;
  const b = (x: Evidence) => isBound(x, v.boundPcrs);
  const pcrBound = (pcr: number) => v.boundPcrs.includes(pcr);
  const separatorsOk = [0, 1, 2, 3, 4, 5, 6, 7].every((pcr) => {
    const s = f.separators.filter((x) => x.pcr === pcr);
    return s.length > 0 && s.every((x) => x.kind === "normal" && b(x));
  });
  return {
    secureBoot: f.secureBoot && b(f.secureBoot) ? f.secureBoot.enabled : null,
    secureBootDatabases: f.secureBootVariables
      .filter((x) => b(x) && x.entries)
      .map((x) => ({ name: x.name, sha256: x.sha256, entries: x.entries ?? [] })),
    authorities: f.authorities
      .filter(b)
      .map((a) => ({ variable: a.variable, sha256: a.sha256, entry: a.entry })),
    bootApplications: f.bootApplications.filter((a) => pcrBound(a.pcr)).map((a) => a.digests),
    kernelCommandLines: f.kernelCommandLines.filter(b).map((k) => k.text),
    grubCommands: f.grubCommands.filter(b).map((k) => k.text),
    grubFileDigests: f.grubFiles.filter((g) => pcrBound(g.pcr)).map((g) => g.digests),
    sbatLevel: f.shim.sbatLevel && b(f.shim.sbatLevel) ? f.shim.sbatLevel.text : null,
    separatorsOk,
    exitBootServices: f.exitBootServices !== null && b(f.exitBootServices),
    boundPcrs: v.boundPcrs,
  };
}
