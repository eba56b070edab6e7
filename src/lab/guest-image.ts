/**
 * The guest test image: a GPT disk whose EFI system partition holds Debian's signed boot chain
 * (shim as /EFI/BOOT/BOOTX64.EFI, signed grub beside it, the signed kernel) and a busybox
 * initramfs whose /init reports Secure Boot, lockdown, TPM and the TCG event log on the serial
 * console. Built from Debian packages fetched with `apt-get download`, without loop mounts
 * (sgdisk + mtools), cached under .cache/guest/<key> where the key covers the package versions.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import {
  chmod,
  copyFile,
  lutimes,
  mkdir,
  open,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { grubConfig, guestInitScript } from "./guest-init.js";
import { cacheDir } from "../host/paths.js";
import { requireProgram, runProgram } from "../host/tools.js";
import { hostError } from "../host/errors.js";

export type GuestVariant = "base" | "tpm2tools";
export const guestVariants: readonly GuestVariant[] = ["base", "tpm2tools"];

/** Bump when the image layout, /init or grub.cfg (kernel command line) changes, so caches rebuild. */
const BUILDER_VERSION = 6;

export interface BootChain {
  /** Debian's shimx64.efi.signed (signed by Microsoft's UEFI CA). */
  readonly shim: string;
  /** Debian's signed monolithic grubx64.efi. */
  readonly grub: string;
  /** Debian's signed kernel. */
  readonly kernel: string;
  /** This variant's initramfs. */
  readonly initrd: string;
}

export interface GuestImage {
  readonly variant: GuestVariant;
  readonly disk: string;
  readonly bootChain: BootChain;
  readonly packages: Readonly<Record<string, string>>;
  readonly key: string;
}

interface Manifest {
  builder: number;
  packages: Record<string, string>;
  sha256: Record<string, string>;
}

export interface ImageProgress {
  (message: string): void;
}

const ESP_FILES = {
  shim: "EFI/BOOT/BOOTX64.EFI",
  grub: "EFI/BOOT/grubx64.efi",
  kernel: "bulwark/vmlinuz",
  initrd: "bulwark/initrd.img",
} as const;

async function aptCache(args: string[]): Promise<string> {
  return (await runProgram("apt-cache", args)).stdout;
}

async function candidateVersion(pkg: string): Promise<string | undefined> {
  const out = await aptCache(["policy", pkg]);
  const m = /Candidate:\s*(\S+)/.exec(out);
  return m && m[1] !== "(none)" ? m[1] : undefined;
}

/**
 * Refreshes apt's package lists, at most once per image build (a build that needed fresh lists
 * to resolve its packages does not fetch them again to download them).
 */
class AptLists {
  private refreshed: Promise<void> | undefined;

  refresh(): Promise<void> {
    this.refreshed ??= aptUpdate();
    return this.refreshed;
  }
}

async function aptUpdate(): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw hostError("HOST_ERR_IMAGE_BUILD", "apt package lists are empty; run `sudo apt-get update` first");
  }
  await runProgram("apt-get", ["update", "-q"], {
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
}

/** Resolves the exact package versions the image is built from (the cache key). */
async function resolveGuestPackages(apt: AptLists): Promise<Record<string, string>> {
  const resolveAll = async (): Promise<Record<string, string> | undefined> => {
    const deps = await aptCache(["depends", "linux-image-amd64"]).catch(() => "");
    const kernelPkg = /Depends:\s*(linux-image-\d\S*-amd64)\b/.exec(deps)?.[1];
    if (!kernelPkg) return undefined;
    const out: Record<string, string> = {};
    for (const p of ["shim-signed", "grub-efi-amd64-signed", "busybox-static", kernelPkg]) {
      const v = await candidateVersion(p);
      if (!v) return undefined;
      out[p] = v;
    }
    return out;
  };
  let pkgs = await resolveAll();
  if (!pkgs) {
    await apt.refresh();
    pkgs = await resolveAll();
  }
  if (!pkgs) {
    throw hostError(
      "HOST_ERR_IMAGE_BUILD",
      "cannot resolve shim-signed, grub-efi-amd64-signed, busybox-static and the signed kernel in apt's lists",
    );
  }
  return pkgs;
}

function imageKey(packages: Record<string, string>): string {
  const h = createHash("sha256").update(`builder ${BUILDER_VERSION}\n`);
  for (const [k, v] of Object.entries(packages).sort()) h.update(`${k}=${v}\n`);
  return h.digest("hex").slice(0, 16);
}

async function sha256File(p: string): Promise<string> {
  return createHash("sha256")
    .update(await readFile(p))
    .digest("hex");
}

async function downloadDebs(
  packages: Record<string, string>,
  dir: string,
  apt: AptLists,
): Promise<Record<string, string>> {
  await mkdir(dir, { recursive: true });
  const out: Record<string, string> = {};
  for (const [name, version] of Object.entries(packages)) {
    const safeVersion = version.replace(/:/g, "%3a");
    const file = path.join(dir, `${name}_${safeVersion}_amd64.deb`);
    if (!existsSync(file)) {
      const tmp = path.join(dir, `.dl-${randomBytes(4).toString("hex")}`);
      await mkdir(tmp);
      try {
        await runProgram("apt-get", ["download", "-q", `${name}=${version}`], { cwd: tmp }).catch(
          async () => {
            await apt.refresh();
            return runProgram("apt-get", ["download", "-q", `${name}=${version}`], { cwd: tmp });
          },
        );
        const got = (await readdir(tmp)).find((f) => f.endsWith(".deb"));
        if (!got) throw hostError("HOST_ERR_IMAGE_BUILD", `apt-get download ${name} produced no .deb`);
        await rename(path.join(tmp, got), file);
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
    }
    out[name] = file;
  }
  return out;
}

/** Extracts selected members of a .deb (dpkg-deb --fsys-tarfile | tar -x --wildcards). */
async function extractDeb(deb: string, dest: string, patterns: string[]): Promise<void> {
  await mkdir(dest, { recursive: true });
  const dpkg = spawn(requireProgram("dpkg-deb"), ["--fsys-tarfile", deb], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const tar = spawn("tar", ["-x", "-C", dest, "--wildcards", ...patterns], {
    stdio: ["pipe", "ignore", "pipe"],
  });
  dpkg.stdout.pipe(tar.stdin);
  let err = "";
  dpkg.stderr.on("data", (d: Buffer) => (err += d.toString()));
  tar.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const codes = await Promise.all([
    new Promise<number | null>((r) => dpkg.on("close", r)),
    new Promise<number | null>((r) => tar.on("close", r)),
  ]);
  if (codes.some((c) => c !== 0)) {
    throw hostError("HOST_ERR_IMAGE_BUILD", `extracting ${path.basename(deb)} failed: ${err.trim()}`);
  }
}

async function findFirst(dir: string, pred: (rel: string) => boolean): Promise<string | undefined> {
  for (const e of await readdir(dir, { recursive: true })) {
    if (pred(e)) return path.join(dir, e);
  }
  return undefined;
}

/** Libraries a binary needs, from ldd (absolute paths, including the dynamic loader). */
async function sharedLibraries(binary: string): Promise<string[]> {
  const { stdout } = await runProgram("ldd", [binary]);
  const libs: string[] = [];
  for (const line of stdout.split("\n")) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

async function copyPreservingPath(src: string, stagingRoot: string): Promise<void> {
  const dest = path.join(stagingRoot, src);
  await mkdir(path.dirname(dest), { recursive: true });
  await copyFile(src, dest);
}

async function addTpm2Tools(staging: string): Promise<void> {
  const tpm2 = requireProgram("tpm2");
  const files = new Set<string>([tpm2]);
  const tctiDir = "/usr/lib/x86_64-linux-gnu";
  const tctis = (await readdir(tctiDir)).filter((f) => /^libtss2-tcti(-device|ldr)\.so\.0$/.test(f));
  for (const t of tctis) files.add(path.join(tctiDir, t));
  for (const f of [...files]) for (const lib of await sharedLibraries(f)) files.add(lib);
  for (const f of files) await copyPreservingPath(f, staging);
  // tpm2_* are symlinks to the multi-call binary `tpm2`.
  for (const name of await readdir("/usr/bin")) {
    if (!name.startsWith("tpm2_")) continue;
    const target = await readlink(path.join("/usr/bin", name)).catch(() => undefined);
    if (target === "tpm2") await symlink("tpm2", path.join(staging, "usr/bin", name));
  }
  // Debian's loader path is /lib64/ld-linux-x86-64.so.2 → keep it where binaries look for it.
  await mkdir(path.join(staging, "lib64"), { recursive: true });
  if (!existsSync(path.join(staging, "lib64/ld-linux-x86-64.so.2"))) {
    await copyFile("/lib64/ld-linux-x86-64.so.2", path.join(staging, "lib64/ld-linux-x86-64.so.2"));
  }
}

async function walkSorted(root: string, rel = "."): Promise<string[]> {
  const out: string[] = [rel];
  const entries = (await readdir(path.join(root, rel), { withFileTypes: true })).sort((a, b) =>
    a.name < b.name ? -1 : 1,
  );
  for (const e of entries) {
    const r = `${rel}/${e.name}`;
    if (e.isDirectory()) out.push(...(await walkSorted(root, r)));
    else out.push(r);
  }
  return out;
}

/** Fixed timestamp for every initramfs member, so equal inputs give equal archives. */
const FIXED_MTIME = 1_700_000_000;

async function makeCpio(staging: string): Promise<Buffer> {
  const members = await walkSorted(staging);
  for (const m of members) await lutimes(path.join(staging, m), FIXED_MTIME, FIXED_MTIME);
  const list = members.join("\n") + "\n";
  const cpio = spawn(requireProgram("cpio"), ["-o", "-H", "newc", "--quiet", "--reproducible"], {
    cwd: staging,
    stdio: ["pipe", "pipe", "pipe"],
  });
  const chunks: Buffer[] = [];
  let err = "";
  cpio.stdout.on("data", (d: Buffer) => chunks.push(d));
  cpio.stderr.on("data", (d: Buffer) => (err += d.toString()));
  cpio.stdin.end(list);
  const code = await new Promise<number | null>((r) => cpio.on("close", r));
  if (code !== 0) throw hostError("HOST_ERR_IMAGE_BUILD", `cpio failed: ${err.trim()}`);
  return Buffer.concat(chunks);
}

async function buildInitrd(variant: GuestVariant, extracted: string, out: string): Promise<void> {
  const staging = `${out}.staging`;
  await rm(staging, { recursive: true, force: true });
  for (const d of ["bin", "dev", "proc", "sys", "tmp", "run", "lib/modules", "usr/bin"]) {
    await mkdir(path.join(staging, d), { recursive: true });
  }
  const busybox = await findFirst(extracted, (r) => r === "bin/busybox" || r.endsWith("/bin/busybox"));
  if (!busybox) throw hostError("HOST_ERR_IMAGE_BUILD", "busybox not found in busybox-static");
  await copyFile(busybox, path.join(staging, "bin/busybox"));
  await chmod(path.join(staging, "bin/busybox"), 0o755);
  for (const mod of ["efivarfs.ko", "qemu_fw_cfg.ko"]) {
    const p = await findFirst(path.join(extracted, "lib/modules"), (r) => r.endsWith(`/${mod}`));
    if (!p) throw hostError("HOST_ERR_IMAGE_BUILD", `kernel module ${mod} not found in the kernel package`);
    await copyFile(p, path.join(staging, "lib/modules", mod));
  }
  await writeFile(path.join(staging, "init"), guestInitScript, { mode: 0o755 });
  if (variant === "tpm2tools") await addTpm2Tools(staging);
  const cpio = await makeCpio(staging);
  await writeFile(out, gzipSync(cpio, { level: 6 }));
  await rm(staging, { recursive: true, force: true });
}

const ESP_OFFSET = 1024 * 1024;
const ESP_SIZE_MIB = 62;

/**
 * Writes a GPT disk with one EFI system partition holding `files` (ESP path → bytes or host path).
 * Deterministic GUIDs and volume id, so equal inputs give equal disks.
 */
export async function writeEspDisk(out: string, files: Record<string, string | Uint8Array>): Promise<void> {
  const work = `${out}.${randomBytes(4).toString("hex")}.tmp`;
  const esp = `${work}.esp`;
  try {
    await runProgram("mkfs.vfat", [
      "-C",
      "-F",
      "32",
      "-i",
      "b01a0001",
      "-n",
      "BULWARKESP",
      esp,
      String(ESP_SIZE_MIB * 1024),
    ]);
    const dirs = new Set<string>();
    for (const p of Object.keys(files)) {
      const parts = p.split("/").slice(0, -1);
      for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
    }
    for (const d of [...dirs].sort()) await runProgram("mmd", ["-i", esp, `::/${d}`]);
    for (const [dest, src] of Object.entries(files)) {
      let srcPath = typeof src === "string" ? src : `${work}.f`;
      if (typeof src !== "string") await writeFile(srcPath, src);
      await runProgram("mcopy", ["-i", esp, "-o", srcPath, `::/${dest}`]);
      if (typeof src !== "string") await rm(srcPath);
      srcPath = "";
    }
    const espBytes = await readFile(esp);
    const total = ESP_OFFSET + espBytes.length + ESP_OFFSET;
    const fh = await open(work, "w");
    try {
      await fh.truncate(total);
    } finally {
      await fh.close();
    }
    const lastSector = (ESP_OFFSET + espBytes.length) / 512 - 1;
    await runProgram("sgdisk", [
      "--clear",
      "-U",
      "b01a0000-0000-4000-8000-000000000001",
      "-n",
      `1:2048:${lastSector}`,
      "-t",
      "1:ef00",
      "-c",
      "1:EFI System",
      "-u",
      "1:b01a0000-0000-4000-8000-000000000002",
      work,
    ]);
    const fw = await open(work, "r+");
    try {
      await fw.write(espBytes, 0, espBytes.length, ESP_OFFSET);
      await fw.sync();
    } finally {
      await fw.close();
    }
    await rename(work, out);
  } finally {
    await rm(esp, { force: true });
    await rm(work, { force: true });
  }
}

function espFilesFor(chain: BootChain): Record<string, string | Uint8Array> {
  const cfg = Buffer.from(grubConfig);
  return {
    [ESP_FILES.shim]: chain.shim,
    [ESP_FILES.grub]: chain.grub,
    "EFI/BOOT/grub.cfg": cfg,
    "EFI/debian/grub.cfg": cfg,
    "boot/grub/grub.cfg": cfg,
    [ESP_FILES.kernel]: chain.kernel,
    [ESP_FILES.initrd]: chain.initrd,
  };
}

async function verifyManifest(dir: string): Promise<Manifest | undefined> {
  try {
    const m = JSON.parse(await readFile(path.join(dir, "manifest.json"), "utf8")) as Manifest;
    if (m.builder !== BUILDER_VERSION) return undefined;
    for (const [file, sum] of Object.entries(m.sha256)) {
      if ((await sha256File(path.join(dir, file))) !== sum) return undefined;
    }
    return m;
  } catch {
    return undefined;
  }
}

function imageFrom(dir: string, variant: GuestVariant, m: Manifest, key: string): GuestImage {
  return {
    variant,
    key,
    packages: m.packages,
    disk: path.join(dir, `disk-${variant}.img`),
    bootChain: {
      shim: path.join(dir, "shimx64.efi"),
      grub: path.join(dir, "grubx64.efi"),
      kernel: path.join(dir, "vmlinuz"),
      initrd: path.join(dir, `initrd-${variant}.img`),
    },
  };
}

/**
 * Returns the cached guest image for `variant`, building all variants when the cache is
 * absent, stale (other package versions) or corrupt (a file's SHA-256 differs).
 */
export async function ensureGuestImage(
  variant: GuestVariant,
  opts: { progress?: ImageProgress; force?: boolean } = {},
): Promise<GuestImage> {
  const progress = opts.progress ?? (() => undefined);
  const apt = new AptLists();
  const packages = await resolveGuestPackages(apt);
  const key = imageKey(packages);
  const dir = path.join(cacheDir(), "guest", key);
  if (!opts.force) {
    const m = await verifyManifest(dir);
    if (m) return imageFrom(dir, variant, m, key);
    if (existsSync(dir)) progress(`cached guest image ${key} is corrupt or incomplete; rebuilding`);
  }
  progress(
    `building guest image ${key} from ${Object.entries(packages)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
  );
  const build = path.join(cacheDir(), "guest", `.build-${key}-${randomBytes(4).toString("hex")}`);
  try {
    await mkdir(build, { recursive: true });
    progress("downloading Debian packages (apt-get download)");
    const debs = await downloadDebs(packages, path.join(cacheDir(), "debs"), apt);
    const x = path.join(build, "x");
    const kernelPkg = Object.keys(packages).find((p) => p.startsWith("linux-image-"));
    progress("extracting shim, grub, kernel and busybox");
    await extractDeb(debs["shim-signed"] as string, x, ["./usr/lib/shim/shimx64.efi.signed"]);
    await extractDeb(debs["grub-efi-amd64-signed"] as string, x, [
      "./usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
    ]);
    await extractDeb(debs["busybox-static"] as string, x, ["./bin/busybox"]);
    await extractDeb(debs[kernelPkg as string] as string, x, [
      "./boot/vmlinuz-*",
      "*/kernel/fs/efivarfs/efivarfs.ko",
      "*/kernel/drivers/firmware/qemu_fw_cfg.ko",
    ]);
    await copyFile(path.join(x, "usr/lib/shim/shimx64.efi.signed"), path.join(build, "shimx64.efi"));
    await copyFile(
      path.join(x, "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"),
      path.join(build, "grubx64.efi"),
    );
    const vmlinuz = await findFirst(path.join(x, "boot"), (r) => r.startsWith("vmlinuz-"));
    if (!vmlinuz) throw hostError("HOST_ERR_IMAGE_BUILD", "signed kernel not found in the kernel package");
    await copyFile(vmlinuz, path.join(build, "vmlinuz"));
    const m: Manifest = { builder: BUILDER_VERSION, packages, sha256: {} };
    for (const v of guestVariants) {
      progress(`building the ${v} initramfs and disk`);
      const initrd = path.join(build, `initrd-${v}.img`);
      await buildInitrd(v, x, initrd);
      const img = imageFrom(build, v, m, key);
      await writeEspDisk(img.disk, espFilesFor(img.bootChain));
    }
    await rm(x, { recursive: true, force: true });
    for (const f of await readdir(build)) m.sha256[f] = await sha256File(path.join(build, f));
    await writeFile(path.join(build, "manifest.json"), JSON.stringify(m, null, 2));
    await rm(dir, { recursive: true, force: true });
    try {
      await rename(build, dir);
    } catch (e) {
      // Another process finished the same build first; keep theirs.
      if (!(await verifyManifest(dir))) throw e;
    }
  } finally {
    await rm(build, { recursive: true, force: true });
  }
  await pruneOtherImages(key);
  const m = await verifyManifest(dir);
  if (!m) throw hostError("HOST_ERR_IMAGE_BUILD", `guest image ${key} failed verification after build`);
  progress(`guest image ready: ${dir}`);
  return imageFrom(dir, variant, m, key);
}

/** Removes cached images of other keys (older package versions or builder versions). */
async function pruneOtherImages(key: string): Promise<void> {
  const root = path.join(cacheDir(), "guest");
  for (const name of await readdir(root)) {
    if (name !== key && /^[0-9a-f]{16}$/.test(name))
      await rm(path.join(root, name), { recursive: true, force: true });
  }
}

/**
 * Builds a disk like the cached image of `variant` but with some ESP files replaced
 * (e.g. a re-signed shim or a corrupted grub). `overrides` maps ESP paths to bytes.
 */
export async function buildGuestDisk(opts: {
  variant: GuestVariant;
  out: string;
  overrides?: Record<string, Uint8Array>;
}): Promise<string> {
  const img = await ensureGuestImage(opts.variant);
  await writeEspDisk(opts.out, { ...espFilesFor(img.bootChain), ...(opts.overrides ?? {}) });
  return opts.out;
}

export const espPaths = ESP_FILES;

/** Size in bytes of a file (for summaries). */
export async function fileSize(p: string): Promise<number> {
  return (await stat(p)).size;
}
