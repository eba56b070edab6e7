/**
 * The documentation as a newcomer meets it after a fresh clone: every relative link in README.md
 * and docs/ points at a file that exists inside the repository (not beside it on the machine that
 * wrote the page, and not in a git-ignored folder such as dist/), and docs/README.md lists every
 * page in docs/.
 *
 * What this does not check: external links (http, https, mailto), #fragments (anchors inside a
 * page), links written as raw HTML, or links in other Markdown files (src/ and test/ READMEs).
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { repoPath, repoRoot } from "../helpers/paths.js";

interface Link {
  readonly target: string;
  readonly line: number;
}

/** Replaces every character except newlines, so offsets and line numbers stay where they were. */
const blank = (s: string): string => s.replace(/[^\n]/g, " ");

/** Fenced code blocks (``` or ~~~, CommonMark §4.5) blanked: a link shown in code is not a link. */
function blankFences(md: string): string {
  const lines = md.split("\n");
  let fence: { readonly char: string; readonly length: number } | undefined;
  return lines
    .map((line) => {
      const m = /^ {0,3}(`{3,}|~{3,})/.exec(line);
      if (fence === undefined) {
        if (!m) return line;
        const run = m[1] as string;
        fence = { char: run.charAt(0), length: run.length };
        return blank(line);
      }
      const closing =
        m && (m[1] as string).charAt(0) === fence.char && (m[1] as string).length >= fence.length;
      if (closing && line.trim() === (m[1] as string)) fence = undefined;
      return blank(line);
    })
    .join("\n");
}

/** Inline code spans blanked (a backtick run closed by a run of the same length, within a paragraph). */
function blankCodeSpans(md: string): string {
  return md.replace(/(`+)(?:(?!\n[ \t]*\n)[\s\S])*?(?<!`)\1(?!`)/g, blank);
}

/**
 * The link targets of a Markdown text: inline links and images `[text](target "title")` (the
 * text may wrap across lines) and reference definitions `[label]: target`.
 */
function markdownLinks(md: string): Link[] {
  const text = blankCodeSpans(blankFences(md));
  const lineAt = (offset: number) => text.slice(0, offset).split("\n").length;
  const links: Link[] = [];
  const unwrap = (t: string) => (t.startsWith("<") && t.endsWith(">") ? t.slice(1, -1) : t);
  for (const m of text.matchAll(/\[[^[\]]*\]\(\s*(<[^>\n]*>|[^\s)]+)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g))
    links.push({ target: unwrap(m[1] as string), line: lineAt(m.index) });
  for (const m of text.matchAll(/^ {0,3}\[[^\]\n]+\]:[ \t]*(<[^>\n]*>|\S+)/gm))
    links.push({ target: unwrap(m[1] as string), line: lineAt(m.index) });
  return links;
}

const isExternal = (target: string) => /^[a-z][a-z0-9+.-]*:/i.test(target);

/** Top-level folders a fresh clone does not have: the directory entries of .gitignore. */
function ignoredFolders(): Set<string> {
  return new Set(
    readFileSync(repoPath(".gitignore"), "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l.endsWith("/") && !l.startsWith("#"))
      .map((l) => l.replace(/^\/|\/$/g, "")),
  );
}

/**
 * Why a link from `file` (repository-relative) fails, or undefined when it is fine. A leading
 * `/` is the repository root, as the forges read it.
 */
function brokenBecause(file: string, target: string, ignored: ReadonlySet<string>): string | undefined {
  if (isExternal(target) || target.startsWith("#")) return undefined;
  const pathPart = target.replace(/[?#].*$/, "");
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathPart);
  } catch {
    return "not a valid URL path";
  }
  const resolved = decoded.startsWith("/")
    ? path.join(repoRoot, decoded)
    : path.resolve(repoRoot, path.dirname(file), decoded);
  const rel = path.relative(repoRoot, resolved);
  if (rel.startsWith("..") || path.isAbsolute(rel)) return "outside the repository";
  if (ignored.has(rel.split(path.sep)[0] as string)) return "in a git-ignored folder";
  return existsSync(resolved) ? undefined : "no such file";
}

function markdownFiles(dir: string): string[] {
  return readdirSync(repoPath(dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? markdownFiles(path.join(dir, e.name))
      : e.name.endsWith(".md")
        ? [path.join(dir, e.name)]
        : [],
  );
}

const pages = (): string[] => ["README.md", ...markdownFiles("docs")].sort();

test("the link reader finds inline, wrapped, angle-bracket and reference links, not those in code", () => {
  const md = [
    "See [the design](docs/a.md#parts) and ![a picture](img/b.png 'title').",
    "A link whose text [wraps",
    "over two lines](docs/c.md).",
    "In code: `[not](code.md)` and",
    "```sh",
    "[not](fenced.md)",
    "```",
    "[angle](<docs/with space.md>) [ref]: not-a-definition.md",
    "",
    "[ref]: docs/d.md",
    "Outside: [web](https://example.org) [anchor](#parts)",
  ].join("\n");
  assert.deepEqual(markdownLinks(md), [
    { target: "docs/a.md#parts", line: 1 },
    { target: "img/b.png", line: 1 },
    { target: "docs/c.md", line: 2 },
    { target: "docs/with space.md", line: 8 },
    { target: "https://example.org", line: 11 },
    { target: "#parts", line: 11 },
    { target: "docs/d.md", line: 10 },
  ]);
});

test("a link is broken when it leaves the repository, enters an ignored folder or names no file", () => {
  const ignored = ignoredFolders();
  assert.equal(brokenBecause("README.md", "../shared/DESIGN.md", ignored), "outside the repository");
  assert.equal(brokenBecause("README.md", "dist/src/cli/main.js", ignored), "in a git-ignored folder");
  assert.equal(brokenBecause("docs/vms.md", "vm.md", ignored), "no such file");
  assert.equal(brokenBecause("docs/vms.md", "errors.md#exit-statuses", ignored), undefined);
  assert.equal(brokenBecause("docs/vms.md", "/README.md", ignored), undefined);
  assert.equal(brokenBecause("docs/vms.md", "https://example.org/x.md", ignored), undefined);
});

test("every relative link in README.md and docs/ points at a file in the repository", () => {
  const ignored = ignoredFolders();
  const broken: string[] = [];
  let relative = 0;
  for (const file of pages()) {
    for (const link of markdownLinks(readFileSync(repoPath(file), "utf8"))) {
      if (isExternal(link.target) || link.target.startsWith("#")) continue;
      relative++;
      const why = brokenBecause(file, link.target, ignored);
      if (why) broken.push(`${file}:${link.line}: ${link.target} (${why})`);
    }
  }
  assert.ok(relative > 20, `only ${relative} relative links found: the reader is broken`);
  assert.deepEqual(broken, []);
});

test("docs/README.md lists every page in docs/", () => {
  const index = "docs/README.md";
  const listed = new Set(
    markdownLinks(readFileSync(repoPath(index), "utf8"))
      .filter((l) => !isExternal(l.target))
      .map((l) => path.join("docs", l.target.replace(/[?#].*$/, ""))),
  );
  const unlisted = markdownFiles("docs").filter((f) => f !== index && !listed.has(f));
  assert.deepEqual(unlisted, [], `pages missing from ${index}`);
});
