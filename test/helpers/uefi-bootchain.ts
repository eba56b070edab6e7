/**
 * Real Debian signed boot binaries for the PE/Authenticode tests, and the Secure Boot db of
 * Debian's OVMF_VARS_4M.ms.fd.
 *
 * The binaries come from the lead's guest image cache (src/host/guest-image.ts
 * ensureGuestImage: shimx64.efi, grubx64.efi and vmlinuz from shim-signed,
 * grub-efi-amd64-signed and the signed kernel linux-image-amd64 depends on). If that module
 * cannot provide them (it fails, e.g. while it is being changed), this helper fetches the same
 * packages itself with `apt-get download` + `dpkg-deb -x` into .cache/bootchain/ (git-ignored).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { parseCertificate } from "../../src/asn1/x509.js";
import { Guids } from "../../src/uefi/guid.js";
import { decodeSignatureDatabase, x509Certificates } from "../../src/uefi/siglist.js";
import { getVariable, parseVarStore } from "../../src/uefi/varstore.js";
import type { SignatureDatabaseModel } from "../../src/uefi/authenticode.js";
import { parsePe, sectionData } from "../../src/uefi/pe.js";
import { repoPath } from "./paths.js";

export interface BootChainFiles {
  readonly shim: string;
  readonly grub: string;
  readonly kernel: string;
  /** Where the files came from ("guest-image" or "apt-get download"). */
  readonly source: string;
}

function run(cmd: string, args: string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${cmd} is required: ${r.error.message} (Debian: apt, dpkg)`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

function ownDownload(): BootChainFiles {
  const root = repoPath(".cache/bootchain");
  const debs = path.join(root, "debs");
  const x = path.join(root, "x");
  mkdirSync(debs, { recursive: true });
  const deps = run("apt-cache", ["depends", "linux-image-amd64"]);
  const kernelPkg = /Depends:\s*(linux-image-\d\S*-amd64)\b/.exec(deps)?.[1];
  if (!kernelPkg) throw new Error("cannot find the signed kernel package linux-image-amd64 depends on");
  const pkgs = ["shim-signed", "grub-efi-amd64-signed", kernelPkg];
  for (const p of pkgs) {
    const have = readdirSync(debs).find((f) => f.startsWith(`${p}_`) && f.endsWith(".deb"));
    if (!have) run("apt-get", ["download", p], debs);
    const deb = readdirSync(debs).find((f) => f.startsWith(`${p}_`) && f.endsWith(".deb")) as string;
    const dir = path.join(x, p);
    if (!existsSync(dir)) {
      mkdirSync(dir, { recursive: true });
      run("dpkg-deb", ["-x", path.join(debs, deb), dir]);
    }
  }
  const boot = path.join(x, kernelPkg, "boot");
  const vmlinuz = readdirSync(boot).find((f) => f.startsWith("vmlinuz-"));
  if (!vmlinuz) throw new Error(`no vmlinuz in ${kernelPkg}`);
  return {
    shim: path.join(x, "shim-signed/usr/lib/shim/shimx64.efi.signed"),
    grub: path.join(x, "grub-efi-amd64-signed/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"),
    kernel: path.join(boot, vmlinuz),
    source: "apt-get download",
  };
}

let cached: Promise<BootChainFiles> | undefined;

/** Paths of Debian's signed shim, grub and kernel. */
export function bootChainFiles(): Promise<BootChainFiles> {
  cached ??= (async () => {
    try {
      const { ensureGuestImage } = await import("../../src/lab/guest-image.js");
      const img = await ensureGuestImage("base");
      const { shim, grub, kernel } = img.bootChain;
      if ([shim, grub, kernel].every((p) => existsSync(p)))
        return { shim, grub, kernel, source: "guest-image" };
    } catch {
      // fall through to our own download
    }
    return ownDownload();
  })();
  return cached;
}

export async function readBootChain(): Promise<{
  shim: Uint8Array;
  grub: Uint8Array;
  kernel: Uint8Array;
  files: BootChainFiles;
}> {
  const files = await bootChainFiles();
  const read = (p: string): Uint8Array => new Uint8Array(readFileSync(p));
  return { shim: read(files.shim), grub: read(files.grub), kernel: read(files.kernel), files };
}

export const OVMF_MS_VARS = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";

/** db and dbx of Debian's OVMF_VARS_4M.ms.fd as the plain model (via uefi-varstore's parser). */
export function ovmfMsDatabases(): {
  db: SignatureDatabaseModel;
  dbx: SignatureDatabaseModel;
  dbCertificates: Uint8Array[];
} {
  if (!existsSync(OVMF_MS_VARS)) throw new Error(`${OVMF_MS_VARS} is required: apt-get install ovmf`);
  const store = parseVarStore(new Uint8Array(readFileSync(OVMF_MS_VARS)));
  const model = (name: string): SignatureDatabaseModel => {
    const v = getVariable(store, name, Guids.EFI_IMAGE_SECURITY_DATABASE_GUID);
    if (!v) return { x509: [], sha256: [] };
    const lists = decodeSignatureDatabase(v.data);
    return {
      x509: x509Certificates(lists),
      sha256: lists
        .filter((l) => l.type === Guids.EFI_CERT_SHA256_GUID)
        .flatMap((l) => l.entries.map((e) => e.data)),
    };
  };
  const db = model("db");
  return { db, dbx: model("dbx"), dbCertificates: [...db.x509] };
}

/** A db certificate by its subject CN. */
export function findByCommonName(certs: readonly Uint8Array[], cn: string): Uint8Array {
  const c = certs.find((d) =>
    parseCertificate(d).subject.rdns.some((r) => r.some((a) => a.type === "CN" && a.value === cn)),
  );
  if (!c) throw new Error(`no certificate with CN=${cn}`);
  return c;
}

/**
 * shim's built-in vendor certificate (the distribution CA that signs grub and the kernel):
 * the `.vendor_cert` section holds { u32 authorized_size, u32 deauthorized_size,
 * u32 authorized_offset, u32 deauthorized_offset } then the DER (rhboot/shim cert.S).
 */
export function shimVendorCertificate(shim: Uint8Array): Uint8Array {
  const s = sectionData(parsePe(shim), ".vendor_cert");
  if (!s) throw new Error("shim has no .vendor_cert section");
  const dv = new DataView(s.buffer, s.byteOffset, s.byteLength);
  const size = dv.getUint32(0, true);
  const offset = dv.getUint32(8, true);
  return s.slice(offset, offset + size);
}
