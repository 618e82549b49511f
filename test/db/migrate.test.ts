// `npm run migrate` is idempotent and safe from several hosts at once.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { test } from 'node:test';
import pg from 'pg';
import { adminQuery } from '../helpers/db';

const run = promisify(execFile);

function databaseUrl(name: string): string {
  const url = new URL(process.env.TEST_ADMIN_DATABASE_URL!);
  url.pathname = `/${name}`;
  return url.toString();
}

test('three concurrent `npm run migrate` all succeed, then a rerun applies nothing', async () => {
  const name = `cassius_m_${randomBytes(4).toString('hex')}`;
  await adminQuery(`create database ${name}`);
  try {
    const env = { ...process.env, DATABASE_URL: databaseUrl(name) };
    const runs = await Promise.all([1, 2, 3].map(() => run('npm', ['run', '-s', 'migrate'], { env, cwd: process.cwd() })));
    const outputs = runs.map((r) => r.stdout);
    assert.equal(outputs.filter((o) => /applied \d+ migration/.test(o)).length, 1, outputs.join('\n'));
    assert.equal(outputs.filter((o) => /schema is up to date/.test(o)).length, 2, outputs.join('\n'));

    const again = await run('npm', ['run', '-s', 'migrate'], { env });
    assert.match(again.stdout, /schema is up to date/);

    const client = new pg.Client({ connectionString: databaseUrl(name) });
    await client.connect();
    const tables = await client.query(`select table_name from information_schema.tables where table_schema = 'public' order by 1`);
    await client.end();
    const names = tables.rows.map((r) => r.table_name);
    for (const table of ['organisations', 'users', 'appointments', 'calendar_integrations', 'appointment_external_links', 'sync_outbox']) {
      assert.ok(names.includes(table), `${table} exists`);
    }
  } finally {
    await adminQuery(`drop database if exists ${name} with (force)`);
  }
});

test('npm run migrate without DATABASE_URL names the variable and exits 1', async () => {
  const env = { ...process.env };
  delete env.DATABASE_URL;
  await assert.rejects(run('npm', ['run', '-s', 'migrate'], { env }), (error: Error & { code?: number; stderr?: string }) => {
    assert.equal(error.code, 1);
    assert.match(error.stderr ?? '', /DATABASE_URL is required/);
    return true;
  });
});
