/**
 * DESIGN.md's "Parts" rules, checked on the sources (eslint.config.js enforces the same table
 * in the editor; this test also follows re-exports and finds circles):
 *   - each part imports only the parts listed for it in {@link MAY_IMPORT}, plus core;
 *   - nothing imports cli (or web); host/vm never imports host/guarded;
 *   - no import circles between files under src/ (type-only imports count: they tie files all the
 *     same, and a circle means two modules that cannot be understood, tested or moved alone).
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { repoPath } from "../helpers/paths.js";

/**
 * Part → the parts it may import besides core and itself. `catalogue` is src/catalogue.ts: the
 * table of every domain's error codes, read by the CLI and the services for exit and HTTP
 * statuses; it gathers the codes of every part (cli's included), so it may import them all.
 */
const MAY_IMPORT: Readonly<Record<string, readonly string[] | "anything">> = {
  core: [],
  io: [],
  asn1: [],
  tpm: [],
  uefi: ["asn1"],
  eventlog: ["tpm", "uefi"],
  protector: ["asn1"],
  attest: ["tpm", "eventlog", "protector"],
  host: ["io", "asn1", "tpm", "uefi", "eventlog", "protector", "attest", "catalogue"],
  hgs: ["io", "asn1", "tpm", "eventlog", "protector", "attest", "catalogue-libraries"],
  lab: ["io", "host", "uefi", "tpm"],
  // src/catalogue-libraries.ts: the library parts' error codes only (the HGS server's status table).
  "catalogue-libraries": ["asn1", "uefi", "protector", "eventlog", "tpm", "attest"],
  cli: "anything",
  web: "anything",
  catalogue: "anything",
};

/** Sub-folder rules: files under `from` never import files under `to` (paths relative to src/). */
const NEVER: readonly { from: string; to: string; why: string }[] = [
  { from: "host/vm/", to: "host/guarded/", why: "the VM domain gets an unlock port, not the guarded host" },
  { from: "", to: "cli/", why: "nothing imports the CLI" },
  { from: "", to: "web/", why: "nothing imports the Manager" },
];

const src = repoPath("src");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sources(path.join(dir, e.name))
      : /\.ts$/.test(e.name) && !e.name.endsWith(".d.ts")
        ? [path.join(dir, e.name)]
        : [],
  );
}

/** "tpm/verify/quote.ts" → "tpm"; "catalogue.ts" → "catalogue". */
const partOf = (rel: string): string => (rel.split("/")[0] as string).replace(/\.ts$/, "");

interface Edge {
  readonly from: string;
  readonly to: string;
  readonly specifier: string;
  /** `import("...")`: a dependency for the layer rules, but loaded late, so not part of a circle. */
  readonly dynamic: boolean;
}

/**
 * Every relative import and re-export between files under src/, paths relative to src/ with "/"
 * (static `import`/`export ... from` and dynamic `import("...")`).
 */
function importEdges(): Edge[] {
  const spec =
    /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*["'](\.{1,2}\/[^"']+)["']|import\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;
  const edges: Edge[] = [];
  for (const file of sources(src)) {
    for (const m of readFileSync(file, "utf8").matchAll(spec)) {
      const specifier = (m[1] ?? m[2]) as string;
      let target = path.resolve(path.dirname(file), specifier).replace(/\.js$/, ".ts");
      if (!existsSync(target) && existsSync(path.join(target, "index.ts")))
        target = path.join(target, "index.ts");
      const rel = (p: string) => path.relative(src, p).split(path.sep).join("/");
      edges.push({ from: rel(file), to: rel(target), specifier, dynamic: m[1] === undefined });
    }
  }
  return edges;
}

/** The rule an import breaks, or undefined. */
function violation(from: string, to: string): string | undefined {
  const a = partOf(from);
  const b = partOf(to);
  for (const n of NEVER) {
    // "Nothing imports X" is about other parts: cli's own files import each other.
    const outsider = n.from !== "" || a !== b;
    if (outsider && from.startsWith(n.from) && to.startsWith(n.to) && !(b === "cli" && a === "catalogue"))
      return n.why;
  }
  if (a === b || b === "core") return undefined;
  const may = MAY_IMPORT[a];
  if (may === undefined) return `src/${a} is not a part DESIGN.md knows`;
  if (may === "anything" || may.includes(b)) return undefined;
  return `${a} may import ${may.length ? `core, ${may.join(", ")}` : "only core"}`;
}

/**
 * Import circles among the files (Tarjan's strongly connected components), each listed by its
 * edges; static imports and re-exports only, as the shared import-circles tool counts them.
 */
function circles(all: readonly Edge[]): string[][] {
  const edges = all.filter((e) => !e.dynamic);
  const next = new Map<string, Set<string>>();
  for (const e of edges) {
    if (!next.has(e.from)) next.set(e.from, new Set());
    if (!next.has(e.to)) next.set(e.to, new Set());
    next.get(e.from)!.add(e.to);
  }
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || next.get(v)?.has(v)) {
        const members = new Set(component);
        found.push(
          edges
            .filter((e) => members.has(e.from) && members.has(e.to))
            .map((e) => `${e.from} -> ${e.to}`)
            .sort(),
        );
      }
    }
  };
  for (const v of [...next.keys()].sort()) if (!index.has(v)) visit(v);
  return found;
}

test("each part imports only what DESIGN.md allows it", () => {
  const edges = importEdges();
  assert.ok(edges.length > 300, `only ${edges.length} relative imports found: the scan is broken`);
  const broken = edges.flatMap((e) => {
    const why = violation(e.from, e.to);
    return why ? [`${e.from} imports ${e.specifier}: ${why}`] : [];
  });
  assert.deepEqual(broken, []);
});

test("no import circles under src/", () => {
  assert.deepEqual(circles(importEdges()), []);
});

test("the rules and the circle finder catch what they are meant to", () => {
  assert.equal(violation("tpm/client.ts", "core/codec.ts"), undefined);
  assert.equal(violation("tpm/verify/quote.ts", "tpm/alg.ts"), undefined);
  assert.equal(violation("eventlog/facts.ts", "uefi/siglist.ts"), undefined);
  assert.equal(violation("tpm/client.ts", "host/paths.ts"), "tpm may import only core");
  assert.equal(violation("uefi/pe.ts", "protector/kdf.ts"), "uefi may import core, asn1");
  assert.match(violation("hgs/service.ts", "host/paths.ts") ?? "", /^hgs may import/);
  assert.equal(
    violation("host/vm/runtime.ts", "host/guarded/unlock.ts"),
    "the VM domain gets an unlock port, not the guarded host",
  );
  assert.equal(violation("host/guarded/unlock.ts", "host/vm/runtime.ts"), undefined);
  assert.equal(violation("lab/demo.ts", "cli/args.ts"), "nothing imports the CLI");
  assert.equal(violation("catalogue.ts", "cli/args.ts"), undefined);
  assert.equal(violation("cli/run.ts", "cli/commands.ts"), undefined);
  const e = (from: string, to: string): Edge => ({ from, to, specifier: to, dynamic: false });
  assert.deepEqual(circles([e("a.ts", "b.ts"), e("b.ts", "c.ts")]), []);
  assert.deepEqual(circles([e("a.ts", "b.ts"), { ...e("b.ts", "a.ts"), dynamic: true }]), []);
  assert.deepEqual(circles([e("a.ts", "b.ts"), e("b.ts", "c.ts"), e("c.ts", "a.ts"), e("c.ts", "d.ts")]), [
    ["a.ts -> b.ts", "b.ts -> c.ts", "c.ts -> a.ts"],
  ]);
});

test("eslint.config.js enforces the same table", () => {
  const text = readFileSync(repoPath("eslint.config.js"), "utf8");
  const block = /const MAY_IMPORT = \{([\s\S]*?)\n\};/.exec(text)?.[1];
  assert.ok(block, "MAY_IMPORT not found in eslint.config.js");
  const fromEslint = Object.fromEntries(
    [...block.matchAll(/^\s*"?([\w-]+)"?: \[([^\]]*)\]/gm)].map((m) => [
      m[1],
      (m[2] as string)
        .split(",")
        .map((s) => s.trim().replace(/"/g, ""))
        .filter(Boolean),
    ]),
  );
  const ours = Object.fromEntries(Object.entries(MAY_IMPORT).filter(([, v]) => v !== "anything"));
  assert.deepEqual(fromEslint, ours);
});
