// The benchmark's PostgreSQL: an embedded cluster with durable defaults (fsync, synchronous
// commit and full-page writes on, as in production) in a temp dir, or BENCH_DATABASE_URL.
// Every scenario round gets fresh databases cloned from migrated templates, so rounds start
// from identical state and ours and the peer never share a table.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrate } from '../../src/shared/migrate';
import { startEmbeddedPostgres, type EmbeddedCluster } from '../../src/shared/embeddedPostgres';
import { createDb, type Db } from '../../src/shared/db';
import { log } from './util';

export type BenchCluster = {
  adminUrl: string;
  /** A small pool on the admin database, for statistics (never counted in a bench database). */
  admin: pg.Pool;
  /** What the figures' conditions say about the server. */
  description: string;
  /** pg_stat_statements is loaded (round trips per row can be counted). */
  statements: boolean;
  stop(): Promise<void>;
};

/** Settings beyond PostgreSQL's defaults (none touch durability). */
const EMBEDDED_SETTINGS = {
  max_connections: 300,
  shared_preload_libraries: 'pg_stat_statements',
  'pg_stat_statements.track': 'top',
  // Planning time per statement (unnamed statements are planned on every execution).
  'pg_stat_statements.track_planning': 'on',
};

export async function startCluster(): Promise<BenchCluster> {
  const given = process.env.BENCH_DATABASE_URL;
  if (given) {
    const statements = await canTrackStatements(given);
    const version = await serverVersion(given);
    const admin = new pg.Pool({ connectionString: given, max: 2 });
    admin.on('error', () => {});
    if (statements) await admin.query('create extension if not exists pg_stat_statements');
    return {
      adminUrl: given,
      admin,
      description: `PostgreSQL ${version} from BENCH_DATABASE_URL (its own settings)`,
      statements,
      stop: async () => {
        await admin.end().catch(() => {});
      },
    };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cassius-bench-pg-'));
  fs.chmodSync(dir, 0o777);
  let cluster: EmbeddedCluster;
  try {
    cluster = await startEmbeddedPostgres({ dataDir: path.join(dir, 'data'), settings: EMBEDDED_SETTINGS });
  } catch (error) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const version = await serverVersion(cluster.url);
  const settings = await showSettings(cluster.url, ['fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'wal_level']);
  const admin = new pg.Pool({ connectionString: cluster.url, max: 2 });
  admin.on('error', () => {});
  await admin.query('create extension if not exists pg_stat_statements');
  return {
    adminUrl: cluster.url,
    admin,
    description:
      `embedded PostgreSQL ${version} on this machine's disk, production-durable defaults (${settings}), ` +
      `max_connections 300, pg_stat_statements loaded`,
    statements: await canTrackStatements(cluster.url),
    async stop() {
      await admin.end().catch(() => {});
      await cluster.stop().catch(() => {});
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function serverVersion(url: string): Promise<string> {
  return withClient(url, async (c) => String((await c.query('show server_version')).rows[0].server_version).split(' ')[0]!);
}

async function showSettings(url: string, names: string[]): Promise<string> {
  return withClient(url, async (c) => {
    const parts: string[] = [];
    for (const name of names) parts.push(`${name}=${(await c.query(`show ${name}`)).rows[0][name]}`);
    return parts.join(', ');
  });
}

async function canTrackStatements(url: string): Promise<boolean> {
  return withClient(url, async (c) => {
    const loaded = (await c.query(`select setting from pg_settings where name = 'shared_preload_libraries'`)).rows[0]?.setting ?? '';
    return String(loaded).includes('pg_stat_statements');
  });
}

export function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function adminQuery(adminUrl: string, text: string): Promise<pg.QueryResult> {
  return withClient(adminUrl, (c) => c.query(text));
}

export type Template = { name: string; url: string };

/** A migrated database (plus `prepare` SQL) that scenario databases are cloned from. */
export async function createTemplate(
  cluster: BenchCluster,
  label: string,
  prepare?: (url: string) => Promise<void>,
): Promise<Template> {
  const name = `bench_tpl_${label}_${randomBytes(3).toString('hex')}`;
  await adminQuery(cluster.adminUrl, `create database ${name}`);
  const url = databaseUrl(cluster.adminUrl, name);
  await migrate(url);
  if (cluster.statements) await withClient(url, (c) => c.query('create extension if not exists pg_stat_statements'));
  if (prepare) await prepare(url);
  await adminQuery(cluster.adminUrl, `alter database ${name} allow_connections false`);
  return { name, url };
}

export async function dropTemplate(cluster: BenchCluster, template: Template): Promise<void> {
  await adminQuery(cluster.adminUrl, `alter database ${template.name} allow_connections true`).catch(() => {});
  await adminQuery(cluster.adminUrl, `drop database if exists ${template.name} with (force)`).catch(() => {});
}

export type BenchDb = {
  name: string;
  url: string;
  /** slonik pool, for the test helpers (fixtures, connectGoogle). */
  db: Db;
  /** plain pg pool, for the bench's own queries. */
  pool: pg.Pool;
  /** Closes the pools (their sessions' statistics are flushed when they end). */
  quiesce(): Promise<void>;
  drop(): Promise<void>;
};

const live = new Set<BenchDb>();

export async function cloneDatabase(cluster: BenchCluster, template: Template, label: string): Promise<BenchDb> {
  const name = `bench_${label}_${randomBytes(4).toString('hex')}`;
  await adminQuery(cluster.adminUrl, `create database ${name} template ${template.name}`);
  const url = databaseUrl(cluster.adminUrl, name);
  const db = await createDb(url, { maximumPoolSize: 4, applicationName: 'cassius-bench' });
  const pool = new pg.Pool({ connectionString: url, max: 12, application_name: 'cassius-bench' });
  pool.on('error', () => {}); // an idle session ended by DROP DATABASE ... WITH (FORCE)
  let ended = false;
  const handle: BenchDb = {
    name,
    url,
    db,
    pool,
    async quiesce() {
      if (ended) return;
      ended = true;
      await db.end().catch(() => {});
      await pool.end().catch(() => {});
    },
    async drop() {
      live.delete(handle);
      await handle.quiesce();
      await adminQuery(cluster.adminUrl, `drop database if exists ${name} with (force)`).catch((error: Error) =>
        log(`could not drop ${name}: ${error.message}`),
      );
    },
  };
  live.add(handle);
  return handle;
}

export async function dropAllDatabases(): Promise<void> {
  for (const handle of [...live]) await handle.drop();
}

/** Statement and commit counters of one database, for round trips per row. */
export type DbCounters = { statements: number | null; commits: number };

export async function dbCounters(cluster: BenchCluster, dbName: string): Promise<DbCounters> {
  const pool = cluster.admin;
  const commits = Number(
    (await pool.query('select xact_commit from pg_stat_database where datname = $1', [dbName])).rows[0]?.xact_commit ?? 0,
  );
  let statements: number | null = null;
  if (cluster.statements) {
    const row = (
      await pool.query(
        `select coalesce(sum(calls), 0)::float8 as calls from pg_stat_statements s
         join pg_database d on d.oid = s.dbid where d.datname = $1`,
        [dbName],
      )
    ).rows[0];
    statements = Number(row?.calls ?? 0);
  }
  return { statements, commits };
}
