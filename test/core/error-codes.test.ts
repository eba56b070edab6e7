/**
 * Error codes are declared once and raised for real (STYLE.md habit 6), checked on the sources:
 *   (a) every `<PREFIX>_ERR_*` string literal in src/ is a code the catalogue declares — a typo
 *       or a forgotten declaration fails here, not as an "unknown code" in a user's terminal;
 *   (b) every declared code is raised somewhere in src/ — a code nothing raises is a promise in
 *       docs/errors.md that the program never keeps.
 * A literal counts as raised unless it only compares (`=== "X"`, `case "X":`) or names a type
 * (`"X" | "Y"`): those read codes, they do not produce them. A catalogue entry read by name
 * (`TpmErrors.TPM_ERR_X.exit`) counts too: the caller answers with that code's status (the CLI
 * prints a failed verdict and exits with it). Declarations are unquoted keys (`X_ERR_Y: { ... }`),
 * so they never count. Comments are stripped first.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { catalogue } from "../../src/catalogue.js";
import { repoPath } from "../helpers/paths.js";

const CODE_LITERAL = /(["'`])([A-Z0-9]+_ERR_[A-Z0-9_]+)\1/g;
/** `HostErrors.HOST_ERR_X`: a declared entry read for its status. */
const CODE_PROPERTY = /\b[A-Z][A-Za-z0-9]*Errors\.([A-Z0-9]+_ERR_[A-Z0-9_]+)\b/g;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sources(path.join(dir, e.name))
      : e.name.endsWith(".ts")
        ? [path.join(dir, e.name)]
        : [],
  );
}

/** Block and line comments replaced by spaces (offsets kept); strings are left alone. */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\/|(?<![:"'`\\])\/\/[^\n]*/g, (c) => c.replace(/[^\n]/g, " "));
}

/** True when the literal at [start, end) only reads a code: a comparison, a case label or a type union. */
function onlyReads(text: string, start: number, end: number): boolean {
  const before = text.slice(Math.max(0, start - 12), start);
  const after = text.slice(end, end + 12);
  return (
    /(?:[!=]==?|\bcase)\s*$/.test(before) ||
    /^\s*[!=]==?/.test(after) ||
    /\|\s*$/.test(before) ||
    /^\s*\|(?!\|)/.test(after)
  );
}

interface Use {
  readonly code: string;
  readonly where: string;
  readonly raises: boolean;
}

function codeUses(): Use[] {
  const src = repoPath("src");
  const uses: Use[] = [];
  for (const file of sources(src)) {
    const text = withoutComments(readFileSync(file, "utf8"));
    for (const m of text.matchAll(CODE_LITERAL)) {
      const code = m[2] as string;
      const start = m.index;
      const line = text.slice(0, start).split("\n").length;
      uses.push({
        code,
        where: `${path.relative(src, file)}:${line}`,
        raises: !onlyReads(text, start, start + m[0].length),
      });
    }
    for (const m of text.matchAll(CODE_PROPERTY)) {
      const line = text.slice(0, m.index).split("\n").length;
      uses.push({ code: m[1] as string, where: `${path.relative(src, file)}:${line}`, raises: true });
    }
  }
  return uses;
}

const prefixOf = (code: string): string => code.slice(0, code.indexOf("_ERR_"));

test("every error code literal in src/ is declared in the catalogue", () => {
  const ours = new Set([...catalogue.keys()].map(prefixOf));
  const uses = codeUses();
  assert.ok(uses.length > 200, `only ${uses.length} code literals found: the scan is broken`);
  // Codes of other libraries (fastify's FST_ERR_*) are compared with, never declared here.
  const undeclared = uses
    .filter((u) => ours.has(prefixOf(u.code)) && !catalogue.has(u.code))
    .map((u) => `${u.code} at ${u.where}`);
  assert.deepEqual(undeclared, []);
});

test("every declared error code is raised somewhere in src/", () => {
  const raised = new Set(
    codeUses()
      .filter((u) => u.raises)
      .map((u) => u.code),
  );
  const never = [...catalogue.keys()].filter((code) => !raised.has(code)).sort();
  assert.deepEqual(never, [], "declared codes nothing raises: raise them where they apply, or remove them");
});

test("the scan tells raising from reading", () => {
  const text = withoutComments(
    [
      `throw f("A_ERR_RAISED", "x"); // "A_ERR_COMMENT"`,
      `if (e.code === "A_ERR_COMPARED") return;`,
      `switch (c) { case "A_ERR_CASE": }`,
      `type T = "A_ERR_TYPE1" | "A_ERR_TYPE2";`,
      `fail(node, "A_ERR_HELPER", "y");`,
      `return AErrors.A_ERR_STATUS.exit;`,
    ].join("\n"),
  );
  const seen = [
    ...[...text.matchAll(CODE_LITERAL)].map((m) => [m[2], !onlyReads(text, m.index, m.index + m[0].length)]),
    ...[...text.matchAll(CODE_PROPERTY)].map((m) => [m[1], true]),
  ];
  assert.deepEqual(seen, [
    ["A_ERR_RAISED", true],
    ["A_ERR_COMPARED", false],
    ["A_ERR_CASE", false],
    ["A_ERR_TYPE1", false],
    ["A_ERR_TYPE2", false],
    ["A_ERR_HELPER", true],
    ["A_ERR_STATUS", true],
  ]);
});
