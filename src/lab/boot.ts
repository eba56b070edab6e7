/**
 * One short boot of a guest test image under OVMF's secure-boot firmware (q35, SMM on) with an
 * optional vTPM, returning what the guest reported on its serial console. Used by the demo and
 * by integration tests. The boot is a throwaway VM run through the VM command line
 * (host/vm/qemu-args.ts, "harness" supervision); long-lived VMs are host/vm's lifecycle's job.
 */
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { spawnChild } from "../host/children.js";
import { findSecureBootFirmware } from "../host/firmware.js";
import { markers, scriptFwCfgName } from "./guest-init.js";
import { chooseAccelerator } from "../host/probe.js";
import { startSwtpm, type SwtpmProcess } from "../host/swtpm.js";
import { newVmConfig, type VmConfig } from "../host/vm/config.js";
import { qemuArgs } from "../host/vm/qemu-args.js";
import { VmStore } from "../host/vm/store.js";
import { hostError } from "../host/errors.js";

export interface BootOptions {
  /** Raw disk image to boot (opened with snapshot=on: never modified). */
  readonly disk: string;
  /** NVRAM file to start from (copied, never modified); default: Debian's OVMF_VARS_4M.ms.fd. */
  readonly vars?: string;
  /** OVMF code image; default: the secure-boot + SMM build from QEMU's firmware descriptors. */
  readonly code?: string;
  /** Attach a fresh vTPM (swtpm). Default true. */
  readonly tpm?: boolean;
  readonly timeoutMs?: number;
  /** Shell script for the tpm2tools variant's /init to run (passed through fw_cfg). */
  readonly script?: string;
  readonly memoryMiB?: number;
  /** Each chunk of serial output as it arrives. */
  readonly onSerial?: (text: string) => void;
  readonly signal?: AbortSignal;
  /** Keep the NVRAM copy after the boot (its path is reported). */
  readonly keepVars?: string;
}

export type BootOutcome = "poweroff" | "timeout" | "qemu-exited" | "refused";

export interface GuestBootReport {
  readonly ready: boolean;
  readonly secureBoot: boolean | null;
  readonly lockdown: string | null;
  readonly tpmPresent: boolean | null;
  readonly eventLog: Uint8Array | null;
  readonly scriptOutput: string | null;
  readonly scriptExitCode: number | null;
  /** The firmware/shim line that refused the boot chain, when one was seen. */
  readonly refusal: string | null;
  readonly serial: string;
  readonly seconds: number;
  readonly secondsToReady: number | null;
  readonly outcome: BootOutcome;
  readonly accelerator: "kvm" | "tcg";
  /** Process ids of QEMU and swtpm (both gone when bootGuest returns). */
  readonly pids: readonly number[];
}

/** What OVMF's BDS or shim print when an image fails Secure Boot verification. */
const refusalPattern =
  /Verification failed: \(0x[0-9A-Fa-f]+\) [A-Za-z ]*[A-Za-z]|Failed to load image[^\r\n]*|start_image\(\) returned[^\r\n]*|Access Denied|Security Violation/;

/** A terminal escape sequence (OVMF and shim draw boxes, colours and cursor moves). Use with `replace`/`split`. */
// eslint-disable-next-line no-control-regex
export const TERMINAL_ESCAPE = /\x1b\[[0-9;=?]*[A-Za-z]/g;

/** Serial text without terminal escape sequences; each becomes a line break (text was repositioned). */
function plainText(serial: string): string {
  return serial.replace(TERMINAL_ESCAPE, "\n");
}

/**
 * The message of a modal alert box (shim's console_alertbox: a framed screen ending in an OK
 * button that waits for a key press forever), or null when none is on the serial console.
 * Catches refusals whose wording `refusalPattern` does not know, so a boot never waits out its
 * timeout behind a dialog nobody can dismiss.
 */
export function alertBoxMessage(serial: string): string | null {
  return alertIn(plainText(serial));
}

function alertIn(plain: string): string | null {
  const lines = plain
    .split(/\r\n|\n|\r/)
    .map((l) => l.replace(/[^\x20-\x7e]/g, " ").trim())
    .filter((l) => l.length > 0);
  const ok = lines.lastIndexOf("OK");
  if (ok < 0) return null;
  const title = lines.lastIndexOf("ERROR", ok);
  const body = title >= 0 ? lines.slice(title, ok) : lines.slice(Math.max(0, ok - 3), ok);
  return body.length > 0 ? body.join(": ").replace(/^ERROR: /, "") : null;
}

/** The refusal on the serial console so far: a known firmware or shim message, else an alert box's text. */
function refusalIn(serial: string): string | null {
  const plain = plainText(serial);
  return refusalPattern.exec(plain)?.[0].trim() ?? alertIn(plain);
}

function parseSerial(serial: string) {
  const lines = serial.replace(TERMINAL_ESCAPE, "").split(/\r\n|\n|\r/);
  const value = (prefix: string): string | null => {
    const l = lines.find((x) => x.startsWith(prefix));
    return l === undefined ? null : l.slice(prefix.length).trim();
  };
  const between = (begin: string, end: string): string[] | null => {
    const b = lines.indexOf(begin);
    if (b < 0) return null;
    const e = lines.findIndex((x, i) => i > b && x.startsWith(end));
    return e < 0 ? null : lines.slice(b + 1, e);
  };
  const sb = value(markers.secureBoot);
  const tpm = value(markers.tpm);
  const log = between(markers.eventLogBegin, markers.eventLogEnd);
  const scriptLines = between(markers.scriptBegin, markers.scriptEnd);
  const scriptEnd = lines.find((x) => x.startsWith(markers.scriptEnd));
  return {
    ready: lines.includes(markers.ready),
    secureBoot: sb === "1" ? true : sb === "0" ? false : null,
    lockdown: value(markers.lockdown),
    tpmPresent: tpm === "1" ? true : tpm === "0" ? false : null,
    eventLog: log ? new Uint8Array(Buffer.from(log.join(""), "base64")) : null,
    scriptOutput: scriptLines ? scriptLines.join("\n") : null,
    scriptExitCode: scriptEnd ? Number(scriptEnd.slice(markers.scriptEnd.length)) : null,
    done: lines.includes(markers.done),
  };
}

/** The throwaway VM a test boot runs: the guest disk (snapshot=on), no network, the console on stdio. */
function bootVmConfig(opts: BootOptions, script: string | undefined): VmConfig {
  return {
    ...newVmConfig({
      name: "boot",
      memoryMiB: opts.memoryMiB ?? 512,
      disks: [{ path: path.resolve(opts.disk), format: "raw", snapshot: true }],
      network: "none",
    }),
    tpm: { enabled: opts.tpm !== false },
    ...(script === undefined ? {} : { fwCfg: { [scriptFwCfgName]: script } }),
  };
}

export async function bootGuest(opts: BootOptions): Promise<GuestBootReport> {
  const fw = findSecureBootFirmware();
  const code = opts.code ?? fw.code;
  const varsTemplate = opts.vars ?? fw.msVars;
  if (!varsTemplate) {
    throw hostError("HOST_ERR_FIRMWARE_NOT_FOUND", "no NVRAM template with enrolled keys found; pass vars");
  }
  const accel = await chooseAccelerator();
  const work = await mkdtemp(path.join(os.tmpdir(), "bulwark-boot-"));
  const started = Date.now();
  let swtpm: SwtpmProcess | undefined;
  try {
    // The work directory is laid out as a VM directory, so the VM command line applies as is.
    const p = new VmStore(work).paths("boot");
    await mkdir(p.runDir, { recursive: true, mode: 0o700 });
    await copyFile(varsTemplate, p.nvram);
    let script: string | undefined;
    if (opts.script !== undefined) {
      script = path.join(p.dir, `script-${randomBytes(4).toString("hex")}.sh`);
      await writeFile(script, opts.script);
    }
    const c = bootVmConfig(opts, script);
    if (c.tpm.enabled) swtpm = await startSwtpm({ stateDir: p.tpmDir, socketPath: p.swtpmSocket });
    const args = qemuArgs(c, p, {
      accelerator: accel,
      firmwareCode: code,
      supervision: "harness",
      ...(swtpm ? { tpmSocket: swtpm.socketPath } : {}),
    });
    const qemu = spawnChild("qemu-system-x86_64", args, { stdout: "pipe" });
    let serial = "";
    let readyAt: number | null = null;
    let refusal: string | null = null;
    let outcome: BootOutcome | undefined;
    const finished = new Promise<void>((resolve) => {
      qemu.child.stdout?.on("data", (d: Buffer) => {
        const text = d.toString("utf8");
        serial += text;
        opts.onSerial?.(text);
        if (readyAt === null && serial.includes(markers.ready)) readyAt = Date.now();
        if (refusal === null && readyAt === null) {
          refusal = refusalIn(serial);
          if (refusal !== null) {
            // Give the firmware a moment to print the rest of its message, then stop.
            setTimeout(() => {
              refusal = refusalIn(serial) ?? refusal;
              outcome ??= "refused";
              resolve();
            }, 1500);
          }
        }
      });
      void qemu.exited.then(() => resolve());
    });
    const timeoutMs = opts.timeoutMs ?? 300_000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        outcome ??= "timeout";
        resolve();
      }, timeoutMs);
    });
    const aborted = new Promise<void>((resolve) => {
      if (opts.signal?.aborted) resolve();
      opts.signal?.addEventListener("abort", () => resolve(), { once: true });
    });
    await Promise.race([finished, timedOut, aborted]);
    clearTimeout(timer);
    const exit = qemu.child.exitCode;
    await qemu.stop(2000);
    if (opts.signal?.aborted) {
      throw hostError("HOST_ERR_INTERRUPTED", "boot interrupted; QEMU and swtpm stopped");
    }
    if (opts.keepVars) await copyFile(p.nvram, opts.keepVars);
    const parsed = parseSerial(serial);
    if (outcome === undefined) {
      if (parsed.done) outcome = "poweroff";
      else if (exit !== null && exit !== 0 && serial.length === 0) {
        throw hostError(
          "HOST_ERR_QEMU_EXITED",
          `QEMU exited with status ${exit}: ${qemu.stderrTail().trim()}`,
          {
            exitCode: exit,
          },
        );
      } else outcome = "qemu-exited";
    }
    return {
      ready: parsed.ready,
      secureBoot: parsed.secureBoot,
      lockdown: parsed.lockdown,
      tpmPresent: parsed.tpmPresent,
      eventLog: parsed.eventLog,
      scriptOutput: parsed.scriptOutput,
      scriptExitCode: parsed.scriptExitCode,
      refusal,
      serial,
      seconds: (Date.now() - started) / 1000,
      secondsToReady: readyAt === null ? null : (readyAt - started) / 1000,
      outcome,
      accelerator: accel,
      pids: [qemu.child.pid, swtpm?.proc.child.pid].filter((p): p is number => p !== undefined),
    };
  } finally {
    await swtpm?.stop();
    await rm(work, { recursive: true, force: true });
  }
}
