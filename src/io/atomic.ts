/**
 * Durable file writes, the only ones in Bulwark: the data goes to a temporary name in the same
 * directory, is fsynced, renamed over the target, and the directory is fsynced — so a crash
 * leaves either the old file or the new one, never a partial file. Files are 0600 unless the
 * caller says otherwise (public material such as certificates may be 0644).
 */
import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import path from "node:path";

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(6).toString("hex")}.tmp`);
}

export async function writeFileAtomic(
  target: string,
  data: Uint8Array | string,
  mode = 0o600,
): Promise<void> {
  const tmp = tempPathFor(target);
  try {
    const fh = await open(tmp, "wx", mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
    await fsyncDir(path.dirname(target));
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** The synchronous twin of {@link writeFileAtomic}, for start-up paths that cannot await. */
export function writeFileAtomicSync(target: string, data: Uint8Array | string, mode = 0o600): void {
  const tmp = tempPathFor(target);
  const fd = openSync(tmp, "wx", mode);
  try {
    const buf = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(tmp);
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, target);
  const dfd = openSync(path.dirname(target), "r");
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/** Moves an already-fsynced temporary file into place. */
export async function commitFile(tmp: string, target: string): Promise<void> {
  await rename(tmp, target);
  await fsyncDir(path.dirname(target));
}
