/**
 * Every child process Bulwark starts (QEMU, swtpm, swtpm_setup) goes through `spawnChild`, with
 * one of two lifetimes:
 * - attached: the child must not outlive this process. It runs tied to our life (lifetime.ts:
 *   setpriv's parent-death SIGKILL plus a check that closes its race, so even a SIGKILL of Node
 *   leaves nothing behind; without setpriv it is not started) and is registered below so a
 *   second Ctrl-C reaps it.
 * - detached: the child is a VM's (QEMU, its swtpm) and must outlive the command that started
 *   it. It runs in its own session with its output appended to a log file, and is not registered.
 * A secret (a state key) reaches a child only through a pipe on its file descriptor 3. Programs
 * come from the system directories, never the caller's PATH, and every child gets the same
 * minimal environment (tools.ts).
 *
 * The registry of attached children is process-wide on purpose: signal handlers are
 * process-wide, and a child started anywhere in this process must be reaped by them.
 */
import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { tiedToParent } from "./lifetime.js";
import { childEnvironment, requireProgram } from "./tools.js";

const live = new Set<ChildProcess>();

export interface ChildOptions {
  /** Default "attached". */
  readonly lifetime?: "attached" | "detached";
  /** Append stdout and stderr to this file (0600) instead of piping them. */
  readonly log?: string;
  /** Attached children: pipe stdout to the caller (default: ignored). */
  readonly stdout?: "pipe" | "ignore";
  /** Written to the child's fd 3 through a pipe, then closed: never argv, environment or disk. */
  readonly secretFd3?: string;
}

export interface Supervised {
  readonly child: ChildProcess;
  /** Resolves with the exit code (or signal) once the process is gone. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
  /** The tail of what it wrote to stderr (or to its log file), bounded. */
  stderrTail(): string;
}

const TAIL_BYTES = 8192;

export function spawnChild(program: string, args: readonly string[], opts: ChildOptions = {}): Supervised {
  const exe = program.includes("/") ? program : requireProgram(program);
  const detached = opts.lifetime === "detached";
  const { command: cmd, argv } = detached ? { command: exe, argv: [...args] } : tiedToParent(exe, args);
  const logFd = opts.log === undefined ? undefined : openSync(opts.log, "a", 0o600);
  const stdio: StdioOptions = [
    "ignore",
    logFd ?? opts.stdout ?? "ignore",
    logFd ?? "pipe",
    ...(opts.secretFd3 === undefined ? [] : ["pipe" as const]),
  ];
  let child: ChildProcess;
  try {
    child = spawn(cmd, argv, { stdio, detached, env: childEnvironment() });
  } finally {
    if (logFd !== undefined) closeSync(logFd); // the child holds its own copy
  }
  if (opts.secretFd3 !== undefined) {
    const fd3 = child.stdio[3] as NodeJS.WritableStream;
    // A child that dies (or is stopped) before it read its key resets the pipe: that is reported
    // by its exit, and must not surface as an unhandled 'error' that ends this process.
    fd3.on("error", () => undefined);
    fd3.end(opts.secretFd3);
  }
  if (detached) child.unref();
  else live.add(child);
  let errTail = "";
  child.stderr?.on("data", (d: Buffer) => {
    errTail = (errTail + d.toString("utf8")).slice(-TAIL_BYTES);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    const done = (code: number | null, signal: NodeJS.Signals | null) => {
      live.delete(child);
      resolve({ code, signal });
    };
    child.once("exit", done);
    child.once("error", () => done(null, null));
  });
  const stop = async (graceMs = 3000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  };
  const stderrTail = (): string => {
    if (opts.log === undefined) return errTail;
    try {
      return readFileSync(opts.log, "utf8").slice(-TAIL_BYTES);
    } catch {
      return "";
    }
  };
  return { child, exited, stop, stderrTail };
}

/** The last `n` non-empty-trimmed lines of a child's output tail. */
export function lastLines(text: string, n: number): string {
  return text.trim().split("\n").slice(-n).join("\n");
}

/**
 * Waits for a started child to become ready (its socket or pid file appears): "ready", or why
 * not — it "exited" first, or "timeout". The caller decides what to stop and what to report.
 */
export async function waitReady(
  proc: Supervised,
  ready: () => boolean,
  timeoutMs: number,
): Promise<"ready" | "exited" | "timeout"> {
  const start = Date.now();
  const deadline = start + timeoutMs;
  while (!ready()) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) return "exited";
    if (Date.now() > deadline) return "timeout";
    await sleep(Date.now() - start < FAST_POLL_MS ? 2 : 20);
  }
  return "ready";
}

/**
 * swtpm has its socket within ~5 ms of the spawn, QEMU its QMP socket within ~100 ms: polled
 * every 2 ms at first (a VM start waits on two swtpm and one QEMU), every 20 ms after.
 */
const FAST_POLL_MS = 250;

/** Kills every attached child at once (signal handlers call this). */
export function killAllChildren(): void {
  for (const c of live) c.kill("SIGKILL");
}

export function liveChildCount(): number {
  return live.size;
}
