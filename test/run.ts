// `npm test`: runs every test/**/*.test.ts with Node's test runner against real PostgreSQL.
// Uses TEST_DATABASE_URL when set; otherwise starts an embedded cluster in a temp dir and
// stops it at the end. The schema is migrated once into a template database; each test file
// clones it (CREATE DATABASE ... TEMPLATE), so files run in parallel in isolation.
// Arguments narrow the run: `npm test -- test/db` or `npm test -- test/db/capture.test.ts`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { migrate } from '../src/shared/migrate';
import { startEmbeddedPostgres, type EmbeddedCluster } from '../src/shared/embeddedPostgres';

const root = path.resolve(import.meta.dirname, '..');
const filters = process.argv.slice(2).map((a) => path.resolve(a));
const files = fs
  .readdirSync(path.join(root, 'test'), { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.test.ts'))
  .map((f) => path.join(root, 'test', f))
  .filter((f) => filters.length === 0 || filters.some((p) => f.startsWith(p)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${process.argv.slice(2).join(' ')}`);
  process.exit(1);
}

let cluster: EmbeddedCluster | undefined;
let adminUrl = process.env.TEST_DATABASE_URL;
if (!adminUrl) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cassius-test-pg-'));
  fs.chmodSync(dataDir, 0o777);
  // Durability is irrelevant for a throwaway cluster; these make it much faster.
  cluster = await startEmbeddedPostgres({
    dataDir: path.join(dataDir, 'data'),
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: 400 },
  });
  adminUrl = cluster.url;
  console.log(`embedded PostgreSQL on port ${cluster.port} (set TEST_DATABASE_URL to use a server of your own)`);
}

const template = `cassius_tpl_${process.pid}_${Date.now().toString(36)}`;
const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`create database ${template}`);
const templateUrl = new URL(adminUrl);
templateUrl.pathname = `/${template}`;
await migrate(templateUrl.toString());
// Nobody may connect to a template while it is cloned.
await admin.query(`alter database ${template} allow_connections false`);

const concurrency = process.env.TEST_CONCURRENCY ?? '4';
const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-timeout=300000', ...files],
  {
    stdio: 'inherit',
    env: { ...process.env, TEST_ADMIN_DATABASE_URL: adminUrl, TEST_TEMPLATE_DATABASE: template },
  },
);
const code: number = await new Promise((resolve) => child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0))));

await admin.query(`alter database ${template} allow_connections true`).catch(() => {});
await admin.query(`drop database if exists ${template} with (force)`).catch(() => {});
await admin.end();
if (cluster) {
  await cluster.stop();
  fs.rmSync(path.dirname(cluster.dataDir), { recursive: true, force: true });
}
process.exit(code);
