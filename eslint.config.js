// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/**
 * DESIGN.md "Parts": what each folder under src/ may import besides core (checked again, with
 * import circles, by test/core/layers.test.ts). `catalogue` is src/catalogue.ts, the table of
 * every domain's error codes that the CLI and the services read statuses from.
 * `host` and `hgs` may also use `asn1`, the X.509 layer, because they issue certificates of
 * their own (the installation's Secure Boot PK; the HGS signer and TLS certificates); routing
 * that through `protector` would only add a re-export.
 */
const MAY_IMPORT = {
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
};
const PARTS = [...Object.keys(MAY_IMPORT), "cli", "web", "catalogue"];

/** Parts that are pure libraries: no files, sockets, processes or environment (STYLE.md habit 1). */
const PURE = ["core", "io", "asn1", "tpm", "uefi", "eventlog", "protector", "attest"];

/** A relative import that climbs into one of `parts` (no folder inside a part shares a part's name). */
const into = (parts) => `^(?:\\.\\./)+(?:${parts.join("|")})(?:/|\\.js$)`;

function partPatterns(part) {
  const allowed = new Set(["core", part, ...MAY_IMPORT[part]]);
  const forbidden = PARTS.filter((p) => !allowed.has(p));
  const may = MAY_IMPORT[part].length ? `core, ${MAY_IMPORT[part].join(", ")}` : "only core";
  return [{ regex: into(forbidden), message: `src/${part} may import ${may} (DESIGN.md "Parts").` }];
}

const NODE_IO = ["fs", "fs/promises", "net", "child_process", "dgram", "http", "https", "tls", "cluster"];
const nodeIoPaths = (except = []) =>
  NODE_IO.filter((m) => !except.includes(m)).flatMap((m) =>
    [m, `node:${m}`].map((name) => ({
      name,
      message: "Pure library parts touch no files, sockets or processes; only an adapter does (DESIGN.md).",
    })),
  );
const processExit = { object: "process", property: "exit", message: "Libraries never exit the process." };
const processEnv = {
  object: "process",
  property: "env",
  message: "Pure library parts never read the environment; the caller passes what they need.",
};

/** One flat-config block per part (and the sub-folders with rules of their own). */
function layerBlocks() {
  const blocks = [];
  for (const part of Object.keys(MAY_IMPORT)) {
    const pure = PURE.includes(part);
    blocks.push({
      files: [`src/${part}/**/*.ts`],
      rules: {
        "no-restricted-imports": [
          "error",
          {
            // io is the file adapter: it may use node:fs, nothing else that does I/O.
            paths: pure ? nodeIoPaths(part === "io" ? ["fs", "fs/promises"] : []) : [],
            patterns: partPatterns(part),
          },
        ],
        ...(pure ? { "no-restricted-properties": ["error", processExit, processEnv] } : {}),
      },
    });
  }
  // tpm/transport is the TPM's adapter: sockets and device files are its job.
  blocks.push({
    files: ["src/tpm/transport/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        { paths: nodeIoPaths(["net", "fs", "fs/promises"]), patterns: partPatterns("tpm") },
      ],
    },
  });
  // The VM domain never reaches into the guarded-host code (it gets an unlock port instead).
  blocks.push({
    files: ["src/host/vm/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            ...partPatterns("host"),
            {
              regex: "^(?:\\.\\./)+(?:host/)?guarded(?:/|\\.js$)",
              message: "src/host/vm never imports src/host/guarded (DESIGN.md).",
            },
          ],
        },
      ],
    },
  });
  return blocks;
}

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", ".cache/", "coverage/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "no-console": "off",
    },
  },
  {
    // Pure libraries never print or exit (STYLE.md habit 12).
    files: PURE.map((p) => `src/${p}/**`),
    rules: {
      "no-console": "error",
      "no-restricted-properties": ["error", processExit],
    },
  },
  ...layerBlocks(),
  {
    files: ["scripts/**/*.mjs", "eslint.config.js"],
    languageOptions: {
      globals: {
        process: "readonly",
        console: "readonly",
        URL: "readonly",
        Buffer: "readonly",
        setTimeout: "readonly",
      },
    },
  },
);
