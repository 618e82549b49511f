// One slonik pool per process. SQL is written as SQL (tagged templates); rows are typed and
// validated with zod at the edge: `pool.one(sql.type(Schema)\`select ...\`)`.
import {
  createPool,
  createTypeParserPreset,
  SchemaValidationError,
  sql,
  type ClientConfigurationInput,
  type DatabasePool,
  type Interceptor,
  type QueryResultRow,
} from 'slonik';

export { sql };
export type { DatabasePool };
export type Db = DatabasePool;

// Validates every row of a `sql.type(zodSchema)` query against its schema. Synchronously: our
// schemas have no async refinements, and slonik runs an async row transform through a promise
// limiter (p-limit) with a promise per row.
const resultParser: Interceptor = {
  name: 'zod-result-parser',
  transformRow: (context, query, row) => {
    const { resultParser: schema } = context;
    if (!schema) return row;
    const parsed = schema.safeParse(row);
    if (!parsed.success) throw new SchemaValidationError(query, row, parsed.error.issues);
    return parsed.data as QueryResultRow;
  },
};

// Timestamps as ISO-8601 strings (slonik's default is epoch milliseconds), bigints as numbers.
const typeParsers = [
  ...createTypeParserPreset().filter((p) => !['timestamptz', 'timestamp', 'int8'].includes(p.name)),
  { name: 'timestamptz', parse: (value: string) => new Date(value).toISOString() },
  { name: 'timestamp', parse: (value: string) => new Date(`${value}Z`).toISOString() },
  { name: 'int8', parse: (value: string) => Number.parseInt(value, 10) },
];

export type DbOptions = Omit<ClientConfigurationInput, 'interceptors' | 'typeParsers'> & {
  applicationName?: string;
};

export async function createDb(databaseUrl: string, options: DbOptions = {}): Promise<Db> {
  const { applicationName, ...rest } = options;
  const url = new URL(databaseUrl);
  if (applicationName && !url.searchParams.has('application_name')) url.searchParams.set('application_name', applicationName);
  return createPool(url.toString(), {
    interceptors: [resultParser],
    typeParsers,
    captureStackTrace: false,
    // slonik's default runs DISCARD ALL each time a connection goes back to the pool: one more
    // round trip per query. Nothing here leaves session state on a pooled connection (locks
    // are transaction-scoped, LISTEN has its own client), so there is nothing to discard.
    resetConnection: async () => {},
    ...rest,
  });
}
