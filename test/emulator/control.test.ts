// The control surface (CONTRACT §8): HTTP routes, validation with field names, call log,
// reset, and `npm run emulator` (main.ts) starting and stopping cleanly.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startEmulator, type RunningEmulator } from './index.js';
import { calendarApi, connect, freshEmail, rejection, timed } from './helpers.js';

let emu: RunningEmulator;
before(async () => {
  emu = await startEmulator();
});
after(async () => {
  await emu.close();
});

async function control(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${emu.url}/__emulator${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: await res.json() };
}

test('bad control input is 400 with a message naming the field', async () => {
  const cases: [string, string, unknown, string][] = [
    ['POST', '/accounts', { email: 'not-an-email' }, 'email'],
    ['POST', '/accounts', { email: 'a@example.com', calendars: [{ summary: 'x', access_role: 'boss' }] }, 'calendars.0.access_role'],
    ['POST', '/accounts', { email: 'a@example.com', calendars: [{ access_role: 'reader' }] }, 'calendars.0.summary'],
    ['POST', '/accounts', { email: 'a@example.com', colour: 'red' }, 'colour'],
    ['POST', '/accounts', { email: 'a@example.com', time_zone: 'Mars/Base' }, 'time_zone'],
    ['POST', '/faults', { status: 'five hundred' }, 'status'],
    ['POST', '/faults', { count: 2 }, 'status'],
    ['POST', '/faults', { reason: 'noSuchReason' }, 'reason'],
    ['POST', '/faults', { path_prefix: 'calendar', status: 500 }, 'path_prefix'],
    ['PATCH', '/config', { rate_limit_status: 418 }, 'rate_limit_status'],
    ['PATCH', '/config', { tombstone_writes: 'maybe' }, 'tombstone_writes'],
    ['POST', '/clock', { advance_ms: 'soon' }, 'advance_ms'],
    ['POST', '/clock', {}, 'advance_ms'],
  ];
  for (const [method, path, body, fieldName] of cases) {
    const r = await control(method, path, body);
    assert.equal(r.status, 400, `${method} ${path} ${JSON.stringify(body)}`);
    assert.equal(r.json.field, fieldName, JSON.stringify(r.json));
    assert.ok(String(r.json.error).includes(fieldName), r.json.error);
  }
  const notJson = await control('POST', '/accounts', '{oops');
  assert.equal(notJson.status, 400);
  assert.match(notJson.json.error, /JSON/);
  assert.equal((await control('GET', '/nope')).status, 404);
  assert.equal((await control('POST', '/accounts/ghost@example.com/revoke')).status, 404);
});

test('accounts over HTTP: 201 with primary calendar = email (owner) and extra calendars; shared ids; 409 on repeat', async () => {
  const email = freshEmail('http');
  const created = await control('POST', '/accounts', {
    email,
    time_zone: 'Europe/Zurich',
    calendars: [
      { summary: 'Clinic', access_role: 'owner' },
      { id: 'team@group.calendar.google.com', summary: 'Team', access_role: 'writer' },
    ],
  });
  assert.equal(created.status, 201);
  assert.deepEqual(created.json.calendars[0], { id: email, summary: email, access_role: 'owner', time_zone: 'Europe/Zurich', primary: true });
  assert.match(created.json.calendars[1].id, /^[a-v0-9]{26}@group\.calendar\.google\.com$/);
  const friend = freshEmail('friend');
  const shared = await control('POST', '/accounts', { email: friend, calendars: [{ id: 'team@group.calendar.google.com', summary: 'Team', access_role: 'reader' }] });
  assert.equal(shared.json.calendars[1].access_role, 'reader');
  assert.equal((await control('POST', '/accounts', { email })).status, 409);
  const share = await control('POST', `/calendars/${encodeURIComponent(email)}/share`, { email: friend, access_role: 'writerWithoutPrivateAccess' });
  assert.equal(share.status, 200);
  assert.equal(emu.control.account(friend).calendars.find((c) => c.id === email)?.accessRole, 'writerWithoutPrivateAccess');
});

test('events and calls views: every event incl. deleted; calls with method, path, status, at, query, account, body', async () => {
  const email = freshEmail('views');
  emu.control.addAccount({ email });
  const { client } = await connect(emu, email);
  const api = calendarApi(emu, client);
  emu.control.clearCalls();
  const ev = (await api.events.insert({ calendarId: 'primary', sendUpdates: 'none', requestBody: { summary: 'V', ...timed('2030-01-01T10:00:00Z', '2030-01-01T11:00:00Z') } })).data;
  await api.events.delete({ calendarId: 'primary', eventId: ev.id ?? '', sendUpdates: 'none' });
  const events = await control('GET', `/calendars/${encodeURIComponent(email)}/events`);
  assert.equal(events.status, 200);
  assert.equal(events.json.length, 1);
  assert.equal(events.json[0].status, 'cancelled');
  assert.equal(events.json[0].kind, 'calendar#event');
  assert.equal((await control('GET', '/calendars/unknown%40example.com/events')).status, 404);

  const calls = (await control('GET', '/calls')).json as Record<string, unknown>[];
  assert.equal(calls.length, 2);
  const [insert, del] = calls;
  assert.equal(insert?.['method'], 'POST');
  assert.equal(insert?.['path'], '/calendar/v3/calendars/primary/events');
  assert.equal(insert?.['status'], 200);
  assert.ok(!Number.isNaN(Date.parse(String(insert?.['at']))));
  assert.deepEqual(insert?.['query'], { sendUpdates: 'none' });
  assert.equal(insert?.['account'], email);
  assert.equal((insert?.['body'] as { summary: string }).summary, 'V');
  assert.equal(del?.['status'], 204);
  assert.equal(del?.['sendUpdates'], 'none');
  const filtered = (await control('GET', '/calls?method=DELETE')).json as unknown[];
  assert.equal(filtered.length, 1);
  assert.equal((await control('GET', '/calls?path_prefix=/token')).json.length, 0);
});

test('faults and config over HTTP: list, delete, snake_case config round trip', async () => {
  const f = await control('POST', '/faults', { method: 'get', path_prefix: '/calendar/v3/', status: 500, count: 3 });
  assert.equal(f.status, 201);
  assert.equal(f.json.method, 'GET');
  assert.equal(f.json.remaining, 3);
  assert.equal((await control('GET', '/faults')).json.length, 1);
  assert.equal((await control('DELETE', `/faults/${f.json.id}`)).status, 200);
  assert.equal((await control('GET', '/faults')).json.length, 0);
  const cfg = await control('PATCH', '/config', { user_rate_limit_per_minute: 42, retry_after_s: 3 });
  assert.equal(cfg.json.user_rate_limit_per_minute, 42);
  assert.equal(cfg.json.retry_after_s, 3);
  assert.equal(cfg.json.access_token_ttl_s, 3600);
  const clock = await control('POST', '/clock', { advance_ms: 60_000 });
  assert.equal(clock.json.offset_ms, 60_000);
});

test('reset forgets accounts, events, tokens, calls, faults, config and clock; the OAuth client stays', async () => {
  const email = freshEmail('reset');
  emu.control.addAccount({ email });
  const { client } = await connect(emu, email);
  emu.control.addFault({ status: 500, count: 5 });
  emu.control.setConfig({ userRateLimitPerMinute: 1 });
  emu.control.advanceClock(1000);
  const r = await control('POST', '/reset');
  assert.equal(r.status, 200);
  assert.deepEqual(emu.control.accounts(), []);
  assert.deepEqual(emu.control.calls(), []);
  assert.deepEqual(emu.control.faults(), []);
  assert.equal(emu.control.config().userRateLimitPerMinute, 600);
  assert.ok(Math.abs(emu.control.now().getTime() - Date.now()) < 1000);
  const res = await fetch(`${emu.url}/calendar/v3/users/me/calendarList`, { headers: { authorization: `Bearer ${client.credentials.access_token}` } });
  assert.equal(res.status, 401, 'tokens are gone');
  const index = await control('GET', '');
  assert.equal(index.json.client_id, 'cassius-demo.apps.googleusercontent.com');
});

test('npm run emulator (main.ts): prints its base URL and client id, honours EMULATOR_PORT, exits 0 on SIGINT', async () => {
  const main = fileURLToPath(new URL('./main.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', main], {
    env: { ...process.env, EMULATOR_PORT: '0', EMULATOR_CLIENT_ID: 'custom.apps.googleusercontent.com' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const deadline = Date.now() + 15_000;
    // Both lines: the URL and, printed just after it, the client id.
    while (!(/listening on http:\/\/127\.0\.0\.1:\d+/.test(out) && /client id:.*\n/.test(out)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
    assert.ok(url, out);
    assert.match(out, /client id:\s+custom\.apps\.googleusercontent\.com/);
    const index = (await (await fetch(`${url}/__emulator`)).json()) as { client_id: string };
    assert.equal(index.client_id, 'custom.apps.googleusercontent.com');
  } finally {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    assert.equal(await exited, 0);
  }
});

test('seeding and deleting events as a person in Google Calendar would; UI-deleted tombstones refuse update/patch (§4)', async () => {
  const email = freshEmail('seed');
  emu.control.addAccount({ email });
  const { client } = await connect(emu, email);
  const api = calendarApi(emu, client);
  const seeded = await control('POST', `/calendars/${encodeURIComponent(email)}/events`, {
    id: 'seededinui01',
    summary: 'Made in the UI',
    ...timed('2030-05-01T10:00:00Z', '2030-05-01T11:00:00Z'),
  });
  assert.equal(seeded.status, 201);
  assert.equal(seeded.json.creator.email, email);
  assert.equal((await api.events.get({ calendarId: 'primary', eventId: 'seededinui01' })).data.summary, 'Made in the UI');
  const bad = await control('POST', `/calendars/${encodeURIComponent(email)}/events`, { summary: 'no times' });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error, /Missing end time/);

  const del = await control('DELETE', `/calendars/${encodeURIComponent(email)}/events/seededinui01`);
  assert.equal(del.status, 200);
  assert.equal(del.json.status, 'cancelled');
  assert.equal((await api.events.get({ calendarId: 'primary', eventId: 'seededinui01' })).data.status, 'cancelled');
  for (const p of [
    api.events.patch({ calendarId: 'primary', eventId: 'seededinui01', requestBody: { status: 'confirmed' } }),
    api.events.update({ calendarId: 'primary', eventId: 'seededinui01', requestBody: timed('2030-05-01T10:00:00Z', '2030-05-01T11:00:00Z') }, { retry: false }),
  ]) {
    const e = await rejection(p);
    assert.equal(e.status, 403);
    assert.equal(e.data.error.errors[0].reason, 'forbidden');
  }
  assert.equal((await rejection(api.events.delete({ calendarId: 'primary', eventId: 'seededinui01' }))).status, 410);
});

test('events.list maxResults: default 250, capped at 2500 (§3.2)', async () => {
  const email = freshEmail('bigcal');
  emu.control.addAccount({ email });
  for (let i = 0; i < 2600; i++) {
    emu.control.seedEvent(email, { ...timed('2030-05-01T10:00:00Z', '2030-05-01T11:00:00Z') });
  }
  const { client } = await connect(emu, email);
  const api = calendarApi(emu, client);
  const first = (await api.events.list({ calendarId: 'primary' })).data;
  assert.equal(first.items?.length, 250);
  const capped = (await api.events.list({ calendarId: 'primary', maxResults: 10_000 })).data;
  assert.equal(capped.items?.length, 2500);
  assert.ok(capped.nextPageToken);
  const rest = (await api.events.list({ calendarId: 'primary', maxResults: 10_000, pageToken: capped.nextPageToken ?? '' })).data;
  assert.equal(rest.items?.length, 100);
  assert.ok(rest.nextSyncToken);
  const mismatch = await rejection(api.events.list({ calendarId: 'primary', showDeleted: true, pageToken: capped.nextPageToken ?? '' }));
  assert.equal(mismatch.status, 400, 'a page token belongs to its query');
});
