/**
 * Every long-running child (QEMU, swtpm) Bulwark starts is registered here so it can be reaped
 * on success, failure and Ctrl-C. Children that must not outlive this process are started
 * under `setpriv --pdeathsig SIGKILL`, so even a SIGKILL of Node leaves nothing behind.
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { findProgram, requireProgram } from "./tools.js";

const live = new Set<ChildProcess>();

export interface Supervised {
  readonly child: ChildProcess;
  /** Resolves with the exit code (or signal) once the process is gone. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
  /** The tail of what it wrote to stderr (bounded). */
  stderrTail(): string;
}

export function spawnSupervised(
  program: string,
  args: readonly string[],
  opts: SpawnOptions & { dieWithParent?: boolean } = {},
): Supervised {
  const exe = program.includes("/") ? program : requireProgram(program);
  const setpriv = opts.dieWithParent === false ? undefined : findProgram("setpriv");
  const [cmd, argv] = setpriv ? [setpriv, ["--pdeathsig", "SIGKILL", "--", exe, ...args]] : [exe, [...args]];
  const child = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"], ...opts });
  live.add(child);
  let errTail = "";
  child.stderr?.on("data", (d: Buffer) => {
    errTail = (errTail + d.toString("utf8")).slice(-8192);
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
  return { child, exited, stop, stderrTail: () => errTail };
}

/** Kills every registered child at once (signal handlers call this). */
export function killAllChildren(): void {
  for (const c of live) c.kill("SIGKILL");
}

export function liveChildCount(): number {
  return live.size;
}
