/**
 * The narrow storage driver every HGS store goes through (kysely-style: the service speaks SQL
 * with `?` placeholders; a driver adapts placeholders, types and transactions to its engine).
 * Two drivers exist: SQLite embedded (default, one node) and PostgreSQL by URL (several nodes
 * sharing one database; any node can answer any request).
 *
 * Values: byte strings are Buffers (BLOB / BYTEA), integers are JS numbers (BIGINT is parsed
 * to a number: every integer we store is < 2^53), text is text.
 */
export type SqlValue = string | number | Buffer | null;
export type Row = Record<string, unknown>;

export interface Queryable {
  query<T extends object = Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  /**
   * Rows as arrays of column values, in the SELECT's column order: no object per row, which is
   * most of the cost of a long scan (the audit chain's verification reads every entry).
   */
  queryRows(sql: string, params?: readonly SqlValue[]): Promise<unknown[][]>;
  /** Runs a statement; resolves to the number of rows it changed. */
  run(sql: string, params?: readonly SqlValue[]): Promise<number>;
}

export interface Tx extends Queryable {
  /** Serialises this transaction with every other holder of `key` across all nodes (pg advisory lock). */
  lock(key: number): Promise<void>;
}

export interface Driver extends Queryable {
  readonly kind: "sqlite" | "postgres";
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /** Dialect words used by migrations: BLOB/BYTEA, INTEGER/BIGINT. */
  readonly types: { readonly blob: string; readonly bigint: string };
}

/** A `--db` value: `sqlite:PATH` or `postgres://…` / `postgresql://…`. */
export type DbSpec =
  { readonly kind: "sqlite"; readonly path: string } | { readonly kind: "postgres"; readonly url: string };

export function parseDbSpec(text: string): DbSpec | undefined {
  if (text.startsWith("sqlite:")) {
    const path = text.slice("sqlite:".length);
    return path ? { kind: "sqlite", path } : undefined;
  }
  if (/^postgres(ql)?:\/\//.test(text)) return { kind: "postgres", url: text };
  return undefined;
}

/** Opens the driver for a spec (lazily imports the engine so SQLite users never load pg). */
export async function openDriver(spec: DbSpec): Promise<Driver> {
  if (spec.kind === "sqlite") {
    const { SqliteDriver } = await import("./sqlite.js");
    return SqliteDriver.open(spec.path);
  }
  const { PostgresDriver } = await import("./postgres.js");
  return PostgresDriver.open(spec.url);
}
