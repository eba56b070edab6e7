/**
 * PostgreSQL driver (node-postgres pool). Several HGS nodes share one database: nonces,
 * registrations, policies and the audit chain live there, so any node can answer any request.
 * `?` placeholders become `$1…$n`; BIGINT (int8) is parsed to a JS number.
 */
import pg from "pg";
import type { BulwarkError } from "../../core/errors.js";
import { hgsError } from "../../attest/errors.js";
import type { Driver, Row, SqlValue, Tx } from "./driver.js";

const INT8_OID = 20;

function toPg(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

function storeError(e: unknown): BulwarkError {
  return hgsError("HGS_ERR_STORE", `PostgreSQL: ${(e as Error).message}`, {}, { cause: e });
}

function queryable(client: pg.Pool | pg.PoolClient): Tx {
  return {
    async query<T extends object>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
      try {
        return (await client.query(toPg(sql), params as unknown[])).rows as T[];
      } catch (e) {
        throw storeError(e);
      }
    },
    async queryRows(sql: string, params: readonly SqlValue[] = []): Promise<unknown[][]> {
      try {
        return (await client.query({ text: toPg(sql), values: params as unknown[], rowMode: "array" }))
          .rows as unknown[][];
      } catch (e) {
        throw storeError(e);
      }
    },
    async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
      try {
        return (await client.query(toPg(sql), params as unknown[])).rowCount ?? 0;
      } catch (e) {
        throw storeError(e);
      }
    },
    async lock(key: number): Promise<void> {
      try {
        await client.query("SELECT pg_advisory_xact_lock($1)", [key]);
      } catch (e) {
        throw storeError(e);
      }
    },
  };
}

export class PostgresDriver implements Driver {
  readonly kind = "postgres" as const;
  readonly types = { blob: "BYTEA", bigint: "BIGINT" } as const;
  private readonly direct: Tx;

  private constructor(private readonly pool: pg.Pool) {
    this.direct = queryable(pool);
  }

  static async open(url: string): Promise<PostgresDriver> {
    const pool = new pg.Pool({
      connectionString: url,
      max: 8,
      types: {
        getTypeParser: ((oid: number, format?: "text" | "binary") =>
          oid === INT8_OID
            ? (v: string) => Number(v)
            : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    });
    // An idle client whose server went away must not crash the process.
    pool.on("error", () => undefined);
    try {
      const c = await pool.connect();
      c.release();
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw storeError(e);
    }
    return new PostgresDriver(pool);
  }

  query<T extends object = Row>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return this.direct.query<T>(sql, params);
  }

  queryRows(sql: string, params: readonly SqlValue[] = []): Promise<unknown[][]> {
    return this.direct.queryRows(sql, params);
  }

  run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return this.direct.run(sql, params);
  }

  async transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (e) {
      throw storeError(e);
    }
    try {
      await client.query("BEGIN");
      const out = await fn(queryable(client));
      await client.query("COMMIT");
      return out;
    } catch (e) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw e;
    } finally {
      client.release();
    }
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
