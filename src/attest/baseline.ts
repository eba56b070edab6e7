/**
 * Baselines (format `bulwark-hgs-baseline/v1`, documented in docs/hgs.md): PCR values of a
 * known-good host, captured by `bulwark host baseline capture` and registered with
 * `bulwark hgs baseline add`. Two kinds:
 *   - `secureboot`:    PCR 7 (Secure Boot state, PK/KEK/db/dbx, authorities used) → Hgs_SecureBootSettings
 *   - `codeintegrity`: PCRs 4, 8, 9 (boot applications, grub commands and kernel command line,
 *                      kernel and initrd) → Hgs_CodeIntegrityPolicy
 * A host passes a policy when its quoted, replay-bound PCRs equal every PCR of at least one
 * registered baseline of that kind. `facts` is informative (shown to the admin, not compared).
 */
import { hgsError } from "./errors.js";
import { canonicalJson } from "./json.js";
import { sha256 } from "./host-key.js";

export const BASELINE_FORMAT = "bulwark-hgs-baseline/v1";
export type BaselineKind = "secureboot" | "codeintegrity";

export const BASELINE_PCRS: Readonly<Record<BaselineKind, readonly number[]>> = {
  secureboot: [7],
  codeintegrity: [4, 8, 9],
};

export interface Baseline {
  readonly format: typeof BASELINE_FORMAT;
  readonly kind: BaselineKind;
  readonly name: string;
  readonly bank: "sha256";
  /** PCR index (decimal string) → lowercase hex value. */
  readonly pcrs: Readonly<Record<string, string>>;
  readonly capturedAt?: string;
  readonly host?: string;
  readonly facts?: Readonly<Record<string, unknown>>;
}

function bad(message: string): never {
  throw hgsError("HGS_ERR_INVALID", `baseline: ${message}`);
}

export const MAX_BASELINE_CHARS = 256 * 1024;

/** Parses and checks a baseline document (total: a value or HGS_ERR_INVALID). */
export function parseBaseline(input: unknown): Baseline {
  let v = input;
  if (typeof v === "string") {
    if (v.length > MAX_BASELINE_CHARS) bad("too large");
    try {
      v = JSON.parse(v);
    } catch {
      bad("not JSON");
    }
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) bad("not a JSON object");
  const o = v as Record<string, unknown>;
  if (o.format !== BASELINE_FORMAT) bad(`format must be "${BASELINE_FORMAT}"`);
  if (o.kind !== "secureboot" && o.kind !== "codeintegrity")
    bad('kind must be "secureboot" or "codeintegrity"');
  const kind = o.kind;
  if (typeof o.name !== "string" || o.name.length === 0 || o.name.length > 256)
    bad("name must be 1..256 characters");
  if (o.bank !== "sha256") bad('bank must be "sha256"');
  if (o.pcrs === null || typeof o.pcrs !== "object" || Array.isArray(o.pcrs)) bad("pcrs must be an object");
  const pcrs: Record<string, string> = {};
  for (const [k, val] of Object.entries(o.pcrs as Record<string, unknown>)) {
    if (!BASELINE_PCRS[kind].map(String).includes(k))
      bad(`PCR ${k} does not belong to a ${kind} baseline (${BASELINE_PCRS[kind].join(", ")})`);
    if (typeof val !== "string" || !/^[0-9a-fA-F]{64}$/.test(val)) bad(`PCR ${k} must be 64 hex digits`);
    pcrs[k] = val.toLowerCase();
  }
  if (Object.keys(pcrs).length === 0) bad("pcrs is empty");
  if (kind === "secureboot" && !pcrs["7"]) bad("a secureboot baseline needs PCR 7");
  const out: Baseline = {
    format: BASELINE_FORMAT,
    kind,
    name: o.name,
    bank: "sha256",
    pcrs,
    ...(typeof o.capturedAt === "string" ? { capturedAt: o.capturedAt.slice(0, 64) } : {}),
    ...(typeof o.host === "string" ? { host: o.host.slice(0, 256) } : {}),
    ...(o.facts && typeof o.facts === "object" && !Array.isArray(o.facts)
      ? { facts: o.facts as Record<string, unknown> }
      : {}),
  };
  return out;
}

/** Stable id: SHA-256 of the compared content (kind, bank, PCR values), hex, first 32 digits. */
export function baselineId(b: Baseline): string {
  return sha256(Buffer.from(canonicalJson({ kind: b.kind, bank: b.bank, pcrs: b.pcrs })))
    .toString("hex")
    .slice(0, 32);
}

/** Does `quoted` (PCR index → hex) match every PCR of `b`? */
export function matchesBaseline(b: Baseline, quoted: ReadonlyMap<number, string>): boolean {
  return Object.entries(b.pcrs).every(([k, v]) => quoted.get(Number(k)) === v);
}

/**
 * Builds a baseline from a known-good host's sha256 PCR values (what `bulwark host baseline
 * capture` writes): the kind's PCRs are taken from `pcrs`, which must hold each of them.
 */
export function makeBaseline(
  kind: BaselineKind,
  name: string,
  pcrs: ReadonlyMap<number, Uint8Array>,
  extra: {
    readonly host?: string;
    readonly facts?: Readonly<Record<string, unknown>>;
    readonly capturedAt?: Date;
  } = {},
): Baseline {
  const values: Record<string, string> = {};
  for (const i of BASELINE_PCRS[kind]) {
    const v = pcrs.get(i);
    if (!v || v.length !== 32) bad(`no sha256 value for PCR ${i}`);
    values[String(i)] = Buffer.from(v).toString("hex");
  }
  return parseBaseline({
    format: BASELINE_FORMAT,
    kind,
    name,
    bank: "sha256",
    pcrs: values,
    capturedAt: (extra.capturedAt ?? new Date()).toISOString(),
    ...(extra.host !== undefined ? { host: extra.host } : {}),
    ...(extra.facts !== undefined ? { facts: extra.facts } : {}),
  });
}
