/**
 * Attestation verdicts (STYLE.md habit 7): every finding, not a boolean. The status and
 * sub-statuses follow Hyper-V's `AttestationStatus` / `AttestationSubStatus` vocabulary; the
 * decision to issue a health certificate is a pure function of the verdict ({@link passed}).
 */
export type AttestationStatus =
  "Passed" | "InsecureHostConfiguration" | "UnauthorizedHost" | "InvalidEvidence" | "NonceInvalid";

export type SubStatus =
  "SecureBoot" | "FirmwareDebug" | "SecureBootSettings" | "CodeIntegrityPolicy" | "Iommu" | "FullBoot";

export interface Finding {
  /** Stable id, e.g. `Quote_NonceMismatch`, `Hgs_SecureBootEnabled`. */
  readonly id: string;
  readonly severity: "error" | "warning" | "info";
  readonly message: string;
  readonly policy?: string;
  readonly subStatus?: SubStatus;
  readonly expected?: unknown;
  readonly got?: unknown;
}

export interface AttestationVerdict {
  readonly status: AttestationStatus;
  readonly subStatuses: readonly SubStatus[];
  readonly findings: readonly Finding[];
}

export function passed(v: AttestationVerdict): boolean {
  return v.status === "Passed" && !v.findings.some((f) => f.severity === "error");
}

/** Folds findings into a verdict: the first failing stage decides the status. */
export function verdictOf(
  findings: readonly Finding[],
  failingStatus: Exclude<AttestationStatus, "Passed">,
): AttestationVerdict {
  const errors = findings.filter((f) => f.severity === "error");
  if (errors.length === 0) return { status: "Passed", subStatuses: [], findings };
  const subStatuses = [...new Set(errors.flatMap((f) => (f.subStatus ? [f.subStatus] : [])))];
  return { status: failingStatus, subStatuses, findings };
}

export function error(
  id: string,
  message: string,
  extra: Omit<Finding, "id" | "message" | "severity"> = {},
): Finding {
  return { id, severity: "error", message, ...extra };
}

/** Host identity failures outrank nonce failures, which outrank malformed evidence. */
export function statusFor(
  findings: readonly Finding[],
): "UnauthorizedHost" | "NonceInvalid" | "InvalidEvidence" {
  if (findings.some((f) => f.id.startsWith("Host"))) return "UnauthorizedHost";
  if (findings.some((f) => f.id.startsWith("Nonce_"))) return "NonceInvalid";
  return "InvalidEvidence";
}
