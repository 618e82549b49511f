// Each test file (or test) gets a database of its own, cloned from the migrated template that
// test/run.ts prepared.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createDb, type Db } from '../../src/shared/db';
import { createHotPool, type HotPool } from '../../relay/hotPool';

/** `hot`: the relay's plain pool for its per-change statements (relay/hotPool.ts). */
export type TestDatabase = { url: string; name: string; db: Db; hot: HotPool; drop(): Promise<void> };

function adminUrl(): string {
  const url = process.env.TEST_ADMIN_DATABASE_URL;
  if (!url || !process.env.TEST_TEMPLATE_DATABASE) {
    throw new Error('run tests through `npm test` (test/run.ts prepares the database template)');
  }
  return url;
}

export async function adminQuery(text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: adminUrl() });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `cassius_t_${randomBytes(6).toString('hex')}`;
  await adminQuery(`create database ${name} template ${process.env.TEST_TEMPLATE_DATABASE}`);
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  const db = await createDb(url.toString(), { maximumPoolSize: 10 });
  const hot = createHotPool(url.toString(), { applicationName: 'cassius-test', max: 4, statementTimeoutMs: 30_000, idleInTransactionTimeoutMs: 30_000 });
  return {
    url: url.toString(),
    name,
    db,
    hot,
    async drop() {
      await hot.end();
      await db.end();
      await adminQuery(`drop database if exists ${name} with (force)`);
    },
  };
}

/** A plain pg client on a test database, for LISTEN and explicit transactions. */
export async function pgClient(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}
