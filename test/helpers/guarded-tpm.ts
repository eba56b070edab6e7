/**
 * A TPM-mode guarded host's TPM for tests: a real swtpm on 127.0.0.1 (TCP command and control
 * ports), started up and "booted": the real event log of our guest's boot, or a variant edited as
 * a changed boot would have been measured (hgs-boot.ts), extended into the sha256 PCRs, with that
 * log written to a file. The connection is closed afterwards, so the host agent connects through
 * its `swtpm:host=…,port=…` target like to any TPM.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Tpm } from "../../src/tpm/client.js";
import { SwtpmTransport } from "../../src/tpm/transport/swtpm.js";
import { bootEvents, encodeLog, extendBoot, type BootConfig } from "./hgs-boot.js";

export interface GuardedTpm {
  readonly target: string;
  readonly eventLogFile: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

async function waitPort(port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.createConnection({ host: "127.0.0.1", port });
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`swtpm did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startGuardedTpm(boot: BootConfig = {}): Promise<GuardedTpm> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "bulwark-guarded-tpm-"));
  const port = await freePort();
  const ctrl = await freePort();
  const child = spawn(
    "swtpm",
    [
      "socket",
      "--tpm2",
      "--tpmstate",
      `dir=${dir}`,
      "--server",
      `type=tcp,port=${port},bindaddr=127.0.0.1`,
      "--ctrl",
      `type=tcp,port=${ctrl},bindaddr=127.0.0.1`,
      "--flags",
      "not-need-init",
    ],
    { stdio: "ignore" },
  );
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(t);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitPort(port);
    const tpm = new Tpm(new SwtpmTransport({ host: "127.0.0.1", port }));
    try {
      await tpm.startup();
      const events = bootEvents(boot);
      await extendBoot(tpm, events);
      const eventLogFile = path.join(dir, "binary_bios_measurements");
      await writeFile(eventLogFile, encodeLog(events));
      return { target: `swtpm:host=127.0.0.1,port=${port},ctrl=${ctrl}`, eventLogFile, stop };
    } finally {
      await tpm.close();
    }
  } catch (e) {
    await stop();
    throw e;
  }
}
