/**
 * Saved state (Hyper-V Save-VM): the running VM's QEMU migration stream, sealed with the VM's
 * state key through authenticated encryption (unless encryption is off and the VM is not
 * shielded), written to a temporary file, fsynced and renamed; restore streams it back through
 * the decrypting stream, so unverified plaintext never reaches QEMU. A failed save leaves the VM
 * running; a failed restore leaves the VM off with its saved state intact.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { open, readdir, readFile, rm, stat } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { isBulwarkError } from "../../core/errors.js";
import { commitFile, tempPathFor, writeFileAtomic } from "../../io/atomic.js";
import { createDecryptStream, createEncryptStream } from "../../protector/stream.js";
import { readVersion, versionBytes, VM_SECRET } from "../../protector/vm-secrets.js";
import type { VmContext, VmSecrets } from "./context.js";
import { vmError } from "./errors.js";
import { resealVmSecrets, secret, unlockVm, zeroSecrets } from "./keys.js";
import { assertRunning, connectQmp, killPidFile, stillRunning, waitGone } from "./processes.js";
import { runningSettings } from "./running-settings.js";
import type { VmPaths } from "./store.js";

export interface SavedStateMeta {
  readonly version: 1;
  readonly encrypted: boolean;
  readonly bytes: number;
  readonly createdAt: string;
  readonly vmId: string;
  /**
   * An encrypted saved state's generation (decimal u64): the one sealed in the VM secrets when it
   * was written, bound into the stream's key derivation. Absent on saved states of older Bulwark.
   */
  readonly generation?: string;
}

/**
 * Rollback of a saved state: each encrypted save takes the next generation, sealed among the VM
 * secrets (VM_SECRET.savedStateGeneration) before the stream is written, and carried in the meta
 * file and the stream's key-derivation context. A restore takes only the sealed generation, and
 * moves the sealed one on once the saved state is consumed, so an older copy — or the consumed
 * one put back — is refused (VM_ERR_STATE_ROLLBACK); an edited meta generation fails the stream's
 * key check. A plain saved state (encryption off, not shielded) has no secrets to bind to.
 */
function savedStateContext(vmId: string, generation: bigint): Uint8Array {
  return Buffer.concat([Buffer.from(`bulwark saved-state v1\0${vmId}\0`), versionBytes(generation)]);
}

/** The generation a restore may take: the sealed one, checked against the saved state's meta. */
function restorableGeneration(meta: SavedStateMeta, secrets: VmSecrets): bigint | undefined {
  const sealed = readVersion(secrets, VM_SECRET.savedStateGeneration);
  const carried =
    meta.generation === undefined || !/^[0-9]{1,20}$/.test(meta.generation)
      ? undefined
      : BigInt(meta.generation);
  if (sealed === undefined && meta.generation === undefined) return undefined; // saved before generations existed
  if (sealed === undefined || carried === undefined || carried !== sealed) {
    throw vmError(
      "VM_ERR_STATE_ROLLBACK",
      `the saved state is generation ${meta.generation ?? "(none)"}, but this VM's secrets allow only generation ` +
        `${sealed ?? "(none)"}: it is an older or already restored copy. It is left as it is; ` +
        "delete it (rm the VM's saved-state files) to start the VM from its disks",
      { expected: sealed === undefined ? null : String(sealed), got: meta.generation ?? null },
    );
  }
  return sealed;
}

export async function readSavedMeta(p: VmPaths): Promise<SavedStateMeta | null> {
  if (!existsSync(p.savedState)) return null;
  try {
    return JSON.parse(await readFile(p.savedStateMeta, "utf8")) as SavedStateMeta;
  } catch {
    return null;
  }
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

/**
 * Streams the saved state into a QEMU started with `-incoming defer` and resumes it. Refused or
 * failed: that QEMU and its swtpm are stopped and the saved state on disk is untouched. The start
 * did not wait to see QEMU (and `opts.vtpm`: its swtpm) stay up: they are checked here, once the
 * stream is in and before the VM resumes and the saved state is consumed.
 */
export async function restoreInto(
  p: VmPaths,
  meta: SavedStateMeta,
  secrets: VmSecrets | undefined,
  say: (m: string) => void,
  opts: { vtpm: boolean },
): Promise<void> {
  let generation: bigint | undefined;
  try {
    generation = meta.encrypted ? restorableGeneration(meta, secrets as VmSecrets) : undefined;
  } catch (e) {
    await killPidFile(p.qemuPid);
    await killPidFile(p.swtpmPid);
    throw e;
  }
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
      say(meta.encrypted ? "streaming the saved state in (decrypting)" : "streaming the saved state in");
      if (meta.encrypted) {
        const key = secret(secrets as VmSecrets, VM_SECRET.stateKey);
        const ctx = generation === undefined ? {} : { context: savedStateContext(meta.vmId, generation) };
        await pipeline(source, createDecryptStream(key, { purpose: "savedState", ...ctx }), conn);
      } else {
        await pipeline(source, conn);
      }
    } finally {
      await fh.close();
    }
    say("stream in; QEMU is loading it");
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
    const gone = stillRunning(p, opts.vtpm, "during its restore");
    if (gone) throw vmError("VM_ERR_START_FAILED", gone, { program: "qemu-system-x86_64" });
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
  // The VM runs from the restored state: the saved state is consumed, and then its generation
  // (removed first: a crash in between leaves no copy that the moved-on generation would refuse).
  await rm(p.savedStateMeta, { force: true });
  await rm(p.savedState, { force: true });
  if (generation !== undefined) {
    (secrets as VmSecrets).set(VM_SECRET.savedStateGeneration, versionBytes(generation + 1n));
    await resealVmSecrets(p, secrets as VmSecrets);
  }
}

export interface SaveOptions {
  readonly onProgress?: (transferredBytes: number, totalBytes: number) => void;
}

/**
 * Saves a running VM: live pre-copy migration to a socket Bulwark serves, sealed with the VM's
 * state key (unless encryption is off and the VM is not shielded), written to a temporary file,
 * fsynced and renamed; then QEMU is stopped. A failure before the rename leaves the VM running.
 */
export async function saveVm(ctx: VmContext, name: string, opts: SaveOptions = {}): Promise<SavedStateMeta> {
  const say = ctx.progress ?? (() => undefined);
  return ctx.store.withLock(name, async () => {
    const c = await ctx.store.load(name);
    const p = ctx.store.paths(name);
    const pid = assertRunning(p, name);
    // Decided by the settings verified at start, not by config.json (editable while it runs).
    const { security } = await runningSettings(ctx, name, pid);
    const encrypted = security.encryptStateAndMigration || security.policy === "Shielded";
    const secrets = encrypted ? await unlockVm(ctx, name) : undefined;
    // A temporary file of an atomic write (io/atomic.ts) in the VM's directory is what an
    // interrupted save left — of the saved state or of the secrets it re-seals: garbage, since the
    // last good copy is the real file, and we hold the VM's lock, so no write is in progress.
    for (const f of await readdir(p.dir)) {
      if (/^\..+\.[0-9a-f]{12}\.tmp$/.test(f)) await rm(path.join(p.dir, f), { force: true });
    }
    let generation: bigint | undefined;
    if (secrets) {
      // Sealed before the stream is written: a crash after leaves no saved state of this generation.
      generation = (readVersion(secrets, VM_SECRET.savedStateGeneration) ?? 0n) + 1n;
      secrets.set(VM_SECRET.savedStateGeneration, versionBytes(generation));
      try {
        await resealVmSecrets(p, secrets);
      } catch (e) {
        zeroSecrets(secrets);
        throw e;
      }
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
                const context = savedStateContext(c.id, generation as bigint);
                await pipeline(conn, createEncryptStream(key, { purpose: "savedState", context }), sink);
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
      say("migration complete; the saved state is being synced");
      const bytes = await received;
      await commitFile(tmp, p.savedState);
      const meta: SavedStateMeta = {
        version: 1,
        encrypted,
        bytes: (await stat(p.savedState)).size,
        createdAt: new Date().toISOString(),
        vmId: c.id,
        ...(generation === undefined ? {} : { generation: String(generation) }),
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
      zeroSecrets(secrets);
      server?.close();
      await rm(sock, { force: true });
    }
  });
}
