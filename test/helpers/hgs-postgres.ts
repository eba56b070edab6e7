/**
 * A private PostgreSQL 15 cluster for HGS tests: initdb into a temp directory as the
 * `postgres` user (PostgreSQL refuses to run as root), listening only on a unix socket in that
 * directory with a random port number, trust authentication. `stop()` runs `pg_ctl stop -m
 * fast` and removes the directory; tests call it in teardown.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const BIN = "/usr/lib/postgresql/15/bin";

export interface PgCluster {
  readonly url: string;
  readonly dir: string;
  stop(): void;
}

function asPostgres(cmd: string, args: string[]): string {
  return execFileSync("runuser", ["-u", "postgres", "--", path.join(BIN, cmd), ...args], {
    encoding: "utf8",
    timeout: 60_000,
  });
}

export interface PgOptions {
  /**
   * Keep fsync on (PostgreSQL's default durability: a commit is on disk when it returns).
   * Tests turn it off for speed; bench/hgs-load keeps it on so its HA row is honest.
   */
  readonly durable?: boolean;
}

export function startPostgres(opts: PgOptions = {}): PgCluster {
  if (!existsSync(path.join(BIN, "initdb")))
    throw new Error("PostgreSQL 15 not found: apt-get install postgresql-15");
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  const dir = mkdtempSync(path.join(tmpdir(), "bulwark-hgs-pg-"));
  chownSync(dir, uid, gid);
  const data = path.join(dir, "data");
  const port = 20000 + Math.floor(Math.random() * 30000);
  let started = false;
  const stop = () => {
    if (started)
      spawnSync(
        "runuser",
        ["-u", "postgres", "--", path.join(BIN, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"],
        { timeout: 60_000 },
      );
    started = false;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    asPostgres("initdb", ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
    const serverOpts = `-k ${dir} -p ${port} -c listen_addresses='' ${opts.durable ? "" : "-c fsync=off "}-c max_connections=60 -c shared_buffers=32MB`;
    asPostgres("pg_ctl", [
      "-D",
      data,
      "-o",
      serverOpts,
      "-l",
      path.join(dir, "log"),
      "-w",
      "-t",
      "60",
      "start",
    ]);
    started = true;
    return {
      url: `postgres://postgres@localhost:${port}/postgres?host=${encodeURIComponent(dir)}`,
      dir,
      stop,
    };
  } catch (e) {
    stop();
    throw e;
  }
}
