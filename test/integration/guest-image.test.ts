/** The guest image cache: reused when intact, rebuilt when a cached file is corrupt. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cp, mkdtemp, open, readFile, rm, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ensureGuestImage } from "../../src/lab/guest-image.js";
import { cacheDir } from "../../src/host/paths.js";

const sha = async (p: string) =>
  createHash("sha256")
    .update(await readFile(p))
    .digest("hex");

test("a corrupt cached image is detected and rebuilt", async () => {
  const real = await ensureGuestImage("base");
  const goodDisk = await sha(real.disk);
  const tmp = await mkdtemp(path.join(os.tmpdir(), "bulwark-cache-"));
  const saved = process.env["BULWARK_CACHE_DIR"];
  try {
    // A private cache: the downloaded .debs are shared (read-only use), the image is copied.
    await symlink(path.join(cacheDir(), "debs"), path.join(tmp, "debs"));
    await cp(path.dirname(real.disk), path.join(tmp, "guest", real.key), { recursive: true });
    process.env["BULWARK_CACHE_DIR"] = tmp;
    const copy = await ensureGuestImage("base");
    assert.equal(copy.disk, path.join(tmp, "guest", real.key, "disk-base.img"));
    // Flip one byte of the cached disk.
    const fh = await open(copy.disk, "r+");
    await fh.write(Buffer.from([0x5a]), 0, 1, 1024 * 1024 + 4096);
    await fh.close();
    const corrupted = await sha(copy.disk);
    assert.notEqual(corrupted, goodDisk);
    const messages: string[] = [];
    const rebuilt = await ensureGuestImage("base", { progress: (m) => messages.push(m) });
    assert.ok(
      messages.some((m) => m.includes("corrupt")),
      messages.join("\n"),
    );
    // The boot chain and initramfs rebuild byte-identically; the FAT image carries mtools'
    // timestamps, so the disk is checked against the fresh manifest instead.
    for (const k of ["shim", "grub", "kernel", "initrd"] as const) {
      assert.equal(await sha(rebuilt.bootChain[k]), await sha(real.bootChain[k]), k);
    }
    const manifest = JSON.parse(
      await readFile(path.join(path.dirname(rebuilt.disk), "manifest.json"), "utf8"),
    ) as {
      sha256: Record<string, string>;
    };
    assert.equal(await sha(rebuilt.disk), manifest.sha256["disk-base.img"]);
    assert.notEqual(await sha(rebuilt.disk), corrupted);
  } finally {
    if (saved === undefined) delete process.env["BULWARK_CACHE_DIR"];
    else process.env["BULWARK_CACHE_DIR"] = saved;
    await rm(tmp, { recursive: true, force: true });
  }
});
