/**
 * One swtpm (TPM 2.0) process serving one VM over a UNIX control socket that QEMU's
 * tpm-emulator backend connects to. swtpm changes directory to /, so every path is absolute.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { spawnSupervised, type Supervised } from "./children.js";
import { hostError } from "./errors.js";

export interface SwtpmOptions {
  /** Directory holding the TPM state (created if missing). */
  readonly stateDir: string;
  /** Control socket path QEMU connects to. */
  readonly socketPath: string;
  /** Extra file descriptors passed to swtpm (e.g. the state key), indexed from 3. */
  readonly extraFds?: readonly (number | "pipe")[];
  /** Extra arguments (e.g. `--key fd=3,mode=aes-256-cbc,format=binary`). Never secrets. */
  readonly extraArgs?: readonly string[];
  readonly dieWithParent?: boolean;
}

export interface SwtpmProcess {
  readonly socketPath: string;
  readonly proc: Supervised;
  stop(): Promise<void>;
}

export async function startSwtpm(opts: SwtpmOptions): Promise<SwtpmProcess> {
  const stateDir = path.resolve(opts.stateDir);
  const socketPath = path.resolve(opts.socketPath);
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const proc = spawnSupervised(
    "swtpm",
    [
      "socket",
      "--tpm2",
      "--tpmstate",
      `dir=${stateDir},mode=0600`,
      "--ctrl",
      `type=unixio,path=${socketPath},mode=0600`,
      "--terminate",
      ...(opts.extraArgs ?? []),
    ],
    {
      stdio: ["ignore", "pipe", "pipe", ...(opts.extraFds ?? [])],
      ...(opts.dieWithParent === undefined ? {} : { dieWithParent: opts.dieWithParent }),
    },
  );
  const deadline = Date.now() + 10_000;
  while (!existsSync(socketPath)) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw hostError("HOST_ERR_TOOL_FAILED", `swtpm exited at start: ${proc.stderrTail().trim()}`, {
        program: "swtpm",
      });
    }
    if (Date.now() > deadline) {
      await proc.stop();
      throw hostError("HOST_ERR_TOOL_FAILED", "swtpm did not create its control socket within 10 s", {
        program: "swtpm",
      });
    }
    await sleep(20);
  }
  return { socketPath, proc, stop: () => proc.stop() };
}
