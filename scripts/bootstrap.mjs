#!/usr/bin/env node
// One setup step behind `npm run demo` and `npm test` on a fresh Debian 12 + Node 20 machine:
// Debian packages (apt-get update first, only when something is missing), `npm ci` when
// node_modules is missing or stale, an incremental TypeScript build, and (with --image) the
// guest test images. Idempotent and quiet unless something fails.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = new Set(process.argv.slice(2));
const quiet = !args.has("--verbose");

/** Debian packages Bulwark needs at run time and in its tests (see README). */
export const debianPackages = [
  "qemu-system-x86",
  "qemu-utils",
  "ovmf",
  "swtpm",
  "swtpm-tools",
  "tpm2-tools",
  "sbsigntool",
  "mtools",
  "gdisk",
  "dosfstools",
  "cpio",
  "busybox-static",
  "openssl",
  "postgresql",
  // promtool, which checks the HGS's GET /metrics exposition in the tests.
  "prometheus",
];

function log(msg) {
  if (!quiet) process.stderr.write(`bootstrap: ${msg}\n`);
}

function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { cwd: root, encoding: "utf8", maxBuffer: 64 << 20, ...opts });
  if (r.error || r.status !== 0) {
    const out = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-40).join("\n");
    process.stderr.write(
      `bootstrap: '${cmd} ${argv.join(" ")}' failed${r.error ? `: ${r.error.message}` : ` (exit ${r.status})`}\n${out}\n`,
    );
    process.exit(1);
  }
  return r.stdout;
}

function missingDebianPackages() {
  const r = spawnSync("dpkg-query", ["-W", "-f=${Package} ${db:Status-Status}\n", ...debianPackages], {
    encoding: "utf8",
  });
  const installed = new Set(
    (r.stdout ?? "")
      .split("\n")
      .filter((l) => l.endsWith(" installed"))
      .map((l) => l.split(" ")[0]),
  );
  return debianPackages.filter((p) => !installed.has(p));
}

function ensureDebianPackages() {
  const missing = missingDebianPackages();
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    process.stderr.write(
      `bootstrap: missing Debian packages: ${missing.join(" ")}\n` +
        `  install them with: sudo apt-get update && sudo apt-get install -y ${missing.join(" ")}\n`,
    );
    process.exit(1);
  }
  process.stderr.write(`bootstrap: installing Debian packages: ${missing.join(" ")}\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  run("apt-get", ["update", "-q"], { env });
  run("apt-get", ["install", "-y", "-q", "--no-install-recommends", ...missing], { env });
}

function lockHash() {
  return createHash("sha256")
    .update(readFileSync(path.join(root, "package-lock.json")))
    .update(readFileSync(path.join(root, "package.json")))
    .update(process.version)
    .digest("hex");
}

function ensureNodeModules() {
  const stamp = path.join(root, "node_modules", ".bulwark-lock");
  const want = lockHash();
  if (existsSync(stamp) && readFileSync(stamp, "utf8") === want) return;
  process.stderr.write("bootstrap: npm ci\n");
  run("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
  writeFileSync(stamp, want);
}

function build() {
  log("tsc");
  run(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"]);
}

function ensureImages() {
  const r = spawnSync(
    process.execPath,
    [path.join(root, "dist/src/cli/main.js"), "image", "build", "--all", "--quiet"],
    {
      cwd: root,
      stdio: ["ignore", "inherit", "inherit"],
    },
  );
  if (r.status !== 0) {
    process.stderr.write("bootstrap: building the guest test images failed (see above)\n");
    process.exit(1);
  }
}

/**
 * Extracts the Microsoft certificates and dbx from Debian's OVMF_VARS_4M.ms.fd (and the SBAT
 * levels of Debian's signed shim) into the state directory's secureboot/ folder.
 */
function secureBootSetup() {
  if (process.getuid?.() !== 0 && !process.env.BULWARK_STATE_DIR) {
    log("not root and no BULWARK_STATE_DIR: skipping `bulwark secureboot setup`");
    return;
  }
  const cli = path.join(root, "dist/src/cli/main.js");
  const img = spawnSync(process.execPath, [cli, "image", "path", "--json"], { cwd: root, encoding: "utf8" });
  let shim;
  try {
    shim = JSON.parse(img.stdout).bootChain.shim;
  } catch {
    shim = undefined;
  }
  run(process.execPath, [cli, "secureboot", "setup", ...(shim ? ["--shim", shim] : []), "--json"]);
}

ensureDebianPackages();
ensureNodeModules();
build();
if (args.has("--image")) {
  ensureImages();
  secureBootSetup();
}
