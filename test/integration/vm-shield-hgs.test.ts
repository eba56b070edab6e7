/**
 * Hardening issue 11, item 4, on a guarded host in HGS mode: a real HGS (in process, HTTPS on
 * 127.0.0.1, SQLite, host-key mode) and a shielded VM whose key protector names only the HGS
 * guardian. The host holds no guardian key of the VM; the owner's signed settings still decide:
 * with the files as the owner signed them HGS releases the keys, and with config.json or
 * nvram.fd edited the host refuses before it asks HGS anything (the audit log shows no request).
 * No VM boots.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  guardHost,
  provisionShieldedVmForHgs,
  startLocalHgs,
  type LocalHgs,
} from "../../src/cli/demo-fabric.js";
import { listAuditEntries } from "../../src/hgs/admin.js";
import { hostContext } from "../../src/host/index.js";
import type { VmConfig } from "../../src/host/vm/config.js";
import type { VmContext } from "../../src/host/vm/context.js";
import { unlockVm, zeroSecrets } from "../../src/host/vm/keys.js";
import { startVm, vmStatus } from "../../src/host/vm/lifecycle.js";
import { buildNvram } from "../../src/host/vm/nvram.js";
import { rejectsWith } from "../helpers/errors.js";
import { repoPath } from "../helpers/paths.js";

const VM = "hgs-shielded";
let root: string;
let hgs: LocalHgs;
let ctx: VmContext;
const pristine = new Map<string, Buffer>();

const auditCount = async () => (await listAuditEntries(hgs.ctx, 0)).length;

async function restore(): Promise<void> {
  for (const [f, b] of pristine) await writeFile(f, b);
}

before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "bulwark-shield-hgs-"));
  hgs = await startLocalHgs(path.join(root, "hgs"));
  const hostDir = path.join(root, "host");
  ctx = hostContext(hostDir);
  const h = await guardHost(hostDir, hgs.urls, hgs.caPem);
  await hgs.registerHostKey("guarded-1", h.publicKeyPem);
  const disk = path.join(root, "disk.raw");
  await writeFile(disk, Buffer.alloc(1 << 20));
  await provisionShieldedVmForHgs({
    ownerStateDir: path.join(root, "owner"),
    guardedStateDir: hostDir,
    name: VM,
    hgsGuardianPem: hgs.guardianPem,
    disk,
  });
});

after(async () => {
  await hgs.stop();
  await rm(root, { recursive: true, force: true });
});

describe("signed settings on a guarded host", () => {
  it("as the owner signed them, HGS releases the keys", async () => {
    const before = await auditCount();
    zeroSecrets(await unlockVm(ctx, VM));
    const events = (await listAuditEntries(hgs.ctx, 0)).slice(before).map((e) => e.event);
    assert.ok(events.includes("key.released"), events.join());
    const p = ctx.store.paths(VM);
    for (const f of [p.config, p.nvram, p.keyProtector, p.keyProtectorLastKnownGood, p.vmSecrets]) {
      pristine.set(f, await readFile(f));
    }
  });

  it("config.json edited while off: refused before HGS is asked, nothing written", async () => {
    const p = ctx.store.paths(VM);
    const c = JSON.parse(await readFile(p.config, "utf8")) as VmConfig;
    await writeFile(
      p.config,
      JSON.stringify({
        ...c,
        security: { policy: "None", encryptStateAndMigration: false },
        console: true,
        debugStub: true,
      }),
    );
    try {
      const before = await auditCount();
      const d = await rejectsWith(startVm(ctx, VM), "VM_ERR_SETTINGS_TAMPERED");
      assert.deepEqual(d["differences"], ["policy", "encryptStateAndMigration", "console", "debugStub"]);
      assert.equal(await auditCount(), before, "HGS saw no attestation and no key-release request");
      assert.equal((await vmStatus(ctx, VM)).state, "Off");
      assert.deepEqual(await readFile(p.keyProtector), pristine.get(p.keyProtector));
    } finally {
      await restore();
    }
  });

  it("nvram.fd swapped for a Secure-Boot-off store: refused before HGS, and vm show says so", async () => {
    const p = ctx.store.paths(VM);
    const c = JSON.parse(await readFile(p.config, "utf8")) as VmConfig;
    await writeFile(
      p.nvram,
      await buildNvram(ctx.store.stateDir, { ...c, firmware: { ...c.firmware, secureBoot: false } }),
    );
    try {
      const before = await auditCount();
      const d = await rejectsWith(startVm(ctx, VM), "VM_ERR_SETTINGS_TAMPERED");
      assert.match(String(d["differences"]), /nvram Secure Boot state/);
      assert.equal(await auditCount(), before);
      const shown = spawnSync(
        process.execPath,
        [repoPath("dist/src/cli/main.js"), "vm", "show", VM, "--state-dir", ctx.store.stateDir],
        { encoding: "utf8" },
      );
      assert.match(shown.stdout, /Secure Boot: +Off \(nvram\.fd: disabled; config\.json says On\)/);
      assert.match(shown.stdout, /Signed settings: +TAMPERED/);
      assert.doesNotMatch(shown.stdout, /locked by shielding/);
    } finally {
      await restore();
    }
  });
});
