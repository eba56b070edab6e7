/**
 * Finding and running the external programs Bulwark drives: from the system directories only,
 * with a minimal environment. Every missing program maps to the Debian package that provides
 * it, so errors and `bulwark doctor` can say what to install.
 */
import { execFile, type ExecFileOptions } from "node:child_process";
import { accessSync, constants } from "node:fs";
import path from "node:path";
import { hostError } from "./errors.js";
import { tiedToParent } from "./lifetime.js";

/** Program → Debian package that installs it. */
export const debianPackageOf: Readonly<Record<string, string>> = {
  "qemu-system-x86_64": "qemu-system-x86",
  "qemu-img": "qemu-utils",
  swtpm: "swtpm",
  swtpm_setup: "swtpm-tools",
  swtpm_ioctl: "swtpm-tools",
  tpm2: "tpm2-tools",
  tpm2_pcrread: "tpm2-tools",
  sbsign: "sbsigntool",
  sbverify: "sbsigntool",
  mcopy: "mtools",
  mmd: "mtools",
  sgdisk: "gdisk",
  "mkfs.vfat": "dosfstools",
  cpio: "cpio",
  "dpkg-deb": "dpkg",
  "apt-get": "apt",
  "apt-cache": "apt",
  openssl: "openssl",
  setpriv: "util-linux",
  ldd: "libc-bin",
};

/**
 * Where programs are looked up: the system's own directories, never the caller's PATH. A
 * `qemu-system-x86_64` or `swtpm` placed earlier in someone's PATH would otherwise run with the
 * VM's keys on its file descriptor 3 or add a monitor to a shielded VM.
 */
export const SYSTEM_PROGRAM_DIRS: readonly string[] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/**
 * The whole environment of every child Bulwark starts: nothing inherited (no LD_PRELOAD,
 * QEMU_*, SWTPM_* or proxy settings reach QEMU or swtpm), only a fixed PATH and the C locale.
 */
export function childEnvironment(): NodeJS.ProcessEnv {
  return { PATH: SYSTEM_PROGRAM_DIRS.join(":"), LANG: "C", LC_ALL: "C" };
}

/** Absolute path of `program` in the system directories, or undefined. */
export function findProgram(program: string): string | undefined {
  if (program.includes("/")) return undefined; // a name, not a path: callers pass paths directly
  for (const dir of SYSTEM_PROGRAM_DIRS) {
    const p = path.join(dir, program);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function requireProgram(program: string): string {
  const p = findProgram(program);
  if (p) return p;
  const pkg = debianPackageOf[program];
  throw hostError(
    "HOST_ERR_TOOL_MISSING",
    `${program} not found${pkg ? `: install the Debian package '${pkg}' (apt-get install ${pkg})` : ""}`,
    { program, ...(pkg ? { package: pkg } : {}) },
  );
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/**
 * Runs a program to completion; failure is HOST_ERR_TOOL_FAILED with the tail of its stderr. The
 * child gets {@link childEnvironment} unless the caller passes an environment of its own, and
 * dies with this process (lifetime.ts): a killed CLI leaves no tool running.
 */
export function runProgram(
  program: string,
  args: readonly string[],
  opts: ExecFileOptions & { input?: Uint8Array | string } = {},
): Promise<RunResult> {
  const exe = program.includes("/") ? program : requireProgram(program);
  const { command, argv } = tiedToParent(exe, args);
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      argv,
      { maxBuffer: 256 << 20, encoding: "utf8", ...opts, env: opts.env ?? childEnvironment() },
      (err, stdout, stderr) => {
        const out = String(stdout);
        const errText = String(stderr);
        if (err) {
          const tail = errText.trim().split("\n").slice(-20).join("\n");
          reject(
            hostError(
              "HOST_ERR_TOOL_FAILED",
              `${path.basename(exe)} ${args.slice(0, 3).join(" ")}${args.length > 3 ? " …" : ""} failed: ${tail || err.message}`,
              { program: path.basename(exe), exitCode: typeof err.code === "number" ? err.code : null },
            ),
          );
        } else resolve({ stdout: out, stderr: errText });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}
