// `npm start` as a person runs it (tsx src/start.ts, its own process group like a terminal
// job): demo mode with an embedded PostgreSQL under a data directory of its own, the URLs
// printed, the page working in Chromium through the emulator's consent page, Ctrl-C stopping
// everything in order with no PostgreSQL left behind, a second start reusing the data, a
// killed `npm start` still taking PostgreSQL down, and production mode without demo routes.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { freePort } from '../../src/shared/embeddedPostgres';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { TEST_TOKEN_KEY } from '../helpers/google';
import { consent, eventually, launchChromium, textOf, waitText, watchProblems, type World } from './harness';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');
let dataDir: string;
let browser: Browser;

type Run = { child: ChildProcess; output: () => string; exited: Promise<number | null>; port: number; emulatorPort: number };

function cleanEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(DATABASE_URL|GOOGLE_|APP_SECRET|TOKEN_ENCRYPTION|DEMO_MODE|PUBLIC_URL|PORT|EMULATOR_|RELAY_|NODE_TEST|NODE_OPTIONS)/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...extra };
}

async function npmStart(extra: NodeJS.ProcessEnv = {}): Promise<Run> {
  const port = await freePort();
  const emulatorPort = await freePort();
  const child = spawn(TSX, ['src/start.ts'], {
    cwd: ROOT,
    detached: true, // its own process group, as a terminal runs a job
    stdio: ['ignore', 'pipe', 'pipe'],
    env: cleanEnv({ CASSIUS_DATA_DIR: dataDir, PORT: String(port), EMULATOR_PORT: String(emulatorPort), ...extra }),
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited, port, emulatorPort };
}

async function ready(run: Run, ms = 60_000): Promise<string> {
  return eventually(
    () => {
      if (run.child.exitCode !== null) throw new Error(`npm start exited ${run.child.exitCode}:\n${run.output()}`);
      return run.output().includes('Press Ctrl-C to stop.') ? run.output() : null;
    },
    ms,
    () => `npm start ready:\n${run.output()}`,
  );
}

const postmasterPid = () => Number.parseInt(fs.readFileSync(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0] ?? '', 10);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
/** Any process still running on our data directory (PostgreSQL and its children). */
const leftovers = () =>
  fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dataDir);
      } catch {
        return false;
      }
    });

async function exitCode(run: Run, ms = 30_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      run.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`npm start did not exit:\n${run.output()}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

before(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cassius-start-'));
  fs.chmodSync(dataDir, 0o755);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  for (const pid of leftovers()) process.kill(Number(pid), 'SIGKILL');
  fs.rmSync(dataDir, { recursive: true, force: true });
});

test('first npm start: demo mode said loudly, URLs printed, the page works through the emulator; Ctrl-C stops all in order', async () => {
  const started = Date.now();
  const run = await npmStart();
  const out = await ready(run);
  const seconds = (Date.now() - started) / 1000;
  assert.ok(seconds < 60, `ready in ${seconds} s`);
  assert.match(out, /DEMO MODE: no GOOGLE_CLIENT_ID is set/);
  assert.match(out, /seeded the demo clinic/);
  const page = `http://localhost:${run.port}/settings/integrations/google-calendar`;
  assert.ok(out.includes(`Settings page:  ${page}`), out);
  for (const email of ['admin@demo.clinic', 'alice@demo.clinic', 'bob@demo.clinic']) {
    assert.ok(out.includes(`http://localhost:${run.port}/demo/login?as=${email}`), `login link for ${email}`);
  }
  assert.ok(fs.existsSync(path.join(dataDir, 'demo-secrets.json')));
  assert.equal(fs.statSync(path.join(dataDir, 'demo-secrets.json')).mode & 0o077, 0, 'demo secrets readable by the owner only');

  // A person opens the admin link and connects the clinic calendar through the consent page.
  const base = `http://localhost:${run.port}`;
  const emulatorUrl = `http://127.0.0.1:${run.emulatorPort}`;
  const world = { base, emu: { url: emulatorUrl }, shot: async () => '' } as unknown as World;
  const context = await browser.newContext();
  const tab = await context.newPage();
  const problems = watchProblems(tab, base);
  await tab.goto(`${base}/demo/login?as=admin@demo.clinic`);
  await tab.waitForSelector('body[data-ready="true"]');
  assert.equal(await textOf(tab, '#org-status'), 'Not connected');
  await tab.click('#org-connect');
  await consent(tab, world, { account: 'admin@demo.clinic', decision: 'allow' });
  await waitText(tab, '#org-count-synced', /^12$/, 20_000);
  const events = (await (await fetch(`${emulatorUrl}/__emulator/calendars/admin%40demo.clinic/events`)).json()) as unknown[];
  assert.equal(events.length, 12);
  assert.deepEqual(problems.check(), []);
  await context.close();

  const pid = postmasterPid();
  assert.ok(alive(pid));
  process.kill(-run.child.pid!, 'SIGINT'); // Ctrl-C: the whole foreground group gets it
  assert.equal(await exitCode(run), 0);
  const log = run.output();
  const order = ['"msg":"relay stopped"', '"msg":"server stopped"', '"msg":"emulator stopped"', '"msg":"postgres stopped"', '"msg":"all stopped"'].map((m) => log.indexOf(m));
  assert.ok(order.every((i) => i > 0), `every step logged:\n${log}`);
  assert.deepEqual([...order].sort((a, b) => a - b), order, 'relay, server, emulator, then postgres');
  assert.equal(alive(pid), false, 'no PostgreSQL left running');
  assert.deepEqual(leftovers(), []);
});

test('second npm start reuses the data (no new seed, same secrets); SIGTERM stops it', async () => {
  const secrets = fs.readFileSync(path.join(dataDir, 'demo-secrets.json'), 'utf8');
  const run = await npmStart();
  const out = await ready(run);
  assert.match(out, /existing data kept/);
  assert.doesNotMatch(out, /seeded the demo clinic/);
  assert.doesNotMatch(out, /initialising PostgreSQL/);
  // The emulator starts empty: the page will ask to reconnect, and the banner says why.
  assert.match(out, /show "Reconnect needed" on the page/);
  assert.equal(fs.readFileSync(path.join(dataDir, 'demo-secrets.json'), 'utf8'), secrets);
  const status = await fetch(`http://127.0.0.1:${run.port}/readyz`);
  assert.equal(status.status, 200);
  const pid = postmasterPid();
  process.kill(run.child.pid!, 'SIGTERM');
  assert.equal(await exitCode(run), 0);
  assert.equal(alive(pid), false);
  assert.deepEqual(leftovers(), []);
});

test('a killed npm start (SIGKILL) still takes PostgreSQL down, and the next start works', async () => {
  const run = await npmStart();
  await ready(run);
  const pid = postmasterPid();
  // tsx's process and the node process under it: kill both hard, nothing can clean up there.
  process.kill(-run.child.pid!, 'SIGKILL');
  await eventually(() => !alive(pid), 30_000, 'PostgreSQL stopped after its npm start was killed');
  await eventually(() => leftovers().length === 0, 30_000, 'no process left on the data directory');
  const again = await npmStart();
  await ready(again);
  process.kill(-again.child.pid!, 'SIGINT');
  assert.equal(await exitCode(again), 0);
});

let prodDb: TestDatabase | undefined;
after(async () => {
  await prodDb?.drop();
});

test('production mode: DATABASE_URL and Google variables set: no emulator, no demo routes; a missing secret is one clear line', async () => {
  prodDb = await createTestDatabase();
  const google = {
    GOOGLE_CLIENT_ID: 'prod-client.apps.googleusercontent.com',
    GOOGLE_CLIENT_SECRET: 'prod-secret',
    GOOGLE_AUTH_URL: 'http://127.0.0.1:9/o/oauth2/v2/auth',
    GOOGLE_TOKEN_URL: 'http://127.0.0.1:9/token',
    GOOGLE_REVOKE_URL: 'http://127.0.0.1:9/revoke',
    GOOGLE_API_URL: 'http://127.0.0.1:9/',
  };
  const missing = await npmStart({ DATABASE_URL: prodDb.url, ...google, TOKEN_ENCRYPTION_KEY: TEST_TOKEN_KEY });
  assert.equal(await exitCode(missing), 1);
  assert.match(missing.output(), /APP_SECRET is required outside demo mode/);

  const run = await npmStart({ DATABASE_URL: prodDb.url, ...google, TOKEN_ENCRYPTION_KEY: TEST_TOKEN_KEY, APP_SECRET: 'production-secret-0123456789abcdef0123456789' });
  const out = await ready(run);
  assert.doesNotMatch(out, /DEMO MODE/);
  assert.doesNotMatch(out, /demo\/login/);
  const base = `http://127.0.0.1:${run.port}`;
  assert.equal((await fetch(`${base}/demo/login?as=admin@demo.clinic`, { redirect: 'manual' })).status, 404);
  const settings = await fetch(`${base}/settings/integrations/google-calendar`);
  assert.equal(settings.status, 200);
  assert.match(await settings.text(), /data-demo="0"/);
  process.kill(run.child.pid!, 'SIGTERM');
  assert.equal(await exitCode(run), 0);
});
