/**
 * TPM-mode attestation (Hyper-V "TrustTpm"), the pure part: given a registered host (EK, bound
 * AK), the HGS nonce, the enabled policies and the registered baselines, judge one piece of
 * evidence (quote + signature + PCR values + TCG event log) and return every finding.
 *
 * Chain of trust, in the order checked:
 *   1. quote: signed by the host's bound AK, magic/type, qualifyingData = SHA-256(nonce ‖
 *      SHA-256(key-release SPKI)) (binds the health certificate's key to this quote), selection
 *      equals {@link REQUIRED_SELECTION}, pcrDigest = hash of the supplied PCR values  (src/tpm verifyQuote)
 *   2. event log: replay equals every quoted PCR (an edited log breaks this), event data proven
 *      by digests, normal separators in PCRs 0..7                                    (src/eventlog verifyEventLog)
 *   3. policies on the proven, bound facts and on the quoted PCR values               (below)
 *
 * Step 2 and the log-fact policies are memoised per (log, quoted PCRs, policy states) by the
 * caller's {@link EventLogJudge}. The quote (step 1) is verified on every attestation.
 *
 * What this does not check: that the TPM is genuine beyond its EK registration / EK certificate
 * (done at registration), DRTM PCRs, the content of boot images (only their digests, through
 * the code-integrity baseline), or anything the host does after the quote.
 */
import { createHash, hash, X509Certificate, type KeyObject } from "node:crypto";
import { decode } from "../core/codec.js";
import { BoundedMap } from "../core/memo.js";
import { isBulwarkError } from "../core/errors.js";
import {
  EventType,
  firstApplicationIndex,
  GRUB_PREFIXES,
  isBound,
  parseEventLog,
  verifyEventLog,
} from "../eventlog/index.js";
import { FactMemo } from "../eventlog/facts.js";
import { TPM_ALG } from "../tpm/alg.js";
import { TPM2B_PUBLIC_RAW, type PublicArea, type TpmsAttest } from "../tpm/structures.js";
import { publicKeyFromTpm } from "../tpm/verify/keys.js";
import { QuoteVerifier } from "../tpm/verify/quote.js";
import { quoteQualifyingData, REQUIRED_SELECTION } from "./tpm-wire.js";
import { matchesBaseline, type Baseline } from "./baseline.js";
import { hgsError } from "./errors.js";
import { spkiDer } from "./host-key.js";
import { policyById } from "./policies.js";
import { error, type AttestFinding } from "./verdict.js";

export const MAX_EVENT_LOG_BYTES = 1024 * 1024;

/** TPM2B_PUBLIC bytes → public area (received bytes kept); HGS_ERR_INVALID otherwise. */
export function parseTpm2bPublic(bytes: Uint8Array, what: string): PublicArea {
  try {
    return decode(TPM2B_PUBLIC_RAW, bytes);
  } catch (e) {
    if (!isBulwarkError(e)) throw e;
    throw hgsError("HGS_ERR_INVALID", `${what} is not a TPM2B_PUBLIC: ${e.message}`, { cause: e.code });
  }
}

/**
 * Checks an EK certificate: it certifies this EK's public key and is signed by one of the
 * trusted TPM CA certificates (roots or intermediates the admin added, basicConstraints cA). Validity periods are not
 * checked (EK certificates often outlive them, as go-attestation also tolerates).
 */
export function checkEkCertificate(
  ek: PublicArea,
  certDer: Uint8Array,
  trusted: readonly Uint8Array[],
): AttestFinding[] {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(Buffer.from(certDer));
  } catch {
    return [error("ek-certificate.malformed", "the EK certificate is not an X.509 certificate")];
  }
  const findings: AttestFinding[] = [];
  const ekKey = publicKeyFromTpm(ek.value);
  if (!spkiDer(cert.publicKey).equals(spkiDer(ekKey))) {
    findings.push(
      error("ek-certificate.key-mismatch", "the EK certificate certifies another key than the EK", {
        expected: createHash("sha256").update(spkiDer(ekKey)).digest("hex"),
        got: createHash("sha256").update(spkiDer(cert.publicKey)).digest("hex"),
      }),
    );
  }
  const issuers = trusted.flatMap((t) => {
    try {
      return [new X509Certificate(Buffer.from(t))];
    } catch {
      return [];
    }
  });
  const signedByTrusted = issuers.some((i) => {
    try {
      return i.ca && cert.checkIssued(i) && cert.verify(i.publicKey);
    } catch {
      return false;
    }
  });
  if (!signedByTrusted) {
    findings.push(
      error("ek-certificate.untrusted-root", "the EK certificate is not issued by a trusted TPM root", {
        expected: `one of ${issuers.length} trusted TPM certificates`,
        got: cert.issuer,
      }),
    );
  }
  return findings;
}

export interface TpmEvidence {
  readonly quote: Uint8Array;
  readonly signature: Uint8Array;
  /** sha256 bank: PCR index → value. */
  readonly pcrs: ReadonlyMap<number, Uint8Array>;
  readonly eventLog: Uint8Array;
}

export interface TpmJudgement {
  readonly findings: AttestFinding[];
  /** Findings that are about evidence (quote/log), not host configuration. */
  readonly evidenceFailed: boolean;
  readonly attest?: TpmsAttest;
}

const IOMMU_ON = /(?:^|\s)(?:intel_iommu=on|amd_iommu=on|iommu=(?:on|force|pt))(?:\s|$)/;
const IOMMU_OFF = /(?:^|\s)(?:intel_iommu=off|amd_iommu=off|iommu=off)(?:\s|$)/;

/** A finding of a policy's check: the policy's finding id unless the verifier's own id is kept. */
function policyFinding(
  policyId: string,
  message: string,
  extra: { readonly id?: string; readonly expected?: string; readonly got?: string } = {},
): AttestFinding {
  const def = policyById(policyId);
  const { id, ...rest } = extra;
  return error(id ?? def?.findingId ?? policyId, message, {
    policy: policyId,
    ...(def ? { subStatus: def.subStatus } : {}),
    ...rest,
  });
}

/** Judges TPM evidence; pure (no store, no clock). `eventLogs` memoises the event-log part. */
export function judgeTpmEvidence(o: {
  readonly ak: PublicArea;
  readonly nonce: Uint8Array;
  /** The key-release key, or its SPKI DER bytes as received (saves a re-encoding). */
  readonly keyReleaseKey: KeyObject | Uint8Array;
  readonly evidence: TpmEvidence;
  readonly enabledPolicies: ReadonlySet<string>;
  readonly baselines: readonly Baseline[];
  readonly eventLogs?: EventLogJudge;
  /** AK KeyObjects memoised by the caller (an HGS context); a fresh verifier when absent. */
  readonly quotes?: QuoteVerifier;
}): TpmJudgement {
  const findings: AttestFinding[] = [];
  const pcrs = new Map([[TPM_ALG.SHA256, o.evidence.pcrs]]);
  const q = (o.quotes ?? new QuoteVerifier()).verify({
    ak: o.ak,
    quoted: o.evidence.quote,
    signature: o.evidence.signature,
    nonce: quoteQualifyingData(o.nonce, o.keyReleaseKey),
    pcrs,
    expectedSelection: REQUIRED_SELECTION,
  });
  for (const f of q.findings) {
    if (f.severity === "error") findings.push(error(f.id, f.message, evidenceValues(f)));
  }
  if (findings.length > 0)
    return { findings, evidenceFailed: true, ...(q.attest ? { attest: q.attest } : {}) };

  const logJudgement = o.eventLogs
    ? o.eventLogs.judge(o.evidence.eventLog, o.evidence.pcrs, o.enabledPolicies)
    : judgeEventLog(o.evidence.eventLog, o.evidence.pcrs, o.enabledPolicies);
  findings.push(...logJudgement.findings);
  if (logJudgement.evidenceFailed) {
    return { findings, evidenceFailed: true, ...(q.attest ? { attest: q.attest } : {}) };
  }
  const quoted = new Map([...o.evidence.pcrs].map(([i, val]) => [i, Buffer.from(val).toString("hex")]));
  const baselineCheck = (policyId: string, kind: Baseline["kind"], pcrList: readonly number[]) => {
    if (!o.enabledPolicies.has(policyId)) return;
    const candidates = o.baselines.filter((b) => b.kind === kind);
    if (candidates.some((b) => matchesBaseline(b, quoted))) return;
    findings.push(
      policyFinding(
        policyId,
        candidates.length === 0
          ? `no ${kind} baseline is registered`
          : `PCRs ${pcrList.join(", ")} match no registered ${kind} baseline`,
        {
          expected:
            candidates.length === 0
              ? `a ${kind} baseline`
              : `one of: ${candidates.map((b) => b.name).join(", ")}`,
          got: pcrList.map((i) => `PCR ${i} = ${quoted.get(i) ?? "(none)"}`).join(", "),
        },
      ),
    );
  };
  baselineCheck("Hgs_SecureBootSettings", "secureboot", [7]);
  baselineCheck("Hgs_CodeIntegrityPolicy", "codeintegrity", [4, 8, 9]);

  if (o.enabledPolicies.has("Hgs_FullBoot") && q.attest) {
    const c = q.attest.clockInfo;
    if (c.restartCount !== 0) {
      findings.push(
        policyFinding("Hgs_FullBoot", "the host resumed (TPM restart) instead of booting fully", {
          expected: "restartCount 0",
          got: `restartCount ${c.restartCount}`,
        }),
      );
    }
  }
  return { findings, evidenceFailed: false, ...(q.attest ? { attest: q.attest } : {}) };
}

function evidenceValues(f: { readonly expected?: string; readonly got?: string }): {
  expected?: string;
  got?: string;
} {
  return {
    ...(f.expected !== undefined ? { expected: f.expected } : {}),
    ...(f.got !== undefined ? { got: f.got } : {}),
  };
}

export interface EventLogJudgement {
  readonly findings: readonly AttestFinding[];
  readonly evidenceFailed: boolean;
}

/**
 * The banks whose PCRs a quote binds (REQUIRED_SELECTION: sha256). Event data is proven in these
 * alone: a digest in another bank is bound to nothing the TPM signed, so whoever edits the log
 * can write it, and checking it would prove nothing more (eventlog/proof.ts ProofBanks).
 */
const QUOTED_BANKS: ReadonlySet<string> = new Set(["sha256"]);

/** The policies the event-log judgement reads (part of its memo key). */
const LOG_POLICIES = ["Hgs_SecureBootEnabled", "Hgs_UefiDebugDisabled", "Hgs_IommuEnabled"] as const;

/**
 * The event-log part of the judgement: parse, replay against the quoted PCRs, proofs, grub
 * strings, and the policies that read log facts (Secure Boot, debug mode, IOMMU). Pure, so it is
 * memoised by (SHA-256 of the log, the quoted PCR values, those policies' states): a host
 * re-attesting after the same boot sends the same log and PCRs, and pays this once per boot.
 * One judge belongs to one HGS context (or one benchmark): nothing is shared across them.
 */
export class EventLogJudge {
  private readonly verdicts: BoundedMap<string, EventLogJudgement>;
  /** Proofs and certificate descriptions shared by the logs this judge sees (a fleet measures the same db/KEK). */
  private readonly facts = new FactMemo(QUOTED_BANKS);

  constructor(max = 4096) {
    this.verdicts = new BoundedMap(max);
  }

  judge(
    eventLog: Uint8Array,
    pcrs: ReadonlyMap<number, Uint8Array>,
    enabledPolicies: ReadonlySet<string>,
  ): EventLogJudgement {
    const flags = LOG_POLICIES.map((p) => (enabledPolicies.has(p) ? "1" : "0")).join("");
    // Every part of the key is content: the log's digest, each quoted PCR with its value, the
    // policy switches. One-shot hashing and latin1 PCR text keep a warm hit cheap.
    const key = `${hash("sha256", eventLog, "base64")}|${[...pcrs]
      .sort((x, y) => x[0] - y[0])
      .map(([i, v]) => `${i}:${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("latin1")}`)
      .join(",")}|${flags}`;
    const hit = this.verdicts.get(key);
    if (hit) return hit;
    const v = judgeEventLog(eventLog, pcrs, enabledPolicies, this.facts);
    const frozen = Object.freeze({
      findings: Object.freeze([...v.findings]),
      evidenceFailed: v.evidenceFailed,
    });
    this.verdicts.set(key, frozen);
    return frozen;
  }

  /** Forgets memoised verdicts (benchmarks of the first attestation after a boot). */
  clear(): void {
    this.verdicts.clear();
  }
}

/** The event-log judgement without memo (see {@link EventLogJudge}). */
export function judgeEventLog(
  eventLog: Uint8Array,
  pcrs: ReadonlyMap<number, Uint8Array>,
  enabledPolicies: ReadonlySet<string>,
  memo: FactMemo = new FactMemo(QUOTED_BANKS),
): { findings: AttestFinding[]; evidenceFailed: boolean } {
  const findings: AttestFinding[] = [];
  let log;
  try {
    log = parseEventLog(eventLog, { maxBytes: MAX_EVENT_LOG_BYTES, maxEvents: 20_000 });
  } catch (e) {
    findings.push(
      error("eventlog.parse", `the event log does not parse: ${isBulwarkError(e) ? e.message : String(e)}`),
    );
    return { findings, evidenceFailed: true };
  }
  const requireSecureBoot = enabledPolicies.has("Hgs_SecureBootEnabled");
  const v = verifyEventLog(log, { pcrs: new Map([["sha256", pcrs]]), requireSecureBoot }, memo);
  let evidenceFailed = false;
  const first = firstApplicationIndex(log.events);
  // grub's PCR 8 strings are hashed without their prefix: the log's text must be what was measured.
  for (const e of log.events) {
    if (e.pcrIndex !== 8 || e.eventType !== EventType.EV_IPL) continue;
    const text = Buffer.from(e.data).toString("latin1");
    if (!GRUB_PREFIXES.some((p) => text.startsWith(p)) || memo.proof(e, first).proven) continue;
    evidenceFailed = true;
    findings.push(
      error(
        "eventlog.grub-string-mismatch",
        `event ${e.index}: the grub string in the log is not the one measured into PCR 8`,
        {
          expected: "SHA-256(string after the prefix) = the event's digest",
          got: text.replace(/\0+$/, "").slice(0, 200),
        },
      ),
    );
  }
  for (const f of v.findings) {
    if (f.severity !== "error") continue;
    if (f.id === "secure-boot-disabled" || f.id === "secure-boot-unproven") {
      findings.push(
        policyFinding("Hgs_SecureBootEnabled", f.message, { id: `eventlog.${f.id}`, ...evidenceValues(f) }),
      );
    } else {
      evidenceFailed = true;
      findings.push(error(`eventlog.${f.id}`, f.message, evidenceValues(f)));
    }
  }
  if (evidenceFailed) return { findings, evidenceFailed };
  // The log was read through a firmware/shim quirk that a strict reading refuses: say which, so
  // the attestation's verdict (and the audit log) show it. Evidence quirks do not change the PCR
  // values the quote binds; the "info" ones only narrow what a proof covers and stay unreported.
  for (const f of v.findings) {
    if (f.id.startsWith("quirk.") && f.severity === "warning") {
      findings.push({
        id: `eventlog.${f.id}`,
        severity: "warning",
        message: f.message,
        ...evidenceValues(f),
      });
    }
  }

  const facts = v.facts;
  const bound = v.boundPcrs;
  if (enabledPolicies.has("Hgs_UefiDebugDisabled")) {
    const debug = facts.efiActions.find((a) => a.pcr === 7 && /UEFI Debug Mode/i.test(a.text));
    if (debug) {
      findings.push(
        policyFinding("Hgs_UefiDebugDisabled", "the firmware runs in debug mode", {
          expected: "no 'UEFI Debug Mode' action in PCR 7",
          got: `event ${debug.event}: ${debug.text}`,
        }),
      );
    }
  }
  if (enabledPolicies.has("Hgs_IommuEnabled")) {
    const lines = facts.kernelCommandLines.filter((l) => isBound(l, bound));
    const last = lines.at(-1);
    if (!last || !IOMMU_ON.test(last.text) || IOMMU_OFF.test(last.text)) {
      findings.push(
        policyFinding("Hgs_IommuEnabled", "the kernel command line does not turn the IOMMU on", {
          expected:
            "intel_iommu=on, amd_iommu=on or iommu=on|force|pt in a proven kernel command line (PCR 8)",
          got: last
            ? last.text
            : `no proven kernel command line (${facts.kernelCommandLines.length} unproven)`,
        }),
      );
    }
  }
  return { findings, evidenceFailed: false };
}
