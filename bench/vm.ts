/**
 * VM runtime benchmarks on real QEMU + OVMF (TCG here):
 *  1. save + restore of a guest whose RAM holds 1 GiB of random data: Bulwark's encrypted save
 *     (live pre-copy migration stream → AES-256-GCM chunks → file, fsync, rename) and restore,
 *     beside QEMU's own plain migrate-to-file of the same VM (`exec:cat > file`, its fsync
 *     reported apart) and restore (`-incoming` from `exec:cat file`). Median of 3 rounds whose
 *     order alternates. Goal (issue 12): encrypted save + restore ≤ 1.10× QEMU plain save + fsync
 *     + restore (the "(plain + fsync)" row).
 *  2. VM start to the guest's ready marker with vTPM + key protector vs a plain VM. Goal: < 5 %.
 *     Host side (startVm until the VM runs) goal: ≤ +30 ms over the plain VM; the time until QEMU
 *     is spawned is reported apart (Bulwark's own work: settings check, unwrap, vTPM version
 *     session, swtpm), from the start's progress messages.
 * Run: node dist/bench/vm.js [--quick] (quick: 256 MiB of RAM data, one start each).
 * Prints a table, then ONE JSON line.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, open, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { findSecureBootFirmware } from "../src/host/firmware.js";
import { ensureGuestImage } from "../src/lab/guest-image.js";
import { scriptFwCfgName } from "../src/lab/guest-init.js";
import { chooseAccelerator } from "../src/host/probe.js";
import { requireProgram } from "../src/host/tools.js";
import { newVmConfig, type VmConfig } from "../src/host/vm/config.js";
import { setKeyProtector, setSecurity, setTpm } from "../src/host/vm/settings.js";
import { qemuArgs } from "../src/host/vm/qemu-args.js";
import { connectQmp } from "../src/host/vm/processes.js";
import { hostContext } from "../src/host/index.js";
import { saveVm } from "../src/host/vm/saved-state.js";
import { startVm, turnOffVm, waitForPowerOff } from "../src/host/vm/lifecycle.js";
import type { VmContext } from "../src/host/vm/context.js";

const quick = process.argv.includes("--quick");
const FILL_MIB = quick ? 256 : 1024;

async function serial(ctx: VmContext, name: string): Promise<string> {
  return readFile(ctx.store.paths(name).serialLog, "utf8").catch(() => "");
}

async function waitFor(
  ctx: VmContext,
  name: string,
  text: string,
  timeoutMs: number,
  from = 0,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await serial(ctx, name)).indexOf(text, from) >= 0) return Date.now();
    if (Date.now() > deadline) throw new Error(`timed out waiting for '${text}'`);
    await sleep(50);
  }
}

async function makeVm(ctx: VmContext, dir: string, name: string, script: string, patch: Partial<VmConfig>) {
  const img = await ensureGuestImage("tpm2tools");
  const file = path.join(dir, `${name}.sh`);
  await writeFile(file, script);
  const c = {
    ...newVmConfig({ name, disks: [{ path: img.disk, format: "raw", snapshot: true }], network: "none" }),
    fwCfg: { [scriptFwCfgName]: file },
    ...patch,
  };
  await ctx.store.create(c);
  return ctx.store.paths(name);
}

/**
 * Before every timed phase: flush dirty pages (so one phase's writeback does not slow the next),
 * then wait until memory freed by deleting the previous phase's file is cold again. Measured on
 * this VM (virtio-balloon free page reporting): writing 900 MB into the page cache takes 0.15 s
 * right after a 900 MB file was deleted and ~1.1 s a few seconds later, when the host has taken
 * those pages back. Without the wait, whichever side deleted its old file last looks 2–3× faster.
 */
async function settle(): Promise<void> {
  spawnSync("sync");
  await sleep(SETTLE_MS);
}
const SETTLE_MS = 4000;

const SAVE_REPS = quick ? 1 : 3;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function saveRestore(ctx: VmContext, dir: string) {
  const name = "membench";
  const p = await makeVm(
    ctx,
    dir,
    name,
    `dd if=/dev/urandom of=/tmp/r bs=1M count=16 2>/dev/null
i=0; while [ $i -lt ${FILL_MIB / 16} ]; do cat /tmp/r >> /tmp/fill; i=$((i+1)); done
echo BENCH-FILLED; while true; do sleep 1; done
`,
    { memoryMiB: FILL_MIB + 512 },
  );
  // Through the settings verbs, as an owner does: each change is signed with the owner's key.
  await setKeyProtector(ctx, name, { kind: "new-local" });
  await setSecurity(ctx, name, { encryptStateAndMigration: true });
  await startVm(ctx, name);
  await waitFor(ctx, name, "BENCH-FILLED", 900_000);
  const plainFile = path.join(dir, "plain.mig");

  // QEMU's own plain save of the same VM, a live migration as saveVm does, to a file by
  // `exec:cat`, then fsynced separately (the durability Bulwark's save includes). The VM resumes.
  async function plainSave(): Promise<{ seconds: number; fsync: number }> {
    await rm(plainFile, { force: true });
    await settle();
    const q = await connectQmp(p);
    await q.execute("migrate-set-parameters", {
      "max-bandwidth": 64 * 1024 * 1024 * 1024,
      "downtime-limit": 2000,
    });
    const t = performance.now();
    await q.execute("migrate", { uri: `exec:cat > ${plainFile}` });
    for (;;) {
      const m = await q.execute<{ status?: string }>("query-migrate");
      if (m.status === "completed") break;
      if (m.status === "failed") throw new Error("migration failed");
      await sleep(10); // the poll saveVm uses
    }
    const seconds = (performance.now() - t) / 1000;
    const tSync = performance.now();
    const fh = await open(plainFile, "r+");
    await fh.sync();
    await fh.close();
    const fsync = (performance.now() - tSync) / 1000;
    await q.execute("cont");
    q.close();
    return { seconds, fsync };
  }

  // QEMU's own plain restore: a fresh QEMU with -incoming, fed by `exec:cat`, resumed. The VM
  // then runs from that state (Bulwark's pid file and QMP socket), so the next round goes on.
  async function plainRestore(): Promise<number> {
    await turnOffVm(ctx, name);
    const cfg = await ctx.store.load(name);
    const args = qemuArgs(cfg, p, {
      accelerator: await chooseAccelerator(),
      firmwareCode: findSecureBootFirmware().code,
      incoming: true,
    });
    await settle();
    const t = performance.now();
    await new Promise<void>((resolve, reject) => {
      const child = spawn(requireProgram("qemu-system-x86_64"), args, { stdio: "ignore" });
      child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`qemu exit ${code}`))));
    });
    const q = await connectQmp(p);
    await q.execute("migrate-incoming", { uri: `exec:cat ${plainFile}` });
    for (;;) {
      const s = await q.execute<{ status: string }>("query-status");
      if (s.status === "paused" || s.status === "running") {
        const m = await q.execute<{ status?: string }>("query-migrate");
        if (m.status === "completed") break;
      }
      await sleep(5); // the poll Bulwark's restore uses
    }
    await q.execute("cont");
    q.close();
    return (performance.now() - t) / 1000;
  }

  const runs = { plainSave: [] as number[], plainFsync: [] as number[], plainRestore: [] as number[] };
  /** Where an encrypted save's and restore's time went (the last round's progress messages). */
  const phases = { save: "", restore: "" };
  const enc = { save: [] as number[], restore: [] as number[] };
  let encBytes = 0;
  // Rounds alternate which of the two goes first, so neither always meets a cold page cache.
  for (let round = 0; round < SAVE_REPS; round++) {
    const encrypted = async () => {
      await settle();
      progressMarks.length = 0;
      let t = performance.now();
      encBytes = (await saveVm(ctx, name)).bytes; // sealed stream, fsync, rename, QEMU stopped
      enc.save.push((performance.now() - t) / 1000);
      phases.save = phaseText(t, performance.now());
      await settle();
      progressMarks.length = 0;
      t = performance.now();
      await startVm(ctx, name); // unwrap, QEMU up, decrypting restore, resume
      enc.restore.push((performance.now() - t) / 1000);
      phases.restore = phaseText(t, performance.now());
    };
    const plain = async () => {
      const s = await plainSave();
      runs.plainSave.push(s.seconds);
      runs.plainFsync.push(s.fsync);
      runs.plainRestore.push(await plainRestore());
    };
    if (round % 2 === 0) {
      await plain();
      await encrypted();
    } else {
      await encrypted();
      await plain();
    }
  }
  await turnOffVm(ctx, name);
  const plainBytes = (await stat(plainFile)).size;
  return {
    plainSave: median(runs.plainSave),
    plainFsync: median(runs.plainFsync),
    plainRestore: median(runs.plainRestore),
    encSave: median(enc.save),
    encRestore: median(enc.restore),
    plainBytes,
    encBytes,
    rounds: { ...runs, encSave: enc.save, encRestore: enc.restore },
    phases,
  };
}

async function startToReady(ctx: VmContext, dir: string, runs: number) {
  const plain = await makeVm(ctx, dir, "plainstart", "true\n", {});
  void plain;
  await makeVm(ctx, dir, "tpmstart", "true\n", {});
  await setKeyProtector(ctx, "tpmstart", { kind: "new-local" });
  await setTpm(ctx, "tpmstart", true);
  await setSecurity(ctx, "tpmstart", { encryptStateAndMigration: true });
  // First start manufactures the vTPM (one-time cost, reported separately).
  let t = performance.now();
  await startVm(ctx, "tpmstart");
  await waitFor(ctx, "tpmstart", "BULWARK-READY", 300_000);
  const firstTpm = (performance.now() - t) / 1000;
  await waitForPowerOff(ctx, "tpmstart", 120_000);
  const times: { plain: number[]; tpm: number[] } = { plain: [], tpm: [] };
  const hostSide: { plain: number[]; tpm: number[] } = { plain: [], tpm: [] };
  const beforeQemu: { plain: number[]; tpm: number[] } = { plain: [], tpm: [] };
  for (let i = 0; i < runs; i++) {
    for (const [name, key] of [
      ["plainstart", "plain"],
      ["tpmstart", "tpm"],
    ] as const) {
      const from = (await serial(ctx, name)).length;
      progressMarks.length = 0;
      t = performance.now();
      await startVm(ctx, name);
      hostSide[key].push((performance.now() - t) / 1000);
      const qemuAt = progressMarks.find(([m]) => m.startsWith("starting QEMU"))?.[1];
      if (qemuAt !== undefined) beforeQemu[key].push((qemuAt - t) / 1000);
      await waitFor(ctx, name, "BULWARK-READY", 300_000, from);
      times[key].push((performance.now() - t) / 1000);
      await waitForPowerOff(ctx, name, 120_000);
    }
  }
  return {
    plain: median(times.plain),
    tpm: median(times.tpm),
    hostPlain: median(hostSide.plain),
    hostTpm: median(hostSide.tpm),
    beforeQemuPlain: median(beforeQemu.plain),
    beforeQemuTpm: median(beforeQemu.tpm),
    firstTpm,
    runs: times,
  };
}

const dir = await mkdtemp(path.join(os.tmpdir(), "bulwark-bench-vm-"));
/** The start's progress messages with their times: where the host-side time of a start goes. */
const progressMarks: [string, number][] = [];
/** "message +ms" for each progress message since `t0`, and "done" at `t1`. */
function phaseText(t0: number, t1: number): string {
  return [
    ...progressMarks.map(([m, at]) => `${m} @${Math.round(at - t0)} ms`),
    `done @${Math.round(t1 - t0)} ms`,
  ].join(" | ");
}
const ctx = hostContext(dir, (m) => progressMarks.push([m, performance.now()]));
try {
  const accel = await chooseAccelerator();
  const sr = await saveRestore(ctx, dir);
  const st = await startToReady(ctx, dir, quick ? 1 : 3);
  const r = (a: number, b: number) => (a / b).toFixed(2);
  const ms = (seconds: number) => `${seconds >= 0 ? "+" : ""}${Math.round(seconds * 1000)} ms`;
  const rows = [
    ["save", sr.encSave, sr.plainSave],
    ["restore", sr.encRestore, sr.plainRestore],
    ["save + restore", sr.encSave + sr.encRestore, sr.plainSave + sr.plainRestore],
    ["  (plain + fsync)", sr.encSave + sr.encRestore, sr.plainSave + sr.plainFsync + sr.plainRestore],
  ] as const;
  process.stdout.write(
    `VM runtime benchmark (${accel}, guest RAM with ${FILL_MIB} MiB of random data; save/restore: median of ${SAVE_REPS} rounds)\n\n`,
  );
  process.stdout.write(
    `${"operation".padEnd(16)} ${"bulwark (enc)".padStart(14)} ${"qemu plain".padStart(12)} ${"ratio".padStart(7)}\n`,
  );
  for (const [k, a, b] of rows) {
    process.stdout.write(
      `${k.padEnd(16)} ${`${a.toFixed(2)} s`.padStart(14)} ${`${b.toFixed(2)} s`.padStart(12)} ${r(a, b).padStart(7)}\n`,
    );
  }
  process.stdout.write(
    `stream bytes     ${String(sr.encBytes).padStart(14)} ${String(sr.plainBytes).padStart(12)}\n` +
      `encrypted save, last round: ${sr.phases.save}\nencrypted restore, last round: ${sr.phases.restore}\n\n`,
  );
  process.stdout.write(
    `start, host side (unwrap, swtpm, QEMU up; median of ${st.runs.plain.length}): plain ${st.hostPlain.toFixed(2)} s, vTPM + key protector ${st.hostTpm.toFixed(2)} s, overhead ${ms(st.hostTpm - st.hostPlain)} (goal ≤ +30 ms)\n` +
      `  of which before QEMU is spawned (settings check, unwrap, vTPM version session, swtpm): plain ${Math.round(st.beforeQemuPlain * 1000)} ms, vTPM + key protector ${Math.round(st.beforeQemuTpm * 1000)} ms\n` +
      `start → guest ready marker: plain ${st.plain.toFixed(2)} s, vTPM + key protector ${st.tpm.toFixed(2)} s, ratio ${r(st.tpm, st.plain)} (includes the guest's measured boot under TCG; first start with vTPM manufacture: ${st.firstTpm.toFixed(2)} s)\n`,
  );
  process.stdout.write(
    `${JSON.stringify({
      bench: "vm",
      accelerator: accel,
      fillMiB: FILL_MIB,
      saveSeconds: { encrypted: sr.encSave, qemuPlain: sr.plainSave, qemuPlainFsync: sr.plainFsync },
      restoreSeconds: { encrypted: sr.encRestore, qemuPlain: sr.plainRestore },
      saveRestoreRatio: (sr.encSave + sr.encRestore) / (sr.plainSave + sr.plainRestore),
      saveRestoreRounds: sr.rounds,
      encryptedPhases: sr.phases,
      startToReadySeconds: { plain: st.plain, tpmAndKeyProtector: st.tpm, firstWithManufacture: st.firstTpm },
      startToReadyRatio: st.tpm / st.plain,
      hostStartSeconds: { plain: st.hostPlain, tpmAndKeyProtector: st.hostTpm },
      hostStartRatio: st.hostTpm / st.hostPlain,
      hostStartOverheadMs: Math.round((st.hostTpm - st.hostPlain) * 1000),
      beforeQemuSeconds: { plain: st.beforeQemuPlain, tpmAndKeyProtector: st.beforeQemuTpm },
      saveRestoreVsPlainFsync:
        (sr.encSave + sr.encRestore) / (sr.plainSave + sr.plainFsync + sr.plainRestore),
    })}\n`,
  );
} finally {
  for (const n of await ctx.store.list()) await turnOffVm(ctx, n).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
}
