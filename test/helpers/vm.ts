/** Test VMs: a private state directory, the guest image's tpm2tools disk, scripts via fw_cfg. */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ensureGuestImage } from "../../src/lab/guest-image.js";
import { markers, scriptFwCfgName } from "../../src/lab/guest-init.js";
import { newVmConfig, type VmConfig } from "../../src/host/vm/config.js";
import { hostContext } from "../../src/host/index.js";
import { turnOffVm } from "../../src/host/vm/lifecycle.js";
import type { VmContext } from "../../src/host/vm/context.js";

export interface TestHost {
  readonly dir: string;
  readonly ctx: VmContext;
  cleanup(): Promise<void>;
}

export async function makeTestHost(prefix = "bulwark-host-"): Promise<TestHost> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  const ctx = hostContext(dir);
  return {
    dir,
    ctx,
    cleanup: async () => {
      for (const name of await ctx.store.list()) await turnOffVm(ctx, name).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Creates a VM booting the tpm2tools guest image (disk opened snapshot=on, no network). */
export async function createTestVm(
  host: TestHost,
  name: string,
  patch: Partial<VmConfig> = {},
): Promise<VmConfig> {
  const img = await ensureGuestImage("tpm2tools");
  const c = {
    ...newVmConfig({ name, disks: [{ path: img.disk, format: "raw", snapshot: true }], network: "none" }),
    ...patch,
  };
  await host.ctx.store.create(c);
  return c;
}

/** Points the VM's fw_cfg script at `script` (the guest image's /init runs it). */
export async function setGuestScript(host: TestHost, name: string, script: string): Promise<void> {
  const c = await host.ctx.store.load(name);
  const file = path.join(host.dir, `${name}-script-${Date.now()}.sh`);
  await writeFile(file, script);
  await host.ctx.store.save({ ...c, fwCfg: { ...c.fwCfg, [scriptFwCfgName]: file } });
}

/** The serial log of the VM, without terminal escapes. */
export async function serialLog(host: TestHost, name: string): Promise<string> {
  const text = await readFile(host.ctx.store.paths(name).serialLog, "utf8").catch(() => "");
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;=?]*[A-Za-z]/g, "").replace(/\r/g, "");
}

/** Output of the last script run (between the markers) in the serial log. */
export function lastScriptOutput(log: string): string | null {
  const b = log.lastIndexOf(markers.scriptBegin);
  if (b < 0) return null;
  const e = log.indexOf(markers.scriptEnd, b);
  return e < 0 ? log.slice(b + markers.scriptBegin.length) : log.slice(b + markers.scriptBegin.length, e);
}
