/**
 * A VM's vTPM: one swtpm whose state (under the VM's tpm/ directory) is encrypted at rest with
 * the vTPM state key from the VM secrets. The key reaches swtpm_setup and swtpm only through a
 * pipe on file descriptor 3.
 */
import { mkdir, readdir } from "node:fs/promises";
import path from "node:path";
import { isBulwarkError } from "../../core/errors.js";
import { lastLines, spawnChild } from "../children.js";
import { startSwtpm } from "../swtpm.js";
import { VM_SECRET } from "../../protector/vm-secrets.js";
import type { VmSecrets } from "./context.js";
import { vmError } from "./errors.js";
import { secret } from "./keys.js";
import { advanceVtpmVersion, settleVtpmRekey } from "./vtpm-version.js";
import type { VmPaths } from "./store.js";

/** Manufactures the vTPM on first start (EK created, state encrypted under the VM's key); true when it did. */
async function ensureManufactured(p: VmPaths, key: Uint8Array): Promise<boolean> {
  await mkdir(p.tpmDir, { recursive: true, mode: 0o700 });
  if ((await readdir(p.tpmDir)).some((f) => f.startsWith("tpm2-00.permall"))) return false;
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
    throw vmError(
      "VM_ERR_START_FAILED",
      `swtpm_setup failed (exit ${code}): ${lastLines(setup.stderrTail(), 10)}`,
      { program: "swtpm_setup" },
    );
  }
  return true;
}

/**
 * Starts the VM's vTPM, manufacturing it on first start. The swtpm is detached: it outlives this
 * command and ends by itself when QEMU disconnects. Before that, on a cold start, the vTPM
 * state's version is checked against the sealed one and moved on (./vtpm-version.ts); a restore
 * skips it, because the saved state (bound by its own generation) brings the vTPM state with it.
 */
export async function startVtpm(
  p: VmPaths,
  secrets: VmSecrets,
  say: (m: string) => void,
  opts: { restoring?: boolean } = {},
): Promise<void> {
  await settleVtpmRekey(p);
  const key = secret(secrets, VM_SECRET.vtpmStateKey);
  const fresh = await ensureManufactured(p, key);
  if (!opts.restoring) {
    say("checking the vTPM state's version");
    await advanceVtpmVersion(p, secrets, { fresh });
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
}
