/**
 * What a running VM was started with, for the decisions taken while it runs (the QMP gate,
 * whether a save is encrypted): never config.json, which anyone with the VM's files can edit
 * while it runs, but the settings verified when it started (security-statement.ts), found
 * through the one record its starter alone wrote — the running QEMU's command line.
 */
import { readFileSync } from "node:fs";
import type { VmContext } from "./context.js";
import { hasKeyProtector } from "./keys.js";
import type { QmpGateSettings } from "./qmp-gate.js";
import { settingsVerifiedAtStart, type SettingsCheck } from "./security-statement.js";

/**
 * What the running QEMU was started with, written where only its starter could write it: the
 * kernel's copy of its command line. A harmless secret object (its data is no secret) carries the
 * digest of the statement verified at start ("none" for a VM without a key protector).
 */
const MARKER_ID = "bulwark-settings";

export function startMarker(v: SettingsCheck): string[] {
  return ["-object", `secret,id=${MARKER_ID},data=${v.kind === "verified" ? v.digest : "none"}`];
}

function markerOf(pid: number): string | undefined {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    const prefix = `secret,id=${MARKER_ID},data=`;
    return argv.find((a) => a.startsWith(prefix))?.slice(prefix.length);
  } catch {
    return undefined;
  }
}

/**
 * The settings a running VM's QMP gate and its save decide from: those verified when it started (the run
 * directory's copy of the statement whose digest is on QEMU's command line), never config.json.
 * A VM started by an older Bulwark, or whose copy is gone or altered, is gated as shielded
 * when it has a key protector: nothing proves it is less.
 */
export async function runningSettings(ctx: VmContext, name: string, pid: number): Promise<QmpGateSettings> {
  const p = ctx.store.paths(name);
  const strictest: QmpGateSettings = {
    name,
    security: { policy: "Shielded", encryptStateAndMigration: true },
  };
  const marker = markerOf(pid);
  if (marker === "none") return { name, security: { policy: "None", encryptStateAndMigration: false } };
  if (marker !== undefined) {
    const s = await settingsVerifiedAtStart(p, marker);
    return s
      ? { name, security: { policy: s.policy, encryptStateAndMigration: s.encryptStateAndMigration } }
      : strictest;
  }
  return (await hasKeyProtector(p)) ? strictest : ctx.store.load(name);
}
