/**
 * Durable file writes: every file in a VM's directory is written to a temporary name in the same
 * directory, fsynced, renamed over the target, and the directory fsynced — so a crash leaves
 * either the old file or the new one, never a partial file.
 */
import { randomBytes } from "node:crypto";
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

/** Moves an already-fsynced temporary file into place. */
export async function commitFile(tmp: string, target: string): Promise<void> {
  await rename(tmp, target);
  await fsyncDir(path.dirname(target));
}
