/**
 * Key release (Hyper-V Key Protection): health certificate and request proof checked, the key
 * protector unwrapped and rolled, both transport keys wrapped to the host's key-release key,
 * every release and refusal audited. Formats in release.ts and docs/hgs.md.
 */
import { isBulwarkError } from "../core/errors.js";
import { parseKeyProtector, rollTransportKey } from "../protector/key-protector.js";
import { isProtectorError } from "../protector/errors.js";
import { zeroize } from "../protector/kdf.js";
import { HgsError, refuse } from "../attest/errors.js";
import { verifyHealthCertificate } from "../attest/health.js";
import {
  keysContext,
  RELEASE_WINDOW_MS,
  releaseMessage,
  verifyRelease,
  wrapKeys,
} from "../attest/release.js";
import type { AuditClaim } from "./audit.js";
import type { HgsService, ReleaseRequest, ReleaseResult } from "./service.js";

export async function releaseKey(svc: HgsService, req: ReleaseRequest): Promise<ReleaseResult> {
  const hostIdForAudit: { id: string | null } = { id: null };
  try {
    return await releaseKeyInner(svc, req, hostIdForAudit);
  } catch (e) {
    const detail = isBulwarkError(e)
      ? { code: e.code, finding: e.details.finding ?? null, message: e.message }
      : { code: "CORE_ERR_INTERNAL" };
    await svc.auditLog.append("key.refused", hostIdForAudit.id, detail).catch(() => undefined);
    throw e;
  }
}

async function releaseKeyInner(
  svc: HgsService,
  req: ReleaseRequest,
  who: { id: string | null },
): Promise<ReleaseResult> {
  const s = await svc.settings();
  const cert = verifyHealthCertificate(req.healthCertificate, {
    signerPublic: svc.signerPublic,
    signerId: svc.signerId,
    denyBefore: s.denyBefore,
  });
  who.id = cert.claims.sub;
  if (cert.claims.mode !== s.mode) {
    refuse(
      "HealthCertificate_ModeMismatch",
      `the health certificate is from '${cert.claims.mode}' attestation; this HGS now requires '${s.mode}'`,
      "HGS_ERR_HEALTH_CERTIFICATE",
    );
  }
  const host = await svc.hostRow(cert.claims.sub);
  if (!host)
    refuse(
      "Host_NotRegistered",
      "the health certificate's host is no longer registered",
      "HGS_ERR_UNAUTHORIZED_HOST",
    );
  if (host.revoked_at !== null) refuse("Host_Revoked", "the host is revoked", "HGS_ERR_UNAUTHORIZED_HOST");

  const kpBytes = Buffer.from(req.keyProtector, "base64");
  if (!/^[0-9a-f]{32}$/.test(req.requestId))
    refuse("Request_Malformed", "requestId must be 16 random bytes, hex", "HGS_ERR_BAD_REQUEST");
  const now = Date.now();
  if (Math.abs(now - req.timestamp) > RELEASE_WINDOW_MS) {
    refuse(
      "Request_Stale",
      "the request timestamp is outside the accepted window",
      "HGS_ERR_HEALTH_CERTIFICATE",
      { expected: `within ${RELEASE_WINDOW_MS} ms of ${now}`, got: req.timestamp },
    );
  }
  const msg = releaseMessage(Buffer.from(req.requestId, "hex"), req.timestamp, kpBytes, cert.claims.jti);
  if (!verifyRelease(cert.krk, msg, Buffer.from(req.signature, "base64"))) {
    refuse(
      "Request_BadProof",
      "the request is not signed by the key-release key the health certificate names",
      "HGS_ERR_HEALTH_CERTIFICATE",
    );
  }
  // Single use across every node: the request id goes in the shared nonce table, inserted in
  // the same transaction as the release's audit entry (one commit per group, not two per
  // request), before anything is answered. A request id already committed is refused here,
  // before the roll; one claimed concurrently is refused when its insert finds it taken. A store
  // failure is a store error, not a replay: only "already there" (0 rows inserted) is one.
  const nonceKey = `r:${req.requestId}`;
  const replayed = () =>
    new HgsError("HGS_ERR_HEALTH_CERTIFICATE", "this key release request was already answered (replay)", {
      finding: "Request_Replayed",
    });
  if ((await svc.db.query(`SELECT 1 AS taken FROM nonces WHERE nonce = ?`, [nonceKey])).length > 0)
    throw replayed();
  const claim: AuditClaim = {
    sql: `INSERT INTO nonces (nonce, host_id, purpose, expires_at, used_at) VALUES (?, ?, 'release', ?, ?)
     ON CONFLICT (nonce) DO NOTHING`,
    params: [nonceKey, host.id, now + 2 * RELEASE_WINDOW_MS, now],
    taken: replayed,
  };

  let roll;
  try {
    const kp = parseKeyProtector(kpBytes);
    // Same as comparing thumbprints (SHA-256 of the signing certificate), without hashing each.
    const own = Buffer.from(svc.dir.guardian.signingCertificate);
    const mine = kp.guardians.some((g) => own.equals(g.signingCertificate));
    if (!mine)
      refuse(
        "KeyProtector_NotAGuardian",
        "this HGS is not a guardian of the key protector (wrapped for another fabric)",
        "HGS_ERR_KEY_PROTECTOR",
        { guardians: kp.guardians.map((g) => g.name) },
      );
    roll = rollTransportKey(kpBytes, svc.dir.guardian);
  } catch (e) {
    if (isProtectorError(e)) {
      const finding =
        e.code === "PROTECTOR_ERR_NOT_AUTHORIZED"
          ? "KeyProtector_NotAGuardian"
          : e.code === "PROTECTOR_ERR_OWNER_SIGNATURE"
            ? "KeyProtector_OwnerSignature"
            : e.code === "PROTECTOR_ERR_MAC"
              ? "KeyProtector_Mac"
              : e.code === "PROTECTOR_ERR_UNWRAP"
                ? "KeyProtector_Unwrap"
                : "KeyProtector_Malformed";
      refuse(finding, `the key protector was refused: ${e.message}`, "HGS_ERR_KEY_PROTECTOR", {
        cause: e.code,
      });
    }
    if (isBulwarkError(e) && e.code.startsWith("HGS_")) throw e;
    refuse("KeyProtector_Malformed", "the key protector cannot be decoded", "HGS_ERR_KEY_PROTECTOR");
  }
  try {
    const context = keysContext(
      roll.oldKey.protectorId,
      roll.oldKey.keyGeneration,
      roll.newKey.keyGeneration,
      roll.keyProtector,
    );
    const keys = wrapKeys(cert.krk, roll.oldKey.key, roll.newKey.key, context);
    const result: ReleaseResult = {
      keyProtector: Buffer.from(roll.keyProtector).toString("base64"),
      protectorId: Buffer.from(roll.oldKey.protectorId).toString("hex"),
      oldKeyGeneration: roll.oldKey.keyGeneration,
      newKeyGeneration: roll.newKey.keyGeneration,
      keys,
    };
    await svc.auditLog.append(
      "key.released",
      host.id,
      {
        protectorId: result.protectorId,
        oldKeyGeneration: result.oldKeyGeneration,
        newKeyGeneration: result.newKeyGeneration,
        jti: cert.claims.jti,
      },
      claim,
    );
    return result;
  } finally {
    zeroize(roll.oldKey.key, roll.newKey.key);
  }
}
