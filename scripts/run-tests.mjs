#!/usr/bin/env node
// Runs the compiled test files with node's built-in runner (its summary prints at the end).
// `--unit` skips test/integration (real QEMU boots).
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const unitOnly = process.argv.includes("--unit");
const filters = process.argv.slice(2).filter((a) => !a.startsWith("--"));

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith(".test.js")) out.push(p);
  }
  return out;
}

// Only compiled tests whose source still exists: a test moved or deleted in test/ leaves its old
// .js behind in dist/ (tsc never removes outputs), and that stale copy must not run.
const hasSource = (f) =>
  existsSync(path.join(root, path.relative(path.join(root, "dist"), f)).replace(/\.js$/, ".ts"));
let files = walk(path.join(root, "dist/test")).filter(hasSource).sort();
if (unitOnly) files = files.filter((f) => !f.includes(`${path.sep}integration${path.sep}`));
// Filters match the path from the repository root (`test/hgs`, `dist/test/hgs/https`, `audit`).
if (filters.length) files = files.filter((f) => filters.some((x) => path.relative(root, f).includes(x)));
// `node --test` with no file runs every test-looking file it finds (capture helpers included,
// which rewrite test/vectors): a filter that matches nothing is an error, not "run everything".
if (files.length === 0) {
  console.error(`run-tests: no compiled test matches ${filters.join(" ") || "(no filter)"}; build first?`);
  process.exit(2);
}
const r = spawnSync(process.execPath, ["--test", "--test-concurrency=2", ...files], {
  cwd: root,
  stdio: "inherit",
});
process.exit(r.status ?? 1);
