/**
 * Transports other than swtpm-over-TCP, each against a real swtpm:
 * - swtpm's command channel and control channel on UNIX sockets;
 * - the mssim protocol (via a bridge to swtpm, checked against tpm2-tools' mssim TCTI too);
 * - the Linux device transport's failure path (no TPM device exists on the build machine).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { TPM_ALG } from "../../src/tpm/alg.js";
import { Tpm } from "../../src/tpm/client.js";
import { TPM_PT } from "../../src/tpm/constants.js";
import { pcrSelection } from "../../src/tpm/pcr.js";
import { parseTarget } from "../../src/tpm/transport/target.js";
import { SwtpmTransport } from "../../src/tpm/transport/swtpm.js";
import { DeviceTransport } from "../../src/tpm/transport/device.js";
import { requireTool, startSwtpm } from "../helpers/tpm-swtpm.js";
import { startMssimBridge } from "../helpers/tpm-mssim-bridge.js";

const execFileP = promisify(execFile);

async function waitForSocket(p: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.createConnection({ path: p });
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no socket at ${p}`);
}

test("swtpm over UNIX sockets: power-on through the control socket, Startup, commands", async () => {
  requireTool("swtpm");
  const dir = mkdtempSync(path.join(os.tmpdir(), "bulwark-swtpm-unix-"));
  const sock = path.join(dir, "tpm.sock");
  const ctrl = path.join(dir, "ctrl.sock");
  const child = spawn(
    "swtpm",
    [
      "socket",
      "--tpm2",
      "--tpmstate",
      `dir=${dir}`,
      "--server",
      `type=unixio,path=${sock}`,
      "--ctrl",
      `type=unixio,path=${ctrl}`,
    ],
    {
      stdio: "ignore",
    },
  );
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const target = parseTarget(`swtpm:path=${sock},ctrl=${ctrl}`);
  const tpm = new Tpm(target.transport);
  try {
    await waitForSocket(sock);
    await waitForSocket(ctrl);
    assert.ok(target.transport instanceof SwtpmTransport);
    assert.ok(target.powerOn);
    await target.powerOn();
    await tpm.startup();
    const props = await tpm.properties(TPM_PT.FAMILY_INDICATOR, TPM_PT.FAMILY_INDICATOR);
    assert.equal(props.get(TPM_PT.FAMILY_INDICATOR), 0x322e3000);
    const { values } = await tpm.pcrRead([pcrSelection(TPM_ALG.SHA256, [0])]);
    assert.deepEqual(values.get(TPM_ALG.SHA256)?.get(0), new Uint8Array(32));
    // Reconnects after close.
    await tpm.close();
    assert.equal((await tpm.getRandom(8)).length, 8);
  } finally {
    await tpm.close();
    child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("mssim protocol: our MssimTransport and tpm2-tools' mssim TCTI both drive the TPM through the same framing", async () => {
  const sw = await startSwtpm({ startup: false });
  const bridge = await startMssimBridge(new SwtpmTransport({ host: "127.0.0.1", port: sw.port }), sw.control);
  try {
    const target = parseTarget(`mssim:host=127.0.0.1,port=${bridge.port},platform=${bridge.platformPort}`);
    await target.powerOn?.();
    assert.deepEqual(bridge.signals, [1, 11], "POWER_ON then NV_ON");
    const tpm = new Tpm(target.transport);
    await tpm.startup();
    const r = await tpm.getRandom(40);
    assert.equal(r.length, 40);
    await tpm.pcrExtend(16, [{ hashAlg: TPM_ALG.SHA256, digest: new Uint8Array(32).fill(9) }]);
    const mine = (await tpm.pcrRead([pcrSelection(TPM_ALG.SHA256, [16])])).values
      .get(TPM_ALG.SHA256)
      ?.get(16);
    await tpm.close();
    requireTool("tpm2_pcrread");
    const { stdout } = await execFileP(
      "tpm2_pcrread",
      ["-T", `mssim:host=127.0.0.1,port=${bridge.port}`, "sha256:16"],
      { encoding: "utf8", timeout: 30_000 },
    );
    assert.ok(mine);
    assert.match(stdout.toLowerCase(), new RegExp(Buffer.from(mine).toString("hex")));
    assert.ok(bridge.localities.every((l) => l === 0));
  } finally {
    await bridge.close();
    await sw.stop();
  }
});

test("device transport: a missing device is TPM_ERR_TRANSPORT naming the path", async () => {
  const t = new DeviceTransport("/nonexistent/tpmrm0");
  await assert.rejects(new Tpm(t).getRandom(8), (e: unknown) => {
    assert.equal((e as { code: string }).code, "TPM_ERR_TRANSPORT");
    assert.match((e as Error).message, /\/nonexistent\/tpmrm0/);
    return true;
  });
  await t.close();
});
