/**
 * A VM's processes as later commands find them: QEMU and swtpm by their pid files (checked
 * against /proc, so a recycled pid is not mistaken for the VM), the QMP socket, and starting
 * QEMU so that it outlives the command that started it.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { lastLines, spawnChild, waitReady } from "../children.js";
import { QmpClient } from "../qmp.js";
import { vmError } from "./errors.js";
import type { VmPaths } from "./store.js";

export function pidAlive(pid: number): boolean {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const st = s.charAt(s.lastIndexOf(")") + 2);
    return st !== "Z" && st !== "X";
  } catch {
    return false;
  }
}

function readPid(file: string): number | null {
  try {
    const n = Number(readFileSync(file, "utf8").trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** The QEMU process of this VM, if one is alive (pid file + /proc check of its command line). */
export function qemuPidOf(p: VmPaths): number | null {
  const pid = readPid(p.qemuPid);
  if (pid === null || !pidAlive(pid)) return null;
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return cmd.includes(p.qmpSocket) ? pid : null;
  } catch {
    return null;
  }
}

export async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) return false;
    // A QEMU told to quit is gone within a few ms; a save waits on it (one /proc read a poll).
    await sleep(10);
  }
  return true;
}

/**
 * Kills the process a pid file names — only if it is still the one that wrote it: QEMU and swtpm
 * both carry their pid file's path on their command line, so a pid reused by another process
 * after a crash is left alone.
 */
export async function killPidFile(file: string): Promise<void> {
  const pid = readPid(file);
  if (pid !== null && pidAlive(pid) && commandLineNames(pid, file)) {
    process.kill(pid, "SIGKILL");
    await waitGone(pid, 5000);
  }
}

function commandLineNames(pid: number, file: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(file);
  } catch {
    return false; // gone meanwhile
  }
}

export async function connectQmp(p: VmPaths, timeoutMs = 10_000): Promise<QmpClient> {
  return QmpClient.connect(p.qmpSocket, { timeoutMs });
}

export async function assertOff(p: VmPaths, name: string): Promise<void> {
  if (qemuPidOf(p) !== null) throw vmError("VM_ERR_STATE", `VM '${name}' is already running`);
}

export function assertRunning(p: VmPaths, name: string): number {
  const pid = qemuPidOf(p);
  if (pid === null) throw vmError("VM_ERR_STATE", `VM '${name}' is not running`);
  return pid;
}

const QEMU_START_TIMEOUT_MS = 30_000;

/**
 * Starts the VM's QEMU. With -daemonize QEMU detaches itself and its parent exits once the VM is
 * set up; a sandboxed (shielded) QEMU cannot fork, so it is started detached in its own session
 * and is ready when its QMP socket and pid file appear.
 */
export async function spawnQemu(args: string[], p: VmPaths): Promise<void> {
  if (args.includes("-daemonize")) {
    const q = spawnChild("qemu-system-x86_64", args);
    const { code } = await q.exited;
    if (code !== 0) {
      throw vmError("VM_ERR_START_FAILED", `QEMU failed to start (exit ${code}): ${q.stderrTail().trim()}`, {
        program: "qemu-system-x86_64",
      });
    }
    return;
  }
  const q = spawnChild("qemu-system-x86_64", args, {
    lifetime: "detached",
    log: path.join(p.runDir, "qemu.log"),
  });
  const ready = () => existsSync(p.qmpSocket) && readPid(p.qemuPid) !== null;
  if ((await waitReady(q, ready, QEMU_START_TIMEOUT_MS)) !== "ready") {
    q.child.kill("SIGKILL");
    throw vmError(
      "VM_ERR_START_FAILED",
      `QEMU failed to start: ${lastLines(q.stderrTail(), 10) || "no QMP socket within 30 s"}`,
      { program: "qemu-system-x86_64" },
    );
  }
}

/** How long a started VM must stay up, answering QMP, before start reports it running. */
const SETTLE_MS = 300;

/**
 * The tail of a child's log for an error message: at most `n` lines, each cut short, and no line
 * that carries a long hex or base64 run (swtpm is never given a key in argv or its log, but a
 * message is no place to find out otherwise).
 */
export function logTail(file: string, n: number): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8").slice(-8192);
  } catch {
    return "";
  }
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !/[0-9A-Fa-f]{32,}|[A-Za-z0-9+/=]{44,}/.test(l))
    .slice(-n)
    .map((l) => (l.length > 200 ? `${l.slice(0, 200)}…` : l))
    .join("\n");
}

/**
 * Confirms that a VM just started is running: QEMU answers QMP (it does so only once the machine
 * is set up, so a vTPM that failed its CMD_INIT has made QEMU exit by then), and QEMU — and its
 * swtpm when it has a vTPM — are still alive a moment later. Returns why not, or null.
 * `settle: false` skips the moment: a restore follows at once, and its stream — seconds of QEMU
 * and swtpm at work — is the moment; {@link stillRunning} is checked after it.
 */
export async function confirmStarted(
  p: VmPaths,
  withVtpm: boolean,
  opts: { settle?: boolean } = {},
): Promise<string | null> {
  let status: string;
  try {
    const q = await connectQmp(p, QEMU_START_TIMEOUT_MS);
    try {
      status = (await q.execute<{ status: string }>("query-status", undefined, { timeoutMs: 10_000 })).status;
    } finally {
      q.close();
    }
  } catch {
    return qemuPidOf(p) === null ? "QEMU exited right after starting" : "QEMU does not answer QMP";
  }
  if (opts.settle === false) return null;
  await sleep(SETTLE_MS);
  return stillRunning(p, withVtpm, `it was ${status}`);
}

/** Why the VM's QEMU (and swtpm, with a vTPM) is no longer running, or null when both are. */
export function stillRunning(p: VmPaths, withVtpm: boolean, context: string): string | null {
  if (qemuPidOf(p) === null) return `QEMU exited right after starting (${context})`;
  if (withVtpm) {
    const tpm = readPid(p.swtpmPid);
    if (tpm === null || !pidAlive(tpm)) return "the vTPM (swtpm) exited right after starting";
  }
  return null;
}

/** Kills whatever of a VM's QEMU and swtpm is alive (a start that failed part-way). */
export async function killVmProcesses(p: VmPaths): Promise<void> {
  const pid = qemuPidOf(p);
  if (pid !== null) {
    process.kill(pid, "SIGKILL");
    await waitGone(pid, 5000);
  }
  await killPidFile(p.swtpmPid);
}
