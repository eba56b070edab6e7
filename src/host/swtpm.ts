/**
 * One swtpm (TPM 2.0) process serving one VM over a UNIX control socket that QEMU's
 * tpm-emulator backend connects to; it ends by itself when QEMU disconnects (--terminate).
 * The one launcher for a VM's vTPM (detached, state encrypted under a key passed on fd 3) and
 * a test boot's throwaway vTPM (attached, plain state). swtpm changes directory to /, so every
 * path is absolute.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { lastLines, spawnChild, waitReady, type Supervised } from "./children.js";
import { hostError } from "./errors.js";

export interface SwtpmOptions {
  /** Directory holding the TPM state (created if missing). */
  readonly stateDir: string;
  /** Control socket path QEMU connects to. */
  readonly socketPath: string;
  /** A TPM command socket too (`--server`): the host's own session before QEMU connects. */
  readonly dataSocketPath?: string;
  /** Encrypts the state at rest (AES-256-CBC); passed by file descriptor, never argv. */
  readonly stateKey?: Uint8Array;
  /** swtpm writes its pid here (a VM's swtpm, found again by later commands). */
  readonly pidFile?: string;
  /** Default "attached" (see children.ts). A detached swtpm logs to `log`. */
  readonly lifetime?: "attached" | "detached";
  readonly log?: string;
}

export interface SwtpmProcess {
  readonly socketPath: string;
  readonly proc: Supervised;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 10_000;

/**
 * Starts swtpm and waits for its control socket. A failure is HOST_ERR_TOOL_FAILED with
 * `details.startup` ("exited" or "timeout") and the tail of swtpm's output in `details.output`.
 */
export async function startSwtpm(opts: SwtpmOptions): Promise<SwtpmProcess> {
  const stateDir = path.resolve(opts.stateDir);
  const socketPath = path.resolve(opts.socketPath);
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  // A pid file left by an earlier swtpm would pass for this one's before it writes its own.
  if (opts.pidFile) await rm(opts.pidFile, { force: true });
  const proc = spawnChild(
    "swtpm",
    [
      "socket",
      "--tpm2",
      "--tpmstate",
      `dir=${stateDir},mode=0600`,
      "--ctrl",
      `type=unixio,path=${socketPath},mode=0600`,
      ...(opts.dataSocketPath
        ? ["--server", `type=unixio,path=${path.resolve(opts.dataSocketPath)},mode=0600`]
        : []),
      ...(opts.stateKey ? ["--key", "fd=3,mode=aes-256-cbc,format=hex"] : []),
      ...(opts.pidFile ? ["--pid", `file=${opts.pidFile}`] : []),
      "--terminate",
    ],
    {
      ...(opts.lifetime ? { lifetime: opts.lifetime } : {}),
      ...(opts.log ? { log: opts.log } : {}),
      ...(opts.stateKey ? { secretFd3: Buffer.from(opts.stateKey).toString("hex") } : {}),
    },
  );
  // The pid file too: whoever stops this swtpm later (a detached one outlives us) finds it there,
  // and a stop that came before swtpm wrote it would leave swtpm waiting forever.
  const ready = () =>
    existsSync(socketPath) &&
    (!opts.dataSocketPath || existsSync(path.resolve(opts.dataSocketPath))) &&
    (!opts.pidFile || pidFileWritten(opts.pidFile));
  const startup = await waitReady(proc, ready, START_TIMEOUT_MS);
  if (startup !== "ready") {
    await proc.stop(0);
    const output = lastLines(proc.stderrTail(), 5);
    throw hostError(
      "HOST_ERR_TOOL_FAILED",
      startup === "exited"
        ? `swtpm exited at start: ${proc.stderrTail().trim()}`
        : "swtpm did not create its control socket within 10 s",
      { program: "swtpm", startup, output },
    );
  }
  return { socketPath, proc, stop: () => proc.stop() };
}

function pidFileWritten(file: string): boolean {
  try {
    return /^\d+\s*$/.test(readFileSync(file, "utf8"));
  } catch {
    return false;
  }
}
