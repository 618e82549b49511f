// Rate limits, usage limits, faults and the library's own retry behaviour
// (google-api.md §5, §6, §8.4), through @googleapis/calendar.

import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import type { calendar_v3 } from '@googleapis/calendar';
import { startEmulator, type RunningEmulator } from './index.js';
import { calendarApi, connect, FAST_RETRY, freshEmail, reasonOf, rejection, timed } from './helpers.js';

let emu: RunningEmulator;
before(async () => {
  emu = await startEmulator();
});
after(async () => {
  await emu.close();
});
beforeEach(() => {
  emu.control.reset();
});

const JAN = timed('2030-01-15T09:00:00Z', '2030-01-15T10:00:00Z');

async function setup(label: string, extra: Partial<calendar_v3.Options> = {}): Promise<{ email: string; api: calendar_v3.Calendar }> {
  const email = freshEmail(label);
  emu.control.addAccount({ email });
  const { client } = await connect(emu, email);
  return { email, api: calendarApi(emu, client, extra) };
}

const statuses = (prefix: string): number[] => emu.control.calls({ pathPrefix: prefix }).map((c) => c.status);

test('per-user sliding window: 403 userRateLimitExceeded, not retried by the library; next window OK (§6, §8.4)', async () => {
  const { api } = await setup('userrate');
  emu.control.setConfig({ userRateLimitPerMinute: 3 });
  for (let i = 0; i < 3; i++) assert.equal((await api.calendarList.list()).status, 200);
  emu.control.clearCalls();
  const e = await rejection(api.calendarList.list());
  assert.equal(e.status, 403);
  assert.deepEqual(e.data.error.errors[0], { domain: 'usageLimits', reason: 'userRateLimitExceeded', message: 'User Rate Limit Exceeded' });
  assert.equal(e.headers?.get('retry-after'), null, 'Retry-After is off by default');
  assert.deepEqual(statuses('/calendar'), [403], 'a 403 is not retried, even on GET');
  emu.control.advanceClock(61_000);
  assert.equal((await api.calendarList.list()).status, 200);
});

test('a patch costs 3 quota units (§3.4, §6)', async () => {
  const { api } = await setup('patchcost');
  const id = (await api.events.insert({ calendarId: 'primary', requestBody: { ...JAN } })).data.id ?? '';
  emu.control.setConfig({ userRateLimitPerMinute: 7 });
  await api.events.patch({ calendarId: 'primary', eventId: id, requestBody: { summary: 'a' } }); // 1 + 3 = 4
  await api.events.get({ calendarId: 'primary', eventId: id }); // 5
  const e = await rejection(api.events.patch({ calendarId: 'primary', eventId: id, requestBody: { summary: 'b' } })); // 8
  assert.equal(reasonOf(e), 'userRateLimitExceeded');
});

test('per-project window across accounts: 403 rateLimitExceeded (§6)', async () => {
  const a = await setup('proja');
  const b = await setup('projb');
  emu.control.setConfig({ projectRateLimitPerMinute: 2 });
  await a.api.calendarList.list();
  await b.api.calendarList.list();
  const e = await rejection(b.api.calendarList.list());
  assert.equal(e.status, 403);
  assert.deepEqual(e.data.error.errors[0], { domain: 'usageLimits', reason: 'rateLimitExceeded', message: 'Rate Limit Exceeded' });
});

test('429 rateLimitExceeded: the library retries GET 3 times with its default delays, never POST or PATCH (§8.4)', async () => {
  const { api } = await setup('rate429');
  const id = (await api.events.insert({ calendarId: 'primary', requestBody: { ...JAN } })).data.id ?? '';
  emu.control.setConfig({ userRateLimitPerMinute: 1, rateLimitStatus: 429, retryAfterS: 5 });
  emu.control.clearCalls();
  const started = Date.now();
  const e = await rejection(api.events.get({ calendarId: 'primary', eventId: id }));
  const elapsed = Date.now() - started;
  assert.equal(e.status, 429);
  assert.deepEqual(e.data.error.errors[0], { domain: 'usageLimits', reason: 'rateLimitExceeded', message: 'Rate Limit Exceeded' });
  assert.equal(e.headers?.get('retry-after'), '5', 'Retry-After switch on');
  assert.deepEqual(statuses('/calendar'), [429, 429, 429, 429], 'one try + 3 retries');
  assert.ok(elapsed >= 1900, `default backoff 100+500+1500 ms, took ${elapsed}`);

  emu.control.clearCalls();
  assert.equal((await rejection(api.events.insert({ calendarId: 'primary', requestBody: { ...JAN } }))).status, 429);
  assert.equal((await rejection(api.events.patch({ calendarId: 'primary', eventId: id, requestBody: { summary: 'x' } }))).status, 429);
  assert.deepEqual(statuses('/calendar'), [429, 429], 'POST and PATCH are not retried');
});

test('usage limits: writes 403 quotaExceeded while reads work, until the moment passes (§6)', async () => {
  const { email, api } = await setup('usage');
  const id = (await api.events.insert({ calendarId: 'primary', requestBody: { ...JAN } })).data.id ?? '';
  const r = await fetch(`${emu.url}/__emulator/accounts/${encodeURIComponent(email)}/usage-limit`, {
    method: 'POST',
    body: JSON.stringify({ for_ms: 1_800_000 }), // within the access token's hour
  });
  assert.equal(r.status, 200);
  for (const p of [
    api.events.insert({ calendarId: 'primary', requestBody: { ...JAN } }),
    api.events.patch({ calendarId: 'primary', eventId: id, requestBody: { summary: 'x' } }),
    api.events.delete({ calendarId: 'primary', eventId: id }, { retry: false }),
  ]) {
    const e = await rejection(p);
    assert.equal(e.status, 403);
    assert.deepEqual(e.data.error.errors[0], { domain: 'usageLimits', reason: 'quotaExceeded', message: 'Calendar usage limits exceeded.' });
  }
  assert.equal((await api.events.get({ calendarId: 'primary', eventId: id })).status, 200);
  assert.equal((await api.events.list({ calendarId: 'primary' })).status, 200);
  emu.control.advanceClock(1_800_001);
  assert.equal((await api.events.insert({ calendarId: 'primary', requestBody: { ...JAN } })).status, 200);
});

test('faults: GET 503 retried by the library then succeeds; POST 500 backendError not retried (§5, §8.4)', async () => {
  const { api } = await setup('faults', FAST_RETRY);
  emu.control.addFault({ method: 'GET', pathPrefix: '/calendar/v3/users/me/calendarList', status: 503, count: 2 });
  emu.control.clearCalls();
  assert.equal((await api.calendarList.list()).status, 200);
  assert.deepEqual(statuses('/calendar'), [503, 503, 200]);

  emu.control.addFault({ method: 'POST', pathPrefix: '/calendar/v3/calendars/', status: 500 });
  emu.control.clearCalls();
  const e = await rejection(api.events.insert({ calendarId: 'primary', requestBody: { ...JAN } }));
  assert.equal(e.status, 500);
  assert.deepEqual(e.data, { error: { errors: [{ domain: 'global', reason: 'backendError', message: 'Backend Error' }], code: 500, message: 'Backend Error' } });
  assert.deepEqual(statuses('/calendar'), [500]);
  assert.equal(emu.control.faults().length, 0, 'count-limited faults are used up');
});

test('faults: 503 body, reason-only faults map to status and domain (§5 table)', async () => {
  const { api } = await setup('faultbody', { retry: false });
  emu.control.addFault({ status: 503 });
  const e503 = await rejection(api.calendarList.list());
  assert.deepEqual(e503.data, { error: { code: 503, message: 'The service is currently unavailable.', status: 'UNAVAILABLE' } });
  emu.control.addFault({ reason: 'rateLimitExceeded', status: 429 });
  assert.equal(reasonOf(await rejection(api.calendarList.list())), 'rateLimitExceeded');
  emu.control.addFault({ reason: 'quotaExceeded' });
  const q = await rejection(api.calendarList.list());
  assert.equal(q.status, 403);
  assert.equal(q.data.error.errors[0].domain, 'usageLimits');
  emu.control.addFault({ reason: 'fullSyncRequired' });
  const g = await rejection(api.calendarList.list());
  assert.equal(g.status, 410);
  assert.equal(g.data.error.errors[0].domain, 'calendar');
});

test('faults: path_prefix matches the percent-encoded path; for_ms windows; latency (CONTRACT §8)', async () => {
  const { email, api } = await setup('faultpath', { retry: false });
  const encoded = `/calendar/v3/calendars/${encodeURIComponent(email)}/events`;
  assert.ok(encoded.includes('%40'));
  const r = await fetch(`${emu.url}/__emulator/faults`, {
    method: 'POST',
    body: JSON.stringify({ path_prefix: encoded, status: 500, for_ms: 60_000 }),
  });
  assert.equal(r.status, 201);
  assert.equal((await rejection(api.events.list({ calendarId: email }))).status, 500);
  assert.equal((await rejection(api.events.list({ calendarId: email }))).status, 500, 'for_ms: every call in the window');
  assert.equal((await api.events.list({ calendarId: 'primary' })).status, 200, 'other path unaffected');
  emu.control.advanceClock(60_001);
  assert.equal((await api.events.list({ calendarId: email })).status, 200, 'window over');

  emu.control.addFault({ pathPrefix: '/calendar/v3/users/me/calendarList', latencyMs: 300 });
  const t0 = Date.now();
  assert.equal((await api.calendarList.list()).status, 200);
  assert.ok(Date.now() - t0 >= 290, 'latency applied');
});

test('faults: drop_after_commit performs the insert, then the connection drops without an answer (CONTRACT §8)', async () => {
  const { email, api } = await setup('drop', { retry: false });
  emu.control.addFault({ method: 'POST', pathPrefix: '/calendar/v3/calendars/', dropAfterCommit: true });
  const e = await rejection(api.events.insert({ calendarId: 'primary', requestBody: { id: 'committedbutlost1', ...JAN } }));
  assert.equal(e.status, undefined, 'no HTTP response');
  assert.equal(emu.control.events(email).length, 1, 'the change was committed');
  const call = emu.control.calls({ method: 'POST', pathPrefix: '/calendar' }).at(-1);
  assert.equal(call?.dropped, true);
  // The client retries with its deterministic id and gets 409 (§4).
  const again = await rejection(api.events.insert({ calendarId: 'primary', requestBody: { id: 'committedbutlost1', ...JAN } }));
  assert.equal(again.status, 409);

  emu.control.addFault({ method: 'POST', pathPrefix: '/calendar/v3/calendars/', dropBeforeCommit: true });
  const lost = await rejection(api.events.insert({ calendarId: 'primary', requestBody: { id: 'nevercommitted1', ...JAN } }));
  assert.equal(lost.status, undefined);
  assert.equal(emu.control.events(email).length, 1, 'nothing committed');
});

test('token endpoint faults: the library retries /token on 5xx (§8.2)', async () => {
  const email = freshEmail('tokfault');
  emu.control.addAccount({ email });
  const { client } = await connect(emu, email);
  emu.control.addFault({ pathPrefix: '/token', status: 500, count: 1 });
  const { credentials } = await client.refreshAccessToken();
  assert.ok(credentials.access_token);
  assert.deepEqual(statuses('/token').slice(-2), [500, 200]);
  emu.control.addFault({ pathPrefix: '/token', reason: 'invalid_grant', status: 400 });
  const e = await rejection(client.refreshAccessToken());
  assert.equal(e.message, 'invalid_grant', 'OAuth-shaped fault body');
});
