import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { renderErrorsDoc } from "../../src/cli/errors-doc.js";
import { catalogue, domains } from "../../src/catalogue.js";
import { repoPath } from "../helpers/paths.js";

test("docs/errors.md matches the catalogue (run `npm run docs:errors` after adding codes)", () => {
  const onDisk = readFileSync(repoPath("docs/errors.md"), "utf8");
  assert.equal(onDisk, renderErrorsDoc());
});

test("error codes are unique across domains", () => {
  const total = domains.reduce((n, d) => n + Object.keys(d.codes).length, 0);
  assert.equal(catalogue.size, total);
});
