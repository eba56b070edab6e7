/**
 * `vm tpm reset`: the one way to give a VM a new vTPM once it has had one. The old vTPM's state
 * (its EK, its storage keys, everything the guest sealed to them, its attestation identity) is
 * discarded and the next start manufactures a new one. It is never implied: a start that finds
 * the state missing refuses (VM_ERR_VTPM_STATE_MISSING); this needs the VM off, the caller's
 * explicit confirmation, on a shielded VM the owner guardian's key, and it leaves a line in the
 * VM's history file.
 */
import { open } from "node:fs/promises";
import os from "node:os";
import { isShielded, type VmConfig } from "./config.js";
import type { VmContext } from "./context.js";
import { vmError } from "./errors.js";
import { hasKeyProtector, localOwner } from "./keys.js";
import { vmStatus } from "./lifecycle.js";
import type { VmPaths } from "./store.js";
import { discardVtpmState } from "./vtpm.js";

export interface VtpmResetResult {
  readonly name: string;
  /** When the discarded vTPM had been manufactured, if that was recorded. */
  readonly discardedManufacturedAt: string | null;
}

/** Appends one event to the VM's history (0600, fsynced): who reset what, and when. */
async function recordHistory(p: VmPaths, event: Record<string, unknown>): Promise<void> {
  const fh = await open(p.history, "a", 0o600);
  try {
    await fh.writeFile(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function resetVtpm(
  ctx: VmContext,
  name: string,
  opts: { readonly confirmed: boolean },
): Promise<VtpmResetResult> {
  return ctx.store.withLock(name, async () => {
    const c: VmConfig = await ctx.store.load(name);
    const p = ctx.store.paths(name);
    const s = await vmStatus(ctx, name);
    if (s.state !== "Off") {
      throw vmError(
        "VM_ERR_STATE",
        `the vTPM is reset only while the VM is off (VM '${name}' is ${s.state}${s.state === "Saved" ? ": its saved state holds the running vTPM's view; start it and shut it down first" : ""})`,
      );
    }
    if (isShielded(c)) {
      const owner = (await hasKeyProtector(p)) ? await localOwner(p, ctx.guardians) : undefined;
      if (!owner) {
        throw vmError(
          "VM_ERR_OWNER_KEY_REQUIRED",
          `VM '${name}' is shielded: its vTPM is reset only on a host holding the owner guardian's private key`,
        );
      }
    }
    if (!opts.confirmed) {
      throw vmError(
        "VM_ERR_CONFIRMATION_REQUIRED",
        `resetting the vTPM of '${name}' discards its EK and everything the guest sealed to it; repeat with --yes`,
      );
    }
    // Recorded before anything is removed: a crash in between leaves the record, never a silent reset.
    await recordHistory(p, {
      event: "vtpm-reset",
      vm: name,
      discardedManufacturedAt: c.vtpmManufacturedAt ?? null,
      user: os.userInfo().username,
      uid: process.getuid?.() ?? null,
      pid: process.pid,
    });
    const { vtpmManufacturedAt, ...rest } = c;
    // Config first: with the marker gone and the state still there, the next start keeps the old
    // vTPM (and records it again); the reverse order could leave a marker and no state.
    await ctx.store.save(rest);
    await discardVtpmState(p);
    return { name, discardedManufacturedAt: vtpmManufacturedAt ?? null };
  });
}
