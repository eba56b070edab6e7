/**
 * A TPM-mode guarded host's TPM for tests: a real swtpm on 127.0.0.1 (TCP command and control
 * ports), started up and "booted": the real event log of our guest's boot, or a variant edited as
 * a changed boot would have been measured (hgs-boot.ts), extended into the sha256 PCRs, with that
 * log written to a file. The connection is closed afterwards, so the host agent connects through
 * its `swtpm:host=…,port=…` target like to any TPM.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Tpm } from "../../src/tpm/client.js";
import { SwtpmTransport } from "../../src/tpm/transport/swtpm.js";
import { bootEvents, encodeLog, extendBoot, type BootConfig } from "./hgs-boot.js";
import { spawnTcpSwtpm } from "./tpm-swtpm.js";

export interface GuardedTpm {
  readonly target: string;
  readonly eventLogFile: string;
  stop(): Promise<void>;
}

export async function startGuardedTpm(boot: BootConfig = {}): Promise<GuardedTpm> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "bulwark-guarded-tpm-"));
  const proc = await spawnTcpSwtpm(["--tpmstate", `dir=${dir}`, "--flags", "not-need-init"]).catch(
    async (e: unknown) => {
      await rm(dir, { recursive: true, force: true });
      throw e;
    },
  );
  const { port, ctrlPort: ctrl } = proc;
  const stop = async () => {
    await proc.kill();
    await rm(dir, { recursive: true, force: true });
  };
  try {
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
