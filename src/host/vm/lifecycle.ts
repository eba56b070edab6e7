/**
 * A VM's life (Hyper-V New-VM, Start-VM, Stop-VM, Suspend-VM, Remove-VM): create, status, start
 * (restoring a saved state when there is one), ACPI shutdown, turn off, pause and resume, delete,
 * and an operator's QMP command through the policy's gate. QEMU runs detached with a QMP socket;
 * a VM with a vTPM or encrypted state gets its keys from the context's key source. Each
 * operation that drives QEMU holds the VM's lock.
 */
import { existsSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { isBulwarkError } from "../../core/errors.js";
import { findSecureBootFirmware } from "../firmware.js";
import { chooseAccelerator } from "../probe.js";
import type { VmConfig } from "./config.js";
import type { VmContext, VmSecrets } from "./context.js";
import { vmError } from "./errors.js";
import { readVmKeyFilesIfAny } from "./key-files.js";
import { unlockChecked, zeroSecrets } from "./keys.js";
import { provisionNvram } from "./nvram.js";
import {
  assertOff,
  assertRunning,
  confirmStarted,
  connectQmp,
  killPidFile,
  killVmProcesses,
  logTail,
  qemuPidOf,
  spawnQemu,
  waitGone,
} from "./processes.js";
import { qemuArgs } from "./qemu-args.js";
import { checkQmpCommand } from "./qmp-gate.js";
import { runningSettings, startMarker } from "./running-settings.js";
import { readSavedMeta, restoreInto, type SavedStateMeta } from "./saved-state.js";
import { statementPaths, verifySettingsOver, type SettingsCheck } from "./security-statement.js";
import type { VmPaths } from "./store.js";
import { discardVtpmState, startVtpm } from "./vtpm.js";

export type VmState = "Off" | "Running" | "Paused" | "Saved";

export interface VmStatus {
  readonly name: string;
  readonly state: VmState;
  readonly qemuPid: number | null;
  readonly savedState: SavedStateMeta | null;
}

/** New-VM: the VM's directory and config, and its NVRAM from its template; nothing is left on failure. */
export async function createVm(ctx: VmContext, c: VmConfig): Promise<VmPaths> {
  const p = await ctx.store.create(c);
  try {
    await provisionNvram(ctx.store.stateDir, c, p, { fresh: true });
  } catch (e) {
    await ctx.store.remove(c.name);
    throw e;
  }
  return p;
}

export async function vmStatus(ctx: VmContext, name: string): Promise<VmStatus> {
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

async function cleanRunDir(p: VmPaths): Promise<void> {
  // A start killed after its swtpm came up and before QEMU connected leaves that swtpm waiting,
  // the vTPM key in its memory: its pid file is in the run directory about to go.
  await killPidFile(p.swtpmPid);
  await rm(p.runDir, { recursive: true, force: true });
  await mkdir(p.runDir, { recursive: true, mode: 0o700 });
}

function needsSecrets(c: VmConfig, saved: SavedStateMeta | null): boolean {
  return c.tpm.enabled || c.security.encryptStateAndMigration || saved?.encrypted === true;
}

/**
 * Why a start failed, from what QEMU and swtpm logged: the tails of their logs (no secrets: keys
 * reach swtpm by file descriptor only, and logTail drops long hex/base64 runs anyway).
 */
function startFailure(p: VmPaths, why: string, withVtpm: boolean, cause?: unknown): Error {
  const parts = [why];
  if (isBulwarkError(cause) && cause.code === "VM_ERR_START_FAILED") parts[0] = cause.message;
  const qemuLog = logTail(path.join(p.runDir, "qemu.log"), 6);
  if (qemuLog && !parts[0]?.includes(qemuLog)) parts.push(`QEMU said:\n${qemuLog}`);
  const swtpmLog = withVtpm ? logTail(path.join(p.runDir, "swtpm.log"), 8) : "";
  if (swtpmLog) parts.push(`swtpm said:\n${swtpmLog}`);
  return vmError("VM_ERR_START_FAILED", parts.join("\n"), {
    program: "qemu-system-x86_64",
    ...(withVtpm ? { vtpmLog: swtpmLog } : {}),
  });
}

/**
 * Starts a VM that is off or saved, and confirms it runs: QEMU answers QMP and, with its swtpm,
 * is still alive a moment later. A start that fails anywhere — QEMU or swtpm refusing or dying
 * at once (a damaged vTPM state) — leaves nothing running and nothing changed: a vTPM or NVRAM
 * made by this start is removed again, and VM_ERR_START_FAILED carries QEMU's and swtpm's words.
 * With a saved state it restores through the decrypting stream and resumes; a refused saved state
 * leaves the VM off with the saved state intact. A vTPM is manufactured only on the VM's first
 * start with one (recorded in config.json); a vTPM state lost later is refused
 * (VM_ERR_VTPM_STATE_MISSING). `opts.secrets` (already opened by the caller, who zeroizes them)
 * skips the key source.
 */
export async function startVm(
  ctx: VmContext,
  name: string,
  opts: { secrets?: VmSecrets } = {},
): Promise<VmStatus> {
  const say = ctx.progress ?? (() => undefined);
  await ctx.store.withLock(name, async () => {
    const c = await ctx.store.load(name);
    const p = ctx.store.paths(name);
    await assertOff(p, name);
    const saved = await readSavedMeta(p);
    // The owner's signed settings decide, before any key is asked for and before QEMU exists;
    // the key source then gets the very key files they were checked against.
    const files = await readVmKeyFilesIfAny(p);
    const verified = await verifySettingsOver(c, p, files);
    refusePlainSavedState(name, verified, saved);
    let secrets = opts.secrets;
    let madeNvram = false;
    let madeVtpm = false;
    try {
      if (!secrets && needsSecrets(c, saved)) {
        say("unwrapping the key protector");
        secrets = await unlockChecked(ctx, name, files, verified);
      }
      if (!existsSync(p.nvram)) {
        await provisionNvram(ctx.store.stateDir, c, p, { fresh: true });
        madeNvram = true;
      }
      await cleanRunDir(p);
      // The run directory is made anew at every start, and the gate takes this copy only with the
      // digest QEMU was started with: it needs no durability, so no fsync (writeFileAtomic's two).
      if (verified.kind === "verified") {
        await writeFile(statementPaths(p).runCopy, verified.statement, { mode: 0o600, flag: "wx" });
      }
      const accelerator = await chooseAccelerator();
      const firmwareCode = findSecureBootFirmware().code;
      try {
        if (c.tpm.enabled) {
          const started = await startVtpm(p, secrets as VmSecrets, say, {
            restoring: saved !== null,
            manufacturedBefore: c.vtpmManufacturedAt !== undefined,
          });
          madeVtpm = started.manufactured;
        }
        const args = qemuArgs(c, p, {
          accelerator,
          firmwareCode,
          ...(c.tpm.enabled ? { tpmSocket: p.swtpmSocket } : {}),
          ...(saved ? { incoming: true } : {}),
        });
        args.push(...startMarker(verified));
        say(`starting QEMU (${accelerator})`);
        try {
          await spawnQemu(args, p);
        } catch (e) {
          throw startFailure(p, "QEMU failed to start", c.tpm.enabled, e);
        }
        const notRunning = await confirmStarted(p, c.tpm.enabled, { settle: !saved });
        if (notRunning) throw startFailure(p, notRunning, c.tpm.enabled);
        if (saved) {
          say("restoring the saved state");
          await restoreInto(p, saved, secrets, say, { vtpm: c.tpm.enabled });
        }
      } catch (e) {
        await killVmProcesses(p);
        if (madeVtpm) await discardVtpmState(p);
        throw e;
      }
      // Recorded once the vTPM has run (also for a VM whose vTPM predates the record).
      if (c.tpm.enabled && c.vtpmManufacturedAt === undefined) {
        await ctx.store.save({ ...c, vtpmManufacturedAt: new Date().toISOString() });
      }
    } catch (e) {
      if (madeNvram) await rm(p.nvram, { force: true });
      throw e;
    } finally {
      if (!opts.secrets) zeroSecrets(secrets);
    }
  });
  return vmStatus(ctx, name);
}

/** ACPI shutdown; waits for the guest to power off. */
export async function stopVm(
  ctx: VmContext,
  name: string,
  opts: { timeoutMs?: number } = {},
): Promise<VmStatus> {
  await ctx.store.withLock(name, async () => {
    const p = ctx.store.paths(name);
    const pid = assertRunning(p, name);
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
export async function turnOffVm(ctx: VmContext, name: string): Promise<VmStatus> {
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

export async function pauseVm(ctx: VmContext, name: string, pause: boolean): Promise<VmStatus> {
  await ctx.store.withLock(name, async () => {
    const p = ctx.store.paths(name);
    assertRunning(p, name);
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
export async function waitForPowerOff(ctx: VmContext, name: string, timeoutMs: number): Promise<boolean> {
  const p = ctx.store.paths(name);
  const pid = qemuPidOf(p);
  if (pid === null) return true;
  const gone = await waitGone(pid, timeoutMs);
  if (gone) await killPidFile(p.swtpmPid);
  return gone;
}

/** Removes a VM that is off; `force` turns a running or paused one off first (a saved one is dropped). */
export async function deleteVm(ctx: VmContext, name: string, opts: { force?: boolean } = {}): Promise<void> {
  const s = await vmStatus(ctx, name);
  if (s.state !== "Off" && !opts.force) {
    throw vmError("VM_ERR_STATE", `VM '${name}' is ${s.state}; turn it off first or pass --force`);
  }
  if (s.state === "Running" || s.state === "Paused") await turnOffVm(ctx, name);
  await ctx.store.remove(name);
}

/** A saved state is restored only as the owner decided it is kept: encrypted when encryption is on. */
function refusePlainSavedState(name: string, v: SettingsCheck, saved: SavedStateMeta | null): void {
  if (!saved || saved.encrypted || v.kind !== "verified") return;
  if (v.settings.encryptStateAndMigration || v.settings.policy === "Shielded") {
    throw vmError(
      "VM_ERR_SETTINGS_TAMPERED",
      `VM '${name}': its saved state is plain, but its owner's settings require encrypted state; no key is released`,
      { differences: ["savedState.encrypted"] },
    );
  }
}

/** One operator QMP command to a running VM, through its security policy's gate (qmp-gate.ts). */
export async function operatorQmp(
  ctx: VmContext,
  name: string,
  command: string,
  args?: Record<string, unknown>,
): Promise<unknown> {
  await ctx.store.load(name); // VM_ERR_NOT_FOUND first
  const p = ctx.store.paths(name);
  const pid = assertRunning(p, name);
  checkQmpCommand(await runningSettings(ctx, name, pid), command);
  const q = await connectQmp(p);
  try {
    return await q.execute(command, args);
  } finally {
    q.close();
  }
}
