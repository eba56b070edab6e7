/**
 * SQLite driver (better-sqlite3, embedded). WAL journal with synchronous=NORMAL: a commit
 * survives a crash of the HGS process (it is in the WAL), but an OS crash or power loss may
 * roll back the last transactions (the file stays consistent); FULL would fsync on every commit
 * and better-sqlite3 would block the event loop for each (~4 ms here). Use PostgreSQL with
 * synchronous_commit=on where power-loss durability of the audit log matters.
 * better-sqlite3 is synchronous, so a transaction
 * that awaits between statements could let another request's statements run inside it; a
 * promise queue serialises every operation behind the open transaction instead (a statement
 * arriving while nothing is open or queued runs at once).
 */
import Database from "better-sqlite3";
import { hgsError } from "../../attest/errors.js";
import type { Driver, Row, SqlValue, Tx } from "./driver.js";

export class SqliteDriver implements Driver {
  readonly kind = "sqlite" as const;
  readonly types = { blob: "BLOB", bigint: "INTEGER" } as const;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly stmts = new Map<string, Database.Statement>();
  private readonly rawStmts = new Map<string, Database.Statement>();

  private constructor(private readonly db: Database.Database) {}

  static open(path: string): SqliteDriver {
    try {
      const db = new Database(path);
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
      db.pragma("busy_timeout = 5000");
      db.pragma("foreign_keys = ON");
      return new SqliteDriver(db);
    } catch (e) {
      throw hgsError(
        "HGS_ERR_STORE",
        `cannot open SQLite database: ${(e as Error).message}`,
        {},
        { cause: e },
      );
    }
  }

  private prepare(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  private prepareRaw(sql: string): Database.Statement {
    let s = this.rawStmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql).raw(true);
      this.rawStmts.set(sql, s);
    }
    return s;
  }

  private direct: Tx = {
    query: <T extends object>(sql: string, params: readonly SqlValue[] = []) =>
      this.settle(() => this.prepare(sql).all(...params) as T[]),
    queryRows: (sql: string, params: readonly SqlValue[] = []) =>
      this.settle(() => this.prepareRaw(sql).all(...params) as unknown[][]),
    run: (sql: string, params: readonly SqlValue[] = []) =>
      this.settle(() => {
        const s = this.prepare(sql);
        if (s.reader) return s.all(...params).length;
        return s.run(...params).changes;
      }),
    lock: () => Promise.resolve(),
  };

  /** Runs a statement now; its outcome (or HGS_ERR_STORE) as a settled promise, never a throw. */
  private settle<T>(fn: () => T): Promise<T> {
    try {
      return Promise.resolve(this.wrap(fn));
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  private wrap<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw hgsError("HGS_ERR_STORE", `SQLite: ${(e as Error).message}`, {}, { cause: e });
    }
  }

  /**
   * Operations waiting behind an open transaction (or another queued operation). While none is,
   * a single statement runs at once: better-sqlite3 is synchronous, so nothing can interleave
   * with it, and the request saves the queue's promise hops.
   */
  private pending = 0;

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    this.pending++;
    const run = () => fn().finally(() => this.pending--);
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  query<T extends object = Row>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    if (this.pending === 0) return this.direct.query<T>(sql, params);
    return this.enqueue(() => this.direct.query<T>(sql, params));
  }

  queryRows(sql: string, params: readonly SqlValue[] = []): Promise<unknown[][]> {
    if (this.pending === 0) return this.direct.queryRows(sql, params);
    return this.enqueue(() => this.direct.queryRows(sql, params));
  }

  run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    if (this.pending === 0) return this.direct.run(sql, params);
    return this.enqueue(() => this.direct.run(sql, params));
  }

  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.enqueue(async () => {
      this.wrap(() => this.db.exec("BEGIN IMMEDIATE"));
      try {
        const out = await fn(this.direct);
        this.wrap(() => this.db.exec("COMMIT"));
        return out;
      } catch (e) {
        if (this.db.inTransaction) this.db.exec("ROLLBACK");
        throw e;
      }
    });
  }

  close(): Promise<void> {
    return this.enqueue(() => {
      this.db.close();
      return Promise.resolve();
    });
  }
}
