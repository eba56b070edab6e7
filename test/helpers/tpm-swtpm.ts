/**
 * Test helper: starts a real swtpm (TPM 2.0) on free TCP ports with its own temporary state,
 * optionally manufactured by swtpm_setup with EK certificates from a throw-away local CA.
 * Every process started here is killed by `stop()`; tests call it in teardown.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Tpm } from "../../src/tpm/client.js";
import { SwtpmControl, SwtpmTransport } from "../../src/tpm/transport/swtpm.js";

const execFileP = promisify(execFile);

const DEBIAN_PACKAGE: Record<string, string> = {
  swtpm: "swtpm",
  swtpm_setup: "swtpm-tools",
  swtpm_localca: "swtpm-tools",
  openssl: "openssl",
};

/** Fails loudly (never skips) when a tool is missing, naming the Debian package. */
export function requireTool(tool: string): void {
  const r = spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" });
  if (r.status !== 0) {
    const pkg = DEBIAN_PACKAGE[tool] ?? (tool.startsWith("tpm2_") ? "tpm2-tools" : tool);
    throw new Error(`${tool} not found: apt-get install ${pkg}`);
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** Two consecutive free ports (command, control). */
export async function freePortPair(): Promise<{ port: number; ctrlPort: number }> {
  for (let i = 0; i < 50; i++) {
    const port = await freePort();
    if (port < 65535 && (await canBind(port + 1))) return { port, ctrlPort: port + 1 };
  }
  throw new Error("no two consecutive free TCP ports");
}

let manufactured: { dir: string; caDir: string } | undefined;

/**
 * swtpm_setup --tpm2 --create-ek-cert --create-platform-cert once per test process, into a
 * temporary directory with its own local CA (swtpm_localca), so no system state is touched.
 * Instances copy this state. Returns the state dir and the CA dir (issuercert.pem etc.).
 */
export function manufacturedState(): { dir: string; caDir: string } {
  if (manufactured) return manufactured;
  requireTool("swtpm_setup");
  requireTool("swtpm_localca");
  const root = mkdtempSync(path.join(os.tmpdir(), "bulwark-tpm-mfg-"));
  const dir = path.join(root, "state");
  const caDir = path.join(root, "ca");
  mkdirSync(dir, { recursive: true });
  mkdirSync(caDir, { recursive: true });
  writeFileSync(
    path.join(caDir, "localca.conf"),
    [
      `statedir = ${caDir}`,
      `signingkey = ${caDir}/signkey.pem`,
      `issuercert = ${caDir}/issuercert.pem`,
      `certserial = ${caDir}/certserial`,
      "",
    ].join("\n"),
  );
  writeFileSync(
    path.join(caDir, "localca.options"),
    "--platform-manufacturer Bulwark\n--platform-version 2.1\n--platform-model QEMU\n",
  );
  writeFileSync(
    path.join(root, "swtpm_setup.conf"),
    [
      "create_certs_tool = /usr/bin/swtpm_localca",
      `create_certs_tool_config = ${caDir}/localca.conf`,
      `create_certs_tool_options = ${caDir}/localca.options`,
      "active_pcr_banks = sha256,sha1",
      "",
    ].join("\n"),
  );
  const r = spawnSync(
    "swtpm_setup",
    [
      "--tpm2",
      "--tpm-state",
      dir,
      "--create-ek-cert",
      "--create-platform-cert",
      "--config",
      path.join(root, "swtpm_setup.conf"),
      "--overwrite",
    ],
    { encoding: "utf8", timeout: 60_000 },
  );
  if (r.status !== 0) throw new Error(`swtpm_setup failed: ${r.stderr}${r.stdout}`);
  manufactured = { dir, caDir };
  process.once("exit", () => rmSync(root, { recursive: true, force: true }));
  return manufactured;
}

export interface Swtpm {
  readonly port: number;
  readonly ctrlPort: number;
  readonly stateDir: string;
  /** tpm2-tools TCTI string for this instance. */
  readonly tcti: string;
  /** Our target string (same syntax). */
  readonly target: string;
  readonly transport: SwtpmTransport;
  readonly control: SwtpmControl;
  readonly tpm: Tpm;
  readonly process: ChildProcess;
  /** Runs a tpm2-tools command against this TPM (our connection is closed first). */
  tool(
    name: string,
    args: string[],
    opts?: { cwd?: string; input?: string },
  ): Promise<{ stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

async function waitListening(port: number, child: ChildProcess, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`swtpm exited with ${child.exitCode}`);
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

export interface TcpSwtpmProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly ctrlPort: number;
  /** SIGTERM (SIGKILL after 3 s); resolves once the process is gone. */
  kill(): Promise<void>;
}

/**
 * Spawns `swtpm socket --tpm2` on free loopback ports (control on port + 1) with `args` added and
 * waits until both listen. A port picked free can be taken by another process (a busy load test
 * opens many client connections) before swtpm binds it; swtpm then exits, and this tries again
 * with other ports, up to five times.
 */
export async function spawnTcpSwtpm(args: readonly string[]): Promise<TcpSwtpmProcess> {
  requireTool("swtpm");
  for (let attempt = 1; ; attempt++) {
    const { port, ctrlPort } = await freePortPair();
    const child = spawn(
      "swtpm",
      [
        "socket",
        "--tpm2",
        "--server",
        `type=tcp,port=${port},bindaddr=127.0.0.1`,
        "--ctrl",
        `type=tcp,port=${ctrlPort},bindaddr=127.0.0.1`,
        ...args,
      ],
      { stdio: "ignore" },
    );
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const kill = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(t);
      }
    };
    try {
      await waitListening(ctrlPort, child);
      await waitListening(port, child);
      return { child, port, ctrlPort, kill };
    } catch (e) {
      await kill();
      if (attempt >= 5) throw e;
    }
  }
}

/**
 * Starts swtpm. `manufacture: true` copies the swtpm_setup state (EKs at 0x81010001 and
 * certificates in NV); otherwise the TPM starts blank. Unless `startup: false`, the TPM is
 * powered on through the control channel (CMD_INIT) and sent TPM2_Startup(CLEAR) by our client.
 */
export async function startSwtpm(opts: { manufacture?: boolean; startup?: boolean } = {}): Promise<Swtpm> {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), "bulwark-swtpm-"));
  if (opts.manufacture) cpSync(manufacturedState().dir, stateDir, { recursive: true });
  // tpm2-tools' swtpm TCTI expects the control channel on port + 1 (spawnTcpSwtpm's layout).
  const proc = await spawnTcpSwtpm(["--tpmstate", `dir=${stateDir}`, "--log", "level=0"]).catch(
    (e: unknown) => {
      rmSync(stateDir, { recursive: true, force: true });
      throw e;
    },
  );
  const { port, ctrlPort, child } = proc;
  const kill = async (): Promise<void> => {
    await proc.kill();
    rmSync(stateDir, { recursive: true, force: true });
  };
  const transport = new SwtpmTransport({ host: "127.0.0.1", port });
  const control = new SwtpmControl({ host: "127.0.0.1", port: ctrlPort });
  const tpm = new Tpm(transport);
  const tcti = `swtpm:host=127.0.0.1,port=${port}`;
  const inst: Swtpm = {
    port,
    ctrlPort,
    stateDir,
    tcti,
    target: tcti,
    transport,
    control,
    tpm,
    process: child,
    async tool(name, args, o = {}) {
      requireTool(name);
      await transport.close();
      try {
        const r = await execFileP(name, args, {
          cwd: o.cwd ?? stateDir,
          env: { ...process.env, TPM2TOOLS_TCTI: tcti },
          timeout: 60_000,
          encoding: "utf8",
        });
        return r;
      } catch (e) {
        const err = e as { stderr?: string; stdout?: string; message: string };
        throw new Error(
          `${name} ${args.join(" ")} failed: ${err.stderr ?? ""}${err.stdout ?? ""}${err.message}`,
        );
      }
    },
    async stop() {
      await transport.close().catch(() => undefined);
      await kill();
    },
  };
  if (opts.startup !== false) {
    try {
      await control.init();
      await tpm.startup();
    } catch (e) {
      await inst.stop();
      throw e;
    }
  }
  return inst;
}
