/**
 * Runs `bulwark host …` as the compiled CLI against a state directory, with --json. Asynchronous:
 * the test process may itself be serving HGS, which a synchronous spawn would block.
 */
import { spawn } from "node:child_process";
import { repoPath } from "./paths.js";

const MAIN = repoPath("dist/src/cli/main.js");

export async function hostCli(
  stateDir: string,
  args: string[],
): Promise<{ status: number; stdout: string; stderr: string; json: Record<string, unknown> }> {
  const child = spawn(process.execPath, [MAIN, "host", ...args, "--state-dir", stateDir, "--json"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const status = await new Promise<number>((resolve) => child.once("close", (code) => resolve(code ?? -1)));
  clearTimeout(timer);
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(stdout) as Record<string, unknown>;
  } catch {
    json = {};
  }
  return { status, stdout, stderr, json };
}
