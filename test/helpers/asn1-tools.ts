/**
 * Test helpers for the ASN.1 / Authenticode tests: run a real tool (openssl, sbsign, sbverify,
 * sbvarsign) and fail loudly with the Debian package when it is missing; temporary directories.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const PACKAGES: Record<string, string> = {
  openssl: "openssl",
  sbsign: "sbsigntool",
  sbverify: "sbsigntool",
  sbvarsign: "sbsigntool",
  "dpkg-deb": "dpkg",
  "apt-get": "apt",
};

export interface ToolResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `cmd`; a missing binary throws with the Debian package to install. */
export function tool(
  cmd: string,
  args: readonly string[],
  opts: { input?: Uint8Array; cwd?: string } = {},
): ToolResult {
  const r = spawnSync(cmd, args, {
    input: opts.input,
    cwd: opts.cwd,
    encoding: "utf8",
    maxBuffer: 256 << 20,
  });
  if (r.error) {
    const pkg = PACKAGES[cmd] ?? cmd;
    throw new Error(`${cmd} is required for this test: apt-get install ${pkg} (${r.error.message})`);
  }
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Like {@link tool} but a non-zero exit throws with the tool's output. */
export function toolOk(
  cmd: string,
  args: readonly string[],
  opts: { input?: Uint8Array; cwd?: string } = {},
): ToolResult {
  const r = tool(cmd, args, opts);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return r;
}

/** A fresh temporary directory and its cleanup. */
export function tempDir(prefix = "bulwark-asn1-"): {
  dir: string;
  file: (name: string) => string;
  cleanup: () => void;
} {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return {
    dir,
    file: (name) => path.join(dir, name),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
