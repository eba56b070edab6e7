/**
 * Key release (Hyper-V Key Protection). Three steps:
 *   1. facts: the health certificate verified (memoised signature), the host read, the request
 *      proof checked, the request id looked up in the shared nonce table;
 *   2. {@link judgeRelease}: a pure verdict over those facts, every check with an id;
 *      {@link decideRelease}: release, or the refusal of the first failing check;
 *   3. the release itself: the key protector unwrapped and its transport key rolled, both keys
 *      wrapped to the key-release key the certificate names, the request id claimed with the
 *      audit entry (single use across nodes).
 * Every release and refusal is audited and published on `bulwark:hgs:release` (attestation.ts).
 * Formats in attest/release.ts and docs/hgs.md.
 */
import diagnostics_channel from "node:diagnostics_channel";
import type { KeyObject } from "node:crypto";
import { isBulwarkError, type BulwarkError, type CoreErrorCode } from "../core/errors.js";
import { VerdictBuilder, type Finding, type Verdict } from "../core/verdict.js";
import { parseKeyProtector, rollTransportKey } from "../protector/key-protector.js";
import { isProtectorError, type ProtectorErrorCode } from "../protector/errors.js";
import { zeroize } from "../protector/kdf.js";
import { hgsError, isHgsError, refuse, type HgsErrorCode } from "../attest/errors.js";
import { issuedAtMs, type AttestationMode, type HealthClaims } from "../attest/health.js";
import {
  keysContext,
  RELEASE_WINDOW_MS,
  releaseMessage,
  verifyRelease,
  wrapKeys,
  type WrappedKeysJson,
} from "../attest/release.js";
import { isRegisteredKey, RELEASE_CHANNEL } from "./attestation.js";
import type { AuditClaim } from "./audit.js";
import type { HgsContext } from "./context.js";
import type { HostRow } from "./store/repo.js";

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

export interface ReleaseMessage {
  readonly outcome: "released" | "refused";
  readonly code?: string;
  readonly durationMs: number;
}

const releaseChannel = diagnostics_channel.channel(RELEASE_CHANNEL);

/** A release check's finding, with the error code its refusal carries. */
export interface ReleaseFinding extends Finding {
  readonly code: HgsErrorCode;
  /** More details for the refusal (beside `finding`, `expected`, `got`). */
  readonly details?: Readonly<Record<string, unknown>>;
}

/** What the judgement reads, gathered by {@link releaseKey}. */
export type ReleaseFacts =
  | { readonly certificate: ReleaseFinding }
  | {
      /** The verified certificate: its claims and the key-release key it names. */
      readonly certificate: { readonly claims: HealthClaims; readonly krk: KeyObject };
      /** The mode this HGS runs now. */
      readonly mode: AttestationMode;
      readonly host: HostRow | undefined;
      readonly requestId: string;
      readonly timestamp: number;
      readonly now: number;
      /** The request is signed by the certificate's key-release key. */
      readonly proofVerified: boolean;
      /** The request id is already in the shared nonce table. */
      readonly alreadyAnswered: boolean;
      /** The certificate's key-release key is one of the host's registered keys (host key, EK, AK). */
      readonly keyReleaseKeyIsRegistered: boolean;
    };

const REPLAYED = "this key release request was already answered (replay)";

/** Judges a release request; pure. Checks are listed in the order their refusals take precedence. */
export function judgeRelease(facts: ReleaseFacts): Verdict<ReleaseFinding> {
  const v = new VerdictBuilder<ReleaseFinding>();
  if (!("mode" in facts)) {
    v.add(facts.certificate);
    return v.verdict();
  }
  v.pass("health-certificate");
  const check = (
    id: string,
    ok: boolean,
    code: HgsErrorCode,
    message: string,
    extra: Partial<ReleaseFinding> = {},
  ) => {
    if (ok) v.pass(id);
    else v.add({ id, severity: "error", message, code, ...extra });
    return ok;
  };
  const { claims } = facts.certificate;
  check(
    "health-certificate.mode-mismatch",
    claims.mode === facts.mode,
    "HGS_ERR_HEALTH_CERTIFICATE",
    `the health certificate is from '${claims.mode}' attestation; this HGS now requires '${facts.mode}'`,
  );
  if (
    check(
      "host.not-registered",
      facts.host !== undefined,
      "HGS_ERR_UNAUTHORIZED_HOST",
      "the health certificate's host is no longer registered",
    )
  ) {
    check("host.revoked", facts.host?.revokedAt === null, "HGS_ERR_UNAUTHORIZED_HOST", "the host is revoked");
    const notBefore = facts.host?.certificatesNotBefore ?? null;
    check(
      "health-certificate.issued-before-restore",
      notBefore === null || issuedAtMs(claims) >= notBefore,
      "HGS_ERR_HEALTH_CERTIFICATE",
      "the health certificate was issued before the host's revocation was lifted; attest again",
      { expected: `issued at or after ${notBefore}`, got: String(issuedAtMs(claims)) },
    );
  }
  check(
    "key-release-key.is-host-key",
    !facts.keyReleaseKeyIsRegistered,
    "HGS_ERR_HEALTH_CERTIFICATE",
    "the health certificate binds one of the host's registered keys as its key-release key",
  );
  check(
    "request.malformed",
    /^[0-9a-f]{32}$/.test(facts.requestId),
    "HGS_ERR_BAD_REQUEST",
    "requestId must be 16 random bytes, hex",
  );
  check(
    "request.stale",
    Math.abs(facts.now - facts.timestamp) <= RELEASE_WINDOW_MS,
    "HGS_ERR_HEALTH_CERTIFICATE",
    "the request timestamp is outside the accepted window",
    { expected: `within ${RELEASE_WINDOW_MS} ms of ${facts.now}`, got: String(facts.timestamp) },
  );
  check(
    "request.bad-proof",
    facts.proofVerified,
    "HGS_ERR_HEALTH_CERTIFICATE",
    "the request is not signed by the key-release key the health certificate names",
  );
  check("request.replayed", !facts.alreadyAnswered, "HGS_ERR_HEALTH_CERTIFICATE", REPLAYED);
  return v.verdict();
}

function refusalOf(f: ReleaseFinding): BulwarkError<HgsErrorCode> {
  return hgsError(f.code, f.message, {
    finding: f.id,
    ...(f.expected !== undefined ? { expected: f.expected } : {}),
    ...(f.got !== undefined ? { got: f.got } : {}),
    ...f.details,
  });
}

/** Release when the verdict is clean; otherwise the refusal of its first failing check. */
export function decideRelease(
  v: Verdict<ReleaseFinding>,
): { readonly release: true } | { readonly release: false; readonly refusal: BulwarkError<HgsErrorCode> } {
  const first = v.findings.find((f) => f.severity === "error");
  return first ? { release: false, refusal: refusalOf(first) } : { release: true };
}

/** A refused certificate as a finding (its error's code, message, finding id and details). */
function certificateFinding(e: BulwarkError): ReleaseFinding {
  const { finding, ...details } = e.details;
  return {
    id: typeof finding === "string" ? finding : "health-certificate.malformed",
    severity: "error",
    message: e.message,
    code: "HGS_ERR_HEALTH_CERTIFICATE",
    details,
  };
}

async function gatherFacts(ctx: HgsContext, req: ReleaseRequest, kpBytes: Buffer): Promise<ReleaseFacts> {
  const s = await ctx.repo.settings();
  let cert;
  try {
    cert = ctx.caches.health.verify(req.healthCertificate, {
      signerPublic: ctx.signer.publicKey,
      signerId: ctx.signer.id,
      denyBefore: s.denyBefore,
    });
  } catch (e) {
    if (!isHgsError(e, "HGS_ERR_HEALTH_CERTIFICATE")) throw e;
    return { certificate: certificateFinding(e) };
  }
  const [host, alreadyAnswered] = await Promise.all([
    ctx.repo.host(cert.claims.sub),
    ctx.repo.nonceExists(`r:${req.requestId}`),
  ]);
  const msg = releaseMessage(Buffer.from(req.requestId, "hex"), req.timestamp, kpBytes, cert.claims.jti);
  return {
    certificate: cert,
    mode: s.mode,
    host,
    requestId: req.requestId,
    timestamp: req.timestamp,
    now: Date.now(),
    proofVerified: verifyRelease(cert.krk, msg, Buffer.from(req.signature, "base64")),
    alreadyAnswered,
    keyReleaseKeyIsRegistered: host !== undefined && isRegisteredKey(ctx, host, cert.krk),
  };
}

/** Protector failures while opening the key protector, as the finding each one is. */
const KEY_PROTECTOR_FINDINGS: Partial<Record<ProtectorErrorCode, string>> = {
  PROTECTOR_ERR_NOT_AUTHORIZED: "key-protector.not-a-guardian",
  PROTECTOR_ERR_OWNER_SIGNATURE: "key-protector.owner-signature",
  PROTECTOR_ERR_MAC: "key-protector.mac",
  PROTECTOR_ERR_UNWRAP: "key-protector.unwrap",
};

/** Runs a key-protector operation; its failures become HGS_ERR_KEY_PROTECTOR refusals. */
function keyProtectorStep<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (isProtectorError(e)) {
      refuse(
        KEY_PROTECTOR_FINDINGS[e.code] ?? "key-protector.malformed",
        `the key protector was refused: ${e.message}`,
        "HGS_ERR_KEY_PROTECTOR",
        { cause: e.code },
      );
    }
    return refuse("key-protector.malformed", "the key protector cannot be decoded", "HGS_ERR_KEY_PROTECTOR");
  }
}

const INTERNAL: CoreErrorCode = "CORE_ERR_INTERNAL";

export async function releaseKey(ctx: HgsContext, req: ReleaseRequest): Promise<ReleaseResult> {
  const startedAt = performance.now();
  const who: { id: string | null } = { id: null };
  const publish = (m: Omit<ReleaseMessage, "durationMs">) => {
    if (releaseChannel.hasSubscribers)
      releaseChannel.publish({ ...m, durationMs: performance.now() - startedAt });
  };
  try {
    const result = await release(ctx, req, who);
    publish({ outcome: "released" });
    return result;
  } catch (e) {
    const detail = isBulwarkError(e)
      ? { code: e.code, finding: e.details.finding ?? null, message: e.message }
      : { code: INTERNAL };
    await ctx.audit.append("key.refused", who.id, detail).catch(() => undefined);
    publish({ outcome: "refused", code: detail.code });
    throw e;
  }
}

async function release(
  ctx: HgsContext,
  req: ReleaseRequest,
  who: { id: string | null },
): Promise<ReleaseResult> {
  const kpBytes = Buffer.from(req.keyProtector, "base64");
  const facts = await gatherFacts(ctx, req, kpBytes);
  if ("mode" in facts) who.id = facts.certificate.claims.sub;
  const decision = decideRelease(judgeRelease(facts));
  if (!decision.release) throw decision.refusal;
  // judgeRelease passes only a verified certificate of a registered host; this narrows the types.
  if (!("mode" in facts) || !facts.host) throw new Error("release judged without its facts");
  const { host, certificate } = facts;
  const { krk, claims } = certificate;

  const kp = keyProtectorStep(() => parseKeyProtector(kpBytes));
  // Same as comparing thumbprints (SHA-256 of the signing certificate), without hashing each.
  const own = Buffer.from(ctx.dir.guardian.signingCertificate);
  if (!kp.guardians.some((g) => own.equals(g.signingCertificate))) {
    refuse(
      "key-protector.not-a-guardian",
      "this HGS is not a guardian of the key protector (wrapped for another fabric)",
      "HGS_ERR_KEY_PROTECTOR",
      { guardians: kp.guardians.map((g) => g.name) },
    );
  }
  const roll = keyProtectorStep(() => rollTransportKey(kp, ctx.dir.guardian, { memo: ctx.caches.protector }));
  try {
    const context = keysContext(
      roll.oldKey.protectorId,
      roll.oldKey.keyGeneration,
      roll.newKey.keyGeneration,
      roll.keyProtector,
    );
    const keys = wrapKeys(krk, roll.oldKey.key, roll.newKey.key, context, ctx.caches.protector.points);
    const result: ReleaseResult = {
      keyProtector: Buffer.from(roll.keyProtector).toString("base64"),
      protectorId: Buffer.from(roll.oldKey.protectorId).toString("hex"),
      oldKeyGeneration: roll.oldKey.keyGeneration,
      newKeyGeneration: roll.newKey.keyGeneration,
      keys,
    };
    // Rollback: a generation older than one a host already presented (which proves that host
    // installed it) is refused. The newest presented one stays acceptable until its successor is
    // presented, so a host that died between this release and installing the rolled protector
    // still starts with what it has; recorded only now, after the roll verified the protector, so
    // a forged generation number cannot move the record. docs/hgs.md "Rollback".
    // Single use across every node: the request id goes in the shared nonce table. Both are
    // written in the same transaction as the release's audit entry (one commit per group of
    // requests, audit.ts), before anything is answered: the generation first (a rolled-back copy
    // claims nothing), then the request id. One already committed was refused by the judgement;
    // one claimed concurrently is refused when its insert finds it taken. A store failure is a
    // store error, not a replay: only "already there" (0 rows inserted) is one.
    const now = Date.now();
    const claim: AuditClaim = {
      nonce: {
        nonce: `r:${req.requestId}`,
        hostId: host.id,
        purpose: "release",
        expiresAt: now + 2 * RELEASE_WINDOW_MS,
        usedAt: now,
      },
      taken: () => hgsError("HGS_ERR_HEALTH_CERTIFICATE", REPLAYED, { finding: "request.replayed" }),
      generation: {
        protectorId: result.protectorId,
        presented: roll.oldKey.keyGeneration,
        released: roll.newKey.keyGeneration,
        rolledBack: (known) =>
          hgsError(
            "HGS_ERR_KEY_PROTECTOR",
            `the key protector is generation ${roll.oldKey.keyGeneration}, older than generation ` +
              `${known?.presented ?? "?"} a host already presented for it (a rolled-back copy)`,
            {
              finding: "key-protector.rollback",
              expected: `>= ${known?.presented ?? "?"}`,
              got: String(roll.oldKey.keyGeneration),
              protectorId: result.protectorId,
            },
          ),
      },
    };
    await ctx.audit.append(
      "key.released",
      host.id,
      {
        protectorId: result.protectorId,
        oldKeyGeneration: result.oldKeyGeneration,
        newKeyGeneration: result.newKeyGeneration,
        jti: claims.jti,
      },
      claim,
    );
    return result;
  } finally {
    zeroize(roll.oldKey.key, roll.newKey.key);
  }
}
