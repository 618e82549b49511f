// Calendar API v3 conformance (google-api.md §2–§5, §7, §8.1), driven only through
// @googleapis/calendar and google-auth-library against the emulator.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { calendar_v3 } from '@googleapis/calendar';
import { startEmulator, type RunningEmulator } from './index.js';
import { SCOPE } from './scopes.js';
import {
  calendarApi,
  connect,
  eventId,
  freshEmail,
  reasonOf,
  rejection,
  timed,
} from './helpers.js';

let emu: RunningEmulator;
before(async () => {
  emu = await startEmulator();
});
after(async () => {
  await emu.close();
});

/** A new account with its primary calendar plus `calendars`, connected with the product scopes. */
async function setup(
  label: string,
  opts: { timeZone?: string; calendars?: Parameters<RunningEmulator['control']['addAccount']>[0]['calendars']; scopes?: string[] } = {},
): Promise<{ email: string; api: calendar_v3.Calendar; info: ReturnType<RunningEmulator['control']['addAccount']> }> {
  const email = freshEmail(label);
  const info = emu.control.addAccount({
    email,
    ...(opts.timeZone !== undefined ? { timeZone: opts.timeZone } : {}),
    ...(opts.calendars !== undefined ? { calendars: opts.calendars } : {}),
  });
  const { client } = await connect(emu, email, opts.scopes !== undefined ? { scopes: opts.scopes } : {});
  return { email, api: calendarApi(emu, client), info };
}

const JAN = timed('2030-01-15T09:00:00+01:00', '2030-01-15T10:00:00+01:00', 'Europe/Zurich');

test('rootUrl: any path in it is dropped by the library; /calendar/v3 is served at the origin (§8.1)', async () => {
  const email = freshEmail('root');
  emu.control.addAccount({ email });
  const { client } = await connect(emu, email);
  const { calendar } = await import('@googleapis/calendar');
  const api = calendar({ version: 'v3', auth: client as never, rootUrl: `${emu.url}/some/prefix/` });
  emu.control.clearCalls();
  const res = await api.calendarList.list();
  assert.equal(res.status, 200);
  assert.equal(emu.control.calls()[0]?.path, '/calendar/v3/users/me/calendarList');
});

test('calendarList: primary = account email, five access roles, timeZone, minAccessRole=writer includes writerWithoutPrivateAccess (§3.1)', async () => {
  const { email, api } = await setup('callist', {
    timeZone: 'Europe/Berlin',
    calendars: [
      { summary: 'Read only', accessRole: 'reader' },
      { summary: 'Writer', accessRole: 'writer', timeZone: 'America/New_York' },
      { summary: 'No private', accessRole: 'writerWithoutPrivateAccess' },
      { summary: 'Busy only', accessRole: 'freeBusyReader' },
    ],
  });
  const all = (await api.calendarList.list()).data;
  assert.equal(all.kind, 'calendar#calendarList');
  const items = all.items ?? [];
  assert.equal(items.length, 5);
  const primary = items.find((c) => c.primary);
  assert.equal(primary?.id, email);
  assert.equal(primary?.accessRole, 'owner');
  assert.equal(primary?.timeZone, 'Europe/Berlin');
  assert.equal(items.filter((c) => c.primary).length, 1);
  assert.deepEqual(items.map((c) => c.accessRole).sort(), ['freeBusyReader', 'owner', 'reader', 'writer', 'writerWithoutPrivateAccess']);
  assert.equal(items.find((c) => c.summary === 'Writer')?.timeZone, 'America/New_York');
  assert.ok(all.nextSyncToken && !all.nextPageToken);

  const writable = (await api.calendarList.list({ minAccessRole: 'writer' })).data.items ?? [];
  assert.deepEqual(writable.map((c) => c.accessRole).sort(), ['owner', 'writer', 'writerWithoutPrivateAccess']);
  const e = await rejection(api.calendarList.list({ minAccessRole: 'admin' }));
  assert.equal(e.status, 400);
});

test('calendarList paging: default 100, max 250, opaque page tokens, page to the end (§3.1)', async () => {
  const calendars = Array.from({ length: 259 }, (_, i) => ({ summary: `Cal ${i}`, accessRole: 'writer' as const }));
  const { api } = await setup('calpaging', { calendars });
  const first = (await api.calendarList.list()).data;
  assert.equal(first.items?.length, 100);
  assert.ok(first.nextPageToken);
  assert.ok(!/^\d+$/.test(first.nextPageToken), 'not a bare offset');
  const big = (await api.calendarList.list({ maxResults: 1000 })).data;
  assert.equal(big.items?.length, 250, 'maxResults is capped at 250');
  const ids = new Set<string>();
  let pageToken: string | undefined;
  let pages = 0;
  do {
    const page = (await api.calendarList.list({ maxResults: 70, ...(pageToken ? { pageToken } : {}) })).data;
    for (const c of page.items ?? []) ids.add(c.id ?? '');
    pageToken = page.nextPageToken ?? undefined;
    pages++;
    if (!pageToken) assert.ok(page.nextSyncToken);
  } while (pageToken);
  assert.equal(ids.size, 260);
  assert.equal(pages, 4);
});

test('insert without and with a client id; server-set fields; calendarId "primary" (§3.2, §3.3, §4)', async () => {
  const { email, api } = await setup('insert');
  const before = Date.now();
  const auto = (await api.events.insert({ calendarId: 'primary', requestBody: { summary: 'Auto', ...JAN } })).data;
  assert.equal(auto.kind, 'calendar#event');
  assert.match(auto.id ?? '', /^[a-v0-9]{5,1024}$/);
  assert.match(auto.etag ?? '', /^"\d{10,}"$/);
  assert.equal(auto.status, 'confirmed');
  assert.equal(auto.iCalUID, `${auto.id}@google.com`);
  assert.match(auto.htmlLink ?? '', /^https:\/\/www\.google\.com\/calendar\/event\?eid=/);
  assert.ok(Date.parse(auto.created ?? '') >= before - 1000);
  assert.equal(auto.created, auto.updated);
  assert.equal(auto.sequence, 0);
  assert.equal(auto.creator?.email, email);
  assert.equal(auto.organizer?.email, email);
  assert.equal(auto.organizer?.self, true);
  assert.deepEqual(auto.reminders, { useDefault: true });

  const id = eventId('mine');
  const mine = (
    await api.events.insert({
      calendarId: email,
      sendUpdates: 'none',
      requestBody: { id, summary: 'Mine', description: '<b>html</b>', location: 'Room 1', ...JAN, extendedProperties: { private: { cassiusAppointmentId: 'a-1' } } },
    })
  ).data;
  assert.equal(mine.id, id);
  assert.equal(mine.description, '<b>html</b>');
  assert.deepEqual(mine.extendedProperties, { private: { cassiusAppointmentId: 'a-1' } });
  const call = emu.control.calls({ method: 'POST', pathPrefix: `/calendar/v3/calendars/${encodeURIComponent(email)}/events` }).at(-1);
  assert.equal(call?.sendUpdates, 'none');
  assert.equal(call?.query['sendUpdates'], 'none');
  assert.equal(call?.account, email);
  assert.equal((call?.body as { id: string }).id, id);
  const bad = await rejection(api.events.insert({ calendarId: email, sendUpdates: 'nobody', requestBody: { ...JAN } }));
  assert.equal(bad.status, 400);
});

test('bad event ids: 400 global/invalid "Invalid resource id value." (§4)', async () => {
  const { api } = await setup('badid');
  for (const id of ['abcd', 'ABCDEF12', 'abcdw123', 'abc-def-123', 'x'.repeat(10), '0'.repeat(1025)]) {
    const e = await rejection(api.events.insert({ calendarId: 'primary', requestBody: { id, ...JAN } }));
    assert.equal(e.status, 400, id);
    assert.deepEqual(e.data.error.errors[0], { domain: 'global', reason: 'invalid', message: 'Invalid resource id value.' });
    assert.equal(e.data.error.code, 400);
    assert.equal(e.message, 'Invalid resource id value.');
  }
  const ok = await api.events.insert({ calendarId: 'primary', requestBody: { id: `a${'0'.repeat(1023)}`, ...JAN } });
  assert.equal(ok.status, 200, '1024 characters is allowed');
  const uuid = await api.events.insert({ calendarId: 'primary', requestBody: { id: '0f1e2d3c4b5a69788796a5b4c3d2e1f0', ...JAN } });
  assert.equal(uuid.status, 200, 'a hyphen-less UUID qualifies');
});

test('duplicate ids, tombstones, 404 / 410 (§4)', async () => {
  const { email, api } = await setup('tomb');
  const id = eventId('dup');
  await api.events.insert({ calendarId: 'primary', requestBody: { id, summary: 'Original', ...JAN } });
  const dup = await rejection(api.events.insert({ calendarId: 'primary', requestBody: { id, ...JAN } }));
  assert.equal(dup.status, 409);
  assert.equal(reasonOf(dup), 'duplicate');
  assert.equal(dup.data.error.errors[0].message, 'The requested identifier already exists.');

  const del = await api.events.delete({ calendarId: 'primary', eventId: id, sendUpdates: 'none' });
  assert.equal(del.status, 204);
  assert.equal(del.data, '');

  const reinsert = await rejection(api.events.insert({ calendarId: 'primary', requestBody: { id, ...JAN } }));
  assert.equal(reinsert.status, 409, 'a deleted id is still taken');

  const tomb = (await api.events.get({ calendarId: 'primary', eventId: id })).data;
  assert.equal(tomb.status, 'cancelled');
  assert.equal(tomb.summary, 'Original', 'API delete keeps the details');

  const again = await rejection(api.events.delete({ calendarId: 'primary', eventId: id }));
  assert.equal(again.status, 410);
  assert.deepEqual(again.data.error.errors[0], { domain: 'global', reason: 'deleted', message: 'Resource has been deleted' });

  const missing = eventId('never');
  for (const p of [api.events.get({ calendarId: 'primary', eventId: missing }), api.events.delete({ calendarId: 'primary', eventId: missing }, { retry: false })]) {
    const e = await rejection(p);
    assert.equal(e.status, 404);
    assert.deepEqual(e.data.error.errors[0], { domain: 'global', reason: 'notFound', message: 'Not Found' });
  }
  // Control view includes the deleted one.
  const all = emu.control.events(email);
  assert.equal(all.find((e) => e['id'] === id)?.['status'], 'cancelled');
});

test('patch semantics: fields replace, objects merge, arrays replace, null clears, ext props merge per key (§3.4)', async () => {
  const { api } = await setup('patch');
  const id = eventId('patch');
  const created = (
    await api.events.insert({
      calendarId: 'primary',
      requestBody: {
        id,
        summary: 'Before',
        location: 'Room 1',
        description: 'keep me',
        ...JAN,
        attendees: [{ email: 'a@example.com' }, { email: 'b@example.com' }],
        extendedProperties: { private: { cassiusAppointmentId: 'x', gen: '1', drop: 'me' }, shared: { s: '1' } },
      },
    })
  ).data;
  const patched = (
    await api.events.patch({
      calendarId: 'primary',
      eventId: id,
      requestBody: {
        summary: 'After',
        location: null,
        attendees: [{ email: 'c@example.com' }],
        start: { timeZone: 'Europe/Paris' },
        extendedProperties: { private: { gen: '2', drop: null } as unknown as Record<string, string> },
      },
    })
  ).data;
  assert.equal(patched.summary, 'After');
  assert.equal(patched.description, 'keep me', 'omitted fields stay');
  assert.equal(patched.location, undefined, 'null clears');
  assert.deepEqual(patched.attendees?.map((a) => a.email), ['c@example.com'], 'arrays are replaced');
  assert.equal(patched.start?.timeZone, 'Europe/Paris', 'nested object merged');
  assert.equal(Date.parse(patched.start?.dateTime ?? ''), Date.parse('2030-01-15T09:00:00+01:00'), 'start instant kept');
  assert.deepEqual(patched.extendedProperties, { private: { cassiusAppointmentId: 'x', gen: '2' }, shared: { s: '1' } });
  assert.notEqual(patched.etag, created.etag, 'new etag on every write');
  assert.ok(Date.parse(patched.updated ?? '') >= Date.parse(created.updated ?? ''));

  // Switching timed -> all-day needs the other member nulled (emulator refuses both set).
  const both = await rejection(api.events.patch({ calendarId: 'primary', eventId: id, requestBody: { start: { date: '2030-01-15' }, end: { date: '2030-01-16' } } }));
  assert.equal(both.status, 400);
  const allDay = (
    await api.events.patch({
      calendarId: 'primary',
      eventId: id,
      requestBody: { start: { date: '2030-01-15', dateTime: null }, end: { date: '2030-01-16', dateTime: null } } as calendar_v3.Schema$Event,
    })
  ).data;
  assert.deepEqual(allDay.start, { date: '2030-01-15', timeZone: 'Europe/Paris' });
  assert.equal(allDay.end?.date, '2030-01-16');
});

test('update (PUT) replaces the whole resource; start/end required (§3.2, §3.4)', async () => {
  const { api } = await setup('update');
  const id = eventId('put');
  await api.events.insert({ calendarId: 'primary', requestBody: { id, summary: 'S', description: 'D', ...JAN, extendedProperties: { private: { k: 'v' } } } });
  const put = (await api.events.update({ calendarId: 'primary', eventId: id, requestBody: { summary: 'New', ...JAN } })).data;
  assert.equal(put.summary, 'New');
  assert.equal(put.description, undefined, 'omitted property deleted');
  assert.equal(put.extendedProperties, undefined);
  assert.equal(put.sequence, 0, 'same time and place: no sequence bump');
  const moved = (await api.events.update({ calendarId: 'primary', eventId: id, requestBody: timed('2030-01-16T09:00:00Z', '2030-01-16T10:00:00Z') })).data;
  assert.equal(moved.sequence, 1, 'time change bumps sequence');
  const e = await rejection(api.events.update({ calendarId: 'primary', eventId: id, requestBody: { summary: 'no times' } }));
  assert.equal(e.status, 400);
  assert.deepEqual(e.data.error.errors[0], { domain: 'global', reason: 'required', message: 'Missing end time.' });
});

test('tombstones: patch keeps cancelled unless status is sent, PUT without status revives, switch makes both 403 (§4)', async () => {
  const { api } = await setup('revive');
  const id = eventId('rev');
  await api.events.insert({ calendarId: 'primary', requestBody: { id, summary: 'A', ...JAN } });
  await api.events.delete({ calendarId: 'primary', eventId: id });
  const stillCancelled = (await api.events.patch({ calendarId: 'primary', eventId: id, requestBody: { summary: 'B' } })).data;
  assert.equal(stillCancelled.status, 'cancelled');
  const revived = (await api.events.patch({ calendarId: 'primary', eventId: id, requestBody: { status: 'confirmed', summary: 'C' } })).data;
  assert.equal(revived.status, 'confirmed');
  await api.events.delete({ calendarId: 'primary', eventId: id });
  const put = (await api.events.update({ calendarId: 'primary', eventId: id, requestBody: { summary: 'D', ...JAN } })).data;
  assert.equal(put.status, 'confirmed', 'PUT omitting status means confirmed');

  await api.events.delete({ calendarId: 'primary', eventId: id });
  emu.control.setConfig({ tombstoneWrites: 'forbidden' });
  try {
    for (const p of [
      api.events.patch({ calendarId: 'primary', eventId: id, requestBody: { status: 'confirmed' } }),
      api.events.update({ calendarId: 'primary', eventId: id, requestBody: { ...JAN } }, { retry: false }),
    ]) {
      const e = await rejection(p);
      assert.equal(e.status, 403);
      assert.deepEqual(e.data.error.errors[0], { domain: 'global', reason: 'forbidden', message: 'Forbidden' });
    }
  } finally {
    emu.control.setConfig({ tombstoneWrites: 'allow' });
  }
});

test('extended-property limits: keys over 44 chars dropped, values over 1024 truncated, silently (§3.3)', async () => {
  const { api } = await setup('extlimits');
  const k44 = 'k'.repeat(44);
  const k45 = 'q'.repeat(45);
  const ev = (
    await api.events.insert({
      calendarId: 'primary',
      requestBody: { ...JAN, extendedProperties: { private: { [k44]: 'ok', [k45]: 'gone', long: 'v'.repeat(1500), exact: 'w'.repeat(1024) } } },
    })
  ).data;
  const priv = ev.extendedProperties?.private ?? {};
  assert.equal(priv[k44], 'ok');
  assert.equal(k45 in priv, false);
  assert.equal(priv['long']?.length, 1024);
  assert.equal(priv['exact']?.length, 1024);
});

test('list: privateExtendedProperty (OR within kind, AND across kinds), paging to the end over short pages (§3.2)', async () => {
  const { api } = await setup('listext');
  const ids: string[] = [];
  for (let i = 0; i < 23; i++) {
    const id = eventId(`l${i}`);
    ids.push(id);
    await api.events.insert({
      calendarId: 'primary',
      requestBody: {
        id,
        ...JAN,
        extendedProperties: { private: { cassiusAppointmentId: `appt-${i}`, org: i % 2 === 0 ? 'even' : 'odd' }, shared: { group: i < 10 ? 'low' : 'high' } },
      },
    });
  }
  // Tombstones in the middle make pages short.
  for (const i of [1, 2, 3, 4, 5, 6]) await api.events.delete({ calendarId: 'primary', eventId: ids[i] ?? '' });

  const one = (await api.events.list({ calendarId: 'primary', privateExtendedProperty: ['cassiusAppointmentId=appt-7'] })).data;
  assert.deepEqual(one.items?.map((e) => e.id), [ids[7]]);
  const call = emu.control.calls({ method: 'GET' }).at(-1);
  assert.match(call?.path ?? '', /\/events$/);
  assert.equal(call?.query['privateExtendedProperty'], 'cassiusAppointmentId=appt-7');

  const or = (await api.events.list({ calendarId: 'primary', privateExtendedProperty: ['cassiusAppointmentId=appt-7', 'cassiusAppointmentId=appt-8'] })).data;
  assert.deepEqual(or.items?.map((e) => e.id).sort(), [ids[7], ids[8]].sort());
  const and = (await api.events.list({ calendarId: 'primary', privateExtendedProperty: ['org=even'], sharedExtendedProperty: ['group=high'] })).data;
  assert.deepEqual(and.items?.map((e) => e.id).sort(), [10, 12, 14, 16, 18, 20, 22].map((i) => ids[i]).sort());

  // Paging: 17 live events, maxResults 5; a page may be short or empty while a token exists.
  const seen: string[] = [];
  const sizes: number[] = [];
  let pageToken: string | undefined;
  let last: calendar_v3.Schema$Events | undefined;
  do {
    last = (await api.events.list({ calendarId: 'primary', maxResults: 5, ...(pageToken ? { pageToken } : {}) })).data;
    sizes.push(last.items?.length ?? 0);
    for (const e of last.items ?? []) seen.push(e.id ?? '');
    pageToken = last.nextPageToken ?? undefined;
  } while (pageToken);
  assert.equal(seen.length, 17);
  assert.equal(new Set(seen).size, 17);
  assert.ok(sizes.some((n) => n < 5 && n >= 0) && sizes.length > 4, `short pages expected, got ${sizes.join(',')}`);
  assert.ok(last.nextSyncToken);
  assert.equal(last.kind, 'calendar#events');
  assert.equal(last.accessRole, 'owner');

  const withDeleted = (await api.events.list({ calendarId: 'primary', showDeleted: true, maxResults: 2500 })).data;
  assert.equal(withDeleted.items?.length, 23);
  const bad = await rejection(api.events.list({ calendarId: 'primary', privateExtendedProperty: ['no-equals-sign'] }));
  assert.equal(bad.status, 400);
});

test('shortPages switch: empty pages with a nextPageToken (§3.2)', async () => {
  const { api } = await setup('shortpages');
  for (let i = 0; i < 4; i++) await api.events.insert({ calendarId: 'primary', requestBody: { ...JAN } });
  emu.control.setConfig({ shortPages: true });
  try {
    const sizes: number[] = [];
    let pageToken: string | undefined;
    do {
      const page = (await api.events.list({ calendarId: 'primary', maxResults: 2, ...(pageToken ? { pageToken } : {}) })).data;
      sizes.push(page.items?.length ?? 0);
      pageToken = page.nextPageToken ?? undefined;
    } while (pageToken);
    assert.deepEqual(sizes, [2, 0, 2]);
  } finally {
    emu.control.setConfig({ shortPages: false });
  }
});

test('list: timeMin / timeMax exclusive (timeMax bounds start, timeMin bounds end), orderBy, updatedMin includes deleted (§3.2)', async () => {
  const { api } = await setup('timerange');
  const mk = async (s: string, e: string): Promise<string> =>
    (await api.events.insert({ calendarId: 'primary', requestBody: timed(s, e) })).data.id ?? '';
  const a = await mk('2030-03-01T10:00:00Z', '2030-03-01T11:00:00Z');
  const b = await mk('2030-03-01T11:00:00Z', '2030-03-01T12:00:00Z');
  const c = await mk('2030-03-01T08:00:00Z', '2030-03-01T09:00:00Z');
  const inRange = (await api.events.list({ calendarId: 'primary', timeMin: '2030-03-01T11:00:00Z', timeMax: '2030-03-01T12:00:00Z' })).data;
  assert.deepEqual(inRange.items?.map((e) => e.id), [b], 'a ends at timeMin (excluded)');
  const before = (await api.events.list({ calendarId: 'primary', timeMax: '2030-03-01T11:00:00+00:00' })).data;
  assert.deepEqual(before.items?.map((e) => e.id).sort(), [a, c].sort(), 'b starts at timeMax (excluded)');
  const empty = await rejection(api.events.list({ calendarId: 'primary', timeMin: '2030-03-02T00:00:00Z', timeMax: '2030-03-01T00:00:00Z' }));
  assert.equal(empty.status, 400);
  assert.deepEqual(empty.data.error.errors[0], {
    domain: 'calendar',
    reason: 'timeRangeEmpty',
    message: 'The specified time range is empty.',
    locationType: 'parameter',
    location: 'timeMax',
  });
  const noOffset = await rejection(api.events.list({ calendarId: 'primary', timeMin: '2030-03-01T00:00:00' }));
  assert.equal(noOffset.status, 400);

  const ordered = (await api.events.list({ calendarId: 'primary', singleEvents: true, orderBy: 'startTime' })).data;
  assert.deepEqual(ordered.items?.map((e) => e.id), [c, a, b]);
  const needsSingle = await rejection(api.events.list({ calendarId: 'primary', orderBy: 'startTime' }));
  assert.equal(needsSingle.status, 400);

  emu.control.advanceClock(5_000);
  try {
    const mark = new Date(Date.now() + 4_000).toISOString();
    await api.events.delete({ calendarId: 'primary', eventId: a });
    await api.events.patch({ calendarId: 'primary', eventId: b, requestBody: { summary: 'touched' } });
    const since = (await api.events.list({ calendarId: 'primary', updatedMin: mark })).data;
    assert.deepEqual(since.items?.map((e) => `${e.id}:${e.status}`).sort(), [`${a}:cancelled`, `${b}:confirmed`].sort());
  } finally {
    emu.control.advanceClock(-5_000);
  }
});

test('syncToken: incremental changes incl. deleted; 410 fullSyncRequired when expired (§3.2)', async () => {
  const { email, api } = await setup('sync');
  const a = (await api.events.insert({ calendarId: 'primary', requestBody: { ...JAN } })).data.id ?? '';
  const b = (await api.events.insert({ calendarId: 'primary', requestBody: { ...JAN } })).data.id ?? '';
  const full = (await api.events.list({ calendarId: 'primary' })).data;
  assert.ok(full.nextSyncToken);
  await api.events.delete({ calendarId: 'primary', eventId: a });
  const c = (await api.events.insert({ calendarId: 'primary', requestBody: { ...JAN } })).data.id ?? '';
  const inc = (await api.events.list({ calendarId: 'primary', syncToken: full.nextSyncToken })).data;
  assert.deepEqual(inc.items?.map((e) => `${e.id}:${e.status}`).sort(), [`${a}:cancelled`, `${c}:confirmed`].sort());
  assert.ok(!inc.items?.some((e) => e.id === b));
  assert.ok(inc.nextSyncToken);
  const nothing = (await api.events.list({ calendarId: 'primary', syncToken: inc.nextSyncToken })).data;
  assert.deepEqual(nothing.items, []);

  const combined = await rejection(api.events.list({ calendarId: 'primary', syncToken: inc.nextSyncToken, timeMin: '2030-01-01T00:00:00Z' }));
  assert.equal(combined.status, 400);

  emu.control.expireSyncTokens(email);
  const gone = await rejection(api.events.list({ calendarId: 'primary', syncToken: inc.nextSyncToken }));
  assert.equal(gone.status, 410);
  assert.deepEqual(gone.data.error.errors[0], {
    domain: 'calendar',
    reason: 'fullSyncRequired',
    message: 'Sync token is no longer valid, a full sync is required.',
    locationType: 'parameter',
    location: 'syncToken',
  });
  const fresh = (await api.events.list({ calendarId: 'primary' })).data;
  emu.control.setConfig({ syncTokensExpired: true });
  try {
    assert.equal((await rejection(api.events.list({ calendarId: 'primary', syncToken: fresh.nextSyncToken ?? '' }))).status, 410);
  } finally {
    emu.control.setConfig({ syncTokensExpired: false });
  }
});

test('ETags: stale If-Match is 412 on update/patch/delete; If-None-Match unchanged is 304 with empty body (§3.5)', async () => {
  const { api } = await setup('etag');
  const id = eventId('etag');
  const v1 = (await api.events.insert({ calendarId: 'primary', requestBody: { id, summary: 'v1', ...JAN } })).data;
  const v2 = (await api.events.patch({ calendarId: 'primary', eventId: id, requestBody: { summary: 'v2' } }, { headers: { 'If-Match': v1.etag ?? '' } })).data;
  assert.notEqual(v2.etag, v1.etag);
  const stale = { headers: { 'If-Match': v1.etag ?? '' }, retry: false };
  for (const p of [
    api.events.patch({ calendarId: 'primary', eventId: id, requestBody: { summary: 'x' } }, stale),
    api.events.update({ calendarId: 'primary', eventId: id, requestBody: { summary: 'x', ...JAN } }, stale),
    api.events.delete({ calendarId: 'primary', eventId: id }, stale),
  ]) {
    const e = await rejection(p);
    assert.equal(e.status, 412);
    assert.deepEqual(e.data.error.errors[0], {
      domain: 'global',
      reason: 'conditionNotMet',
      message: 'Precondition Failed',
      locationType: 'header',
      location: 'If-Match',
    });
  }
  const notModified = await api.events.get({ calendarId: 'primary', eventId: id }, { headers: { 'If-None-Match': v2.etag ?? '' } });
  assert.equal(notModified.status, 304);
  assert.equal(notModified.data, '');
  const modified = await api.events.get({ calendarId: 'primary', eventId: id }, { headers: { 'If-None-Match': v1.etag ?? '' } });
  assert.equal(modified.status, 200);
  assert.equal(modified.data.summary, 'v2');
  const del = await api.events.delete({ calendarId: 'primary', eventId: id }, { headers: { 'If-Match': v2.etag ?? '' } });
  assert.equal(del.status, 204);
});

test('move: event lands in the destination, source keeps a cancelled tombstone; re-insert there is 409 (§3.2, §4)', async () => {
  const { email, api, info } = await setup('move', { calendars: [{ summary: 'Clinic', accessRole: 'owner' }, { summary: 'RO', accessRole: 'reader' }] });
  const clinic = info.calendars.find((c) => c.summary === 'Clinic')?.id ?? '';
  const ro = info.calendars.find((c) => c.summary === 'RO')?.id ?? '';
  const id = eventId('move');
  await api.events.insert({ calendarId: 'primary', requestBody: { id, summary: 'Moving', ...JAN, extendedProperties: { private: { k: 'v' } } } });
  const moved = (await api.events.move({ calendarId: 'primary', eventId: id, destination: clinic, sendUpdates: 'none' })).data;
  assert.equal(moved.id, id);
  assert.equal(moved.status, 'confirmed');
  assert.equal(moved.organizer?.email, clinic);
  assert.deepEqual(moved.extendedProperties, { private: { k: 'v' } });
  const inDest = (await api.events.get({ calendarId: clinic, eventId: id })).data;
  assert.equal(inDest.summary, 'Moving');
  const source = (await api.events.get({ calendarId: 'primary', eventId: id })).data;
  assert.equal(source.status, 'cancelled');
  assert.equal(source.id, id);
  const dup = await rejection(api.events.insert({ calendarId: email, requestBody: { id, ...JAN } }));
  assert.equal(dup.status, 409);
  const toReader = await rejection(api.events.move({ calendarId: clinic, eventId: id, destination: ro }));
  assert.equal(toReader.status, 403);
  assert.equal(reasonOf(toReader), 'requiredAccessLevel');
  assert.equal(emu.control.events(clinic).length, 1);
  assert.equal(emu.control.events(email)[0]?.['status'], 'cancelled');
});

test('reader calendar: reads work, writes are 403 requiredAccessLevel; unseen calendar is 404 (§3.1, §5)', async () => {
  const owner = freshEmail('owner');
  const shared = `${eventId('shared')}@group.calendar.google.com`;
  emu.control.addAccount({ email: owner, calendars: [{ id: shared, summary: 'Team', accessRole: 'owner' }] });
  const { api } = await setup('reader', { calendars: [{ id: shared, summary: 'Team', accessRole: 'reader' }] });
  const list = await api.events.list({ calendarId: shared });
  assert.equal(list.data.accessRole, 'reader');
  const e = await rejection(api.events.insert({ calendarId: shared, requestBody: { ...JAN } }));
  assert.equal(e.status, 403);
  assert.deepEqual(e.data.error.errors[0], {
    domain: 'calendar',
    reason: 'requiredAccessLevel',
    message: 'You need to have writer access to this calendar.',
  });
  const notMine = await rejection(api.events.list({ calendarId: owner }, { retry: false }));
  assert.equal(notMine.status, 404);
  assert.equal(reasonOf(notMine), 'notFound');
  const nowhere = await rejection(api.events.insert({ calendarId: 'nobody@example.com', requestBody: { ...JAN } }));
  assert.equal(nowhere.status, 404);
});

test('one account owns two calendars; a second account shares one as writer (CONTRACT §8 modelling)', async () => {
  const a = freshEmail('twocal');
  const second = `${eventId('second')}@group.calendar.google.com`;
  emu.control.addAccount({ email: a, calendars: [{ id: second, summary: 'Second', accessRole: 'owner' }] });
  const { api } = await setup('sharer', { calendars: [{ id: second, summary: 'Second', accessRole: 'writer' }] });
  const ins = (await api.events.insert({ calendarId: second, requestBody: { ...JAN } })).data;
  assert.equal(ins.organizer?.email, second);
  assert.equal(emu.control.events(second).length, 1);
  assert.deepEqual(emu.control.account(a).calendars.map((c) => c.accessRole), ['owner', 'owner']);
});

test('missing scope: 403 insufficientPermissions with PERMISSION_DENIED, ErrorInfo and WWW-Authenticate (§2.1, §5)', async () => {
  const { api } = await setup('scopes', { scopes: ['openid', 'email', SCOPE.eventsReadonly] });
  const e = await rejection(api.calendarList.list());
  assert.equal(e.status, 403);
  assert.equal(e.data.error.status, 'PERMISSION_DENIED');
  assert.equal(e.data.error.message, 'Request had insufficient authentication scopes.');
  assert.deepEqual(e.data.error.errors[0], { domain: 'global', reason: 'insufficientPermissions', message: 'Insufficient Permission' });
  assert.deepEqual(e.data.error.details[0], {
    '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
    reason: 'ACCESS_TOKEN_SCOPE_INSUFFICIENT',
    domain: 'googleapis.com',
    metadata: { service: 'calendar-json.googleapis.com', method: 'calendar.v3.CalendarList.List' },
  });
  const challenge = e.headers?.get('www-authenticate') ?? '';
  assert.match(challenge, /^Bearer realm="https:\/\/accounts\.google\.com\/", error="insufficient_scope", scope="/);
  assert.ok(challenge.includes(SCOPE.calendarListReadonly));

  assert.equal((await api.events.list({ calendarId: 'primary' })).status, 200, 'readonly can list events');
  const write = await rejection(api.events.insert({ calendarId: 'primary', requestBody: { ...JAN } }));
  assert.equal(write.status, 403);
  assert.equal(write.data.error.details[0].metadata.method, 'calendar.v3.Events.Insert');

  const listOnly = await setup('scopes2', { scopes: [SCOPE.calendarListReadonly] });
  assert.equal((await rejection(listOnly.api.events.list({ calendarId: 'primary' }))).status, 403);
  assert.equal((await listOnly.api.calendarList.list()).status, 200);

  // calendar.events.owned reaches owned calendars only (§2.2 modelled).
  const owned = await setup('scopes3', { scopes: [SCOPE.eventsOwned], calendars: [{ summary: 'W', accessRole: 'writer' }] });
  assert.equal((await owned.api.events.insert({ calendarId: 'primary', requestBody: { ...JAN } })).status, 200);
  const writerCal = owned.info.calendars.find((c) => c.accessRole === 'writer')?.id ?? '';
  const ownedErr = await rejection(owned.api.events.insert({ calendarId: writerCal, requestBody: { ...JAN } }));
  assert.equal(ownedErr.status, 403);
  assert.equal(reasonOf(ownedErr), 'insufficientPermissions');
});

test('time zones: instant stored, rendered with the tz-database offset in query ?? event ?? calendar zone (§7)', async () => {
  const { api } = await setup('tz', { timeZone: 'America/New_York' });
  // Winter and summer in Berlin: +01:00 / +02:00 from the same zone.
  const winter = (await api.events.insert({ calendarId: 'primary', requestBody: timed('2030-01-10T08:00:00Z', '2030-01-10T09:00:00Z', 'Europe/Berlin') })).data;
  assert.deepEqual(winter.start, { dateTime: '2030-01-10T09:00:00+01:00', timeZone: 'Europe/Berlin' });
  const summer = (await api.events.insert({ calendarId: 'primary', requestBody: timed('2030-07-10T08:00:00Z', '2030-07-10T09:00:00Z', 'Europe/Berlin') })).data;
  assert.equal(summer.start?.dateTime, '2030-07-10T10:00:00+02:00');
  // No event zone: the calendar's (New York, -05:00 in January).
  const noZone = (await api.events.insert({ calendarId: 'primary', requestBody: timed('2030-01-10T08:00:00+01:00', '2030-01-10T09:00:00+01:00') })).data;
  assert.deepEqual(noZone.start, { dateTime: '2030-01-10T02:00:00-05:00' });
  // Query timeZone wins.
  const inTokyo = (await api.events.get({ calendarId: 'primary', eventId: winter.id ?? '', timeZone: 'Asia/Tokyo' })).data;
  assert.equal(inTokyo.start?.dateTime, '2030-01-10T17:00:00+09:00');
  assert.equal(inTokyo.start?.timeZone, 'Europe/Berlin');
  // Wall-clock time without an offset is read in timeZone.
  const wall = (await api.events.insert({ calendarId: 'primary', requestBody: timed('2030-07-01T09:00:00', '2030-07-01T10:00:00', 'Asia/Kolkata') })).data;
  assert.equal(wall.start?.dateTime, '2030-07-01T09:00:00+05:30');
  const utc = (await api.events.get({ calendarId: 'primary', eventId: wall.id ?? '', timeZone: 'UTC' })).data;
  assert.equal(utc.start?.dateTime, '2030-07-01T03:30:00Z');
  const missingZone = await rejection(api.events.insert({ calendarId: 'primary', requestBody: timed('2030-07-01T09:00:00', '2030-07-01T10:00:00') }));
  assert.equal(missingZone.status, 400);
  assert.equal(missingZone.data.error.errors[0].message, 'Missing time zone definition for start time.');
  const badZone = await rejection(api.events.insert({ calendarId: 'primary', requestBody: timed('2030-07-01T09:00:00Z', '2030-07-01T10:00:00Z', 'Mars/Olympus') }));
  assert.equal(badZone.status, 400);
});

test('all-day events: date with exclusive end; kinds must match; end before start is empty; missing times (§7, §5)', async () => {
  const { api } = await setup('allday');
  const day = (await api.events.insert({ calendarId: 'primary', requestBody: { start: { date: '2030-02-01' }, end: { date: '2030-02-02' } } })).data;
  assert.deepEqual([day.start, day.end], [{ date: '2030-02-01' }, { date: '2030-02-02' }]);
  const listed = (await api.events.list({ calendarId: 'primary', timeMin: '2030-02-02T00:00:00Z' })).data;
  assert.deepEqual(listed.items, [], 'the end date is exclusive');
  const cases: [calendar_v3.Schema$Event, string, string][] = [
    [{ start: { date: '2030-02-01' }, end: { date: '2030-02-01' } }, 'timeRangeEmpty', 'The specified time range is empty.'],
    [timed('2030-02-01T10:00:00Z', '2030-02-01T09:00:00Z'), 'timeRangeEmpty', 'The specified time range is empty.'],
    [{ start: { date: '2030-02-01' }, end: { dateTime: '2030-02-02T00:00:00Z' } }, 'invalid', 'Start and end times must either both be date or both be dateTime.'],
    [{ start: { date: '2030-02-01' } }, 'required', 'Missing end time.'],
    [{}, 'required', 'Missing end time.'],
    [{ end: { date: '2030-02-01' } }, 'required', 'Missing start time.'],
    [{ start: { date: '2030-02-30' }, end: { date: '2030-03-01' } }, 'invalid', 'Invalid start time.'],
  ];
  for (const [body, reason, message] of cases) {
    const e = await rejection(api.events.insert({ calendarId: 'primary', requestBody: body }));
    assert.equal(e.status, 400, JSON.stringify(body));
    assert.equal(reasonOf(e), reason, JSON.stringify(body));
    assert.equal(e.data.error.errors[0].message, message);
  }
  const zero = await api.events.insert({ calendarId: 'primary', requestBody: timed('2030-02-01T10:00:00Z', '2030-02-01T10:00:00Z') });
  assert.equal(zero.status, 200, 'zero-length timed events are allowed');
});

test('malformed requests: invalid JSON is 400 parseError; wrong field types 400 invalid; /batch is 404; never a crash (§5, §6)', async () => {
  const email = freshEmail('malformed');
  emu.control.addAccount({ email });
  const { client, tokens } = await connect(emu, email);
  const headers = { authorization: `Bearer ${tokens.access_token}`, 'content-type': 'application/json' };
  const url = `${emu.url}/calendar/v3/calendars/primary/events`;
  for (const body of ['{"summary": ', 'not json', '[1,2]', '"string"']) {
    const res = await fetch(url, { method: 'POST', headers, body });
    assert.equal(res.status, 400, body);
    assert.equal(res.headers.get('content-type'), 'application/json; charset=UTF-8');
    assert.deepEqual(await res.json(), {
      error: { errors: [{ domain: 'global', reason: 'parseError', message: 'Parse Error' }], code: 400, message: 'Parse Error' },
    });
  }
  const api = calendarApi(emu, client);
  const typed = await rejection(api.events.insert({ calendarId: 'primary', requestBody: { summary: 42, ...JAN } as unknown as calendar_v3.Schema$Event }));
  assert.equal(typed.status, 400);
  assert.equal(reasonOf(typed), 'invalid');
  const nested = await rejection(
    api.events.insert({ calendarId: 'primary', requestBody: { ...JAN, extendedProperties: { private: { k: 7 } } } as unknown as calendar_v3.Schema$Event }),
  );
  assert.equal(nested.status, 400);
  const batch = await fetch(`${emu.url}/batch/calendar/v3`, { method: 'POST', headers, body: '' });
  assert.equal(batch.status, 404);
  const badEncoding = await fetch(`${emu.url}/calendar/v3/calendars/%E0%A4%A/events`, { headers });
  assert.equal(badEncoding.status, 404);
  // Still alive.
  assert.equal((await api.calendarList.list()).status, 200);
});
