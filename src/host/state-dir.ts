/**
 * The host state directory must be a place Bulwark can keep secrets in: a real directory on a
 * real file system, owned by this user, not writable by anyone else, and one we can create files
 * in. Checked once, before anything reads or writes under it, so an unusable directory fails at
 * once with HOST_ERR_STATE_DIR instead of failing later with a raw errno — or never: Node's
 * recursive mkdir spins forever under /proc/self (procfs answers ENOENT to a mkdir in a
 * directory that exists).
 *
 * Not checked: the directory's ancestors (a parent writable by others could swap the directory;
 * /var/lib is root's), and what the directory holds (each file is checked where it is read).
 */
import { accessSync, constants, statfsSync, statSync, type Stats } from "node:fs";
import path from "node:path";
import { hostError } from "./errors.js";

/** statfs(2) f_type of file systems that hold no files of ours (linux/magic.h). */
const PSEUDO_FS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, "procfs"],
  [0x62656572, "sysfs"],
  [0x27e0eb, "cgroup"],
  [0x63677270, "cgroup2"],
  [0x64626720, "debugfs"],
  [0x74726163, "tracefs"],
  [0x73636673, "securityfs"],
  [0x1cd1, "devpts"],
  [0xcafe4a11, "bpf"],
  [0x6165676c, "pstore"],
  [0x62656570, "configfs"],
  [0xde5e81e4, "efivarfs"],
  [0x65735543, "fusectl"],
  [0x19800202, "mqueue"],
  [0x42494e4d, "binfmt_misc"],
  [0x6e736673, "nsfs"],
  [0xf97cff8c, "selinuxfs"],
  [0x0187, "autofs"],
]);

function refuse(dir: string, why: string): never {
  throw hostError("HOST_ERR_STATE_DIR", `state directory ${dir}: ${why}`, { stateDir: dir });
}

function statOrNull(p: string): Stats | null {
  try {
    return statSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    if (code === "ENOTDIR") refuse(p, "a part of the path is not a directory");
    if (code === "EACCES") refuse(p, "permission denied on the path");
    if (code === "ELOOP") refuse(p, "too many symbolic links");
    throw e;
  }
}

function checkFileSystem(dir: string, shown: string): void {
  let type: number;
  try {
    type = statfsSync(dir).type;
  } catch {
    return; // statfs unsupported: the ownership and access checks still stand
  }
  const name = PSEUDO_FS.get(type);
  if (name) refuse(shown, `is on ${name}, which cannot hold files (use a directory on a disk)`);
}

/**
 * Resolves and checks a state directory; it may not exist yet, in which case its nearest
 * existing ancestor must be a directory on a real file system that we can create it in.
 * Returns the absolute path. Throws HOST_ERR_STATE_DIR.
 */
export function checkStateDir(dir: string): string {
  if (typeof dir !== "string" || dir === "" || dir.includes("\0")) refuse(String(dir), "not a path");
  const abs = path.resolve(dir);
  const st = statOrNull(abs);
  if (st === null) {
    let ancestor = path.dirname(abs);
    let ast = statOrNull(ancestor);
    while (ast === null && ancestor !== path.dirname(ancestor)) {
      ancestor = path.dirname(ancestor);
      ast = statOrNull(ancestor);
    }
    if (ast === null || !ast.isDirectory()) refuse(abs, `cannot be created: ${ancestor} is not a directory`);
    checkFileSystem(ancestor, abs);
    try {
      accessSync(ancestor, constants.W_OK | constants.X_OK);
    } catch {
      refuse(abs, `cannot be created: ${ancestor} is not writable by this user`);
    }
    return abs;
  }
  if (!st.isDirectory()) refuse(abs, "is not a directory");
  checkFileSystem(abs, abs);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    refuse(abs, `is owned by uid ${st.uid}, not by this user (uid ${uid})`);
  }
  if ((st.mode & 0o022) !== 0) {
    refuse(
      abs,
      `is writable by ${st.mode & 0o002 ? "everyone" : "its group"} (mode ${(st.mode & 0o777).toString(8)}); chmod go-w it`,
    );
  }
  try {
    accessSync(abs, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch {
    refuse(abs, "is not readable and writable by this user");
  }
  return abs;
}
