/**
 * The host's guardian store: local guardians with private keys (`<name>.guardian.pem`, 0600) and
 * public guardians imported from elsewhere (`<name>.public.pem`), under <state>/host/guardians.
 * The local `UntrustedGuardian` is created on first need, as Hyper-V does for local mode.
 * Guardians travel as PEM (public, or with passphrase-encrypted keys) or as PKCS#12 (with keys).
 */
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
  createGuardian,
  exportGuardianPem,
  exportGuardianPublicPem,
  guardianThumbprint,
  importGuardianPem,
  importGuardianPublicPem,
  publicGuardian,
  UNTRUSTED_GUARDIAN,
  type Guardian,
  type GuardianPublic,
} from "../protector/guardian.js";
import { exportGuardianPkcs12, importGuardianPkcs12 } from "../protector/pkcs12.js";
import { writeFileAtomic } from "../io/atomic.js";
import { guardianError } from "./errors.js";
import { asFileError } from "./file-errors.js";

export interface GuardianEntry {
  readonly name: string;
  readonly thumbprint: string;
  readonly hasPrivateKey: boolean;
}

export class GuardianStore {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = path.join(path.resolve(stateDir), "host", "guardians");
  }

  // Every file name comes from here, so a name that is not a plain file name never becomes a path
  // (a name line in a received PEM is not covered by its certificates: never trust it as a path).
  private privatePath(name: string): string {
    return path.join(this.dir, `${storableName(name)}.guardian.pem`);
  }

  private publicPath(name: string): string {
    return path.join(this.dir, `${storableName(name)}.public.pem`);
  }

  async list(): Promise<GuardianEntry[]> {
    let files: string[];
    try {
      files = await readdir(this.dir);
    } catch {
      return [];
    }
    const out: GuardianEntry[] = [];
    for (const f of files.sort()) {
      const m = /^(.+)\.(guardian|public)\.pem$/.exec(f);
      if (!m?.[1]) continue;
      const g = await this.getPublic(m[1]);
      out.push({ name: m[1], thumbprint: guardianThumbprint(g), hasPrivateKey: m[2] === "guardian" });
    }
    return out;
  }

  /** Local guardians: those whose private keys live on this host (each file read and checked once). */
  async localGuardians(): Promise<Guardian[]> {
    let files: string[];
    try {
      files = await readdir(this.dir);
    } catch {
      return [];
    }
    const out: Guardian[] = [];
    for (const f of files.sort()) {
      const m = /^(.+)\.guardian\.pem$/.exec(f);
      if (!m?.[1]) continue;
      const file = this.privatePath(m[1]);
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") continue; // removed meanwhile
        throw asFileError(e, file);
      }
      out.push(importGuardianPem(text));
    }
    return out;
  }

  async getPrivate(name: string): Promise<Guardian> {
    let text: string;
    try {
      text = await readFile(this.privatePath(name), "utf8");
    } catch {
      throw guardianError(
        "GUARDIAN_ERR_NOT_FOUND",
        `no local guardian '${name}' with private keys on this host`,
        {
          name,
        },
      );
    }
    return importGuardianPem(text);
  }

  async getPublic(name: string): Promise<GuardianPublic> {
    for (const p of [this.privatePath(name), this.publicPath(name)]) {
      try {
        return publicGuardian(importGuardianPublicPem(await readFile(p, "utf8")));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw asFileError(e, p);
      }
    }
    throw guardianError("GUARDIAN_ERR_NOT_FOUND", `no guardian named '${name}' on this host`, { name });
  }

  async has(name: string): Promise<boolean> {
    return (await this.list()).some((e) => e.name === name);
  }

  async create(name: string): Promise<Guardian> {
    storableName(name);
    if (await this.has(name)) throw guardianError("GUARDIAN_ERR_EXISTS", `guardian '${name}' already exists`);
    const host = os
      .hostname()
      .replace(/[^A-Za-z0-9._-]/g, "-")
      .slice(0, 63);
    const g = createGuardian(name, host ? { host } : {});
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.privatePath(name), exportGuardianPem(g), 0o600);
    return g;
  }

  /** The host's local guardian, created on first need. */
  async untrustedGuardian(): Promise<Guardian> {
    if (await this.has(UNTRUSTED_GUARDIAN)) return this.getPrivate(UNTRUSTED_GUARDIAN);
    return this.create(UNTRUSTED_GUARDIAN);
  }

  /** Imports PEM: with private keys it becomes a local guardian, otherwise a public one. */
  async import(text: string, opts: { name?: string; passphrase?: string } = {}): Promise<GuardianEntry> {
    const hasKeys = /PRIVATE KEY-----/.test(text);
    const pub = importGuardianPublicPem(text);
    const name = storableName(opts.name ?? pub.name);
    if (await this.has(name)) throw guardianError("GUARDIAN_ERR_EXISTS", `guardian '${name}' already exists`);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    if (hasKeys) {
      const g = importGuardianPem(text, opts.passphrase === undefined ? {} : { passphrase: opts.passphrase });
      await writeFileAtomic(this.privatePath(name), exportGuardianPem({ ...g, name }), 0o600);
    } else {
      await writeFileAtomic(this.publicPath(name), exportGuardianPublicPem({ ...pub, name }), 0o644);
    }
    return { name, thumbprint: guardianThumbprint(pub), hasPrivateKey: hasKeys };
  }

  /** Imports a guardian with its private keys from PKCS#12 (a wrong passphrase: PROTECTOR_ERR_PKCS12). */
  async importPkcs12(
    bytes: Uint8Array,
    passphrase: string,
    opts: { name?: string } = {},
  ): Promise<GuardianEntry> {
    const g = importGuardianPkcs12(bytes, passphrase, opts.name === undefined ? {} : { name: opts.name });
    storableName(g.name);
    if (await this.has(g.name))
      throw guardianError("GUARDIAN_ERR_EXISTS", `guardian '${g.name}' already exists`);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.privatePath(g.name), exportGuardianPem(g), 0o600);
    return { name: g.name, thumbprint: guardianThumbprint(g), hasPrivateKey: true };
  }

  /** A local guardian with its private keys as PKCS#12, protected by `passphrase`. */
  async exportPkcs12(name: string, passphrase: string): Promise<Uint8Array> {
    return exportGuardianPkcs12(await this.getPrivate(name), passphrase);
  }

  async exportPublic(name: string): Promise<string> {
    return exportGuardianPublicPem(await this.getPublic(name));
  }

  async exportPrivate(name: string, passphrase?: string): Promise<string> {
    return exportGuardianPem(await this.getPrivate(name), passphrase === undefined ? {} : { passphrase });
  }

  async remove(name: string): Promise<void> {
    if (!(await this.has(name))) throw guardianError("GUARDIAN_ERR_NOT_FOUND", `no guardian named '${name}'`);
    await rm(this.privatePath(name), { force: true });
    await rm(this.publicPath(name), { force: true });
  }
}

/** Guardian names on a host are file names, with the VM name rule. */
export function storableName(name: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/.test(name)) {
    throw guardianError(
      "GUARDIAN_ERR_INVALID_NAME",
      `invalid guardian name ${JSON.stringify(name)}: letters, digits, '.', '_' and '-' only, 1-64 characters`,
      { name },
    );
  }
  return name;
}
