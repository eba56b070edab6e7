/**
 * Verdicts, not booleans (STYLE.md habit 7): a verifier returns every finding it made and the
 * list of checks that passed, and `ok` is a pure function of the findings.
 */

export type Severity = "error" | "warning" | "info";

export interface Finding {
  /** Stable id, e.g. `quote.nonce` or `ak.attributes.fixedTPM`. */
  readonly id: string;
  readonly expected: string;
  readonly got: string;
  readonly severity: Severity;
  /** One sentence for people. */
  readonly message: string;
}

export interface Verdict {
  /** True when no finding has severity "error". */
  readonly ok: boolean;
  readonly findings: readonly Finding[];
  /** Ids of checks that were made and passed. */
  readonly passed: readonly string[];
}

/** Collects findings and passed checks while a verifier runs. */
export class VerdictBuilder {
  readonly findings: Finding[] = [];
  readonly passed: string[] = [];

  check(
    id: string,
    ok: boolean,
    expected: string,
    got: string,
    message: string,
    severity: Severity = "error",
  ): boolean {
    if (ok) this.passed.push(id);
    else this.findings.push({ id, expected, got, severity, message });
    return ok;
  }

  fail(id: string, expected: string, got: string, message: string, severity: Severity = "error"): void {
    this.findings.push({ id, expected, got, severity, message });
  }

  merge(v: Verdict): void {
    this.findings.push(...v.findings);
    this.passed.push(...v.passed);
  }

  verdict(): Verdict {
    return {
      ok: !this.findings.some((f) => f.severity === "error"),
      findings: [...this.findings],
      passed: [...this.passed],
    };
  }
}
