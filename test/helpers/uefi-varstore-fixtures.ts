/**
 * Fixtures for the UEFI variable tests: Debian's OVMF variable stores (the real artifacts, read
 * from the installed `ovmf` package), freshly generated RSA keys with self-signed certificates,
 * the repository's test vectors, and real tools (sbsiglist, sbvarsign) that fail loudly with
 * their Debian package when missing.
 */
import { spawnSync } from "node:child_process";
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { createCertificate } from "../../src/asn1/x509.js";
import { repoPath } from "./paths.js";

export const OVMF_DIR = "/usr/share/OVMF";

/** Debian's variable stores: name → expected PK/KEK/db subjects (CN or O), from the package docs. */
export const debianStores = {
  "OVMF_VARS_4M.ms.fd": { size: 540672, enrolled: "ms" },
  "OVMF_VARS_4M.snakeoil.fd": { size: 540672, enrolled: "snakeoil" },
  "OVMF_VARS.ms.fd": { size: 131072, enrolled: "ms" },
  "OVMF_VARS_4M.fd": { size: 540672, enrolled: "none" },
  "OVMF_VARS.fd": { size: 131072, enrolled: "none" },
} as const;

/** Reads a Debian OVMF file; a missing package fails with the install hint. */
export function debianOvmf(name: string): Uint8Array {
  const p = path.join(OVMF_DIR, name);
  if (!existsSync(p)) throw new Error(`${p} is required for this test: apt-get install ovmf`);
  return new Uint8Array(readFileSync(p));
}

/** A test vector from test/vectors/uefi (".gz" files are gunzipped). */
export function uefiVector(name: string): Uint8Array {
  const b = readFileSync(repoPath("test/vectors/uefi", name));
  return new Uint8Array(name.endsWith(".gz") ? gunzipSync(b) : b);
}

export interface TestKey {
  readonly key: KeyObject;
  readonly cert: Uint8Array;
  readonly keyPem: string;
  readonly certPem: string;
}

/** A fresh RSA-2048 key with a self-signed certificate. */
export function makeKey(cn: string): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const cert = createCertificate({
    subject: `CN=${cn}`,
    publicKey,
    signingKey: privateKey,
    ca: true,
    notBefore: new Date("2024-01-01T00:00:00Z"),
    notAfter: new Date("2044-01-01T00:00:00Z"),
  });
  return {
    key: privateKey,
    cert,
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    certPem: `-----BEGIN CERTIFICATE-----\n${Buffer.from(cert)
      .toString("base64")
      .replace(/(.{64})/g, "$1\n")
      .trim()}\n-----END CERTIFICATE-----\n`,
  };
}

const PACKAGES: Record<string, string> = {
  sbsiglist: "sbsigntool",
  sbvarsign: "sbsigntool",
  sbsign: "sbsigntool",
  openssl: "openssl",
  "qemu-system-x86_64": "qemu-system-x86",
};

/** Runs a real tool; missing → throws with the Debian package; non-zero exit → throws with stderr. */
export function runTool(cmd: string, args: readonly string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.error)
    throw new Error(
      `${cmd} is required for this test: apt-get install ${PACKAGES[cmd] ?? cmd} (${r.error.message})`,
    );
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

export function tempDir(prefix = "bulwark-uefi-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
