/**
 * A VM's life (Hyper-V New-VM, Start-VM, Stop-VM, Suspend-VM, Remove-VM): create, status, start
 * (restoring a saved state when there is one), ACPI shutdown, turn off, pause and resume, delete,
 * and an operator's QMP command through the policy's gate. QEMU runs detached with a QMP socket;
 * a VM with a vTPM or encrypted state gets its keys from the context's key source. Each
 * operation that drives QEMU holds the VM's lock.
 */
import { existsSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { findSecureBootFirmware } from "../firmware.js";
import { chooseAccelerator } from "../probe.js";
import type { VmConfig } from "./config.js";
import type { VmContext, VmSecrets } from "./context.js";
import { vmError } from "./errors.js";
import { unlockVm, zeroSecrets } from "./keys.js";
import { provisionNvram } from "./nvram.js";
import {
  assertOff,
  assertRunning,
  connectQmp,
  killPidFile,
  qemuPidOf,
  spawnQemu,
  waitGone,
} from "./processes.js";
import { qemuArgs } from "./qemu-args.js";
import { checkQmpCommand } from "./qmp-gate.js";
import { readSavedMeta, restoreInto, type SavedStateMeta } from "./saved-state.js";
import type { VmPaths } from "./store.js";
import { startVtpm } from "./vtpm.js";

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
  await rm(p.runDir, { recursive: true, force: true });
  await mkdir(p.runDir, { recursive: true, mode: 0o700 });
}

function needsSecrets(c: VmConfig, saved: SavedStateMeta | null): boolean {
  return c.tpm.enabled || c.security.encryptStateAndMigration || saved?.encrypted === true;
}

/**
 * Starts a VM that is off or saved. With a saved state it restores through the decrypting
 * stream and resumes; a refused saved state leaves the VM off with the saved state intact.
 * `opts.secrets` (already opened by the caller, who zeroizes them) skips the key source.
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
    let secrets = opts.secrets;
    try {
      if (!secrets && needsSecrets(c, saved)) {
        say("unwrapping the key protector");
        secrets = await unlockVm(ctx, name);
      }
      if (!existsSync(p.nvram)) await provisionNvram(ctx.store.stateDir, c, p, { fresh: true });
      await cleanRunDir(p);
      const accelerator = await chooseAccelerator();
      const firmwareCode = findSecureBootFirmware().code;
      if (c.tpm.enabled) await startVtpm(p, secrets as VmSecrets, say, { restoring: saved !== null });
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

/** One operator QMP command to a running VM, through its security policy's gate (qmp-gate.ts). */
export async function operatorQmp(
  ctx: VmContext,
  name: string,
  command: string,
  args?: Record<string, unknown>,
): Promise<unknown> {
  checkQmpCommand(await ctx.store.load(name), command);
  const p = ctx.store.paths(name);
  assertRunning(p, name);
  const q = await connectQmp(p);
  try {
    return await q.execute(command, args);
  } finally {
    q.close();
  }
}
