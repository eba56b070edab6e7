#!/usr/bin/env node
// `npm run bench -- NAME [args]` runs the compiled benchmark dist/bench/NAME.js.
// Each benchmark prints a readable table beside its reference and ends with one JSON line.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const benchDir = path.join(root, "dist/bench");
const available = existsSync(benchDir)
  ? readdirSync(benchDir)
      .filter((f) => f.endsWith(".js"))
      .map((f) => f.slice(0, -3))
  : [];
const [name, ...rest] = process.argv.slice(2);
if (!name || !available.includes(name)) {
  process.stderr.write(
    `usage: npm run bench -- NAME\navailable: ${available.join(", ") || "(none built)"}\n`,
  );
  process.exit(name ? 2 : 0);
}
const r = spawnSync(process.execPath, [path.join(benchDir, `${name}.js`), ...rest], { stdio: "inherit" });
process.exit(r.status ?? 1);
