/**
 * Verdicts, not booleans (STYLE.md habit 7): one shape for every verifier in Bulwark.
 *
 * A verifier returns every finding it made and the ids of the checks that passed; `ok` is a pure
 * function of the findings (no finding of severity "error"). Decisions — issue a health
 * certificate, release a key, boot an image — are pure functions of a verdict, taken elsewhere.
 *
 * Finding ids follow one grammar, {@link FINDING_ID}: dot-separated segments, each starting
 * with a lower-case letter and going on in lower camel case or kebab case
 * (`quote.nonce`, `ak.attributes.fixedTPM`, `event-data-mismatch`, `hgs.secure-boot`).
 */

export type Severity = "error" | "warning" | "info";

/** The one finding-id grammar (see the module comment). */
export const FINDING_ID = /^[a-z][a-zA-Z0-9-]*(?:\.[a-zA-Z0-9][a-zA-Z0-9-]*)*$/;

export function isFindingId(id: string): boolean {
  return FINDING_ID.test(id);
}

export interface Finding {
  /** Stable id in the {@link FINDING_ID} grammar, e.g. `quote.nonce`. */
  readonly id: string;
  readonly severity: Severity;
  /** One sentence for people. */
  readonly message: string;
  readonly expected?: string;
  readonly got?: string;
}

export interface Verdict<F extends Finding = Finding> {
  /** True when no finding has severity "error". */
  readonly ok: boolean;
  readonly findings: readonly F[];
  /** Ids of checks that were made and passed. */
  readonly passed: readonly string[];
}

/** True when none of the findings is an error. */
export function okOf(findings: readonly Finding[]): boolean {
  return !findings.some((f) => f.severity === "error");
}

export function verdictOf<F extends Finding>(
  findings: readonly F[],
  passed: readonly string[] = [],
): Verdict<F> {
  return { ok: okOf(findings), findings: [...findings], passed: [...passed] };
}

/** Collects findings and passed checks while a verifier runs. */
export class VerdictBuilder<F extends Finding = Finding> {
  readonly findings: F[] = [];
  readonly passed: string[] = [];

  /** Records `id` as passed when `ok`, else adds a finding; returns `ok`. */
  check(
    id: string,
    ok: boolean,
    expected: string,
    got: string,
    message: string,
    severity: Severity = "error",
  ): boolean {
    if (ok) this.passed.push(id);
    else this.findings.push({ id, expected, got, severity, message } as F);
    return ok;
  }

  fail(id: string, expected: string, got: string, message: string, severity: Severity = "error"): void {
    this.findings.push({ id, expected, got, severity, message } as F);
  }

  /** Adds a finding of the verifier's own (richer) shape. */
  add(finding: F): void {
    this.findings.push(finding);
  }

  pass(id: string): void {
    this.passed.push(id);
  }

  merge(v: Verdict<F>): void {
    this.findings.push(...v.findings);
    this.passed.push(...v.passed);
  }

  verdict(): Verdict<F> {
    return verdictOf(this.findings, this.passed);
  }
}
