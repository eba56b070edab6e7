/**
 * A TPM-mode guarded host's TPM for tests: a real swtpm on 127.0.0.1 (TCP command and control
 * ports), started up and "booted": the real event log of our guest's boot, or a variant edited as
 * a changed boot would have been measured (hgs-boot.ts), extended into the sha256 PCRs, with that
 * log written to a file. The connection is closed afterwards, so the host agent connects through
 * its `swtpm:host=…,port=…` target like to any TPM.
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { encodeLog, type BootConfig } from "./hgs-boot.js";
import { startBootedSwtpm } from "./hgs-host.js";

export interface GuardedTpm {
  readonly target: string;
  readonly eventLogFile: string;
  stop(): Promise<void>;
}

export async function startGuardedTpm(boot: BootConfig = {}): Promise<GuardedTpm> {
  const b = await startBootedSwtpm(boot);
  try {
    const eventLogFile = path.join(b.stateDir, "binary_bios_measurements");
    await writeFile(eventLogFile, encodeLog(b.events));
    await b.tpm.close(); // the host agent opens its own connection
    return { target: `swtpm:host=127.0.0.1,port=${b.port},ctrl=${b.ctrlPort}`, eventLogFile, stop: b.stop };
  } catch (e) {
    await b.stop();
    throw e;
  }
}
