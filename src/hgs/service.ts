/**
 * The Host Guardian Service: admin operations, attestation and key release over one store.
 * The HTTP layer (http/server.ts) and the CLI (src/cli/cmd-hgs.ts) are thin layers over this
 * class. Every decision reads the shared database, so several nodes behind one PostgreSQL
 * database answer alike (nonces issued by one node are accepted by another, once).
 */
import { createPublicKey, randomBytes, type KeyObject } from "node:crypto";
import { isBulwarkError } from "../core/errors.js";
import { guardianThumbprint } from "../protector/guardian.js";
import { AuditWriter, appendAudit, listAudit, verifyAudit, type AuditEvent } from "./audit.js";
import { baselineId, parseBaseline, type Baseline } from "../attest/baseline.js";
import { checkName } from "./checks.js";
import {
  createDirectory,
  hashCredential,
  loadDirectory,
  type HgsDirectory,
  type InitOptions,
} from "./directory.js";
import { HgsError, refuse } from "../attest/errors.js";
import { issueHealthCertificate, signerId, type AttestationMode } from "../attest/health.js";
import {
  attestKeyMessage,
  checkHostKey,
  checkKeyReleaseKey,
  keyId,
  publicKeyFromSpki,
  readPublicKey,
  spkiDer,
  verifyHostSignature,
} from "../attest/host-key.js";
import { POLICIES, policyById } from "../attest/policies.js";
import type { WrappedKeysJson } from "../attest/release.js";
import { releaseKey } from "./service-release.js";
import * as tpm from "./service-tpm.js";
import { openDriver, parseDbSpec, type Driver, type Queryable, type Tx } from "./store/driver.js";
import { migrate } from "./store/migrations.js";
import { error, statusFor, verdictOf, type AttestationVerdict, type Finding } from "../attest/verdict.js";

export const NONCE_BYTES = 32;

export interface HgsSettings {
  readonly mode: AttestationMode;
  readonly healthCertificateLifetimeSeconds: number;
  readonly nonceTtlSeconds: number;
  /** Health certificates issued before this instant (ms since epoch, 0 = none) are refused. */
  readonly denyBefore: number;
  /** TPM mode: refuse hosts registered without an EK certificate (false = v1-style EK-public policy). */
  readonly requireEkCertificate: boolean;
}

export const DEFAULT_SETTINGS: HgsSettings = {
  mode: "tpm",
  healthCertificateLifetimeSeconds: 8 * 3600,
  nonceTtlSeconds: 120,
  denyBefore: 0,
  requireEkCertificate: false,
};

export interface HostRecord {
  readonly id: string;
  readonly name: string;
  readonly kind: AttestationMode;
  readonly publicKey?: string;
  readonly ekPublic?: string;
  readonly ekCertificate?: string;
  readonly akPublic?: string;
  readonly revokedAt: string | null;
  readonly createdAt: string;
}

interface HostRow {
  id: string;
  name: string;
  kind: string;
  public_key: Buffer | null;
  ek_public: Buffer | null;
  ek_certificate: Buffer | null;
  ak_public: Buffer | null;
  revoked_at: number | null;
  created_at: number;
}

function b64(b: Uint8Array | null | undefined): string | undefined {
  return b ? Buffer.from(b).toString("base64") : undefined;
}

function toHost(r: HostRow): HostRecord {
  return {
    id: r.id,
    name: r.name,
    kind: r.kind as AttestationMode,
    ...(r.public_key ? { publicKey: b64(r.public_key) as string } : {}),
    ...(r.ek_public ? { ekPublic: b64(r.ek_public) as string } : {}),
    ...(r.ek_certificate ? { ekCertificate: b64(r.ek_certificate) as string } : {}),
    ...(r.ak_public ? { akPublic: b64(r.ak_public) as string } : {}),
    revokedAt: r.revoked_at === null ? null : new Date(Number(r.revoked_at)).toISOString(),
    createdAt: new Date(Number(r.created_at)).toISOString(),
  };
}

export interface AttestResult {
  readonly verdict: AttestationVerdict;
  readonly healthCertificate?: string;
  readonly validUntil?: string;
}

export interface ReleaseRequest {
  readonly healthCertificate: unknown;
  readonly keyProtector: string;
  readonly requestId: string;
  readonly timestamp: number;
  readonly signature: string;
}

export interface ReleaseResult {
  readonly keyProtector: string;
  readonly protectorId: string;
  readonly oldKeyGeneration: number;
  readonly newKeyGeneration: number;
  readonly keys: WrappedKeysJson;
}

export class HgsService {
  readonly signerPublic: KeyObject;
  readonly signerId: string;
  readonly guardianThumbprint: string;
  /** Group-committed audit appends for the hot path. */
  readonly auditLog: AuditWriter;

  private constructor(
    readonly dir: HgsDirectory,
    readonly db: Driver,
  ) {
    this.signerPublic = createPublicKey(dir.attestationSigner);
    this.signerId = signerId(this.signerPublic);
    this.guardianThumbprint = guardianThumbprint(dir.guardian);
    this.auditLog = new AuditWriter(db);
  }

  /** Opens an initialised HGS directory and its database (migrating the schema when needed). */
  static async open(dirPath: string, dbOverride?: string): Promise<HgsService> {
    const dir = loadDirectory(dirPath);
    const spec = dbOverride ? parseDbSpec(dbOverride) : dir.db;
    if (!spec) throw new HgsError("HGS_ERR_CONFIG", "--db must be sqlite:PATH or postgres://…");
    const db = await openDriver(spec);
    try {
      await migrate(db);
      const s = await db.query(`SELECT value FROM config WHERE key = 'signerId'`);
      if (s.length === 0)
        throw new HgsError("HGS_ERR_CONFIG", "the database was never initialised by `bulwark hgs init`");
    } catch (e) {
      await db.close();
      throw e;
    }
    return new HgsService(dir, db);
  }

  /**
   * `bulwark hgs init`: creates the directory (keys, TLS, admin credential file) and initialises
   * the database. A database already initialised by another fabric is refused.
   */
  static async init(
    dirPath: string,
    opts: InitOptions = {},
  ): Promise<{ service: HgsService; adminCredential: string; adminCredentialFile: string }> {
    const spec = opts.db ? parseDbSpec(opts.db) : undefined;
    if (opts.db && !spec) throw new HgsError("HGS_ERR_CONFIG", "--db must be sqlite:PATH or postgres://…");
    const created = createDirectory(dirPath, opts);
    const db = await openDriver(created.dir.db);
    try {
      await migrate(db);
      await db.transaction(async (tx) => {
        const existing = await tx.query(`SELECT value FROM config WHERE key = 'signerId'`);
        if (existing.length > 0) {
          throw new HgsError(
            "HGS_ERR_EXISTS",
            "this database already belongs to an HGS fabric; copy that fabric's directory instead",
          );
        }
        const now = Date.now();
        const svcSigner = signerId(createPublicKey(created.dir.attestationSigner));
        await tx.run(`INSERT INTO config (key, value) VALUES ('signerId', ?)`, [svcSigner]);
        await tx.run(`INSERT INTO config (key, value) VALUES ('settings', ?)`, [
          JSON.stringify(DEFAULT_SETTINGS),
        ]);
        await tx.run(`INSERT INTO admin_credentials (id, hash, created_at) VALUES (?, ?, ?)`, [
          "initial",
          hashCredential(created.adminCredential),
          now,
        ]);
        for (const p of POLICIES) {
          await tx.run(`INSERT INTO policies (id, enabled, locked) VALUES (?, ?, ?)`, [
            p.id,
            p.enabledByDefault ? 1 : 0,
            p.locked ? 1 : 0,
          ]);
        }
        await appendAudit(tx, "config.changed", null, {
          init: true,
          signerId: svcSigner,
          guardian: guardianThumbprint(created.dir.guardian),
        });
      });
    } catch (e) {
      await db.close();
      throw e;
    }
    return {
      service: new HgsService(created.dir, db),
      adminCredential: created.adminCredential,
      adminCredentialFile: created.adminCredentialFile,
    };
  }

  async close(): Promise<void> {
    await this.auditLog.drain();
    await this.db.close();
  }

  // ----------------------------------------------------------------------------------------
  // Admin

  async checkAdmin(credential: string | undefined): Promise<void> {
    if (!credential) throw new HgsError("HGS_ERR_UNAUTHENTICATED", "the admin credential is missing");
    const rows = await this.db.query(`SELECT id FROM admin_credentials WHERE hash = ?`, [
      hashCredential(credential),
    ]);
    if (rows.length === 0) throw new HgsError("HGS_ERR_UNAUTHENTICATED", "the admin credential is not valid");
  }

  async settings(q: Queryable = this.db): Promise<HgsSettings> {
    const rows = await q.query<{ value: string }>(`SELECT value FROM config WHERE key = 'settings'`);
    return { ...DEFAULT_SETTINGS, ...(JSON.parse(rows[0]?.value ?? "{}") as Partial<HgsSettings>) };
  }

  async updateSettings(patch: Partial<HgsSettings>): Promise<HgsSettings> {
    if (patch.mode !== undefined && patch.mode !== "key" && patch.mode !== "tpm") {
      throw new HgsError("HGS_ERR_INVALID", "mode is 'key' or 'tpm'");
    }
    const life = patch.healthCertificateLifetimeSeconds;
    if (life !== undefined && (!Number.isInteger(life) || life < 60 || life > 7 * 86400)) {
      throw new HgsError("HGS_ERR_INVALID", "healthCertificateLifetimeSeconds must be 60..604800");
    }
    const ttl = patch.nonceTtlSeconds;
    if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 5 || ttl > 3600)) {
      throw new HgsError("HGS_ERR_INVALID", "nonceTtlSeconds must be 5..3600");
    }
    return this.db.transaction(async (tx) => {
      const before = await this.settings(tx);
      const after: HgsSettings = { ...before, ...patch };
      await tx.run(`UPDATE config SET value = ? WHERE key = 'settings'`, [JSON.stringify(after)]);
      const event: AuditEvent =
        patch.mode !== undefined && patch.mode !== before.mode ? "mode.changed" : "config.changed";
      await appendAudit(tx, event, null, { before, after });
      return after;
    });
  }

  async addKeyHost(name: string, publicKeyText: string): Promise<HostRecord> {
    checkName(name);
    const key = readPublicKey(publicKeyText, "the host public key");
    checkHostKey(key);
    const id = keyId(key);
    return this.insertHost(
      (tx) =>
        tx.run(`INSERT INTO hosts (id, name, kind, public_key, created_at) VALUES (?, ?, 'key', ?, ?)`, [
          id,
          name,
          spkiDer(key),
          Date.now(),
        ]),
      id,
      { name, kind: "key" },
    );
  }

  /** Inserts a host inside a transaction with its audit entry; a duplicate is HGS_ERR_EXISTS. */
  async insertHost(
    insert: (tx: Tx) => Promise<unknown>,
    id: string,
    detail: Record<string, unknown>,
  ): Promise<HostRecord> {
    await this.db.transaction(async (tx) => {
      const dup = await tx.query(`SELECT id FROM hosts WHERE id = ?`, [id]);
      if (dup.length > 0)
        throw new HgsError("HGS_ERR_EXISTS", `host ${id} is already registered`, { hostId: id });
      await insert(tx);
      await appendAudit(tx, "host.registered", id, detail);
    });
    return this.host(id);
  }

  async host(id: string, q: Queryable = this.db): Promise<HostRecord> {
    const r = await this.hostRow(id, q);
    if (!r) throw new HgsError("HGS_ERR_NOT_FOUND", `no host ${id}`);
    return toHost(r);
  }

  async hostRow(id: string, q: Queryable = this.db): Promise<HostRow | undefined> {
    const rows = await q.query<HostRow>(`SELECT * FROM hosts WHERE id = ?`, [id]);
    return rows[0];
  }

  async hosts(): Promise<HostRecord[]> {
    return (await this.db.query<HostRow>(`SELECT * FROM hosts ORDER BY created_at, id`)).map(toHost);
  }

  async setRevoked(id: string, revoked: boolean): Promise<HostRecord> {
    await this.db.transaction(async (tx) => {
      const n = await tx.run(`UPDATE hosts SET revoked_at = ? WHERE id = ?`, [
        revoked ? Date.now() : null,
        id,
      ]);
      if (n === 0) throw new HgsError("HGS_ERR_NOT_FOUND", `no host ${id}`);
      await appendAudit(tx, revoked ? "host.revoked" : "host.restored", id, {});
    });
    return this.host(id);
  }

  async policies(): Promise<
    { id: string; enabled: boolean; locked: boolean; summary: string; subStatus: string }[]
  > {
    const rows = await this.db.query<{ id: string; enabled: number; locked: number }>(
      `SELECT * FROM policies ORDER BY id`,
    );
    return rows.map((r) => {
      const def = policyById(r.id);
      return {
        id: r.id,
        enabled: Number(r.enabled) === 1,
        locked: Number(r.locked) === 1,
        summary: def?.summary ?? "",
        subStatus: def?.subStatus ?? "",
      };
    });
  }

  async setPolicy(id: string, enabled: boolean): Promise<void> {
    await this.db.transaction(async (tx) => {
      const rows = await tx.query<{ enabled: number; locked: number }>(
        `SELECT enabled, locked FROM policies WHERE id = ?`,
        [id],
      );
      const row = rows[0];
      if (!row) throw new HgsError("HGS_ERR_NOT_FOUND", `no policy ${id}`);
      if (Number(row.locked) === 1 && !enabled)
        throw new HgsError("HGS_ERR_POLICY_LOCKED", `policy ${id} is locked`);
      await tx.run(`UPDATE policies SET enabled = ? WHERE id = ?`, [enabled ? 1 : 0, id]);
      await appendAudit(tx, "policy.changed", null, { id, enabled });
    });
  }

  async enabledPolicies(q: Queryable = this.db): Promise<Set<string>> {
    const rows = await q.query<{ id: string }>(`SELECT id FROM policies WHERE enabled = 1`);
    return new Set(rows.map((r) => r.id));
  }

  async addBaseline(input: unknown): Promise<{ id: string; baseline: Baseline }> {
    const baseline = parseBaseline(input);
    const id = baselineId(baseline);
    await this.db.transaction(async (tx) => {
      const dup = await tx.query(`SELECT id FROM baselines WHERE id = ?`, [id]);
      if (dup.length > 0)
        throw new HgsError("HGS_ERR_EXISTS", `baseline ${id} is already registered`, { id });
      await tx.run(`INSERT INTO baselines (id, kind, name, body, created_at) VALUES (?, ?, ?, ?, ?)`, [
        id,
        baseline.kind,
        baseline.name,
        JSON.stringify(baseline),
        Date.now(),
      ]);
      await appendAudit(tx, "baseline.added", null, {
        id,
        kind: baseline.kind,
        name: baseline.name,
        pcrs: baseline.pcrs,
      });
    });
    return { id, baseline };
  }

  async baselines(q: Queryable = this.db): Promise<{ id: string; baseline: Baseline }[]> {
    const rows = await q.query<{ id: string; body: string }>(
      `SELECT id, body FROM baselines ORDER BY created_at, id`,
    );
    return rows.map((r) => ({ id: r.id, baseline: parseBaseline(r.body) }));
  }

  async removeBaseline(id: string): Promise<void> {
    await this.db.transaction(async (tx) => {
      const n = await tx.run(`DELETE FROM baselines WHERE id = ?`, [id]);
      if (n === 0) throw new HgsError("HGS_ERR_NOT_FOUND", `no baseline ${id}`);
      await appendAudit(tx, "baseline.removed", null, { id });
    });
  }

  audit(after = 0, limit = 1000) {
    return listAudit(this.db, { after, limit });
  }

  verifyAudit(expectHead?: string) {
    return verifyAudit(this.db, expectHead);
  }

  // ----------------------------------------------------------------------------------------
  // Nonces: random, single-use, short-lived, bound to a host and a purpose, in the shared store.

  async issueNonce(
    hostId: string,
    purpose: string,
    payload: Buffer | null = null,
  ): Promise<{ nonce: string; expiresAt: string }> {
    const s = await this.settings();
    const nonce = randomBytes(NONCE_BYTES).toString("hex");
    const now = Date.now();
    const expires = now + s.nonceTtlSeconds * 1000;
    await this.db.run(
      `INSERT INTO nonces (nonce, host_id, purpose, payload, expires_at) VALUES (?, ?, ?, ?, ?)`,
      [nonce, hostId, purpose, payload, expires],
    );
    if (Math.random() < 0.01) await this.db.run(`DELETE FROM nonces WHERE expires_at < ?`, [now - 3600_000]);
    return { nonce, expiresAt: new Date(expires).toISOString() };
  }

  /** Consumes a nonce atomically; the finding says precisely why one is refused. */
  async consumeNonce(
    nonce: string,
    hostId: string,
    purpose: string,
  ): Promise<{ payload: Buffer | null } | Finding> {
    const now = Date.now();
    const n = await this.db.run(
      `UPDATE nonces SET used_at = ? WHERE nonce = ? AND used_at IS NULL AND host_id = ? AND purpose = ? AND expires_at > ?`,
      [now, nonce, hostId, purpose, now],
    );
    const rows = await this.db.query<{
      host_id: string;
      purpose: string;
      payload: Buffer | null;
      expires_at: number;
      used_at: number | null;
    }>(`SELECT host_id, purpose, payload, expires_at, used_at FROM nonces WHERE nonce = ?`, [nonce]);
    const r = rows[0];
    if (n === 1 && r) return { payload: r.payload };
    if (!r) return error("Nonce_Unknown", "the nonce was not issued by this HGS", { got: nonce });
    if (r.host_id !== hostId)
      return error("Nonce_OtherHost", "the nonce was issued to another host", {
        expected: r.host_id,
        got: hostId,
      });
    if (r.purpose !== purpose)
      return error("Nonce_WrongPurpose", "the nonce was issued for another step", {
        expected: r.purpose,
        got: purpose,
      });
    if (r.used_at !== null) return error("Nonce_Replayed", "the nonce was already used (replay)");
    return error("Nonce_Expired", "the nonce has expired", {
      expected: `before ${new Date(Number(r.expires_at)).toISOString()}`,
      got: new Date(now).toISOString(),
    });
  }

  async challenge(hostId: string): Promise<{ nonce: string; expiresAt: string; mode: AttestationMode }> {
    const s = await this.settings();
    const row = await this.hostRow(hostId);
    // No oracle for registration: an unknown host still gets a nonce; attestation refuses it.
    const purpose = row && row.kind === s.mode ? `attest-${s.mode}` : "attest-unregistered";
    return { ...(await this.issueNonce(hostId, purpose)), mode: s.mode };
  }

  // ----------------------------------------------------------------------------------------
  // Attestation

  /** Records the verdict, issues the certificate when it passed. */
  async finishAttestation(
    host: HostRow | undefined,
    hostId: string,
    mode: AttestationMode,
    verdict: AttestationVerdict,
    keyReleaseKey: KeyObject | undefined,
    keyReleaseSpki?: Buffer,
  ): Promise<AttestResult> {
    const s = await this.settings();
    if (verdict.status !== "Passed" || !host || !keyReleaseKey) {
      await this.auditLog.append("attestation.failed", hostId, {
        mode,
        status: verdict.status,
        subStatuses: verdict.subStatuses,
        findings: verdict.findings.map((f) => f.id),
      });
      return { verdict };
    }
    const { text, claims } = issueHealthCertificate({
      signer: this.dir.attestationSigner,
      hostId: host.id,
      name: host.name,
      mode,
      keyReleaseKey,
      lifetimeSeconds: s.healthCertificateLifetimeSeconds,
      kid: this.signerId,
      ...(keyReleaseSpki ? { keyReleaseSpki } : {}),
    });
    await this.auditLog.append("attestation.passed", host.id, { mode, jti: claims.jti, exp: claims.exp });
    return { verdict, healthCertificate: text, validUntil: new Date(claims.exp * 1000).toISOString() };
  }

  async attestHostKey(req: {
    hostId: string;
    nonce: string;
    keyReleaseKey: string;
    signature: string;
  }): Promise<AttestResult> {
    const s = await this.settings();
    if (s.mode !== "key") {
      refuse("Mode_Mismatch", `this HGS attests in '${s.mode}' mode`, "HGS_ERR_MODE", {
        expected: s.mode,
        got: "key",
      });
    }
    const findings: Finding[] = [];
    const host = await this.hostRow(req.hostId);
    const n = await this.consumeNonce(req.nonce, req.hostId, "attest-key");
    if ("id" in n) findings.push(n);
    if (!host)
      findings.push(error("Host_NotRegistered", "no host is registered with this id", { got: req.hostId }));
    else if (host.kind !== "key") {
      findings.push(
        error("Host_WrongMode", "the host is registered for TPM attestation", {
          expected: "key",
          got: host.kind,
        }),
      );
    } else if (host.revoked_at !== null) findings.push(error("Host_Revoked", "the host is revoked"));
    let krk: KeyObject | undefined;
    let krkSpki: Buffer | undefined;
    try {
      krk = readPublicKey(req.keyReleaseKey, "the key-release key");
      checkKeyReleaseKey(krk);
      krkSpki = req.keyReleaseKey.includes("-----BEGIN")
        ? spkiDer(krk)
        : Buffer.from(req.keyReleaseKey, "base64");
    } catch (e) {
      findings.push(
        error("KeyReleaseKey_Unsupported", isBulwarkError(e) ? e.message : "invalid key-release key"),
      );
      krk = undefined;
    }
    if (findings.length === 0 && host?.public_key && krk) {
      const pub = publicKeyFromSpki(host.public_key);
      const sig = Buffer.from(req.signature, "base64");
      if (
        !verifyHostSignature(
          pub,
          attestKeyMessage(Buffer.from(req.nonce, "hex"), krkSpki ?? krk, host.id),
          sig,
        )
      ) {
        findings.push(
          error(
            "HostKey_BadSignature",
            "the challenge signature does not verify with the registered host key",
          ),
        );
      }
    }
    const verdict = verdictOf(findings, statusFor(findings));
    return this.finishAttestation(host, req.hostId, "key", verdict, krk, krkSpki);
  }

  // ----------------------------------------------------------------------------------------
  // TPM mode (service-tpm.ts) and key release (service-release.ts)

  addTpmRoot(certificate: Uint8Array): Promise<{ fingerprint: string; subject: string }> {
    return tpm.addTpmRoot(this, certificate);
  }

  tpmRoots(q: Queryable = this.db): Promise<Buffer[]> {
    return tpm.tpmRoots(this, q);
  }

  /** Registers a TPM host by its EK public (TPM2B_PUBLIC, or TPMT_PUBLIC) and optional EK certificate. */
  addTpmHost(name: string, ekPublic: Uint8Array, ekCertificate?: Uint8Array): Promise<HostRecord> {
    return tpm.addTpmHost(this, name, ekPublic, ekCertificate);
  }

  /** AK enrollment step 1: checks the AK, makes a credential to the EK bound to the AK's name. */
  akChallenge(hostId: string, akPublic: Uint8Array): ReturnType<typeof tpm.akChallenge> {
    return tpm.akChallenge(this, hostId, akPublic);
  }

  /** AK enrollment step 2: the secret from TPM2_ActivateCredential proves the AK lives beside the EK. */
  akActivate(hostId: string, challengeId: string, secret: Uint8Array): ReturnType<typeof tpm.akActivate> {
    return tpm.akActivate(this, hostId, challengeId, secret);
  }

  attestTpm(req: Parameters<typeof tpm.attestTpm>[1]): Promise<AttestResult> {
    return tpm.attestTpm(this, req);
  }

  releaseKey(req: ReleaseRequest): Promise<ReleaseResult> {
    return releaseKey(this, req);
  }
}
