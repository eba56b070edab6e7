/**
 * Finding and running the external programs Bulwark drives. Every missing program maps to the
 * Debian package that provides it, so errors and `bulwark doctor` can say what to install.
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

const searchPath = (): string[] =>
  (process.env["PATH"] ?? "/usr/bin:/bin").split(":").concat(["/usr/sbin", "/sbin", "/usr/bin", "/bin"]);

/** Absolute path of `program`, or undefined. */
export function findProgram(program: string): string | undefined {
  for (const dir of searchPath()) {
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
 * Runs a program to completion; failure is HOST_ERR_TOOL_FAILED with the tail of its stderr.
 * The program dies with this process (lifetime.ts): a killed CLI leaves no tool running.
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
      { maxBuffer: 256 << 20, encoding: "utf8", ...opts },
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
