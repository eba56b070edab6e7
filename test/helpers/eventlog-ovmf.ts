/**
 * Captures real TCG event logs from OVMF without a guest OS: boots OVMF + swtpm with
 * test/vectors/eventlog/dumplog/dumplog*.efi as the removable-media boot loader. The
 * application prints the firmware's logs (EFI_TCG2_PROTOCOL.GetEventLog, both formats) as base64
 * and every PCR of every active bank (TPM2_PCR_Read through the same protocol) on COM1, then
 * powers off. Both processes are killed in `finally`; nothing survives a call.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, copyFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { repoPath } from "./paths.js";

/** Program → Debian package, for loud failures. */
const PACKAGES: Record<string, string> = {
  "qemu-system-x86_64": "qemu-system-x86",
  swtpm: "swtpm",
  "mkfs.fat": "dosfstools",
  mmd: "mtools",
  mcopy: "mtools",
  tpm2_eventlog: "tpm2-tools",
  swtpm_setup: "swtpm-tools",
};

export function requireTool(program: string): void {
  const r = spawnSync("sh", ["-c", `command -v ${program}`], { encoding: "utf8" });
  if (r.status !== 0) {
    const pkg = PACKAGES[program] ?? program;
    throw new Error(`${program} not found: install the Debian package '${pkg}' (apt-get install ${pkg})`);
  }
}

export const OVMF_DIR = "/usr/share/OVMF";

export interface FirmwareSetup {
  /** Name used for vector folders. */
  readonly name: string;
  readonly code: string;
  readonly varsTemplate: string;
  /** The dumplog binary to boot (signed for Secure Boot setups). */
  readonly efi: string;
  /** Manufacture the TPM with only these PCR banks (swtpm_setup --pcr-banks); default: all. */
  readonly pcrBanks?: string;
}

export const SETUPS: readonly FirmwareSetup[] = [
  {
    name: "ovmf-snakeoil-secureboot",
    code: `${OVMF_DIR}/OVMF_CODE_4M.snakeoil.fd`,
    varsTemplate: `${OVMF_DIR}/OVMF_VARS_4M.snakeoil.fd`,
    efi: repoPath("test/vectors/eventlog/dumplog/dumplog.snakeoil.efi"),
  },
  {
    name: "ovmf-snakeoil-sha256-only",
    code: `${OVMF_DIR}/OVMF_CODE_4M.snakeoil.fd`,
    varsTemplate: `${OVMF_DIR}/OVMF_VARS_4M.snakeoil.fd`,
    efi: repoPath("test/vectors/eventlog/dumplog/dumplog.snakeoil.efi"),
    pcrBanks: "sha256",
  },
  {
    name: "ovmf-secboot-code-no-keys",
    code: `${OVMF_DIR}/OVMF_CODE_4M.secboot.fd`,
    varsTemplate: `${OVMF_DIR}/OVMF_VARS_4M.fd`,
    efi: repoPath("test/vectors/eventlog/dumplog/dumplog.efi"),
  },
  {
    name: "ovmf-plain-code-no-keys",
    code: `${OVMF_DIR}/OVMF_CODE_4M.fd`,
    varsTemplate: `${OVMF_DIR}/OVMF_VARS_4M.fd`,
    efi: repoPath("test/vectors/eventlog/dumplog/dumplog.efi"),
  },
];

export interface Capture {
  /** EFI_TCG2_EVENT_LOG_FORMAT_TCG_2 log (crypto-agile). */
  readonly tcg2: Uint8Array;
  /** EFI_TCG2_EVENT_LOG_FORMAT_TCG_1_2 log (SHA-1), when the firmware keeps one. */
  readonly tcg12: Uint8Array | null;
  /** bank → PCR → hex, as read from the TPM by TPM2_PCR_Read. */
  readonly pcrs: Record<string, Record<string, string>>;
  readonly serial: string;
  readonly seconds: number;
}

const BANKS: Record<number, string> = {
  0x4: "sha1",
  0xb: "sha256",
  0xc: "sha384",
  0xd: "sha512",
  0x12: "sm3_256",
};

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
}

/** Base64 text between `-----BEGIN BULWARK EVENTLOG <name>-----` markers, decoded. */
export function extractBlock(serial: string, name: string): Uint8Array | null {
  const begin = `-----BEGIN BULWARK EVENTLOG ${name}-----`;
  const end = `-----END BULWARK EVENTLOG ${name}-----`;
  const a = serial.indexOf(begin);
  const b = serial.indexOf(end, a);
  if (a < 0 || b < 0) return null;
  const body = serial.slice(a + begin.length, b).replace(/[^A-Za-z0-9+/=]/g, "");
  return new Uint8Array(Buffer.from(body, "base64"));
}

export function extractPcrs(serial: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const m of serial.matchAll(/^BULWARK-PCR ([0-9a-f]{16}) ([0-9a-f]{16}) ([0-9a-f]+)\r?$/gm)) {
    const bank = BANKS[Number.parseInt(m[1]!, 16)];
    if (!bank) continue;
    (out[bank] ??= {})[String(Number.parseInt(m[2]!, 16))] = m[3]!;
  }
  return out;
}

function waitExit(p: ChildProcess, ms: number): Promise<boolean> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    p.once("exit", () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

async function stop(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  p.kill("SIGTERM");
  if (!(await waitExit(p, 3000))) {
    p.kill("SIGKILL");
    await waitExit(p, 3000);
  }
}

/** Boots `setup` once and returns what the firmware and TPM reported. */
export async function captureFromOvmf(setup: FirmwareSetup, timeoutMs = 180_000): Promise<Capture> {
  for (const t of ["qemu-system-x86_64", "swtpm", "mkfs.fat", "mmd", "mcopy"]) requireTool(t);
  for (const f of [setup.code, setup.varsTemplate]) {
    if (!existsSync(f)) throw new Error(`${f} missing: install the Debian package 'ovmf'`);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), "bulwark-eventlog-"));
  let swtpm: ChildProcess | undefined;
  let qemu: ChildProcess | undefined;
  const started = Date.now();
  try {
    const esp = path.join(dir, "esp.img");
    run("mkfs.fat", ["-C", esp, "4096"]);
    run("mmd", ["-i", esp, "::/EFI", "::/EFI/BOOT"]);
    run("mcopy", ["-i", esp, setup.efi, "::/EFI/BOOT/BOOTX64.EFI"]);
    const vars = path.join(dir, "vars.fd");
    copyFileSync(setup.varsTemplate, vars);
    const state = path.join(dir, "tpm");
    run("mkdir", ["-p", state]);
    if (setup.pcrBanks) {
      requireTool("swtpm_setup");
      run("swtpm_setup", [
        "--tpm2",
        "--tpmstate",
        state,
        "--pcr-banks",
        setup.pcrBanks,
        "--config",
        "/dev/null",
      ]);
    }
    const sock = path.join(dir, "swtpm.sock");
    swtpm = spawn(
      "swtpm",
      ["socket", "--tpm2", "--tpmstate", `dir=${state}`, "--ctrl", `type=unixio,path=${sock}`],
      {
        stdio: "ignore",
      },
    );
    for (let i = 0; i < 100 && !existsSync(sock); i++) await sleep(50);
    if (!existsSync(sock)) throw new Error("swtpm did not create its control socket");
    const serialFile = path.join(dir, "serial.log");
    qemu = spawn(
      "qemu-system-x86_64",
      [
        ...["-machine", "q35,smm=on", "-accel", "tcg", "-m", "256", "-nodefaults", "-display", "none"],
        ...["-global", "driver=cfi.pflash01,property=secure,value=on"],
        ...["-drive", `if=pflash,format=raw,unit=0,readonly=on,file=${setup.code}`],
        ...["-drive", `if=pflash,format=raw,unit=1,file=${vars}`],
        ...["-chardev", `socket,id=chrtpm,path=${sock}`, "-tpmdev", "emulator,id=tpm0,chardev=chrtpm"],
        ...["-device", "tpm-tis,tpmdev=tpm0"],
        ...["-drive", `if=none,id=esp,format=raw,file=${esp}`, "-device", "virtio-blk-pci,drive=esp"],
        ...["-serial", `file:${serialFile}`, "-net", "none", "-no-reboot"],
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    qemu.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    if (!(await waitExit(qemu, timeoutMs))) throw new Error(`QEMU did not power off within ${timeoutMs} ms`);
    const serial = existsSync(serialFile) ? readFileSync(serialFile, "latin1") : "";
    if (!serial.includes("BULWARK-DUMPLOG done")) {
      throw new Error(
        `dumplog did not finish (QEMU exit ${qemu.exitCode}): ${stderr}\n${serial.slice(-2000)}`,
      );
    }
    const tcg2 = extractBlock(serial, "TCG_2");
    if (!tcg2) throw new Error("no TCG_2 event log in the serial output");
    const tcg12 = extractBlock(serial, "TCG_1_2");
    return {
      tcg2,
      tcg12: tcg12 && tcg12.length > 0 ? tcg12 : null,
      pcrs: extractPcrs(serial),
      serial,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await stop(qemu);
    await stop(swtpm);
    rmSync(dir, { recursive: true, force: true });
  }
}
