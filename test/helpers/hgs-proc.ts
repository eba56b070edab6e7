/**
 * Runs `bulwark hgs …` as real processes (the compiled CLI) for HTTPS and multi-node tests.
 * `startServe` waits (up to 60 s: a `--workers 2` start takes ~20 s on a loaded 2-core machine)
 * for the JSON "listening" line; `stop()` sends SIGTERM, then SIGKILL after
 * 5 s, and resolves when the process has exited. Tests call stop() in teardown.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { repoPath } from "./paths.js";

const MAIN = repoPath("dist/src/cli/main.js");

export function hgsCli(args: string[]): { status: number; stdout: string; stderr: string; json: unknown } {
  const r = spawnSync(process.execPath, [MAIN, "hgs", ...args], { encoding: "utf8", timeout: 60_000 });
  let json: unknown;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    json = undefined;
  }
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json };
}

export interface ServeProcess {
  readonly url: string;
  readonly proc: ChildProcess;
  /** Everything the process printed so far (stdout and stderr). */
  output(): string;
  /** What it printed on stdout (the CLI's own output). */
  stdout(): string;
  /** What it printed on stderr (the service's JSON log lines). */
  stderr(): string;
  stop(): Promise<void>;
}

export async function startServe(
  dir: string,
  extra: string[] = [],
  nodeArgs: string[] = [],
): Promise<ServeProcess> {
  const proc = spawn(
    process.execPath,
    [...nodeArgs, MAIN, "hgs", "serve", "--dir", dir, "--listen", "127.0.0.1:0", "--json", ...extra],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    }
  };
  let out = "";
  let err = "";
  proc.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`hgs serve did not start: ${err}`)), 60_000);
      proc.stdout?.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /"listening":\s*"([^"]+)"/.exec(out);
        if (m?.[1]) {
          clearTimeout(t);
          resolve(m[1]);
        }
      });
      proc.once("exit", (code) => {
        clearTimeout(t);
        reject(new Error(`hgs serve exited with ${code}: ${err}`));
      });
    });
    proc.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    return { url, proc, stop, output: () => out + err, stdout: () => out, stderr: () => err };
  } catch (e) {
    await stop();
    throw e;
  }
}
