/**
 * Prometheus text exposition in tests: `promtool check metrics` (the real binary from Debian's
 * `prometheus` package) and a reader for one sample's value.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const PROMTOOL = "/usr/bin/promtool";

/**
 * Lint findings promtool reports on prom-client's own default metrics, which are gauges whose
 * names end in `_total` (prom-client keeps them for compatibility). Nothing else is excused.
 */
const PROM_CLIENT_LINT = new Set([
  'nodejs_active_handles_total non-counter metrics should not have "_total" suffix',
  'nodejs_active_requests_total non-counter metrics should not have "_total" suffix',
  'nodejs_active_resources_total non-counter metrics should not have "_total" suffix',
]);

/**
 * `promtool check metrics` on an exposition: `parsed` is false when promtool could not read it
 * (exit 1); `problems` are its lint findings, minus prom-client's known ones above.
 */
export function promtoolProblems(exposition: string): { parsed: boolean; problems: string[] } {
  const r = promtoolCheck(exposition);
  const problems = r.output.split("\n").filter((l) => l !== "" && !PROM_CLIENT_LINT.has(l));
  // promtool exits 3 for lint findings only, anything else non-zero for unreadable input.
  return { parsed: r.status === 0 || r.status === 3, problems };
}

/** promtool's verdict on an exposition: its exit status and what it printed (problems). */
export function promtoolCheck(exposition: string): { status: number; output: string } {
  if (!existsSync(PROMTOOL)) {
    throw new Error(
      `${PROMTOOL} not found: apt-get install prometheus (node scripts/bootstrap.mjs installs it)`,
    );
  }
  const r = spawnSync(PROMTOOL, ["check", "metrics"], {
    input: exposition,
    encoding: "utf8",
    timeout: 30_000,
  });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, output: `${r.stdout}${r.stderr}`.trim() };
}

const SAMPLE = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/**
 * The value of the sample `name` whose labels are exactly `labels` (in any order), or undefined
 * when the exposition has no such sample.
 */
export function sampleValue(
  exposition: string,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined {
  const want = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
  for (const line of exposition.split("\n")) {
    const m = SAMPLE.exec(line);
    if (!m || m[1] !== name) continue;
    const got = [...(m[2] ?? "").matchAll(LABEL)]
      .map((l) => [l[1] ?? "", l[2] ?? ""] as const)
      .sort(([a], [b]) => a.localeCompare(b));
    if (JSON.stringify(got) === JSON.stringify(want)) return Number(m[3]);
  }
  return undefined;
}
