/**
 * DESIGN.md's layering rule, checked on the sources: a part never imports a higher one
 * (tpm < uefi < eventlog < protector < host < hgs < cli/web; core and asn1 are below all).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { repoPath } from "../helpers/paths.js";

const RANK: Readonly<Record<string, number>> = {
  core: 0,
  io: 0,
  asn1: 0,
  tpm: 1,
  uefi: 2,
  eventlog: 3,
  protector: 4,
  attest: 5,
  host: 6,
  hgs: 7,
  lab: 7,
  cli: 8,
  web: 8,
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sources(path.join(dir, e.name))
      : e.name.endsWith(".ts")
        ? [path.join(dir, e.name)]
        : [],
  );
}

const partOf = (rel: string): string | undefined => rel.split(path.sep)[0]?.replace(/\.(ts|js)$/, "");

test("no part imports a higher part", () => {
  const src = repoPath("src");
  const violations: string[] = [];
  let imports = 0;
  for (const file of sources(src)) {
    const from = partOf(path.relative(src, file));
    const rank = from === undefined ? undefined : RANK[from];
    if (rank === undefined) continue;
    for (const m of readFileSync(file, "utf8").matchAll(/(?:from |import\()"(\.[^"]+)"/g)) {
      imports++;
      const target = partOf(path.relative(src, path.resolve(path.dirname(file), m[1] as string)));
      const targetRank = target === undefined ? undefined : RANK[target];
      if (targetRank !== undefined && targetRank > rank)
        violations.push(`${path.relative(src, file)} imports ${m[1]} (${from} → ${target})`);
    }
  }
  assert.ok(imports > 100, `only ${imports} relative imports found: the scan is broken`);
  assert.deepEqual(violations, []);
});
