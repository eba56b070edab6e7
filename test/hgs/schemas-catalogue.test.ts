/**
 * The HGS server's HTTP statuses come from the error catalogue without the server depending on
 * the CLI or the host: its table (core + the libraries) agrees with the full catalogue on every
 * code it holds, holds every code an HGS process can raise, and nothing src/hgs imports, however
 * indirectly, lies in src/cli, src/host or src/lab.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { catalogue, domains } from "../../src/catalogue.js";
import { libraryDomains } from "../../src/catalogue-libraries.js";
import { CoreErrors } from "../../src/core/errors.js";
import { httpStatusOf } from "../../src/hgs/http/statuses.js";
import { repoPath } from "../helpers/paths.js";

test("the HGS status table is the catalogue's, for core and every library domain", () => {
  const hgsDomains = [CoreErrors, ...libraryDomains.map((d) => d.codes)];
  let codes = 0;
  for (const codesOfDomain of hgsDomains) {
    for (const [code, spec] of Object.entries(codesOfDomain)) {
      codes++;
      assert.equal(httpStatusOf(code), spec.http, code);
      assert.equal(catalogue.get(code)?.http, spec.http, `${code} in the full catalogue`);
    }
  }
  assert.ok(codes > 100, `only ${codes} codes: the table is not the catalogue`);
  for (const code of catalogue.keys()) {
    if (code.startsWith("HGS_ERR_")) assert.equal(httpStatusOf(code), catalogue.get(code)?.http, code);
  }
  // Every library domain is in the full catalogue too (docs/errors.md lists it).
  for (const d of libraryDomains) assert.ok(domains.includes(d), d.name);
});

test("a code an HGS process cannot raise is an internal error, not a guess", () => {
  // The full catalogue gives these 400 and 404; no HGS code path raises them.
  assert.equal(catalogue.get("CLI_ERR_USAGE")?.http, 400);
  assert.equal(catalogue.get("VM_ERR_NOT_FOUND")?.http, 404);
  for (const code of ["CLI_ERR_USAGE", "VM_ERR_NOT_FOUND", "NOT_A_CODE"]) {
    assert.equal(httpStatusOf(code), 500, code);
  }
});

function sourcesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sourcesUnder(path.join(dir, e.name))
      : e.name.endsWith(".ts")
        ? [path.join(dir, e.name)]
        : [],
  );
}

test("nothing src/hgs imports, directly or through another module, is CLI, host or lab code", () => {
  const src = repoPath("src");
  const seen = new Set<string>();
  const forbidden: string[] = [];
  const visit = (file: string, chain: readonly string[]) => {
    if (seen.has(file)) return;
    seen.add(file);
    const rel = path.relative(src, file);
    if (/^(cli|host|lab)\//.test(rel)) {
      forbidden.push([...chain, rel].join(" → "));
      return;
    }
    for (const m of readFileSync(file, "utf8").matchAll(/(?:from |import\()"(\.[^"]+)\.js"/g)) {
      const target = path.resolve(path.dirname(file), `${m[1] as string}.ts`);
      assert.ok(existsSync(target), `${rel} imports ${m[1]}: not found (the scan is broken)`);
      visit(target, [...chain, rel]);
    }
  };
  for (const f of sourcesUnder(path.join(src, "hgs"))) visit(f, []);
  assert.ok(seen.size > 40, `only ${seen.size} modules reached: the scan is broken`);
  assert.deepEqual(forbidden, []);
});
