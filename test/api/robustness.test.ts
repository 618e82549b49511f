// Robustness of the HTTP surface: generated bodies and query strings never produce a 500 or
// another error shape; health and readiness; security headers; OpenAPI; request ids; no
// secret in the logs; configuration errors at start; graceful SIGTERM.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { buildApp } from '../../src/app';
import { createDb } from '../../src/shared/db';
import { adminQuery } from '../helpers/db';
import { createAppointment, createIntegration } from '../helpers/fixtures';
import { TEST_TOKEN_KEY } from '../helpers/google';
import { APP_SECRET, createOrg, errorCode, serverConfig, startHarness, type Harness, type Org } from './support';

const root = path.resolve(import.meta.dirname, '../..');
let h: Harness;
let org: Org;
let appointment: string;

before(async () => {
  h = await startHarness();
  org = await createOrg(h.db, 'Fuzz');
  appointment = await createAppointment(h.db, org.id);
  // An org integration without credentials: the integration routes get past "not connected".
  await createIntegration(h.db, org.id);
});
after(async () => {
  await h.close();
});

const ROUTES: [string, string][] = [
  ['POST', '/api/appointments'],
  ['GET', '/api/appointments'],
  ['GET', '/api/appointments/:id'],
  ['PATCH', '/api/appointments/:id'],
  ['POST', '/api/appointments/:id/cancel'],
  ['DELETE', '/api/appointments/:id'],
  ['POST', '/api/appointments/:id/sync'],
  ['GET', '/api/integrations/google/connect'],
  ['GET', '/api/integrations/google/callback'],
  ['GET', '/api/integrations/google/status'],
  ['GET', '/api/integrations/google/calendars'],
  ['PATCH', '/api/integrations/google/settings'],
  ['POST', '/api/integrations/google/disconnect'],
  ['POST', '/api/integrations/google/sync-now'],
  ['GET', '/api/me'],
  ['GET', '/healthz'],
  ['GET', '/nope'],
];

const KEYS = ['level', 'from', 'to', 'limit', 'login_hint', 'code', 'state', 'error', 'scope', 'title', 'starts_at', 'ends_at',
  'time_zone', 'assigned_user_id', 'description', 'location', 'calendar_id', 'sync_enabled', 'remove_events', '__proto__', 'constructor'];

const scalar = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme' }),
  fc.constantFrom('org', 'user', 'admin', '', 'null', '2030-01-01T00:00:00Z', '2030-02-30T10:00:00+01:00', 'Europe/Paris',
    'Mars/Base', '00000000-0000-4000-8000-000000000000', '-1', '1e309', 'NaN', '%00', '../../etc/passwd'),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
);
const value = fc.oneof(scalar, fc.array(scalar, { maxLength: 3 }), fc.dictionary(fc.constantFrom(...KEYS), scalar, { maxKeys: 3 }));
const bodyObject = fc.dictionary(fc.oneof(fc.constantFrom(...KEYS), fc.string()), value, { maxKeys: 8 });
const payload = fc.oneof(
  bodyObject.map((b) => ({ text: JSON.stringify(b), type: 'application/json' as string | undefined })),
  fc.jsonValue().map((v) => ({ text: JSON.stringify(v) ?? 'null', type: 'application/json' as string | undefined })),
  fc.string().map((s) => ({ text: s, type: 'application/json' as string | undefined })),
  fc.tuple(fc.string(), fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'multipart/form-data', 'application/json; charset=latin1')).map(([text, type]) => ({ text, type: type as string | undefined })),
  fc.constant({ text: '', type: undefined as string | undefined }),
);
const query = fc.array(fc.tuple(fc.oneof(fc.constantFrom(...KEYS), fc.string()), fc.oneof(scalar.map(String), fc.string())), { maxLength: 5 });
const id = fc.oneof(fc.constant('APPT'), fc.uuid(), fc.string({ minLength: 1 }));

describe('property: generated requests never produce a 500 or another error shape', () => {
  test('every route, authenticated and not', async () => {
    const admin = org.adminToken;
    let seen = 0;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ROUTES), id, query, payload, fc.constantFrom('admin', 'member', 'none'), async ([method, template], rawId, q, body, who) => {
        const idText = rawId === 'APPT' ? appointment : rawId;
        const url = `${template.replace(':id', encodeURIComponent(idText))}?${q.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')}`;
        const headers: Record<string, string> = {};
        if (body.type) headers['content-type'] = body.type;
        const token = who === 'admin' ? admin : who === 'member' ? org.memberToken : undefined;
        const r = await h.request(method as 'GET', url, { token, headers, ...(method === 'GET' || method === 'DELETE' && body.text === '' ? {} : { payload: body.text }) });
        seen++;
        assert.ok(r.status < 500, `${method} ${url} ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
        if (r.status >= 400) errorCode(r);
        if (r.status === 302) assert.ok(typeof r.headers.location === 'string');
        assert.ok(!/at \w+ \(|node_modules|\.ts:\d+/.test(r.text), `a stack trace leaked: ${r.text.slice(0, 300)}`);
      }),
      { numRuns: 600, seed: Number(process.env.FC_SEED ?? Date.now() % 100000) },
    );
    assert.equal(seen, 600);
  });
});

describe('health, readiness, headers, docs', () => {
  test('/healthz answers while the process is up', async () => {
    const r = await h.request('GET', '/healthz');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { status: 'ok' });
  });

  test('/readyz: ready on a migrated database, 503 on one with pending migrations or unreachable', async () => {
    const ready = await h.request('GET', '/readyz');
    assert.equal(ready.status, 200, ready.text);
    assert.deepEqual(ready.body, { status: 'ready' });

    const name = `cassius_empty_${process.pid}_${Date.now()}`;
    await adminQuery(`create database ${name}`);
    const url = new URL(process.env.TEST_ADMIN_DATABASE_URL!);
    url.pathname = `/${name}`;
    const db = await createDb(url.toString());
    const app = await buildApp({ config: serverConfig(url.toString(), 'http://127.0.0.1:9'), db, logger: false });
    try {
      const r = await app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(r.statusCode, 503);
      assert.equal(r.json().error.code, 'migrations_pending');
      assert.match(r.json().error.message, /0001_schema/);
    } finally {
      await app.close();
      await db.end();
      await adminQuery(`drop database if exists ${name} with (force)`);
    }

    // The database goes away under a running server.
    const gone = `cassius_gone_${process.pid}_${Date.now()}`;
    await adminQuery(`create database ${gone}`);
    const goneUrl = new URL(process.env.TEST_ADMIN_DATABASE_URL!);
    goneUrl.pathname = `/${gone}`;
    const goneDb = await createDb(goneUrl.toString(), { connectionTimeout: 1000 });
    const goneApp = await buildApp({ config: serverConfig(goneUrl.toString(), 'http://127.0.0.1:9'), db: goneDb, logger: false });
    try {
      await adminQuery(`drop database ${gone} with (force)`);
      const r = await goneApp.inject({ method: 'GET', url: '/readyz' });
      assert.equal(r.statusCode, 503);
      assert.equal(r.json().error.code, 'database_unavailable');
      assert.equal((await goneApp.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    } finally {
      await goneApp.close();
      await goneDb.end().catch(() => {});
    }
  });

  test('security headers, CSP allowing the page\'s own scripts and styles, request ids', async () => {
    const r = await h.request('GET', '/api/integrations/google/status', { token: org.adminToken });
    const csp = String(r.headers['content-security-policy']);
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /style-src 'self'(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.ok(r.headers['x-frame-options']);
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.match(String(r.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    const given = await h.request('GET', '/healthz', { headers: { 'x-request-id': 'trace-abc.123' } });
    assert.equal(given.headers['x-request-id'], 'trace-abc.123');
    const hostile = await h.request('GET', '/healthz', { headers: { 'x-request-id': 'bad id\r\nwith spaces' } });
    assert.notEqual(hostile.headers['x-request-id'], 'bad id\r\nwith spaces');
  });

  test('unknown routes and methods: 404 in the error shape', async () => {
    const r = await h.request('GET', '/api/nothing-here', { token: org.adminToken });
    assert.equal(r.status, 404);
    assert.equal(errorCode(r), 'not_found');
    const m = await h.request('PUT', '/api/appointments', { token: org.adminToken, body: {} });
    assert.equal(m.status, 404);
    errorCode(m);
  });

  test('the OpenAPI document at /docs lists every route with its schemas', async () => {
    const ui = await h.request('GET', '/docs/');
    assert.equal(ui.status, 200);
    assert.match(ui.text, /swagger/i);
    const doc = await h.request('GET', '/docs/json');
    assert.equal(doc.status, 200);
    const paths = doc.body.paths as Record<string, Record<string, unknown>>;
    for (const [method, route] of ROUTES.filter(([, r]) => r.startsWith('/api'))) {
      const key = route.replace(':id', '{id}');
      assert.ok(paths[key]?.[method.toLowerCase()], `${method} ${key} missing from OpenAPI`);
    }
    const create = paths['/api/appointments']?.post as { requestBody: { content: Record<string, { schema: { properties: object; additionalProperties: boolean } }> } };
    const schema = create.requestBody.content['application/json']!.schema;
    assert.ok('starts_at' in schema.properties);
    assert.equal(schema.additionalProperties, false);
  });
});

describe('logs', () => {
  test('no token, cookie, OAuth code or state in the request logs', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const { loggerOptions } = await import('../../src/app');
    const options = loggerOptions('trace') as object;
    const app = await buildApp({ config: serverConfig(h.t.url, 'http://127.0.0.1:9'), db: h.db, logger: { ...options, stream } as never });
    try {
      await app.inject({ method: 'GET', url: '/api/appointments', headers: { authorization: `Bearer ${org.adminToken}` } });
      await app.inject({ method: 'GET', url: '/api/appointments', headers: { cookie: `cassius_session=${org.memberToken}` } });
      await app.inject({ method: 'GET', url: '/api/integrations/google/callback?code=4/0ASECRETCODE&state=SECRETSTATE&scope=x', headers: { cookie: `cassius_session=${org.adminToken}` } });
    } finally {
      await app.close();
    }
    const all = lines.join('');
    assert.ok(all.includes('/api/integrations/google/callback'), 'requests are logged');
    assert.ok(all.includes('reqId'), 'with their request id');
    for (const secret of [org.adminToken, org.memberToken, 'SECRETCODE', 'SECRETSTATE', APP_SECRET]) {
      assert.ok(!all.includes(secret), `a secret reached the logs: ${secret.slice(0, 12)}...`);
    }
  });
});

describe('the server process', () => {
  const baseEnv = () => ({
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    DATABASE_URL: h.t.url,
    TOKEN_ENCRYPTION_KEY: TEST_TOKEN_KEY,
    GOOGLE_CLIENT_ID: 'id.apps.googleusercontent.com',
    GOOGLE_CLIENT_SECRET: 'secret',
    APP_SECRET,
    PORT: '0',
    LOG_LEVEL: 'info',
  });
  const run = (command: string, args: string[], env: Record<string, string>) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(command, args, { cwd: root, env });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });

  test('`npm run server` without APP_SECRET: one line naming it, exit 1', async () => {
    const env: Record<string, string> = baseEnv();
    delete env.APP_SECRET;
    const r = await run('npm', ['run', '--silent', 'server'], env);
    assert.equal(r.code, 1);
    const lines = r.stderr.split('\n').filter((l) => l.trim() && !l.startsWith('npm warn'));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /APP_SECRET/);
  });

  test('a short APP_SECRET and a bad TOKEN_ENCRYPTION_KEY are named too', async () => {
    const short = await run(process.execPath, ['--import', 'tsx', 'src/server.ts'], { ...baseEnv(), APP_SECRET: 'short' });
    assert.equal(short.code, 1);
    assert.match(short.stderr.trim(), /^Configuration error: APP_SECRET must be at least 32 bytes$/);
    const key = await run(process.execPath, ['--import', 'tsx', 'src/server.ts'], { ...baseEnv(), TOKEN_ENCRYPTION_KEY: 'abc' });
    assert.equal(key.code, 1);
    assert.match(key.stderr.trim(), /^Configuration error: TOKEN_ENCRYPTION_KEY/);
  });

  test('starts, serves, and stops cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], { cwd: root, env: baseEnv() });
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no start: ${out}`)), 60_000); // tsx start on a loaded 2-core CI machine
      child.stdout.on('data', (d) => {
        out += d;
        const m = /listening on (http:\/\/[\d.:]+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
    });
    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 200);
    const ready = await fetch(`${url}/readyz`);
    assert.equal(ready.status, 200);
    const code = await new Promise<number | null>((resolve) => {
      child.on('exit', (c) => resolve(c));
      child.kill('SIGTERM');
    });
    assert.equal(code, 0);
  });
});
