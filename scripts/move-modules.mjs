#!/usr/bin/env node
// Maintenance tool for layout changes: moves TypeScript modules (git mv) and rewrites every
// relative import in src/, test/ and bench/ that pointed at them.
// Usage: node scripts/move-modules.mjs OLD.ts NEW.ts [OLD.ts NEW.ts ...]   (paths from the repo root)
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const pairs = process.argv.slice(2);
if (pairs.length === 0 || pairs.length % 2) {
  process.stderr.write("usage: move-modules.mjs OLD.ts NEW.ts [...]\n");
  process.exit(2);
}
const moves = new Map();
for (let i = 0; i < pairs.length; i += 2)
  moves.set(path.resolve(root, pairs[i]), path.resolve(root, pairs[i + 1]));

function walk(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : /\.(ts|mts)$/.test(n) ? [p] : [];
  });
}
const files = ["src", "test", "bench"].flatMap((d) => walk(path.join(root, d)));
const spec = (fromFile, target) => {
  let rel = path.relative(path.dirname(fromFile), target).replace(/\.ts$/, ".js");
  if (!rel.startsWith(".")) rel = `./${rel}`;
  return rel;
};
for (const file of files) {
  const newFile = moves.get(file) ?? file;
  const text = readFileSync(file, "utf8");
  const out = text.replace(/((?:from |import\(|import )")(\.[^"]+)(")/g, (m, a, s, b) => {
    const target = path.resolve(path.dirname(file), s.replace(/\.js$/, ".ts"));
    const moved = moves.get(target) ?? target;
    if (moved === target && newFile === file) return m;
    return `${a}${spec(newFile, moved)}${b}`;
  });
  if (out !== text) writeFileSync(file, out);
}
for (const [from, to] of moves) {
  mkdirSync(path.dirname(to), { recursive: true });
  execFileSync("git", ["mv", from, to], { cwd: root });
}
