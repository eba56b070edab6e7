/**
 * Child of vm-rollback.test.ts, killed with SIGKILL at a random moment: one cold start's vTPM half
 * (`start`, as `vm start` runs it) or one `vm key-protector roll` (`roll`), in a loop.
 * Arguments: STATE-DIR VM-NAME start|roll.
 */
import { mkdir } from "node:fs/promises";
import { hostContext } from "../../src/host/index.js";
import { unlockVm, zeroSecrets } from "../../src/host/vm/keys.js";
import { killPidFile } from "../../src/host/vm/processes.js";
import { rekeyVm } from "../../src/host/vm/rekey.js";
import { startVtpm } from "../../src/host/vm/vtpm.js";

const [stateDir, name, op] = process.argv.slice(2) as [string, string, string];
const ctx = hostContext(stateDir);
for (;;) {
  process.stdout.write("go\n"); // the parent times its SIGKILL from the first one
  if (op === "roll") {
    await rekeyVm(ctx, name);
  } else {
    await ctx.store.withLock(name, async () => {
      const p = ctx.store.paths(name);
      await mkdir(p.runDir, { recursive: true, mode: 0o700 });
      const secrets = await unlockVm(ctx, name);
      try {
        await startVtpm(p, secrets, () => undefined, { manufacturedBefore: false });
      } finally {
        zeroSecrets(secrets);
        await killPidFile(p.swtpmPid);
      }
    });
  }
}
