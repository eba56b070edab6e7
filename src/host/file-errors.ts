/**
 * File-system failures as catalogue errors. A missing or unreadable file is a fact about the
 * host's state directory, not an internal error: the sentence names the file and what it is
 * (the VM's NVRAM, a guardian's private key, …) so the operator knows what to restore.
 * `asFileError` turns Node's errno errors (ENOENT, ENOTDIR, EACCES, EPERM, EISDIR, ELOOP, EROFS)
 * into HOST_ERR_FILE_MISSING / HOST_ERR_FILE_ACCESS; anything else is returned unchanged.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { isBulwarkError } from "../core/errors.js";
import { hostError } from "./errors.js";

const MISSING = new Set(["ENOENT", "ENOTDIR"]);
const ACCESS = new Set(["EACCES", "EPERM", "EISDIR", "ELOOP", "EROFS", "ENAMETOOLONG"]);

/** What a file of the state directory is, by its place in the layout (store.ts, guardians.ts, guarded/). */
const ROLES: readonly (readonly [RegExp, string])[] = [
  [/\/vms\/[^/]+\/config\.json$/, "the VM's configuration"],
  [/\/vms\/[^/]+\/nvram\.fd$/, "the VM's NVRAM (UEFI variable store)"],
  [/\/vms\/[^/]+\/key-protector\.last-known-good\.bkp$/, "the VM's last known good key protector"],
  [/\/vms\/[^/]+\/key-protector\.bkp$/, "the VM's key protector"],
  [/\/vms\/[^/]+\/vm-secrets\.bin$/, "the VM's sealed secrets"],
  [/\/vms\/[^/]+\/saved-state\.(bss|json)$/, "the VM's saved state"],
  [/\/vms\/[^/]+\/tpm(\/|$)/, "the VM's vTPM state"],
  [/\/vms\/[^/]+\/run(\/|$)/, "the VM's runtime directory"],
  [/\/vms\/[^/]+$/, "the VM's directory"],
  [/\/guardians\/[^/]+\.guardian\.pem$/, "a local guardian (its certificates and private keys)"],
  [/\/guardians\/[^/]+\.public\.pem$/, "a guardian's public certificates"],
  [/\/guardians$/, "the guardians directory"],
  [/\/secureboot\/templates(\/|$)/, "a custom Secure Boot template"],
  [/\/secureboot\/microsoft(\/|$)/, "the Microsoft Secure Boot certificates of this installation"],
  [/\/secureboot\/PK\.[a-z]+$/, "this installation's Secure Boot platform key"],
  [/\/secureboot(\/|$)/, "a Secure Boot file of this installation"],
  [/\/host\//, "a guarded-host file"],
];

export function roleOf(file: string): string | undefined {
  return ROLES.find(([re]) => re.test(file))?.[1];
}

function errnoOf(e: unknown): { code: string; path?: string } | undefined {
  if (!(e instanceof Error) || isBulwarkError(e)) return undefined;
  const n = e as NodeJS.ErrnoException & { dest?: string };
  // A failed rename names the temporary file first; the file that matters is its destination.
  const file = n.syscall === "rename" && n.dest ? n.dest : n.path;
  return typeof n.code === "string" ? { code: n.code, ...(file ? { path: file } : {}) } : undefined;
}

/**
 * The catalogue error for a file-system failure, or `e` itself when it is not one.
 * `file` and `role` name the file when the caller knows better than the errno's path.
 */
export function asFileError(e: unknown, file?: string, role?: string): unknown {
  const n = errnoOf(e);
  if (!n || !(MISSING.has(n.code) || ACCESS.has(n.code))) return e;
  const where = file ?? n.path;
  if (where === undefined) return e;
  const what = role ?? roleOf(path.resolve(where));
  const named = what ? `${what} (${where})` : where;
  if (MISSING.has(n.code)) {
    return hostError(
      "HOST_ERR_FILE_MISSING",
      n.code === "ENOTDIR" ? `${named}: a part of the path is not a directory` : `${named} does not exist`,
      { file: where, errno: n.code },
    );
  }
  const why: Record<string, string> = {
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EISDIR: "is a directory, not a file",
    ELOOP: "too many symbolic links",
    EROFS: "read-only file system",
    ENAMETOOLONG: "path too long",
  };
  return hostError("HOST_ERR_FILE_ACCESS", `${named} cannot be used: ${why[n.code] ?? n.code}`, {
    file: where,
    errno: n.code,
  });
}

/** Runs `fn`, turning a file-system failure into its catalogue error. */
export async function withFileErrors<T>(fn: () => Promise<T>, file?: string, role?: string): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw asFileError(e, file, role);
  }
}

/** A file's bytes, or undefined when it does not exist; any other failure names the file. */
export async function readFileIfExists(file: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw asFileError(e, file);
  }
}
