/**
 * What binds a VM's vTPM state to its sealed secrets, and re-keys it. Both work through a short
 * session of the host's own with the VM's swtpm before QEMU connects (TPM command socket and
 * control socket, attached to this process), never through a plaintext file.
 *
 * Version (rollback of tpm2-00.permall): Bulwark keeps a counter in an NV index of the vTPM's own
 * permanent state; the value it must hold is sealed among the VM secrets (VM_SECRET.vtpmVersion).
 * Every cold start reads it, refuses any value but the sealed one or one more, writes one more,
 * then seals that. So a permall from before the last cold start (it holds less) is refused with
 * VM_ERR_STATE_ROLLBACK, and a crash anywhere leaves a VM that starts: between the write and the
 * seal the permall holds sealed + 1, which is accepted; a SIGKILL of the running VM or a host
 * crash changes neither. What it does not catch: a permall copied during the current run (same
 * value), and a rollback of the permall together with vm-secrets.bin, which in local mode opens
 * under the same key (in HGS mode HGS refuses the older key generation; docs/security-model.md).
 *
 * The index (TCG "platform manufacturer" handle range) is created by the platform hierarchy —
 * platform authorization is empty at every TPM2_Startup, before the firmware can change it — so
 * the guest's TPM2_Clear keeps it; TPMA_NV_POLICY_DELETE with an authPolicy no policy session can
 * reach makes it undeletable; reads and writes need an authValue only the VM secrets hold
 * (VM_SECRET.vtpmVersionAuth), so the guest can neither read nor move it.
 *
 * Re-key (key-protector roll/revoke): swtpm under the old key hands out the decrypted permanent
 * state over its control socket (CMD_GET_STATEBLOB); a second swtpm under the new key, on a
 * staging directory beside the state, takes it (CMD_SET_STATEBLOB) and writes it encrypted. The
 * staging directory carries the SHA-256 of the VM secrets blob it belongs to: once that blob is
 * in place the staged state is moved in, otherwise it is dropped (./rekey.ts says the order).
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";
import { isBulwarkError } from "../../core/errors.js";
import { fsyncDir, writeFileAtomic } from "../../io/atomic.js";
import { readVersion, versionBytes, VM_SECRET } from "../../protector/vm-secrets.js";
import { hierarchyRef, Tpm } from "../../tpm/client.js";
import { TPM_ALG } from "../../tpm/alg.js";
import { TPM_RH, TPM_SU, nvAttributes } from "../../tpm/constants.js";
import { RC } from "../../tpm/rc.js";
import { PasswordSession } from "../../tpm/sessions.js";
import { SocketReader } from "../../tpm/transport/stream.js";
import { SwtpmControl, SwtpmTransport } from "../../tpm/transport/swtpm.js";
import { startSwtpm } from "../swtpm.js";
import type { VmSecrets } from "./context.js";
import { vmError } from "./errors.js";
import { resealVmSecrets, secret } from "./keys.js";
import type { VmPaths } from "./store.js";

/** The version index's handle (TCG Registry of Reserved TPM 2.0 Handles: platform manufacturer range). */
export const VTPM_VERSION_INDEX = 0x01800b57;
/** authPolicy no policy session reaches (a hash, not a policy digest): the index is never deleted. */
const NEVER_DELETE = createHash("sha256").update("bulwark vtpm-version index: never deleted\0").digest();
const PERMALL = "tpm2-00.permall";
const VOLATILE = "tpm2-00.volatilestate";

function rollback(message: string, details: Record<string, unknown> = {}): never {
  throw vmError("VM_ERR_STATE_ROLLBACK", message, details);
}

/** The staging directory of a re-key, beside the VM's tpm/ directory (same file system). */
export function vtpmStagingDir(p: VmPaths): string {
  return `${p.tpmDir}.rekey`;
}

/**
 * One session with the VM's swtpm under `key`, before QEMU: power-on, TPM2_Startup, `fn`, an
 * orderly TPM2_Shutdown and swtpm's own shutdown (which writes the state). A state that does not
 * decrypt under `key` is VM_ERR_VTPM_KEY.
 */
async function withSwtpm<T>(
  p: VmPaths,
  stateDir: string,
  key: Uint8Array,
  fn: (tpm: Tpm, ctrl: SwtpmControl, ctrlPath: string) => Promise<T>,
  opts: { startup?: boolean } = {},
): Promise<T> {
  await mkdir(p.runDir, { recursive: true, mode: 0o700 });
  const tag = randomBytes(4).toString("hex");
  const ctrlPath = path.join(p.runDir, `host-ctrl-${tag}.sock`);
  const dataPath = path.join(p.runDir, `host-tpm-${tag}.sock`);
  const sw = await startSwtpm({
    stateDir,
    socketPath: ctrlPath,
    dataSocketPath: dataPath,
    stateKey: key,
    log: path.join(p.runDir, "swtpm-host.log"),
  });
  const ctrl = new SwtpmControl({ path: ctrlPath });
  const tpm = new Tpm(new SwtpmTransport({ path: dataPath }));
  try {
    if (opts.startup !== false) {
      try {
        await ctrl.init();
      } catch (e) {
        throw vmError(
          "VM_ERR_VTPM_KEY",
          "the vTPM state does not open with the vTPM key in this VM's secrets: it was re-keyed " +
            "(key-protector roll or revoke) after these secrets were sealed, or it is damaged or another VM's",
          {},
          { cause: e },
        );
      }
      await tpm.startup(TPM_SU.CLEAR);
    }
    const result = await fn(tpm, ctrl, ctrlPath);
    if (opts.startup !== false) await tpm.shutdown(TPM_SU.CLEAR);
    // swtpm's own shutdown writes the state and ends it (before the command socket closes, which
    // with --terminate would end it too).
    await ctrl.shutdown();
    await sw.proc.exited;
    return result;
  } finally {
    await tpm.close().catch(() => undefined);
    await sw.stop();
    await rm(ctrlPath, { force: true });
    await rm(dataPath, { force: true });
  }
}

function isRc(e: unknown, base: number): boolean {
  return isBulwarkError(e) && e.code === "TPM_ERR_RESPONSE_CODE" && e.details["base"] === base;
}

async function readIndex(tpm: Tpm, auth: Uint8Array): Promise<bigint | "missing" | "unwritten"> {
  try {
    await tpm.nvReadPublic(VTPM_VERSION_INDEX);
  } catch (e) {
    if (isRc(e, RC.HANDLE)) return "missing";
    throw e;
  }
  let data: Uint8Array;
  try {
    data = await tpm.nvRead(VTPM_VERSION_INDEX, { session: new PasswordSession(auth) });
  } catch (e) {
    if (isRc(e, RC.NV_UNINITIALIZED)) return "unwritten";
    if (isRc(e, RC.AUTH_FAIL) || isRc(e, RC.BAD_AUTH)) {
      rollback(
        "the vTPM state's version index does not answer to this VM's secrets (not this VM's vTPM state)",
      );
    }
    throw e;
  }
  if (data.length !== 8) rollback(`the vTPM state's version index holds ${data.length} bytes, not 8`);
  return Buffer.from(data).readBigUInt64BE(0);
}

async function defineIndex(tpm: Tpm, auth: Uint8Array): Promise<void> {
  await tpm.nvDefineSpace(
    hierarchyRef(TPM_RH.PLATFORM),
    {
      nvIndex: VTPM_VERSION_INDEX,
      nameAlg: TPM_ALG.SHA256,
      attributes: nvAttributes("AUTHWRITE", "AUTHREAD", "NO_DA", "PLATFORMCREATE", "POLICY_DELETE"),
      authPolicy: NEVER_DELETE,
      dataSize: 8,
    },
    auth,
  );
}

export interface VersionCheck {
  /** The value found in the vTPM state (undefined: no index yet). */
  readonly found: bigint | undefined;
  /** The value now in the vTPM state and sealed in the VM secrets. */
  readonly now: bigint;
}

/**
 * Checks the vTPM state's version against the sealed one and moves both on (see the header).
 * `fresh`: the state was manufactured just now, so no version can be expected of it. Updates
 * `secrets` and seals them again (keys.ts resealVmSecrets).
 */
export async function advanceVtpmVersion(
  p: VmPaths,
  secrets: VmSecrets,
  opts: { fresh?: boolean } = {},
): Promise<VersionCheck> {
  let auth = secrets.get(VM_SECRET.vtpmVersionAuth);
  if (!auth || opts.fresh === true) {
    if (!auth) {
      auth = new Uint8Array(randomBytes(32));
      secrets.set(VM_SECRET.vtpmVersionAuth, auth);
    }
    // The authValue is sealed before the index exists: a crash after defining it finds it.
    secrets.delete(VM_SECRET.vtpmVersion);
    await resealVmSecrets(p, secrets);
  }
  const expected = readVersion(secrets, VM_SECRET.vtpmVersion);
  const key = secret(secrets, VM_SECRET.vtpmStateKey);
  const versionAuth = auth;
  const check = await withSwtpm(p, p.tpmDir, key, async (tpm) => {
    const got = await readIndex(tpm, versionAuth);
    if (typeof got !== "bigint") {
      // Only a VM whose secrets expect no version yet (first versioned start, or a crash before
      // the first seal) may have no version in its vTPM state.
      if (expected !== undefined) {
        rollback(
          `the vTPM state holds no version, but this VM's secrets expect version ${expected}: it is older than them`,
          { expected: String(expected), got: got },
        );
      }
      if (got === "missing") await defineIndex(tpm, versionAuth);
    } else if (expected !== undefined && got !== expected && got !== expected + 1n) {
      rollback(
        `the vTPM state is version ${got}, but this VM's secrets expect version ${expected}` +
          (got < expected ? ": it is an older copy (rolled back)" : ""),
        { expected: String(expected), got: String(got) },
      );
    }
    const now = (typeof got === "bigint" ? got : 0n) + 1n;
    await tpm.nvWrite(VTPM_VERSION_INDEX, versionBytes(now), { session: new PasswordSession(versionAuth) });
    return { found: typeof got === "bigint" ? got : undefined, now };
  });
  // The vTPM holds `now` before the secrets say so: a crash in between leaves sealed + 1, accepted.
  secrets.set(VM_SECRET.vtpmVersion, versionBytes(check.now));
  await resealVmSecrets(p, secrets);
  return check;
}

// swtpm's control protocol for state blobs (swtpm's tpm_ioctl.h): CMD_GET_STATEBLOB and
// CMD_SET_STATEBLOB with struct ptm_getstate / ptm_setstate, big-endian over the socket.
const CMD_GET_STATEBLOB = 12;
const CMD_SET_STATEBLOB = 13;
const PTM_BLOB_TYPE_PERMANENT = 1;
const PTM_STATE_FLAG_DECRYPTED = 1;
const MAX_STATE_BLOB = 16 << 20;

function u32s(...xs: number[]): Buffer {
  const b = Buffer.alloc(4 * xs.length);
  xs.forEach((x, i) => b.writeUInt32BE(x >>> 0, 4 * i));
  return b;
}

function blobError(what: string, result: number): never {
  throw vmError("VM_ERR_START_FAILED", `swtpm refused ${what} of the vTPM state (0x${result.toString(16)})`, {
    program: "swtpm",
  });
}

async function getPermanentState(ctrlPath: string): Promise<Buffer> {
  const c = await SocketReader.connect({ path: ctrlPath });
  try {
    await c.write(u32s(CMD_GET_STATEBLOB, PTM_STATE_FLAG_DECRYPTED, PTM_BLOB_TYPE_PERMANENT, 0));
    const h = Buffer.from(await c.read(16, 30_000));
    const result = h.readUInt32BE(0);
    if (result !== 0) blobError("to hand out", result);
    const flags = h.readUInt32BE(4);
    const total = h.readUInt32BE(8);
    const length = h.readUInt32BE(12);
    if (flags !== 0 || length !== total || total === 0 || total > MAX_STATE_BLOB) {
      blobError("to hand out a whole decrypted copy", flags);
    }
    return Buffer.from(await c.read(length, 30_000));
  } finally {
    await c.close();
  }
}

async function setPermanentState(ctrlPath: string, blob: Uint8Array): Promise<void> {
  const c = await SocketReader.connect({ path: ctrlPath });
  try {
    await c.write(Buffer.concat([u32s(CMD_SET_STATEBLOB, 0, PTM_BLOB_TYPE_PERMANENT, blob.length), blob]));
    const result = Buffer.from(await c.read(4, 30_000)).readUInt32BE(0);
    if (result !== 0) blobError("to take", result);
  } finally {
    await c.close();
  }
}

/** SHA-256 of a VM secrets blob: what a staged vTPM state belongs to. */
function blobDigest(sealed: Uint8Array): string {
  return createHash("sha256").update(sealed).digest("hex");
}

/**
 * Writes the VM's vTPM state, re-encrypted under `newKey`, to the staging directory, marked as
 * belonging to the VM secrets blob `sealedSecrets` (not yet in place). The plaintext state lives
 * only in this process's memory and in the two swtpm processes.
 */
export async function stageVtpmRekey(
  p: VmPaths,
  oldKey: Uint8Array,
  newKey: Uint8Array,
  sealedSecrets: Uint8Array,
): Promise<void> {
  const staging = vtpmStagingDir(p);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true, mode: 0o700 });
  const plain = await withSwtpm(p, p.tpmDir, oldKey, async (_tpm, _ctrl, ctrlPath) =>
    getPermanentState(ctrlPath),
  );
  try {
    await withSwtpm(
      p,
      staging,
      newKey,
      async (_tpm, ctrl, ctrlPath) => {
        await setPermanentState(ctrlPath, plain);
        await ctrl.init(); // loads what it took, under the new key: a state that will start
      },
      { startup: false },
    );
  } finally {
    plain.fill(0);
  }
  if (!existsSync(path.join(staging, PERMALL))) {
    throw vmError("VM_ERR_START_FAILED", "swtpm wrote no re-keyed vTPM state", { program: "swtpm" });
  }
  await writeFileAtomic(path.join(staging, "for-vm-secrets.sha256"), `${blobDigest(sealedSecrets)}\n`);
}

/**
 * Finishes or drops an interrupted re-key: the staged vTPM state replaces the VM's when the VM
 * secrets in place are the ones it was staged for, and is removed otherwise. Idempotent; runs
 * under the VM's lock before anything reads the vTPM state.
 */
export async function settleVtpmRekey(p: VmPaths): Promise<"none" | "committed" | "dropped"> {
  const staging = vtpmStagingDir(p);
  if (!existsSync(staging)) return "none";
  const marker = await readFile(path.join(staging, "for-vm-secrets.sha256"), "utf8").catch(() => "");
  const inPlace = await readFile(p.vmSecrets).catch(() => undefined);
  const staged = path.join(staging, PERMALL);
  if (inPlace && existsSync(staged) && marker.trim() === blobDigest(inPlace)) {
    await mkdir(p.tpmDir, { recursive: true, mode: 0o700 });
    // Volatile state (none for a VM that is off, normally) is under the old key: never valid again.
    await rm(path.join(p.tpmDir, VOLATILE), { force: true });
    await rename(staged, path.join(p.tpmDir, PERMALL));
    await fsyncDir(p.tpmDir);
    await rm(staging, { recursive: true, force: true });
    return "committed";
  }
  await rm(staging, { recursive: true, force: true });
  return "dropped";
}
