/**
 * Attestation verdicts (STYLE.md habit 7): the core verdict (`core/verdict.ts`) plus Hyper-V's
 * `AttestationStatus` / `AttestationSubStatus` vocabulary. The status is not chosen by the caller:
 * it is read from {@link STATUS_BY_FINDING}, keyed by finding id, so the same finding always
 * means the same status wherever it was made. Issuing a health certificate is a pure function of
 * the verdict ({@link passed}).
 */
import { okOf, type Finding, type Verdict } from "../core/verdict.js";

export type AttestationStatus =
  "Passed" | "InsecureHostConfiguration" | "UnauthorizedHost" | "InvalidEvidence" | "NonceInvalid";

export type FailingStatus = Exclude<AttestationStatus, "Passed">;

export type SubStatus =
  "SecureBoot" | "FirmwareDebug" | "SecureBootSettings" | "CodeIntegrityPolicy" | "Iommu" | "FullBoot";

export interface AttestFinding extends Finding {
  /** The policy (Hyper-V name, e.g. `Hgs_SecureBootEnabled`) whose check made this finding. */
  readonly policy?: string;
  readonly subStatus?: SubStatus;
}

export interface AttestationVerdict extends Verdict<AttestFinding> {
  readonly status: AttestationStatus;
  readonly subStatuses: readonly SubStatus[];
}

/** Host identity failures outrank nonce failures, which outrank evidence, then configuration. */
const RANK: readonly FailingStatus[] = [
  "UnauthorizedHost",
  "NonceInvalid",
  "InvalidEvidence",
  "InsecureHostConfiguration",
];

/**
 * The status each finding id stands for. Evidence findings come from the TPM quote and event-log
 * verifiers under their own ids (`quote.*`, `eventlog.*`) and are not listed: an id missing here
 * is about the evidence ({@link DEFAULT_STATUS}). The `hgs.*` ids are the policies' findings
 * (`policies.ts` names each policy's finding id).
 */
export const STATUS_BY_FINDING: Readonly<Record<string, FailingStatus>> = {
  "host.not-registered": "UnauthorizedHost",
  "host.wrong-mode": "UnauthorizedHost",
  "host.revoked": "UnauthorizedHost",
  "host.ak-not-bound": "UnauthorizedHost",
  "host.no-ek-certificate": "UnauthorizedHost",
  "host-key.bad-signature": "UnauthorizedHost",
  "nonce.unknown": "NonceInvalid",
  "nonce.other-host": "NonceInvalid",
  "nonce.wrong-purpose": "NonceInvalid",
  "nonce.replayed": "NonceInvalid",
  "nonce.expired": "NonceInvalid",
  "key-release-key.unsupported": "InvalidEvidence",
  "hgs.secure-boot-enabled": "InsecureHostConfiguration",
  "hgs.uefi-debug-disabled": "InsecureHostConfiguration",
  "hgs.secure-boot-settings": "InsecureHostConfiguration",
  "hgs.code-integrity-policy": "InsecureHostConfiguration",
  "hgs.iommu-enabled": "InsecureHostConfiguration",
  "hgs.full-boot": "InsecureHostConfiguration",
  // Secure Boot off or unproven in the log is a configuration the policy refuses, not bad evidence.
  "eventlog.secure-boot-disabled": "InsecureHostConfiguration",
  "eventlog.secure-boot-unproven": "InsecureHostConfiguration",
};

export const DEFAULT_STATUS: FailingStatus = "InvalidEvidence";

export function statusOfFinding(id: string): FailingStatus {
  return STATUS_BY_FINDING[id] ?? DEFAULT_STATUS;
}

/**
 * Folds findings into a verdict: no error → Passed; otherwise the highest-ranked status among
 * the error findings.
 */
export function attestationVerdict(
  findings: readonly AttestFinding[],
  passedChecks: readonly string[] = [],
): AttestationVerdict {
  const errors = findings.filter((f) => f.severity === "error");
  const base = { ok: okOf(findings), findings: [...findings], passed: [...passedChecks] };
  if (errors.length === 0) return { ...base, status: "Passed", subStatuses: [] };
  const statuses = new Set(errors.map((f) => statusOfFinding(f.id)));
  const status = RANK.find((s) => statuses.has(s)) ?? DEFAULT_STATUS;
  const subStatuses = [...new Set(errors.flatMap((f) => (f.subStatus ? [f.subStatus] : [])))];
  return { ...base, status, subStatuses };
}

export function passed(v: AttestationVerdict): boolean {
  return v.status === "Passed" && v.ok;
}

/** An error finding; `expected`/`got` are strings (numbers and lists are written out). */
export function error(
  id: string,
  message: string,
  extra: Omit<AttestFinding, "id" | "message" | "severity"> = {},
): AttestFinding {
  return { id, severity: "error", message, ...extra };
}
