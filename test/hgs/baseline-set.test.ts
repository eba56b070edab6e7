/**
 * The baselines a TPM attestation judges against (baseline-set.ts): read and parsed again only
 * when the table's revision moved — and it moves for every writer: this context, another
 * context (another node or worker) on the same database, and plain SQL past the HGS code.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { BASELINE_FORMAT, baselineId, type Baseline } from "../../src/attest/baseline.js";
import { addBaseline, removeBaseline } from "../../src/hgs/admin.js";
import { openHgs, type HgsContext } from "../../src/hgs/context.js";
import { startHgs, type HgsFixture } from "../helpers/hgs-fixture.js";

function baseline(name: string): Baseline {
  return {
    format: BASELINE_FORMAT,
    kind: "secureboot",
    name,
    bank: "sha256",
    pcrs: { "7": randomBytes(32).toString("hex") },
  };
}

describe("baselines held per revision of the table", () => {
  let fx: HgsFixture;
  let other: HgsContext;

  before(async () => {
    fx = await startHgs({ tls: false });
    other = await openHgs(fx.dir);
  });

  after(async () => {
    await other.close();
    await fx.close();
  });

  const names = async (ctx: HgsContext) => (await ctx.baselines.current()).map((b) => b.name);

  it("holds the parsed list while nothing changed", async () => {
    await addBaseline(fx.ctx, baseline("one"));
    const first = await fx.ctx.baselines.current();
    assert.deepEqual(
      first.map((b) => b.name),
      ["one"],
    );
    assert.equal(await fx.ctx.baselines.current(), first, "the same list, not read again");
  });

  it("sees another context's additions and removals", async () => {
    const { id } = await addBaseline(other, baseline("two"));
    assert.deepEqual(await names(fx.ctx), ["one", "two"]);
    await removeBaseline(other, id);
    assert.deepEqual(await names(fx.ctx), ["one"]);
  });

  it("sees rows written with plain SQL, past the HGS code", async () => {
    const b = baseline("three");
    await other.repo.driver.run(
      `INSERT INTO baselines (id, kind, name, body, created_at) VALUES (?, ?, ?, ?, ?)`,
      [baselineId(b), b.kind, b.name, JSON.stringify(b), Date.now()],
    );
    assert.deepEqual(await names(fx.ctx), ["one", "three"]);
    await other.repo.driver.run(`UPDATE baselines SET body = ? WHERE name = 'three'`, [
      JSON.stringify({ ...b, name: "three, edited" }),
    ]);
    assert.deepEqual(await names(fx.ctx), ["one", "three, edited"]);
    await other.repo.driver.run(`DELETE FROM baselines WHERE name = 'three'`);
    assert.deepEqual(await names(fx.ctx), ["one"]);
  });
});
