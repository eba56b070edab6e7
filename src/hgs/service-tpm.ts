/**
 * TPM-mode operations of the service (Hyper-V "TrustTpm"): trusted TPM certificates, host
 * registration by EK, AK enrollment by credential activation, quote attestation. The pure
 * judgement of evidence is in tpm-attest.ts; this module adds the store and the nonces.
 */
import { randomBytes, timingSafeEqual, X509Certificate, type KeyObject } from "node:crypto";
import { isBulwarkError } from "../core/errors.js";
import { objectName } from "../tpm/names.js";
import type { PublicArea } from "../tpm/structures.js";
import { checkAkPublic, checkEkPublic } from "../tpm/verify/ak.js";
import { makeCredential } from "../tpm/verify/credential.js";
import { loadPublicKey } from "../tpm/verify/keys.js";
import { appendAudit } from "./audit.js";
import { checkName } from "./checks.js";
import { HgsError, refuse } from "../attest/errors.js";
import { checkKeyReleaseKey, readPublicKey, sha256, spkiDer } from "../attest/host-key.js";
import type { AttestResult, HgsService, HostRecord } from "./service.js";
import type { Queryable } from "./store/driver.js";
import { checkEkCertificate, judgeTpmEvidence, parseTpm2bPublic } from "../attest/tpm-judge.js";
import { ekHostId, tpm2bPublicBytes } from "../attest/tpm-wire.js";
import { error, statusFor, verdictOf, type Finding } from "../attest/verdict.js";

export async function addTpmRoot(
  svc: HgsService,
  certificate: Uint8Array,
): Promise<{ fingerprint: string; subject: string }> {
  let der: Buffer;
  let cert: X509Certificate;
  try {
    const text = Buffer.from(certificate).toString("latin1");
    cert = new X509Certificate(text.includes("-----BEGIN") ? text : Buffer.from(certificate));
    der = cert.raw;
  } catch {
    throw new HgsError("HGS_ERR_INVALID", "a TPM root must be an X.509 certificate (PEM or DER)");
  }
  const fingerprint = sha256(der).toString("hex");
  await svc.db.transaction(async (tx) => {
    const dup = await tx.query(`SELECT fingerprint FROM tpm_roots WHERE fingerprint = ?`, [fingerprint]);
    if (dup.length > 0) throw new HgsError("HGS_ERR_EXISTS", `TPM root ${fingerprint} is already trusted`);
    await tx.run(`INSERT INTO tpm_roots (fingerprint, certificate, created_at) VALUES (?, ?, ?)`, [
      fingerprint,
      der,
      Date.now(),
    ]);
    await appendAudit(tx, "tpm-root.added", null, { fingerprint, subject: cert.subject });
  });
  return { fingerprint, subject: cert.subject };
}

export async function tpmRoots(svc: HgsService, q: Queryable = svc.db): Promise<Buffer[]> {
  return (await q.query<{ certificate: Buffer }>(`SELECT certificate FROM tpm_roots`)).map(
    (r) => r.certificate,
  );
}

/** Registers a TPM host by its EK public (TPM2B_PUBLIC, or TPMT_PUBLIC) and optional EK certificate. */
export async function addTpmHost(
  svc: HgsService,
  name: string,
  ekPublic: Uint8Array,
  ekCertificate?: Uint8Array,
): Promise<HostRecord> {
  checkName(name);
  let loaded;
  try {
    loaded = loadPublicKey(ekPublic);
  } catch (e) {
    throw new HgsError("HGS_ERR_INVALID", `the EK public is not readable: ${(e as Error).message}`);
  }
  if (!loaded.public)
    throw new HgsError(
      "HGS_ERR_INVALID",
      "the EK public must be a TPM public area (TPM2B_PUBLIC), not a bare key",
    );
  const ek = loaded.public;
  const ekVerdict = checkEkPublic(ek.value);
  const bad = ekVerdict.findings.filter((f) => f.severity === "error");
  if (bad.length > 0) {
    throw new HgsError("HGS_ERR_INVALID", `not an endorsement key: ${bad.map((f) => f.id).join(", ")}`, {
      findings: bad,
    });
  }
  const s = await svc.settings();
  let certDer: Buffer | null = null;
  if (ekCertificate) {
    const text = Buffer.from(ekCertificate).toString("latin1");
    try {
      certDer = text.includes("-----BEGIN") ? new X509Certificate(text).raw : Buffer.from(ekCertificate);
    } catch {
      throw new HgsError("HGS_ERR_INVALID", "the EK certificate is not PEM or DER");
    }
    const findings = checkEkCertificate(ek, certDer, await tpmRoots(svc));
    if (findings.length > 0) {
      throw new HgsError(
        "HGS_ERR_INVALID",
        `EK certificate refused: ${findings.map((f) => f.id).join(", ")}`,
        {
          finding: findings[0]?.id,
          findings,
        },
      );
    }
  } else if (s.requireEkCertificate) {
    throw new HgsError(
      "HGS_ERR_INVALID",
      "this HGS requires an EK certificate (settings.requireEkCertificate)",
      {
        finding: "EkCertificate_Missing",
      },
    );
  }
  const id = ekHostId(ek);
  return svc.insertHost(
    (tx) =>
      tx.run(
        `INSERT INTO hosts (id, name, kind, ek_public, ek_certificate, created_at) VALUES (?, ?, 'tpm', ?, ?, ?)`,
        [id, name, tpm2bPublicBytes(ek), certDer, Date.now()],
      ),
    id,
    { name, kind: "tpm", ekCertificate: certDer !== null },
  );
}

/** AK enrollment step 1: checks the AK, makes a credential to the EK bound to the AK's name. */
export async function akChallenge(
  svc: HgsService,
  hostId: string,
  akPublic: Uint8Array,
): Promise<{ challengeId: string; credentialBlob: string; encryptedSecret: string; expiresAt: string }> {
  const host = await svc.hostRow(hostId);
  if (!host || host.kind !== "tpm" || !host.ek_public) {
    refuse("Host_NotRegistered", "no TPM host is registered with this id", "HGS_ERR_UNAUTHORIZED_HOST", {
      got: hostId,
    });
  }
  if (host.revoked_at !== null) refuse("Host_Revoked", "the host is revoked", "HGS_ERR_UNAUTHORIZED_HOST");
  const ak = parseTpm2bPublic(akPublic, "the AK public");
  const v = checkAkPublic(ak.value);
  const bad = v.findings.filter((f) => f.severity === "error");
  if (bad.length > 0) {
    throw new HgsError(
      "HGS_ERR_INVALID",
      `the AK is not a restricted signing key of a TPM: ${bad.map((f) => f.id).join(", ")}`,
      {
        finding: bad[0]?.id,
        findings: bad,
      },
    );
  }
  const ek = parseTpm2bPublic(host.ek_public, "the stored EK");
  const secret = randomBytes(32);
  const cred = makeCredential(ek.value, objectName(ak), secret);
  const payload = Buffer.concat([sha256(secret), tpm2bPublicBytes(ak)]);
  secret.fill(0);
  const n = await svc.issueNonce(hostId, "ak-activate", payload);
  return {
    challengeId: n.nonce,
    credentialBlob: Buffer.from(cred.credentialBlob).toString("base64"),
    encryptedSecret: Buffer.from(cred.secret).toString("base64"),
    expiresAt: n.expiresAt,
  };
}

/** AK enrollment step 2: the secret from TPM2_ActivateCredential proves the AK lives beside the EK. */
export async function akActivate(
  svc: HgsService,
  hostId: string,
  challengeId: string,
  secret: Uint8Array,
): Promise<{ hostId: string; akName: string }> {
  const n = await svc.consumeNonce(challengeId, hostId, "ak-activate");
  if ("id" in n) refuse(n.id, n.message, "HGS_ERR_NONCE", { expected: n.expected, got: n.got });
  const payload = n.payload ?? Buffer.alloc(0);
  const issuedHash = payload.subarray(0, 32);
  const akBytes = payload.subarray(32);
  if (issuedHash.length !== 32 || !timingSafeEqual(issuedHash, sha256(secret))) {
    await svc.auditLog.append("attestation.failed", hostId, {
      step: "ak-activate",
      finding: "Credential_SecretMismatch",
    });
    refuse(
      "Credential_SecretMismatch",
      "the activated secret is not the one issued: the AK is not bound to this EK",
      "HGS_ERR_UNAUTHORIZED_HOST",
    );
  }
  const ak = parseTpm2bPublic(akBytes, "the AK public");
  await svc.db.transaction(async (tx) => {
    await tx.run(`UPDATE hosts SET ak_public = ? WHERE id = ?`, [Buffer.from(akBytes), hostId]);
    await appendAudit(tx, "host.ak-bound", hostId, { akName: Buffer.from(objectName(ak)).toString("hex") });
  });
  return { hostId, akName: Buffer.from(objectName(ak)).toString("hex") };
}

const akCache = new Map<string, PublicArea>();

/** Decoded AK public areas by their bytes (verifyQuote also caches the KeyObject per area). */
function akOf(bytes: Buffer): PublicArea {
  const k = bytes.toString("base64");
  let ak = akCache.get(k);
  if (!ak) {
    ak = parseTpm2bPublic(bytes, "the stored AK");
    if (akCache.size > 10_000) akCache.clear();
    akCache.set(k, ak);
  }
  return ak;
}

export async function attestTpm(
  svc: HgsService,
  req: {
    hostId: string;
    nonce: string;
    keyReleaseKey: string;
    quote: string;
    signature: string;
    pcrs: Record<string, string>;
    eventLog: string;
  },
): Promise<AttestResult> {
  const s = await svc.settings();
  if (s.mode !== "tpm")
    refuse("Mode_Mismatch", `this HGS attests in '${s.mode}' mode`, "HGS_ERR_MODE", {
      expected: s.mode,
      got: "tpm",
    });
  const findings: Finding[] = [];
  const host = await svc.hostRow(req.hostId);
  const n = await svc.consumeNonce(req.nonce, req.hostId, "attest-tpm");
  if ("id" in n) findings.push(n);
  if (!host)
    findings.push(error("Host_NotRegistered", "no host is registered with this id", { got: req.hostId }));
  else if (host.kind !== "tpm")
    findings.push(
      error("Host_WrongMode", "the host is registered for host-key attestation", {
        expected: "tpm",
        got: host.kind,
      }),
    );
  else if (host.revoked_at !== null) findings.push(error("Host_Revoked", "the host is revoked"));
  else if (!host.ak_public)
    findings.push(
      error("Host_AkNotBound", "no AK is bound to this host's EK: enroll one by credential activation first"),
    );
  else if (s.requireEkCertificate && !host.ek_certificate) {
    findings.push(
      error(
        "Host_NoEkCertificate",
        "this HGS requires an EK certificate and the host was registered without one",
      ),
    );
  }
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
  if (findings.length > 0 || !host?.ak_public || !krk) {
    return svc.finishAttestation(
      host,
      req.hostId,
      "tpm",
      verdictOf(findings, statusFor(findings)),
      undefined,
    );
  }
  const pcrs = new Map<number, Uint8Array>();
  for (const [k, v] of Object.entries(req.pcrs)) pcrs.set(Number(k), Buffer.from(v, "hex"));
  const [enabled, baselines] = await Promise.all([svc.enabledPolicies(), svc.baselines()]);
  const j = judgeTpmEvidence({
    ak: akOf(host.ak_public),
    nonce: Buffer.from(req.nonce, "hex"),
    keyReleaseKey: krkSpki ?? krk,
    evidence: {
      quote: Buffer.from(req.quote, "base64"),
      signature: Buffer.from(req.signature, "base64"),
      pcrs,
      eventLog: Buffer.from(req.eventLog, "base64"),
    },
    enabledPolicies: enabled,
    baselines: baselines.map((b) => b.baseline),
  });
  const verdict = verdictOf(j.findings, j.evidenceFailed ? "InvalidEvidence" : "InsecureHostConfiguration");
  return svc.finishAttestation(host, req.hostId, "tpm", verdict, krk, krkSpki);
}
