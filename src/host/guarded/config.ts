/**
 * The guarded host's HGS client configuration (Hyper-V `Set-HgsClientConfiguration`), kept in
 * `<state>/host/hgs-client.json`. It holds no secret: URLs, the TLS trust anchor (PEM), the
 * attestation mode and, for TPM mode, where the TPM and the event log are.
 */
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../../io/atomic.js";
import { hostGuardError } from "./errors.js";

export type HostMode = "Local" | "HostGuardianService";
export type AttestationMode = "key" | "tpm";

export interface HgsClientConfig {
  readonly version: 1;
  readonly mode: HostMode;
  /** Primary HGS (attestation and key protection share one base URL in Bulwark's HGS). */
  readonly hgsUrl?: string;
  /** Tried in order when the primary does not answer. */
  readonly fallbackUrls: readonly string[];
  /** PEM of the HGS TLS certificate or its CA; absent = the system store. */
  readonly caPem?: string;
  readonly attestationMode: AttestationMode;
  /** TPM mode: the TPM target (`device:/dev/tpmrm0`, `swtpm:host=…,port=…`). */
  readonly tpm?: string;
  /** TPM mode: the TCG event log of this host's boot. */
  readonly eventLog?: string;
  /** Re-attest when less than this fraction of the health certificate's lifetime remains. */
  readonly renewFraction: number;
  /** Per-request timeout towards HGS. */
  readonly timeoutMs: number;
}

export const DEFAULT_RENEW_FRACTION = 0.25;
export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_EVENT_LOG = "/sys/kernel/security/tpm0/binary_bios_measurements";

export function hostDir(stateDir: string): string {
  return path.join(path.resolve(stateDir), "host");
}

export function configPath(stateDir: string): string {
  return path.join(hostDir(stateDir), "hgs-client.json");
}

export const LOCAL_CONFIG: HgsClientConfig = {
  version: 1,
  mode: "Local",
  fallbackUrls: [],
  attestationMode: "key",
  renewFraction: DEFAULT_RENEW_FRACTION,
  timeoutMs: DEFAULT_TIMEOUT_MS,
};

function bad(message: string, details: Record<string, unknown> = {}): never {
  throw hostGuardError("HOSTGUARD_ERR_CONFIG", message, details);
}

function checkUrl(u: unknown, what: string): string {
  if (typeof u !== "string") bad(`${what} must be a URL`);
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    bad(`${what} is not a URL: '${u}'`);
  }
  // HTTPS only: the released keys are encrypted to the key-release key anyway, but the host must
  // not learn its fabric's answers (refusals, protectors) from whoever sits on the path.
  if (url.protocol !== "https:") bad(`${what} must be an https:// URL (got '${u}')`);
  return u;
}

/** Validates a configuration object (from disk or from the command line). */
export function validateConfig(c: unknown): HgsClientConfig {
  if (typeof c !== "object" || c === null) bad("the HGS client configuration is not an object");
  const o = c as Record<string, unknown>;
  if (o["version"] !== 1) bad(`unsupported configuration version ${String(o["version"])}`);
  const mode = o["mode"];
  if (mode !== "Local" && mode !== "HostGuardianService") bad("mode must be Local or HostGuardianService");
  const attestationMode = o["attestationMode"] ?? "key";
  if (attestationMode !== "key" && attestationMode !== "tpm") bad("attestationMode must be key or tpm");
  const fallbackUrls = o["fallbackUrls"] ?? [];
  if (!Array.isArray(fallbackUrls)) bad("fallbackUrls must be a list");
  const renewFraction = o["renewFraction"] ?? DEFAULT_RENEW_FRACTION;
  if (typeof renewFraction !== "number" || !(renewFraction > 0 && renewFraction < 1))
    bad("renewFraction must be a number between 0 and 1 (exclusive)");
  const timeoutMs = o["timeoutMs"] ?? DEFAULT_TIMEOUT_MS;
  if (typeof timeoutMs !== "number" || !Number.isInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 300_000)
    bad("timeoutMs must be an integer from 100 to 300000");
  const str = (k: string): string | undefined => {
    const v = o[k];
    if (v === undefined) return undefined;
    if (typeof v !== "string" || v.length === 0) bad(`${k} must be a non-empty string`);
    return v;
  };
  const caPem = str("caPem");
  if (caPem !== undefined && !caPem.includes("-----BEGIN CERTIFICATE-----"))
    bad("caPem must hold a PEM certificate");
  const hgsUrl = o["hgsUrl"] === undefined ? undefined : checkUrl(o["hgsUrl"], "hgsUrl");
  if (mode === "HostGuardianService" && !hgsUrl) bad("HostGuardianService mode needs an HGS URL (--hgs URL)");
  const tpm = str("tpm");
  const eventLog = str("eventLog");
  if (mode === "HostGuardianService" && attestationMode === "tpm" && !tpm)
    bad("TPM attestation mode needs a TPM target (--tpm device:/dev/tpmrm0 | swtpm:host=…,port=…)");
  return {
    version: 1,
    mode,
    ...(hgsUrl ? { hgsUrl } : {}),
    fallbackUrls: fallbackUrls.map((u, i) => checkUrl(u, `fallbackUrls[${i}]`)),
    ...(caPem ? { caPem } : {}),
    attestationMode,
    ...(tpm ? { tpm } : {}),
    ...(eventLog ? { eventLog } : {}),
    renewFraction,
    timeoutMs,
  };
}

/** The stored configuration; a host never configured is in local mode. */
export async function readConfig(stateDir: string): Promise<HgsClientConfig> {
  let text: string;
  try {
    text = await readFile(configPath(stateDir), "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return LOCAL_CONFIG;
    throw e;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    bad(`${configPath(stateDir)} is not JSON`);
  }
  return validateConfig(parsed);
}

export async function writeConfig(stateDir: string, c: HgsClientConfig): Promise<HgsClientConfig> {
  const v = validateConfig(c);
  await mkdir(hostDir(stateDir), { recursive: true, mode: 0o700 });
  await writeFileAtomic(configPath(stateDir), `${JSON.stringify(v, null, 2)}\n`, 0o600);
  return v;
}

/** Primary first, then fallbacks (what HgsClient tries in order). */
export function hgsUrls(c: HgsClientConfig): string[] {
  return c.hgsUrl ? [c.hgsUrl, ...c.fallbackUrls.filter((u) => u !== c.hgsUrl)] : [];
}
