/**
 * Rollback of a saved state on real QEMU + OVMF + swtpm (hardening issue 11, item 5): each
 * encrypted save takes the next generation sealed in the VM secrets, so an older saved state —
 * or the one already restored, put back — is refused with VM_ERR_STATE_ROLLBACK and left as it
 * is, while the newest restores. One guest boot; the cold start after it runs the vTPM version
 * check with QEMU and the firmware using the vTPM. (The vTPM-state cases without a guest are in
 * test/host/vm-rollback.test.ts.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { cp, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { setNewLocalKeyProtector, unlockVm, zeroSecrets } from "../../src/host/vm/keys.js";
import { startVm, turnOffVm, vmStatus } from "../../src/host/vm/lifecycle.js";
import { saveVm } from "../../src/host/vm/saved-state.js";
import { setSecurity, setTpm } from "../../src/host/vm/settings.js";
import { readVersion, VM_SECRET } from "../../src/protector/vm-secrets.js";
import { rejectsWith } from "../helpers/errors.js";
import { createTestVm, makeTestHost, serialLog, setGuestScript, type TestHost } from "../helpers/vm.js";

async function waitForTick(host: TestHost, name: string, after: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ticks = [...(await serialLog(host, name)).matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
    const last = ticks.at(-1) ?? 0;
    if (last > after) return last;
    if (Date.now() > deadline)
      throw new Error(`no tick after ${after}:\n${(await serialLog(host, name)).slice(-1500)}`);
    await sleep(250);
  }
}

test("an older or already restored saved state is refused; the newest restores; the vTPM version holds", async () => {
  const host = await makeTestHost();
  try {
    await createTestVm(host, "rb");
    const p = host.ctx.store.paths("rb");
    await setNewLocalKeyProtector(p, host.ctx.guardians);
    await setTpm(host.ctx, "rb", true);
    await setSecurity(host.ctx, "rb", { encryptStateAndMigration: true });
    await setGuestScript(host, "rb", 'n=0; while true; do n=$((n+1)); echo "tick $n"; sleep 1; done\n');
    const keep = async (tag: string) => {
      await cp(p.savedState, path.join(host.dir, `saved.${tag}`));
      await cp(p.savedStateMeta, path.join(host.dir, `meta.${tag}`));
    };
    const putBack = async (tag: string) => {
      await cp(path.join(host.dir, `saved.${tag}`), p.savedState);
      await cp(path.join(host.dir, `meta.${tag}`), p.savedStateMeta);
    };

    await startVm(host.ctx, "rb");
    let tick = await waitForTick(host, "rb", 1, 180_000);
    assert.equal((await saveVm(host.ctx, "rb")).generation, "1");
    await keep("1");
    await startVm(host.ctx, "rb"); // restores generation 1
    tick = await waitForTick(host, "rb", tick, 60_000);
    // The restore moved the sealed generation on (to 2, so the consumed copy is refused); this save takes 3.
    assert.equal((await saveVm(host.ctx, "rb")).generation, "3");
    await keep("2");

    // The older saved state in place of the newest: refused, and left as it is.
    await putBack("1");
    const older = await readFile(p.savedState);
    const d = await rejectsWith(startVm(host.ctx, "rb"), "VM_ERR_STATE_ROLLBACK");
    assert.deepEqual(d, { expected: "3", got: "1" });
    assert.deepEqual(await readFile(p.savedState), older);
    assert.equal((await vmStatus(host.ctx, "rb")).state, "Saved");
    // An edited meta generation does not help: the stream's key is bound to the generation.
    await cp(path.join(host.dir, "meta.2"), p.savedStateMeta);
    await assert.rejects(startVm(host.ctx, "rb"), { code: "PROTECTOR_ERR_STREAM_KEY" });
    assert.equal((await vmStatus(host.ctx, "rb")).state, "Saved");

    await putBack("2");
    await startVm(host.ctx, "rb");
    await waitForTick(host, "rb", tick, 60_000);
    await turnOffVm(host.ctx, "rb");
    // The restored (consumed) saved state put back: refused as well.
    await putBack("2");
    await rejectsWith(startVm(host.ctx, "rb"), "VM_ERR_STATE_ROLLBACK");

    // Without it, the VM cold-starts from its disks, the vTPM version checked and moved on.
    await rm(p.savedState);
    await rm(p.savedStateMeta);
    const versionBefore = await sealed(host, "rb");
    await startVm(host.ctx, "rb");
    await waitForTick(host, "rb", 0, 180_000);
    await turnOffVm(host.ctx, "rb");
    assert.equal(await sealed(host, "rb"), (versionBefore ?? 0n) + 1n);
  } finally {
    await host.cleanup();
  }
});

async function sealed(host: TestHost, name: string): Promise<bigint | undefined> {
  const s = await unlockVm(host.ctx, name);
  try {
    return readVersion(s, VM_SECRET.vtpmVersion);
  } finally {
    zeroSecrets(s);
  }
}
