import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { runner } from 'node-pg-migrate';

export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../db/migrations');
const MIGRATIONS_TABLE = 'schema_migrations';
// node-pg-migrate's own lock is pg_try_advisory_lock, which makes a second concurrent
// `npm run migrate` fail with "Another migration is already running". We take a blocking
// session lock first instead, so several hosts migrating at once all succeed: the first
// applies, the others wait and then find nothing pending.
const MIGRATION_LOCK_KEY = 7241865325823964n;

export type MigrateOptions = { log?: (message: string) => void };

// Our files are numbered 0001_, 0002_...; node-pg-migrate orders them by that number but logs
// that it is not a timestamp, for every file and every run. That line is noise.
function migrationLogger(log: (message: string) => void) {
  const noise = (m: string) => /Can't determine timestamp/.test(m);
  return { debug: () => {}, info: log, warn: log, error: (m: string) => (noise(m) ? undefined : log(m)) };
}

/** Applies every pending migration in db/migrations; returns the names applied. */
export async function migrate(databaseUrl: string, options: MigrateOptions = {}): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'cassius-migrate' });
  await client.connect();
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
    const applied = await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      migrationsTable: MIGRATIONS_TABLE,
      direction: 'up',
      noLock: true,
      checkOrder: true,
      logger: migrationLogger(options.log ?? (() => {})),
    });
    return applied.map((m) => m.name);
  } finally {
    await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]).catch(() => {});
    await client.end();
  }
}

/** True when every migration file has been applied (used by /readyz). */
export async function pendingMigrations(databaseUrl: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const applied = await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      migrationsTable: MIGRATIONS_TABLE,
      direction: 'up',
      noLock: true,
      dryRun: true,
      logger: migrationLogger(() => {}),
    });
    return applied.map((m) => m.name);
  } finally {
    await client.end();
  }
}
