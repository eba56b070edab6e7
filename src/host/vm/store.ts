/**
 * The host state directory: one directory per VM holding its versioned config, NVRAM, encrypted
 * vTPM state, saved state, key protector and its last known good copy. Every write is atomic; a
 * lock file stops two processes from driving one VM at once.
 */
import { constants } from "node:fs";
import { mkdir, open, readdir, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../../io/atomic.js";
import { asFileError } from "../file-errors.js";
import { checkStateDir } from "../state-dir.js";
import { validateConfig, validateVmName, type VmConfig } from "./config.js";
import { vmError } from "./errors.js";

export const DEFAULT_STATE_DIR = "/var/lib/bulwark";

export function defaultStateDir(): string {
  return process.env["BULWARK_STATE_DIR"] ?? DEFAULT_STATE_DIR;
}

export interface VmPaths {
  readonly dir: string;
  readonly config: string;
  readonly nvram: string;
  readonly tpmDir: string;
  readonly keyProtector: string;
  readonly keyProtectorLastKnownGood: string;
  readonly vmSecrets: string;
  readonly savedState: string;
  readonly savedStateMeta: string;
  readonly runDir: string;
  readonly qmpSocket: string;
  readonly consoleSocket: string;
  readonly serialLog: string;
  readonly qemuPid: string;
  readonly swtpmPid: string;
  readonly swtpmSocket: string;
  readonly lock: string;
  /** Destructive operations on the VM, one JSON line each (who, when, what): `vm tpm reset`. */
  readonly history: string;
}

export interface VmLock {
  release(): Promise<void>;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export class VmStore {
  readonly stateDir: string;

  /** Throws HOST_ERR_STATE_DIR when `stateDir` cannot hold a VM's files (state-dir.ts). */
  constructor(stateDir: string = defaultStateDir()) {
    this.stateDir = checkStateDir(stateDir);
  }

  get vmsDir(): string {
    return path.join(this.stateDir, "vms");
  }

  get hostDir(): string {
    return path.join(this.stateDir, "host");
  }

  paths(name: string): VmPaths {
    validateVmName(name);
    const dir = path.join(this.vmsDir, name);
    const run = path.join(dir, "run");
    return {
      dir,
      config: path.join(dir, "config.json"),
      nvram: path.join(dir, "nvram.fd"),
      tpmDir: path.join(dir, "tpm"),
      keyProtector: path.join(dir, "key-protector.bkp"),
      keyProtectorLastKnownGood: path.join(dir, "key-protector.last-known-good.bkp"),
      vmSecrets: path.join(dir, "vm-secrets.bin"),
      savedState: path.join(dir, "saved-state.bss"),
      savedStateMeta: path.join(dir, "saved-state.json"),
      runDir: run,
      qmpSocket: path.join(run, "qmp.sock"),
      consoleSocket: path.join(run, "console.sock"),
      serialLog: path.join(dir, "serial.log"),
      qemuPid: path.join(run, "qemu.pid"),
      swtpmPid: path.join(run, "swtpm.pid"),
      swtpmSocket: path.join(run, "swtpm.sock"),
      lock: path.join(dir, ".lock"),
      history: path.join(dir, "history.jsonl"),
    };
  }

  async exists(name: string): Promise<boolean> {
    try {
      await stat(this.paths(name).config);
      return true;
    } catch {
      return false;
    }
  }

  async create(config: VmConfig): Promise<VmPaths> {
    validateConfig(config);
    for (const d of config.disks) {
      const st = await stat(d.path).catch(() => null);
      if (!st || !(st.isFile() || st.isBlockDevice())) {
        throw vmError(
          "VM_ERR_INVALID_CONFIG",
          st
            ? `disk ${d.path} is not a file or block device`
            : `disk ${d.path} does not exist (create it first, e.g. qemu-img create -f qcow2 FILE 20G)`,
          { disk: d.path },
        );
      }
    }
    const p = this.paths(config.name);
    await mkdir(this.vmsDir, { recursive: true, mode: 0o700 }).catch((e: unknown) => {
      throw asFileError(e, this.vmsDir, "the VMs directory");
    });
    try {
      await mkdir(p.dir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") {
        throw vmError("VM_ERR_EXISTS", `VM '${config.name}' already exists in ${this.stateDir}`);
      }
      throw asFileError(e);
    }
    await writeFileAtomic(p.config, `${JSON.stringify(config, null, 2)}\n`);
    return p;
  }

  async load(name: string): Promise<VmConfig> {
    const p = this.paths(name);
    let text: string;
    try {
      text = await readFile(p.config, "utf8");
    } catch (e) {
      const dirThere = await stat(p.dir).then(
        (st) => st.isDirectory(),
        () => false,
      );
      if (!dirThere) throw vmError("VM_ERR_NOT_FOUND", `no VM named '${name}' in ${this.stateDir}`, { name });
      // The VM's directory is there but its configuration is not readable: say which file.
      throw asFileError(e, p.config);
    }
    let c: VmConfig;
    try {
      c = JSON.parse(text) as VmConfig;
    } catch {
      throw vmError("VM_ERR_INVALID_CONFIG", `${p.config} is not valid JSON`);
    }
    if (typeof c === "object" && c !== null && c.name !== name) {
      // A config copied from another VM's directory would start that VM's identity here.
      throw vmError(
        "VM_ERR_INVALID_CONFIG",
        `name: ${p.config} names VM ${JSON.stringify(String(c.name))}, not '${name}'`,
        {
          field: "name",
        },
      );
    }
    validateConfig(c);
    return c;
  }

  async save(config: VmConfig): Promise<void> {
    validateConfig(config);
    await writeFileAtomic(this.paths(config.name).config, `${JSON.stringify(config, null, 2)}\n`);
  }

  async list(): Promise<string[]> {
    try {
      const names = await readdir(this.vmsDir);
      const out: string[] = [];
      for (const n of names.sort()) if (await this.exists(n).catch(() => false)) out.push(n);
      return out;
    } catch {
      return [];
    }
  }

  async remove(name: string): Promise<void> {
    await rm(this.paths(name).dir, { recursive: true, force: true });
  }

  /**
   * Takes the VM's lock (a file holding our pid, created exclusively). A lock whose process is
   * gone is stale and taken over.
   */
  async lock(name: string): Promise<VmLock> {
    const p = this.paths(name);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await open(p.lock, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
        await fh.writeFile(String(process.pid));
        await fh.close();
        let released = false;
        return {
          release: async () => {
            if (released) return;
            released = true;
            await rm(p.lock, { force: true });
          },
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") {
          throw vmError("VM_ERR_NOT_FOUND", `no VM named '${name}' in ${this.stateDir}`, { name });
        }
        if ((e as NodeJS.ErrnoException).code !== "EEXIST")
          throw asFileError(e, p.lock, "the VM's lock file");
        const holder = Number((await readFile(p.lock, "utf8").catch(() => "")).trim());
        if (Number.isInteger(holder) && holder > 0 && pidAlive(holder) && holder !== process.pid) {
          throw vmError("VM_ERR_LOCKED", `VM '${name}' is locked by process ${holder}`, {
            pid: holder,
          });
        }
        await rm(p.lock, { force: true });
      }
    }
    throw vmError("VM_ERR_LOCKED", `VM '${name}' is locked`);
  }

  /** Runs `fn` holding the VM's lock. */
  async withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const l = await this.lock(name);
    try {
      return await fn();
    } finally {
      await l.release();
    }
  }
}
