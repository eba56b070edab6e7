/**
 * Attestation on the guarded host (Hyper-V's HGS client): attests to HGS in host-key or TPM
 * mode, caches the health certificate 0600 in `<state>/host/attestation.json` with the last
 * attempt's outcome, and re-attests by itself at the next use once less than `renewFraction` of
 * the certificate's lifetime remains. `hostGuardStatus` reports like `Get-HgsClientConfiguration`
 * without touching the network.
 */
import { createPublicKey } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { isBulwarkError } from "../../core/errors.js";
import { HgsClient, HgsRefusal, type AttestOutcome } from "./hgs-client.js";
import { parseHealthCertificate } from "../../attest/health.js";
import { keyId, spkiDer } from "../../attest/host-key.js";
import { guardianThumbprint, importGuardianPublicPem } from "../../protector/guardian.js";
import { writeFileAtomic } from "../../io/atomic.js";
import { DEFAULT_EVENT_LOG, hgsUrls, hostDir, readConfig, type HgsClientConfig } from "./config.js";
import { hostGuardError, isHostGuardError, type HostGuardError } from "./errors.js";
import { hasHostKey, hostKey, keyReleaseKey } from "./identity.js";
import { openTpmHost, readEventLog } from "./tpm-host.js";

/** Hyper-V's AttestationStatus values, plus HGS's NonceInvalid and InvalidEvidence. */
export type HostAttestationStatus =
  | "Passed"
  | "InsecureHostConfiguration"
  | "UnauthorizedHost"
  | "InvalidEvidence"
  | "NonceInvalid"
  | "Expired"
  | "TransientError"
  | "NotConfigured";

export interface AttemptRecord {
  readonly at: string;
  readonly status: HostAttestationStatus;
  readonly subStatuses: readonly string[];
  readonly findings: readonly { readonly id: string; readonly message: string }[];
  /** The HGS URL that answered (absent when none did). */
  readonly url?: string;
  readonly error?: { readonly code: string; readonly message: string };
}

export interface AttestationRecord {
  readonly version: 1;
  readonly lastAttempt?: AttemptRecord;
  readonly healthCertificate?: string;
  /** What the certificate was obtained for: a changed configuration invalidates it. */
  readonly boundTo?: { readonly urls: readonly string[]; readonly mode: string };
  /** Signing thumbprints of the HGS guardians seen in `/host/v1/info`. */
  readonly hgsGuardians?: readonly { readonly name: string; readonly thumbprint: string }[];
  /** TPM mode: the AK name (hex) enrolled with HGS. */
  readonly enrolledAk?: string;
}

export function recordPath(stateDir: string): string {
  return path.join(hostDir(stateDir), "attestation.json");
}

export async function readRecord(stateDir: string): Promise<AttestationRecord> {
  try {
    const r = JSON.parse(await readFile(recordPath(stateDir), "utf8")) as AttestationRecord;
    return r.version === 1 ? r : { version: 1 };
  } catch {
    // Missing or corrupt: a cache, not a source of truth; attestation rebuilds it.
    return { version: 1 };
  }
}

async function writeRecord(stateDir: string, r: AttestationRecord): Promise<void> {
  await mkdir(hostDir(stateDir), { recursive: true, mode: 0o700 });
  await writeFileAtomic(recordPath(stateDir), `${JSON.stringify(r, null, 2)}\n`, 0o600);
}

export async function updateRecord(
  stateDir: string,
  patch: (r: AttestationRecord) => AttestationRecord,
): Promise<AttestationRecord> {
  const next = patch(await readRecord(stateDir));
  await writeRecord(stateDir, next);
  return next;
}

export async function clearRecord(stateDir: string): Promise<void> {
  await updateRecord(stateDir, (r) => ({
    version: 1,
    ...(r.enrolledAk ? { enrolledAk: r.enrolledAk } : {}),
  }));
}

export function openClient(c: HgsClientConfig): HgsClient {
  const urls = hgsUrls(c);
  if (urls.length === 0) throw hostGuardError("HOSTGUARD_ERR_LOCAL_MODE", "the host is in local mode");
  return new HgsClient({ urls, timeoutMs: c.timeoutMs, ...(c.caPem ? { ca: c.caPem } : {}) });
}

export interface CertificateInfo {
  readonly hostId: string;
  readonly mode: string;
  readonly validFrom: string;
  readonly validUntil: string;
  /** When the host re-attests (at the next use after this instant). */
  readonly renewAfter: string;
  readonly valid: boolean;
  readonly keyReleaseKeyMatches: boolean;
}

/** Reads the cached certificate's validity (the certificate is HGS's; the host only reads its claims). */
export function certificateInfo(
  cert: string,
  renewFraction: number,
  krkSpkiB64: string | undefined,
  now = Date.now(),
): CertificateInfo {
  const c = parseHealthCertificate(cert).claims;
  const from = c.nbf * 1000;
  const until = c.exp * 1000;
  const renewAt = until - renewFraction * (until - c.iat * 1000);
  return {
    hostId: c.sub,
    mode: c.mode,
    validFrom: new Date(from).toISOString(),
    validUntil: new Date(until).toISOString(),
    renewAfter: new Date(renewAt).toISOString(),
    valid: now >= from - 60_000 && now < until,
    keyReleaseKeyMatches: krkSpkiB64 === undefined || krkSpkiB64 === c.krk,
  };
}

function sameUrls(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return !!a && a.length === b.length && a.every((u, i) => u === b[i]);
}

/** A cached certificate still fit for use now (same configuration, key, not due for renewal). */
async function usableCertificate(
  stateDir: string,
  c: HgsClientConfig,
  r: AttestationRecord,
): Promise<string | undefined> {
  if (!r.healthCertificate || !r.boundTo) return undefined;
  if (!sameUrls(r.boundTo.urls, hgsUrls(c)) || r.boundTo.mode !== c.attestationMode) return undefined;
  let info: CertificateInfo;
  try {
    const krk = spkiDer(createPublicKey(await keyReleaseKey(stateDir))).toString("base64");
    info = certificateInfo(r.healthCertificate, c.renewFraction, krk);
  } catch {
    return undefined;
  }
  if (!info.valid || !info.keyReleaseKeyMatches || Date.now() >= Date.parse(info.renewAfter))
    return undefined;
  return r.healthCertificate;
}

function attemptFromError(e: unknown, urls: readonly string[]): AttemptRecord {
  const at = new Date().toISOString();
  if (e instanceof HgsRefusal) {
    const v = e.verdict;
    const finding = typeof e.details["finding"] === "string" ? (e.details["finding"] as string) : undefined;
    return {
      at,
      status: v ? (v.status as HostAttestationStatus) : "UnauthorizedHost",
      subStatuses: v ? [...v.subStatuses] : [],
      findings: v
        ? v.findings.filter((f) => f.severity === "error").map((f) => ({ id: f.id, message: f.message }))
        : finding
          ? [{ id: finding, message: e.message }]
          : [],
      error: { code: e.code, message: e.message },
    };
  }
  if (isBulwarkError(e) && e.code === "HGS_ERR_UNAVAILABLE") {
    return {
      at,
      status: "TransientError",
      subStatuses: [],
      findings: [],
      error: { code: e.code, message: e.message },
    };
  }
  const code = isBulwarkError(e) ? e.code : "CORE_ERR_INTERNAL";
  const message = e instanceof Error ? e.message : String(e);
  void urls;
  return { at, status: "TransientError", subStatuses: [], findings: [], error: { code, message } };
}

function failureError(a: AttemptRecord, cause: unknown): HostGuardError {
  if (a.status === "TransientError") {
    return hostGuardError(
      "HOSTGUARD_ERR_HGS_UNAVAILABLE",
      `attestation could not complete: ${a.error?.message ?? "no HGS answered"}`,
      { status: a.status },
      { cause },
    );
  }
  return hostGuardError(
    "HOSTGUARD_ERR_ATTESTATION_FAILED",
    `HGS refused attestation: ${a.status}${a.subStatuses.length ? ` (${a.subStatuses.join(", ")})` : ""}` +
      `${a.findings.length ? ` — ${a.findings.map((f) => f.id).join(", ")}` : ""}`,
    { status: a.status, subStatuses: a.subStatuses, findings: a.findings.map((f) => f.id) },
    { cause },
  );
}

async function attestTpmMode(
  stateDir: string,
  c: HgsClientConfig,
  client: HgsClient,
  record: AttestationRecord,
): Promise<{ outcome: AttestOutcome; enrolledAk: string }> {
  const krk = await keyReleaseKey(stateDir);
  const eventLog = await readEventLog(c.eventLog ?? DEFAULT_EVENT_LOG);
  const s = await openTpmHost(c.tpm as string);
  try {
    const akName = Buffer.from(s.ak.name).toString("hex");
    if (record.enrolledAk !== akName)
      await client.enrollAk({ hostId: s.hostId, tpm: s.tpm, ek: s.ek, ak: s.ak });
    const attest = () =>
      client.attestTpm({ hostId: s.hostId, tpm: s.tpm, ak: s.ak, keyReleaseKey: krk, eventLog });
    try {
      return { outcome: await attest(), enrolledAk: akName };
    } catch (e) {
      // HGS forgot the AK (re-registered host, new fabric): enroll again, once.
      const unbound =
        e instanceof HgsRefusal && (e.verdict?.findings ?? []).some((f) => f.id === "host.ak-not-bound");
      if (!unbound) throw e;
      await client.enrollAk({ hostId: s.hostId, tpm: s.tpm, ek: s.ek, ak: s.ak });
      return { outcome: await attest(), enrolledAk: akName };
    }
  } finally {
    await s.close();
  }
}

/**
 * Attests now (whatever the cache says), records the outcome and returns the health
 * certificate; throws HOSTGUARD_ERR_ATTESTATION_FAILED or HOSTGUARD_ERR_HGS_UNAVAILABLE.
 */
export async function attestNow(stateDir: string, c: HgsClientConfig, client: HgsClient): Promise<string> {
  const urls = hgsUrls(c);
  const record = await readRecord(stateDir);
  try {
    const info = await client.info();
    const g = importGuardianPublicPem(info.guardian);
    const hgsGuardians = [{ name: g.name, thumbprint: guardianThumbprint(g) }];
    let outcome: AttestOutcome;
    let enrolledAk = record.enrolledAk;
    if (c.attestationMode === "tpm") {
      const t = await attestTpmMode(stateDir, c, client, record);
      outcome = t.outcome;
      enrolledAk = t.enrolledAk;
    } else {
      outcome = await client.attestHostKey({
        hostKey: await hostKey(stateDir),
        keyReleaseKey: await keyReleaseKey(stateDir),
      });
    }
    await writeRecord(stateDir, {
      version: 1,
      lastAttempt: {
        at: new Date().toISOString(),
        status: "Passed",
        subStatuses: [],
        findings: [],
        url: urls[client.current] ?? "",
      },
      healthCertificate: outcome.healthCertificate,
      boundTo: { urls, mode: c.attestationMode },
      hgsGuardians,
      ...(enrolledAk ? { enrolledAk } : {}),
    });
    return outcome.healthCertificate;
  } catch (e) {
    if (isHostGuardError(e) && e.code !== "HOSTGUARD_ERR_TPM") throw e;
    const a = attemptFromError(e, urls);
    const answered = a.status !== "TransientError" ? { url: urls[client.current] ?? "" } : {};
    // A refusal ends the certificate's use (it may still be valid at HGS, but this host is no
    // longer judged healthy); a transient failure keeps a still-valid certificate.
    await updateRecord(stateDir, (r) => {
      const keep = a.status === "TransientError" && r.healthCertificate && r.boundTo;
      return {
        ...(keep
          ? r
          : {
              version: 1 as const,
              ...(r.hgsGuardians ? { hgsGuardians: r.hgsGuardians } : {}),
              ...(r.enrolledAk ? { enrolledAk: r.enrolledAk } : {}),
            }),
        lastAttempt: { ...a, ...answered },
      };
    });
    if (isHostGuardError(e)) throw e;
    throw failureError(a, e);
  }
}

/** The cached health certificate when still fit, otherwise a fresh attestation. */
export async function ensureHealthCertificate(
  stateDir: string,
  c: HgsClientConfig,
  client: HgsClient,
  opts: { force?: boolean } = {},
): Promise<string> {
  if (!opts.force) {
    const cached = await usableCertificate(stateDir, c, await readRecord(stateDir));
    if (cached) return cached;
  }
  return attestNow(stateDir, c, client);
}

/** What `bulwark host status` and `host attest` print (Get-HgsClientConfiguration's fields). */
export interface HostGuardStatus {
  readonly IsHostGuarded: boolean;
  readonly Mode: "Local" | "HostGuardianService";
  readonly KeyProtectionServerUrl: string | null;
  readonly AttestationServerUrl: string | null;
  readonly FallbackKeyProtectionServerUrl: readonly string[];
  readonly FallbackAttestationServerUrl: readonly string[];
  readonly AttestationOperationMode: "HostKey" | "TrustedPlatformModule" | null;
  readonly AttestationStatus: HostAttestationStatus;
  readonly AttestationSubstatus: readonly string[];
  readonly HostId: string | null;
  readonly HealthCertificate: CertificateInfo | null;
  readonly LastAttestation: AttemptRecord | null;
}

/** The host's guarded status from the configuration and the cache (no network). */
export async function hostGuardStatus(stateDir: string, now = Date.now()): Promise<HostGuardStatus> {
  const c = await readConfig(stateDir);
  const r = await readRecord(stateDir);
  const local = c.mode === "Local";
  const urls = hgsUrls(c);
  let cert: CertificateInfo | null = null;
  if (
    !local &&
    r.healthCertificate &&
    sameUrls(r.boundTo?.urls, urls) &&
    r.boundTo?.mode === c.attestationMode
  ) {
    try {
      const krk = spkiDer(createPublicKey(await keyReleaseKey(stateDir))).toString("base64");
      cert = certificateInfo(r.healthCertificate, c.renewFraction, krk, now);
    } catch {
      cert = null;
    }
  }
  let hostId: string | null = cert?.hostId ?? null;
  if (!hostId && !local && c.attestationMode === "key" && (await hasHostKey(stateDir)))
    hostId = keyId(createPublicKey(await hostKey(stateDir)));
  let status: HostAttestationStatus;
  let sub: readonly string[] = [];
  if (local) status = "NotConfigured";
  else if (cert?.valid && cert.keyReleaseKeyMatches) status = "Passed";
  else if (cert && !cert.valid && r.lastAttempt?.status === "Passed") status = "Expired";
  else if (r.lastAttempt && sameUrls(r.boundTo?.urls ?? urls, urls)) {
    status = r.lastAttempt.status;
    sub = r.lastAttempt.subStatuses;
    if (status === "Passed") status = cert ? "Expired" : "NotConfigured";
  } else status = "NotConfigured";
  return {
    IsHostGuarded: !local,
    Mode: c.mode,
    KeyProtectionServerUrl: c.hgsUrl ?? null,
    AttestationServerUrl: c.hgsUrl ?? null,
    FallbackKeyProtectionServerUrl: c.fallbackUrls,
    FallbackAttestationServerUrl: c.fallbackUrls,
    AttestationOperationMode: local
      ? null
      : c.attestationMode === "tpm"
        ? "TrustedPlatformModule"
        : "HostKey",
    AttestationStatus: status,
    AttestationSubstatus: sub,
    HostId: hostId,
    HealthCertificate: cert,
    LastAttestation: r.lastAttempt ?? null,
  };
}
