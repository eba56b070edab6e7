/**
 * A VM's vTPM: one swtpm whose state (under the VM's tpm/ directory) is encrypted at rest with
 * the vTPM state key from the VM secrets. The key reaches swtpm_setup and swtpm only through a
 * pipe on file descriptor 3.
 */
import { mkdir, readdir, rm } from "node:fs/promises";
import path from "node:path";
import { isBulwarkError } from "../../core/errors.js";
import { lastLines, spawnChild } from "../children.js";
import { asFileError } from "../file-errors.js";
import { startSwtpm } from "../swtpm.js";
import { VM_SECRET } from "../../protector/vm-secrets.js";
import type { VmSecrets } from "./context.js";
import { vmError } from "./errors.js";
import { secret } from "./keys.js";
import { advanceVtpmVersion, settleVtpmRekey } from "./vtpm-version.js";
import type { VmPaths } from "./store.js";

/** swtpm's whole TPM 2.0 state (libtpms "permanent all"); the vTPM exists while this file does. */
export const VTPM_STATE_FILE = "tpm2-00.permall";

/**
 * Manufactures the vTPM (EK created, state encrypted under the VM's key) when it has none —
 * only if it never had one: a vTPM manufactured before whose state is gone is refused
 * (VM_ERR_VTPM_STATE_MISSING), since a new one has a new EK and loses what the guest sealed.
 * Returns true when it manufactured.
 */
async function ensureManufactured(
  p: VmPaths,
  key: Uint8Array,
  manufacturedBefore: boolean,
): Promise<boolean> {
  const present = await readdir(p.tpmDir).then(
    (files) => files.includes(VTPM_STATE_FILE),
    (e: unknown) => {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw asFileError(e, p.tpmDir);
    },
  );
  if (present) return false;
  if (manufacturedBefore) {
    throw vmError(
      "VM_ERR_VTPM_STATE_MISSING",
      `the vTPM state of this VM (${path.join(p.tpmDir, VTPM_STATE_FILE)}) is missing, but its vTPM was manufactured before: ` +
        "a new vTPM would have a new EK and lose everything the guest sealed to the old one. Restore the tpm/ " +
        `directory from a backup, or make a new vTPM with 'bulwark vm tpm reset ${path.basename(p.dir)} --yes'`,
      { file: path.join(p.tpmDir, VTPM_STATE_FILE) },
    );
  }
  await mkdir(p.tpmDir, { recursive: true, mode: 0o700 });
  const setup = spawnChild(
    "swtpm_setup",
    [
      "--tpm2",
      "--tpmstate",
      p.tpmDir,
      "--createek",
      "--create-spk",
      "--keyfile-fd",
      "3",
      "--cipher",
      "aes-256-cbc",
      "--not-overwrite",
    ],
    { log: path.join(p.runDir, "swtpm_setup.log"), secretFd3: Buffer.from(key).toString("hex") },
  );
  const { code } = await setup.exited;
  if (code !== 0) {
    await discardVtpmState(p); // a half-made vTPM would count as made on the next start
    throw vmError(
      "VM_ERR_START_FAILED",
      `swtpm_setup failed (exit ${code}): ${lastLines(setup.stderrTail(), 10)}`,
      { program: "swtpm_setup" },
    );
  }
  return true;
}

/**
 * Starts the VM's vTPM, manufacturing it on its first start (`manufacturedBefore` false). The
 * swtpm is detached: it outlives this command and ends by itself when QEMU disconnects. Before
 * that, on a cold start, the vTPM state's version is checked against the sealed one and moved on
 * (./vtpm-version.ts); a restore skips it, because the saved state (bound by its own generation)
 * brings the vTPM state with it. Returns whether it manufactured (the caller records that, or
 * discards the new state if the start fails).
 */
export async function startVtpm(
  p: VmPaths,
  secrets: VmSecrets,
  say: (m: string) => void,
  opts: { restoring?: boolean; manufacturedBefore: boolean },
): Promise<{ manufactured: boolean }> {
  await settleVtpmRekey(p);
  const key = secret(secrets, VM_SECRET.vtpmStateKey);
  const manufactured = await ensureManufactured(p, key, opts.manufacturedBefore);
  if (!opts.restoring) {
    say("checking the vTPM state's version");
    try {
      await advanceVtpmVersion(p, secrets, { fresh: manufactured });
    } catch (e) {
      if (manufactured) await discardVtpmState(p);
      throw e;
    }
  }
  say("starting the vTPM (swtpm)");
  try {
    await startSwtpm({
      stateDir: p.tpmDir,
      socketPath: p.swtpmSocket,
      stateKey: key,
      pidFile: p.swtpmPid,
      lifetime: "detached",
      log: path.join(p.runDir, "swtpm.log"),
    });
  } catch (e) {
    if (manufactured) await discardVtpmState(p);
    if (!isBulwarkError(e) || e.code !== "HOST_ERR_TOOL_FAILED") throw e;
    const output = typeof e.details["output"] === "string" ? e.details["output"] : "";
    throw vmError(
      "VM_ERR_START_FAILED",
      `swtpm did not start: ${output || "no control socket within 10 s"}`,
      {
        program: "swtpm",
      },
    );
  }
  return { manufactured };
}

/** Removes the vTPM's state (a start that manufactured it failed, or `vm tpm reset`). */
export async function discardVtpmState(p: VmPaths): Promise<void> {
  await rm(p.tpmDir, { recursive: true, force: true });
}
