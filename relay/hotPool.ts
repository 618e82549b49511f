// The relay's per-change statements (the claim, the batched results and intents) go through a
// small plain node-postgres pool, as named prepared statements; everything else uses the
// slonik pool. slonik's per-query machinery (interceptors, tracing spans, row transforms)
// was a tenth of the time from a commit to its Google call (bench: the claim's round trip
// 1.73 -> 1.41 ms p50). The SQL is a call of a function in db/migrations, and rows are
// still validated with zod where they enter (relay/outbox.ts, relay/record.ts).
import pg from 'pg';
import type { ZodType, ZodTypeDef } from 'zod';

// bigint and bigint[] as numbers (outbox ids stay far below 2^53), as slonik's parsers do.
type TypeId = Parameters<typeof pg.types.getTypeParser>[0];
const INT8 = 20;
const INT8_ARRAY = 1016;
const parseInt8Array = pg.types.getTypeParser(INT8_ARRAY as TypeId) as (value: string) => string[];
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: TypeId, format?: 'text' | 'binary') => {
    if ((oid as number) === INT8) return (value: string) => Number.parseInt(value, 10);
    if ((oid as number) === INT8_ARRAY) return (value: string) => parseInt8Array(value).map((v) => Number.parseInt(v, 10));
    return pg.types.getTypeParser(oid, format);
  }) as typeof pg.types.getTypeParser,
};

export type HotPool = {
  /** Runs a named prepared statement and validates every row with `schema`. */
  rows<T>(name: string, text: string, values: unknown[], schema: ZodType<T, ZodTypeDef, unknown>): Promise<T[]>;
  /** Runs a named prepared statement that returns nothing we need. */
  run(name: string, text: string, values: unknown[]): Promise<void>;
  end(): Promise<void>;
};

export function createHotPool(
  databaseUrl: string,
  opts: { applicationName: string; max: number; statementTimeoutMs: number; idleInTransactionTimeoutMs: number },
): HotPool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    application_name: opts.applicationName,
    max: opts.max,
    statement_timeout: opts.statementTimeoutMs,
    idle_in_transaction_session_timeout: opts.idleInTransactionTimeoutMs,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 60_000,
    types,
  });
  // An idle connection dropped by a PostgreSQL restart: the pool replaces it on next use.
  pool.on('error', () => {});
  return {
    async rows(name, text, values, schema) {
      const result = await pool.query({ name, text, values });
      return result.rows.map((row) => schema.parse(row));
    },
    async run(name, text, values) {
      await pool.query({ name, text, values });
    },
    end: () => pool.end(),
  };
}
