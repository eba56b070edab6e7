/**
 * Administration use cases (the admin API and the CLI's `hgs` verbs): the admin credential,
 * settings, hosts (host-key and TPM registration, revocation), trusted TPM certificates,
 * policies, baselines, and reading and verifying the audit log. Every change is written in one
 * transaction with its audit entry.
 */
import { X509Certificate } from "node:crypto";
import { hgsError } from "../attest/errors.js";
import { baselineId, parseBaseline, type Baseline } from "../attest/baseline.js";
import type { AttestationMode } from "../attest/health.js";
import { checkHostKey, keyId, readPublicKey, sha256, spkiDer } from "../attest/host-key.js";
import { policyById } from "../attest/policies.js";
import { checkEkCertificate } from "../attest/tpm-judge.js";
import { ekHostId, tpm2bPublicBytes } from "../attest/tpm-wire.js";
import { checkEkPublic } from "../tpm/verify/ak.js";
import { loadPublicKey } from "../tpm/verify/keys.js";
import {
  appendAudit,
  listAudit,
  requireIntactAudit,
  verifyAuditChain,
  type AuditEntry,
  type AuditEvent,
  type AuditVerdict,
} from "./audit.js";
import type { HgsContext } from "./context.js";
import { hashCredential } from "./directory.js";
import { checkName } from "./names.js";
import { checkSettingsPatch, type HgsSettings } from "./settings.js";
import type { HostRow } from "./store/repo.js";

export async function checkAdmin(ctx: HgsContext, credential: string | undefined): Promise<void> {
  if (!credential) throw hgsError("HGS_ERR_UNAUTHENTICATED", "the admin credential is missing");
  if (!(await ctx.repo.adminCredentialExists(hashCredential(credential))))
    throw hgsError("HGS_ERR_UNAUTHENTICATED", "the admin credential is not valid");
}

// Settings ----------------------------------------------------------------------------------

export function readSettings(ctx: HgsContext): Promise<HgsSettings> {
  return ctx.repo.settings();
}

export async function updateSettings(ctx: HgsContext, patch: Partial<HgsSettings>): Promise<HgsSettings> {
  checkSettingsPatch(patch);
  return ctx.repo.transaction(async (tx) => {
    const before = await tx.settings();
    const after: HgsSettings = { ...before, ...patch };
    await tx.updateSettings(after);
    const event: AuditEvent =
      patch.mode !== undefined && patch.mode !== before.mode ? "mode.changed" : "config.changed";
    await appendAudit(tx, event, null, { before, after });
    return after;
  });
}

// Hosts -------------------------------------------------------------------------------------

export interface HostRecord {
  readonly id: string;
  readonly name: string;
  readonly kind: AttestationMode;
  readonly publicKey?: string;
  readonly ekPublic?: string;
  readonly ekCertificate?: string;
  readonly akPublic?: string;
  readonly revokedAt: string | null;
  /** Health certificates issued before this instant are refused (the host's last restore). */
  readonly certificatesNotBefore: string | null;
  readonly createdAt: string;
}

function b64(b: Buffer | null): { readonly value: string } | undefined {
  return b ? { value: b.toString("base64") } : undefined;
}

function toHostRecord(r: HostRow): HostRecord {
  const [publicKey, ekPublic, ekCertificate, akPublic] = [
    r.publicKey,
    r.ekPublic,
    r.ekCertificate,
    r.akPublic,
  ].map(b64);
  return {
    id: r.id,
    name: r.name,
    kind: r.kind,
    ...(publicKey ? { publicKey: publicKey.value } : {}),
    ...(ekPublic ? { ekPublic: ekPublic.value } : {}),
    ...(ekCertificate ? { ekCertificate: ekCertificate.value } : {}),
    ...(akPublic ? { akPublic: akPublic.value } : {}),
    revokedAt: r.revokedAt === null ? null : new Date(r.revokedAt).toISOString(),
    certificatesNotBefore:
      r.certificatesNotBefore === null ? null : new Date(r.certificatesNotBefore).toISOString(),
    createdAt: new Date(r.createdAt).toISOString(),
  };
}

export async function getHost(ctx: HgsContext, id: string): Promise<HostRecord> {
  const r = await ctx.repo.host(id);
  if (!r) throw hgsError("HGS_ERR_NOT_FOUND", `no host ${id}`);
  return toHostRecord(r);
}

export async function listHosts(ctx: HgsContext): Promise<HostRecord[]> {
  return (await ctx.repo.hosts()).map(toHostRecord);
}

/** Inserts a host with its audit entry in one transaction; a duplicate is HGS_ERR_EXISTS. */
async function registerHost(
  ctx: HgsContext,
  row: Omit<HostRow, "revokedAt" | "certificatesNotBefore">,
  detail: Record<string, unknown>,
): Promise<HostRecord> {
  await ctx.repo.transaction(async (tx) => {
    if (await tx.hostExists(row.id))
      throw hgsError("HGS_ERR_EXISTS", `host ${row.id} is already registered`, { hostId: row.id });
    await tx.insertHost(row);
    await appendAudit(tx, "host.registered", row.id, detail);
  });
  return getHost(ctx, row.id);
}

export async function addKeyHost(ctx: HgsContext, name: string, publicKeyText: string): Promise<HostRecord> {
  checkName(name, "host name");
  const key = readPublicKey(publicKeyText, "the host public key");
  checkHostKey(key);
  return registerHost(
    ctx,
    {
      id: keyId(key),
      name,
      kind: "key",
      publicKey: spkiDer(key),
      ekPublic: null,
      ekCertificate: null,
      akPublic: null,
      createdAt: Date.now(),
    },
    { name, kind: "key" },
  );
}

function readCertificate(bytes: Uint8Array): X509Certificate {
  const text = Buffer.from(bytes).toString("latin1");
  return new X509Certificate(text.includes("-----BEGIN") ? text : Buffer.from(bytes));
}

/** Registers a TPM host by its EK public (TPM2B_PUBLIC, or TPMT_PUBLIC) and optional EK certificate. */
export async function addTpmHost(
  ctx: HgsContext,
  name: string,
  ekPublic: Uint8Array,
  ekCertificate?: Uint8Array,
): Promise<HostRecord> {
  checkName(name, "host name");
  let loaded;
  try {
    loaded = loadPublicKey(ekPublic);
  } catch (e) {
    throw hgsError("HGS_ERR_INVALID", `the EK public is not readable: ${(e as Error).message}`);
  }
  if (!loaded.public)
    throw hgsError(
      "HGS_ERR_INVALID",
      "the EK public must be a TPM public area (TPM2B_PUBLIC), not a bare key",
    );
  const ek = loaded.public;
  const bad = checkEkPublic(ek.value).findings.filter((f) => f.severity === "error");
  if (bad.length > 0) {
    throw hgsError("HGS_ERR_INVALID", `not an endorsement key: ${bad.map((f) => f.id).join(", ")}`, {
      findings: bad,
    });
  }
  let certDer: Buffer | null = null;
  if (ekCertificate) {
    // DER is taken as given (checkEkCertificate reports one that does not parse); PEM is decoded.
    const text = Buffer.from(ekCertificate).toString("latin1");
    try {
      certDer = text.includes("-----BEGIN") ? new X509Certificate(text).raw : Buffer.from(ekCertificate);
    } catch {
      throw hgsError("HGS_ERR_INVALID", "the EK certificate is not PEM or DER");
    }
    const findings = checkEkCertificate(ek, certDer, await ctx.repo.tpmRootCertificates());
    if (findings.length > 0) {
      throw hgsError("HGS_ERR_INVALID", `EK certificate refused: ${findings.map((f) => f.id).join(", ")}`, {
        finding: findings[0]?.id,
        findings,
      });
    }
  } else if ((await ctx.repo.settings()).requireEkCertificate) {
    throw hgsError("HGS_ERR_INVALID", "this HGS requires an EK certificate (settings.requireEkCertificate)", {
      finding: "ek-certificate.missing",
    });
  }
  return registerHost(
    ctx,
    {
      id: ekHostId(ek),
      name,
      kind: "tpm",
      publicKey: null,
      ekPublic: tpm2bPublicBytes(ek),
      ekCertificate: certDer,
      akPublic: null,
      createdAt: Date.now(),
    },
    { name, kind: "tpm", ekCertificate: certDer !== null },
  );
}

/**
 * Revokes a host, or lifts its revocation. Restoring does not bring back the health
 * certificates the host held: every certificate issued before the restore instant stays
 * refused at key release (`health-certificate.issued-before-restore`), so the host attests again
 * first. The restore instant rather than the revocation's, so a certificate issued by an
 * attestation that was in flight while the host was being revoked is refused as well.
 */
export async function setRevoked(ctx: HgsContext, id: string, revoked: boolean): Promise<HostRecord> {
  await ctx.repo.transaction(async (tx) => {
    const now = Date.now();
    const found = revoked ? await tx.setHostRevokedAt(id, now) : await tx.restoreHost(id, now);
    if (!found) throw hgsError("HGS_ERR_NOT_FOUND", `no host ${id}`);
    await appendAudit(
      tx,
      revoked ? "host.revoked" : "host.restored",
      id,
      revoked ? {} : { certificatesNotBefore: now },
    );
  });
  return getHost(ctx, id);
}

// Trusted TPM certificates (EK certificate issuers) ---------------------------------------------

export async function addTpmRoot(
  ctx: HgsContext,
  certificate: Uint8Array,
): Promise<{ fingerprint: string; subject: string }> {
  let cert: X509Certificate;
  try {
    cert = readCertificate(certificate);
  } catch {
    throw hgsError("HGS_ERR_INVALID", "a TPM root must be an X.509 certificate (PEM or DER)");
  }
  const der = cert.raw;
  const fingerprint = sha256(der).toString("hex");
  await ctx.repo.transaction(async (tx) => {
    if (await tx.tpmRootExists(fingerprint))
      throw hgsError("HGS_ERR_EXISTS", `TPM root ${fingerprint} is already trusted`);
    await tx.insertTpmRoot({ fingerprint, certificate: der, createdAt: Date.now() });
    await appendAudit(tx, "tpm-root.added", null, { fingerprint, subject: cert.subject });
  });
  return { fingerprint, subject: cert.subject };
}

// Policies ----------------------------------------------------------------------------------

export interface PolicyRecord {
  readonly id: string;
  readonly enabled: boolean;
  readonly locked: boolean;
  readonly summary: string;
  readonly subStatus: string;
}

export async function listPolicies(ctx: HgsContext): Promise<PolicyRecord[]> {
  return (await ctx.repo.policies()).map((r) => {
    const def = policyById(r.id);
    return { ...r, summary: def?.summary ?? "", subStatus: def?.subStatus ?? "" };
  });
}

export async function setPolicy(ctx: HgsContext, id: string, enabled: boolean): Promise<void> {
  await ctx.repo.transaction(async (tx) => {
    const row = await tx.policy(id);
    if (!row) throw hgsError("HGS_ERR_NOT_FOUND", `no policy ${id}`);
    if (row.locked && !enabled) throw hgsError("HGS_ERR_POLICY_LOCKED", `policy ${id} is locked`);
    await tx.setPolicyEnabled(id, enabled);
    await appendAudit(tx, "policy.changed", null, { id, enabled });
  });
}

// Baselines ---------------------------------------------------------------------------------

export async function addBaseline(
  ctx: HgsContext,
  input: unknown,
): Promise<{ id: string; baseline: Baseline }> {
  const baseline = parseBaseline(input);
  checkName(baseline.name, "baseline name");
  const id = baselineId(baseline);
  await ctx.repo.transaction(async (tx) => {
    if (await tx.baselineExists(id))
      throw hgsError("HGS_ERR_EXISTS", `baseline ${id} is already registered`, { id });
    await tx.insertBaseline({
      id,
      kind: baseline.kind,
      name: baseline.name,
      body: JSON.stringify(baseline),
      createdAt: Date.now(),
    });
    await appendAudit(tx, "baseline.added", null, {
      id,
      kind: baseline.kind,
      name: baseline.name,
      pcrs: baseline.pcrs,
    });
  });
  return { id, baseline };
}

export async function listBaselines(ctx: HgsContext): Promise<{ id: string; baseline: Baseline }[]> {
  return (await ctx.repo.baselines()).map((r) => ({ id: r.id, baseline: parseBaseline(r.body) }));
}

export async function removeBaseline(ctx: HgsContext, id: string): Promise<void> {
  await ctx.repo.transaction(async (tx) => {
    if (!(await tx.deleteBaseline(id))) throw hgsError("HGS_ERR_NOT_FOUND", `no baseline ${id}`);
    await appendAudit(tx, "baseline.removed", null, { id });
  });
}

// Audit -------------------------------------------------------------------------------------

export function listAuditEntries(ctx: HgsContext, after = 0, limit = 1000): Promise<AuditEntry[]> {
  return listAudit(ctx.repo, { after, limit });
}

/** The audit chain's verdict against the signed checkpoints, intact or not (the admin API reports it as is). */
export function auditVerdict(ctx: HgsContext, expectHead?: string): Promise<AuditVerdict> {
  return verifyAuditChain(ctx.repo, expectHead, ctx.checkpoints.anchors());
}

/** Verifies the audit chain: the verdict when intact, HGS_ERR_AUDIT_BROKEN (details = verdict) when not. */
export async function verifyAudit(ctx: HgsContext, expectHead?: string): Promise<AuditVerdict> {
  return requireIntactAudit(await auditVerdict(ctx, expectHead));
}
