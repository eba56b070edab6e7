/** Renders docs/errors.md from the catalogue; a test checks the file is up to date. */
import { domains } from "../catalogue.js";
import { Exit } from "../core/errors.js";

export function renderErrorsDoc(): string {
  const lines: string[] = [
    "# Error codes",
    "",
    "Generated from `src/catalogue.ts` by `npm run docs:errors`; a test fails when this file is stale.",
    "Every error Bulwark raises on purpose carries one of these stable codes. The CLI exits with the",
    "status shown and prints the code (`--json` prints `{ code, message, details }`); the HGS HTTP API",
    "answers with the HTTP status shown.",
    "",
    "## Exit statuses",
    "",
    "| status | meaning |",
    "| --- | --- |",
    ...Object.entries(Exit).map(([name, n]) => `| ${n} | ${name} |`),
    "",
  ];
  for (const d of domains) {
    lines.push(`## ${d.name}`, "", "| code | exit | HTTP | meaning |", "| --- | --- | --- | --- |");
    for (const [code, spec] of Object.entries(d.codes)) {
      lines.push(`| \`${code}\` | ${spec.exit} | ${spec.http} | ${spec.summary} |`);
    }
    lines.push("");
  }
  return lines.join("\n");
}
