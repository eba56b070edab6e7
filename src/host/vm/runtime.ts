/**
 * The VM runtime: start, shut down, turn off, pause/resume, status, save and restore — QEMU
 * daemonized with a QMP socket, one swtpm per VM whose state key arrives by file descriptor,
 * and saved state streamed through authenticated encryption. Each operation holds the VM's lock.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, openSync, closeSync, readFileSync } from "node:fs";
import { mkdir, open, readdir, readFile, rm, stat } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { isBulwarkError } from "../../core/errors.js";
import { createDecryptStream, createEncryptStream } from "../../protector/stream.js";
import { VM_SECRET } from "../../protector/vm-secrets.js";
import { findSecureBootFirmware } from "../firmware.js";
import { commitFile, tempPathFor, writeFileAtomic } from "../../io/atomic.js";
import { GuardianStore } from "../guardians.js";
import { chooseAccelerator } from "../probe.js";
import { QmpClient } from "../qmp.js";
import { requireProgram } from "../tools.js";
import type { VmConfig } from "./config.js";
import { secret, type VmSecrets } from "./keys.js";
import { unlockVmLocallyOrViaHgs } from "../guarded/unlock.js";
import { provisionNvram } from "./nvram.js";
import { qemuArgs } from "./qemu-args.js";
import { VmStore, type VmPaths } from "./store.js";
import { vmError } from "./errors.js";

export type VmState = "Off" | "Running" | "Paused" | "Saved";

export interface HostContext {
  readonly store: VmStore;
  readonly guardians: GuardianStore;
  readonly progress?: (message: string) => void;
}

export function hostContext(stateDir?: string, progress?: (m: string) => void): HostContext {
  const store = new VmStore(stateDir);
  return { store, guardians: new GuardianStore(store.stateDir), ...(progress ? { progress } : {}) };
}

export interface SavedStateMeta {
  readonly version: 1;
  readonly encrypted: boolean;
  readonly bytes: number;
  readonly createdAt: string;
  readonly vmId: string;
}

export interface VmStatus {
  readonly name: string;
  readonly state: VmState;
  readonly qemuPid: number | null;
  readonly savedState: SavedStateMeta | null;
}

function pidAlive(pid: number): boolean {
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

async function readSavedMeta(p: VmPaths): Promise<SavedStateMeta | null> {
  if (!existsSync(p.savedState)) return null;
  try {
    return JSON.parse(await readFile(p.savedStateMeta, "utf8")) as SavedStateMeta;
  } catch {
    return null;
  }
}

export async function connectQmp(p: VmPaths, timeoutMs = 10_000): Promise<QmpClient> {
  return QmpClient.connect(p.qmpSocket, { timeoutMs });
}

export async function vmStatus(ctx: HostContext, name: string): Promise<VmStatus> {
  await ctx.store.load(name);
  const p = ctx.store.paths(name);
  const pid = qemuPidOf(p);
  const savedState = await readSavedMeta(p);
  if (pid === null) return { name, state: savedState ? "Saved" : "Off", qemuPid: null, savedState };
  let state: VmState = "Running";
  try {
    const q = await connectQmp(p, 3000);
    try {
      const s = await q.execute<{ status: string; running: boolean }>("query-status", undefined, {
        timeoutMs: 3000,
      });
      state = s.running ? "Running" : "Paused";
    } finally {
      q.close();
    }
  } catch {
    state = "Running";
  }
  return { name, state, qemuPid: pid, savedState };
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

async function cleanRunDir(p: VmPaths): Promise<void> {
  await rm(p.runDir, { recursive: true, force: true });
  await mkdir(p.runDir, { recursive: true, mode: 0o700 });
}

/** Writes a secret to a child's file descriptor 3 through a pipe: never argv, env or disk. */
function keyFdStdio(logFd: number): ["ignore", number, number, "pipe"] {
  return ["ignore", logFd, logFd, "pipe"];
}

async function runWithKey(program: string, args: string[], keyHex: string, logFile: string): Promise<void> {
  const logFd = openSync(logFile, "a", 0o600);
  try {
    const child = spawn(requireProgram(program), args, { stdio: keyFdStdio(logFd) });
    const keyPipe = child.stdio[3] as NodeJS.WritableStream;
    keyPipe.end(keyHex);
    const code = await new Promise<number | null>((r) => child.on("exit", r));
    if (code !== 0) {
      const tail = (await readFile(logFile, "utf8").catch(() => "")).trim().split("\n").slice(-10).join("\n");
      throw vmError("VM_ERR_START_FAILED", `${program} failed (exit ${code}): ${tail}`, { program });
    }
  } finally {
    closeSync(logFd);
  }
}

/** Manufactures the vTPM on first start (EK created, state encrypted under the VM's key). */
async function ensureTpmManufactured(p: VmPaths, key: Uint8Array): Promise<void> {
  await mkdir(p.tpmDir, { recursive: true, mode: 0o700 });
  if ((await readdir(p.tpmDir)).some((f) => f.startsWith("tpm2-00.permall"))) return;
  await runWithKey(
    "swtpm_setup",
    [
      "--tpm2",
      "--tpmstate",
      p.tpmDir,
      "--createek",
      "--create-spk",
      "--keyfile-fd",
      "3",
      "--cipher",
      "aes-256-cbc",
      "--not-overwrite",
    ],
    Buffer.from(key).toString("hex"),
    path.join(p.runDir, "swtpm_setup.log"),
  );
}

/** Starts the VM's swtpm detached (it ends by itself when QEMU disconnects: --terminate). */
async function startVmSwtpm(p: VmPaths, key: Uint8Array): Promise<number> {
  const log = path.join(p.runDir, "swtpm.log");
  const logFd = openSync(log, "a", 0o600);
  try {
    const child = spawn(
      requireProgram("swtpm"),
      [
        "socket",
        "--tpm2",
        "--tpmstate",
        `dir=${p.tpmDir},mode=0600`,
        "--ctrl",
        `type=unixio,path=${p.swtpmSocket},mode=0600`,
        "--key",
        "fd=3,mode=aes-256-cbc,format=hex",
        "--pid",
        `file=${p.swtpmPid}`,
        "--terminate",
      ],
      { stdio: keyFdStdio(logFd), detached: true },
    );
    (child.stdio[3] as NodeJS.WritableStream).end(Buffer.from(key).toString("hex"));
    child.unref();
    const deadline = Date.now() + 10_000;
    while (!existsSync(p.swtpmSocket)) {
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
        child.kill("SIGKILL");
        const tail = (await readFile(log, "utf8").catch(() => "")).trim().split("\n").slice(-5).join("\n");
        throw vmError(
          "VM_ERR_START_FAILED",
          `swtpm did not start: ${tail || "no control socket within 10 s"}`,
          { program: "swtpm" },
        );
      }
      await sleep(20);
    }
    return child.pid ?? 0;
  } finally {
    closeSync(logFd);
  }
}

async function spawnQemu(args: string[], p: VmPaths): Promise<void> {
  if (args.includes("-daemonize")) {
    const child = spawn(requireProgram("qemu-system-x86_64"), args, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-8192)));
    const code = await new Promise<number | null>((r) => {
      child.on("exit", r);
      child.on("error", () => r(-1));
    });
    if (code !== 0) {
      throw vmError("VM_ERR_START_FAILED", `QEMU failed to start (exit ${code}): ${err.trim()}`, {
        program: "qemu-system-x86_64",
      });
    }
    return;
  }
  // Sandboxed QEMU cannot fork to daemonize: start it detached in its own session instead.
  const log = path.join(p.runDir, "qemu.log");
  const logFd = openSync(log, "a", 0o600);
  try {
    const child = spawn(requireProgram("qemu-system-x86_64"), args, {
      stdio: ["ignore", logFd, logFd],
      detached: true,
    });
    child.unref();
    const deadline = Date.now() + 30_000;
    while (!existsSync(p.qmpSocket) || readPid(p.qemuPid) === null) {
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
        child.kill("SIGKILL");
        const tail = (await readFile(log, "utf8").catch(() => "")).trim().split("\n").slice(-10).join("\n");
        throw vmError("VM_ERR_START_FAILED", `QEMU failed to start: ${tail || "no QMP socket within 30 s"}`, {
          program: "qemu-system-x86_64",
        });
      }
      await sleep(20);
    }
  } finally {
    closeSync(logFd);
  }
}

function needsSecrets(c: VmConfig, saved: SavedStateMeta | null): boolean {
  return c.tpm.enabled || c.security.encryptStateAndMigration || saved?.encrypted === true;
}

function zero(s: VmSecrets | undefined): void {
  if (s) for (const v of s.values()) v.fill(0);
}

async function killPidFile(file: string): Promise<void> {
  const pid = readPid(file);
  if (pid !== null && pidAlive(pid)) {
    process.kill(pid, "SIGKILL");
    await waitGone(pid, 5000);
  }
}

async function assertOff(p: VmPaths, name: string): Promise<void> {
  if (qemuPidOf(p) !== null) throw vmError("VM_ERR_STATE", `VM '${name}' is already running`);
}

/**
 * Starts a VM that is off or saved. With a saved state it restores through the decrypting
 * stream and resumes; a refused saved state leaves the VM off with the saved state intact.
 */
export async function startVm(
  ctx: HostContext,
  name: string,
  opts: { secrets?: VmSecrets } = {},
): Promise<VmStatus> {
  const say = ctx.progress ?? (() => undefined);
  await ctx.store.withLock(name, async () => {
    const c = await ctx.store.load(name);
    const p = ctx.store.paths(name);
    await assertOff(p, name);
    const saved = await readSavedMeta(p);
    let secrets = opts.secrets;
    try {
      if (!secrets && needsSecrets(c, saved)) {
        say("unwrapping the key protector");
        secrets = await unlockVmLocallyOrViaHgs(ctx, name); // a guarded host asks HGS
      }
      if (!existsSync(p.nvram)) await provisionNvram(ctx.store.stateDir, c, p, { fresh: true });
      await cleanRunDir(p);
      const accelerator = await chooseAccelerator();
      const firmwareCode = findSecureBootFirmware().code;
      if (c.tpm.enabled) {
        const key = secret(secrets as VmSecrets, VM_SECRET.vtpmStateKey);
        await ensureTpmManufactured(p, key);
        say("starting the vTPM (swtpm)");
        await startVmSwtpm(p, key);
      }
      const args = qemuArgs(c, p, {
        accelerator,
        firmwareCode,
        ...(c.tpm.enabled ? { tpmSocket: p.swtpmSocket } : {}),
        ...(saved ? { incoming: true } : {}),
      });
      say(`starting QEMU (${accelerator})`);
      try {
        await spawnQemu(args, p);
      } catch (e) {
        await killPidFile(p.swtpmPid);
        throw e;
      }
      if (saved) {
        say("restoring the saved state");
        await restoreInto(p, saved, secrets, say);
      }
    } finally {
      if (!opts.secrets) zero(secrets);
    }
  });
  return vmStatus(ctx, name);
}

/**
 * QMP polling while a restore finishes and while a save runs: QEMU completes an incoming
 * migration within milliseconds of the stream's end, so a coarse poll only adds latency.
 */
const RESTORE_POLL_MS = 5;
const SAVE_POLL_MS = 10;
/**
 * While a save streams, dirty pages are written back in the background every this many
 * milliseconds (fdatasync on the temporary file), so the fsync before the rename finds
 * little left to write instead of the whole state.
 */
const SAVE_WRITEBACK_MS = 100;

async function restoreInto(
  p: VmPaths,
  meta: SavedStateMeta,
  secrets: VmSecrets | undefined,
  say: (m: string) => void,
): Promise<void> {
  const q = await connectQmp(p);
  const sock = path.join(p.runDir, `incoming-${randomBytes(4).toString("hex")}.sock`);
  try {
    await q.execute("migrate-set-parameters", { "max-bandwidth": 64 * 1024 * 1024 * 1024 });
    await q.execute("migrate-incoming", { uri: `unix:${sock}` });
    // Room for a few verified chunks, so QEMU's socket never runs dry while the next one opens.
    const conn = net.createConnection({ path: sock, writableHighWaterMark: 4 << 20 } as net.NetConnectOpts);
    await new Promise<void>((resolve, reject) => {
      conn.once("connect", resolve);
      conn.once("error", reject);
    });
    const fh = await open(p.savedState, "r");
    try {
      const source = fh.createReadStream({ highWaterMark: 4 << 20 });
      if (meta.encrypted) {
        const key = secret(secrets as VmSecrets, VM_SECRET.stateKey);
        await pipeline(source, createDecryptStream(key, { purpose: "savedState" }), conn);
      } else {
        await pipeline(source, conn);
      }
    } finally {
      await fh.close();
    }
    const deadline = Date.now() + 120_000;
    for (;;) {
      const s = await q.execute<{ status: string; running: boolean }>("query-status");
      if (s.status === "paused" || s.status === "running" || s.status === "prelaunch") {
        const m = await q.execute<{ status?: string }>("query-migrate");
        if (m.status === "completed" || s.status === "paused") break;
      }
      if (Date.now() > deadline) throw vmError("VM_ERR_SAVED_STATE", "restore did not complete in 120 s");
      await sleep(RESTORE_POLL_MS);
    }
    await q.execute("cont");
    say("resumed");
  } catch (e) {
    // Refused or failed: stop this QEMU; the saved state on disk is untouched.
    await q.execute("quit").catch(() => undefined);
    q.close();
    await killPidFile(p.qemuPid);
    await killPidFile(p.swtpmPid);
    if (isBulwarkError(e)) throw e;
    throw vmError("VM_ERR_SAVED_STATE", `restore failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  q.close();
  // The VM runs from the restored state: the saved state is consumed.
  await rm(p.savedStateMeta, { force: true });
  await rm(p.savedState, { force: true });
}

export interface SaveOptions {
  readonly onProgress?: (transferredBytes: number, totalBytes: number) => void;
}

/**
 * Saves a running VM: live pre-copy migration to a socket Bulwark serves, sealed with the VM's
 * state key (unless encryption is off and the VM is not shielded), written to a temporary file,
 * fsynced and renamed; then QEMU is stopped. A failure before the rename leaves the VM running.
 */
export async function saveVm(
  ctx: HostContext,
  name: string,
  opts: SaveOptions = {},
): Promise<SavedStateMeta> {
  const say = ctx.progress ?? (() => undefined);
  return ctx.store.withLock(name, async () => {
    const c = await ctx.store.load(name);
    const p = ctx.store.paths(name);
    const pid = qemuPidOf(p);
    if (pid === null) throw vmError("VM_ERR_STATE", `VM '${name}' is not running`);
    const encrypted = c.security.encryptStateAndMigration || c.security.policy === "Shielded";
    const secrets = encrypted ? await unlockVmLocallyOrViaHgs(ctx, name) : undefined; // guarded: HGS
    // A temporary file left by an interrupted save is garbage: the last good state is the real file.
    for (const f of await readdir(p.dir)) {
      if (f.startsWith(`.${path.basename(p.savedState)}.`) && f.endsWith(".tmp"))
        await rm(path.join(p.dir, f), { force: true });
    }
    const q = await connectQmp(p);
    const sock = path.join(p.runDir, `outgoing-${randomBytes(4).toString("hex")}.sock`);
    const tmp = tempPathFor(p.savedState);
    let server: net.Server | undefined;
    try {
      await q.execute("migrate-set-parameters", {
        "max-bandwidth": 64 * 1024 * 1024 * 1024,
        "downtime-limit": 2000,
      });
      const received = new Promise<number>((resolve, reject) => {
        server = net.createServer((conn) => {
          void (async () => {
            const fh = await open(tmp, "wx", 0o600);
            // A second handle for the syncs: the write stream owns (and closes) the first.
            const syncFh = await open(tmp, "r+");
            let bytes = 0;
            let writeback: Promise<void> | undefined;
            const timer = setInterval(() => {
              writeback ??= syncFh.datasync().finally(() => (writeback = undefined));
            }, SAVE_WRITEBACK_MS);
            try {
              const sink = fh.createWriteStream({ highWaterMark: 8 << 20 });
              conn.on("data", (d: Buffer) => (bytes += d.length));
              if (encrypted) {
                const key = secret(secrets as VmSecrets, VM_SECRET.stateKey);
                await pipeline(conn, createEncryptStream(key, { purpose: "savedState" }), sink);
              } else {
                await pipeline(conn, sink);
              }
              clearInterval(timer);
              await writeback;
              await syncFh.sync();
              resolve(bytes);
            } catch (e) {
              reject(e);
            } finally {
              clearInterval(timer);
              await writeback?.catch(() => undefined);
              await syncFh.close().catch(() => undefined);
              await fh.close().catch(() => undefined);
            }
          })();
        });
        server.on("error", reject);
        server.listen(sock);
      });
      await new Promise<void>((r) => server?.once("listening", () => r()));
      say(encrypted ? "saving (encrypted stream)" : "saving (plain stream: encryption is off)");
      await q.execute("migrate", { uri: `unix:${sock}` });
      for (;;) {
        const m = await q.execute<{
          status?: string;
          ram?: { transferred: number; total: number };
          "error-desc"?: string;
        }>("query-migrate");
        if (m.ram) opts.onProgress?.(m.ram.transferred, m.ram.total);
        if (m.status === "completed") break;
        if (m.status === "failed" || m.status === "cancelled") {
          throw vmError("VM_ERR_SAVED_STATE", `QEMU migration ${m.status}: ${m["error-desc"] ?? ""}`);
        }
        await sleep(SAVE_POLL_MS);
      }
      const bytes = await received;
      await commitFile(tmp, p.savedState);
      const meta: SavedStateMeta = {
        version: 1,
        encrypted,
        bytes: (await stat(p.savedState)).size,
        createdAt: new Date().toISOString(),
        vmId: c.id,
      };
      await writeFileAtomic(p.savedStateMeta, `${JSON.stringify({ ...meta, plainBytes: bytes }, null, 2)}\n`);
      say("saved; stopping QEMU");
      await q.execute("quit").catch(() => undefined);
      q.close();
      await waitGone(pid, 15_000);
      await killPidFile(p.swtpmPid);
      return meta;
    } catch (e) {
      await q.execute("migrate_cancel").catch(() => undefined);
      await q.execute("cont").catch(() => undefined);
      q.close();
      await rm(tmp, { force: true });
      if (isBulwarkError(e)) throw e;
      throw vmError("VM_ERR_SAVED_STATE", `save failed: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      zero(secrets);
      server?.close();
      await rm(sock, { force: true });
    }
  });
}

/** ACPI shutdown; waits for the guest to power off. */
export async function stopVm(
  ctx: HostContext,
  name: string,
  opts: { timeoutMs?: number } = {},
): Promise<VmStatus> {
  await ctx.store.withLock(name, async () => {
    const p = ctx.store.paths(name);
    const pid = qemuPidOf(p);
    if (pid === null) throw vmError("VM_ERR_STATE", `VM '${name}' is not running`);
    const q = await connectQmp(p);
    try {
      await q.execute("system_powerdown");
    } finally {
      q.close();
    }
    if (!(await waitGone(pid, opts.timeoutMs ?? 60_000))) {
      throw vmError("VM_ERR_STATE", `VM '${name}' did not shut down in time; use 'bulwark vm turn-off'`);
    }
    await killPidFile(p.swtpmPid);
  });
  return vmStatus(ctx, name);
}

/** Pulls the plug: QMP quit, or SIGKILL when QMP does not answer. */
export async function turnOffVm(ctx: HostContext, name: string): Promise<VmStatus> {
  await ctx.store.withLock(name, async () => {
    const p = ctx.store.paths(name);
    const pid = qemuPidOf(p);
    if (pid !== null) {
      try {
        const q = await connectQmp(p, 3000);
        await q.execute("quit", undefined, { timeoutMs: 3000 }).catch(() => undefined);
        q.close();
      } catch {
        // QMP not answering: fall through to SIGKILL.
      }
      if (!(await waitGone(pid, 5000))) {
        process.kill(pid, "SIGKILL");
        await waitGone(pid, 5000);
      }
    }
    await killPidFile(p.swtpmPid);
  });
  return vmStatus(ctx, name);
}

export async function pauseVm(ctx: HostContext, name: string, pause: boolean): Promise<VmStatus> {
  await ctx.store.withLock(name, async () => {
    const p = ctx.store.paths(name);
    if (qemuPidOf(p) === null) throw vmError("VM_ERR_STATE", `VM '${name}' is not running`);
    const q = await connectQmp(p);
    try {
      await q.execute(pause ? "stop" : "cont");
    } finally {
      q.close();
    }
  });
  return vmStatus(ctx, name);
}

/** Waits until the VM's QEMU has exited (the guest powered off). */
export async function waitForPowerOff(ctx: HostContext, name: string, timeoutMs: number): Promise<boolean> {
  const p = ctx.store.paths(name);
  const pid = qemuPidOf(p);
  if (pid === null) return true;
  const gone = await waitGone(pid, timeoutMs);
  if (gone) await killPidFile(p.swtpmPid);
  return gone;
}
