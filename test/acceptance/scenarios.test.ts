// The seed's acceptance scenarios, end to end: API server + two relay processes + the Google
// emulator, driven through HTTP only (organisations and users are created with SQL, as Cassius
// itself does; the database is otherwise only read for the final token scan).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTokenStore } from '../../src/integrations/google/tokenStore';
import { sql } from '../../src/shared/db';
import { createOrganisation, createUser } from '../helpers/fixtures';
import { googleConfig, testKeyring } from '../helpers/google';
import { secretsInDatabase } from '../api/support';
import { appointmentIdOf, relayLogs, session, startStack, waitFor, type Stack } from './stack';

let s: Stack;
before(async () => {
  s = await startStack();
});
after(async () => {
  await s.stop();
});

const slot = (day: number, hour = 9) => ({
  starts_at: `2031-03-${String(day).padStart(2, '0')}T${String(hour).padStart(2, '0')}:00:00+01:00`,
  ends_at: `2031-03-${String(day).padStart(2, '0')}T${String(hour).padStart(2, '0')}:30:00+01:00`,
  time_zone: 'Europe/Paris',
});

async function until<T>(what: string, check: () => Promise<T | null | undefined | false>, ms = 30_000): Promise<T> {
  try {
    return await waitFor(check, ms, what);
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${relayLogs(s)}`);
  }
}

/** The live events of a calendar carrying this appointment id. */
async function eventsOf(calendarId: string, appointmentId: string) {
  return (await s.liveEvents(calendarId)).filter((e) => appointmentIdOf(e) === appointmentId);
}

async function synced(token: string, id: string) {
  const r = await s.api('GET', `/api/appointments/${id}`, { session: token });
  return r.body?.sync?.status === 'synced' ? r.body : null;
}

describe('one organisation calendar: scenarios 1-5', () => {
  let org: string;
  let admin: string;
  const email = 'frontdesk@clinic-one.test';
  const ids: Record<string, string> = {};

  before(async () => {
    org = await createOrganisation(s.t.db, 'Clinic One');
    admin = await session(await createUser(s.t.db, org, { role: 'admin' }), org);
    await s.emulator('POST', '/__emulator/accounts', { email });
    const landed = await s.connect(admin, email);
    assert.equal(landed, '/settings/integrations/google-calendar?connected=1&level=org');
    const status = await s.api('GET', '/api/integrations/google/status', { session: admin });
    assert.equal(status.body.status, 'active');
    assert.equal(status.body.calendar_id, email);
  });

  test('1. create an appointment -> exactly one Google event', async () => {
    const r = await s.api('POST', '/api/appointments', {
      session: admin,
      body: { title: 'Check-up Mrs Dupont', description: 'Annual', location: 'Room 2', ...slot(3) },
    });
    assert.equal(r.status, 201);
    ids.one = r.body.id;
    const appointment = await until('the appointment to be synced', () => synced(admin, ids.one!));
    const events = await until('its event', async () => {
      const e = await eventsOf(email, ids.one!);
      return e.length > 0 && e;
    });
    assert.equal(events.length, 1, 'never two');
    const [event] = events;
    assert.equal(event.id, appointment.sync.external_event_id);
    assert.equal(event.summary, 'Check-up Mrs Dupont');
    assert.equal(event.description, 'Annual');
    assert.equal(event.location, 'Room 2');
    assert.equal(event.start.timeZone, 'Europe/Paris');
    assert.equal(new Date(event.start.dateTime).toISOString(), '2031-03-03T08:00:00.000Z');
    assert.equal(new Date(event.end.dateTime).toISOString(), '2031-03-03T08:30:00.000Z');
    // A Retry does not duplicate it.
    const retry = await s.api('POST', `/api/appointments/${ids.one}/sync`, { session: admin });
    assert.equal(retry.status, 202);
    await until('the retry to finish', () => synced(admin, ids.one!));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await eventsOf(email, ids.one!)).length, 1);
    assert.equal((await s.emulator('GET', `/__emulator/calendars/${encodeURIComponent(email)}/events`)).filter((e: object) => appointmentIdOf(e) === ids.one).length, 1, 'not even a deleted copy');
  });

  test('2. modify -> the event is updated', async () => {
    const r = await s.api('PATCH', `/api/appointments/${ids.one}`, { session: admin, body: { title: 'Check-up (moved)', ...slot(4, 14) } });
    assert.equal(r.status, 200);
    const [event] = await until('the event to change', async () => {
      const e = await eventsOf(email, ids.one!);
      return e[0]?.summary === 'Check-up (moved)' && e;
    });
    assert.equal(new Date(event.start.dateTime).toISOString(), '2031-03-04T13:00:00.000Z');
    assert.equal((await eventsOf(email, ids.one!)).length, 1);
  });

  test('3. cancel -> the event is deleted', async () => {
    const r = await s.api('POST', `/api/appointments/${ids.one}/cancel`, { session: admin });
    assert.equal(r.status, 200);
    await until('the event to be deleted', async () => (await eventsOf(email, ids.one!)).length === 0);
    // And a hard delete of another synced appointment removes its event too.
    const other = await s.api('POST', '/api/appointments', { session: admin, body: { title: 'To delete', ...slot(5) } });
    await until('it to sync', async () => (await eventsOf(email, other.body.id)).length === 1);
    assert.equal((await s.api('DELETE', `/api/appointments/${other.body.id}`, { session: admin })).status, 204);
    await until('its event to be deleted', async () => (await eventsOf(email, other.body.id)).length === 0);
  });

  test('4. disable sync -> no more Google calls', async () => {
    // Two synced appointments, changed later while sync is off.
    for (const [key, day] of [['keep', 10], ['toCancel', 11]] as const) {
      const r = await s.api('POST', '/api/appointments', { session: admin, body: { title: `Before pause ${key}`, ...slot(day) } });
      ids[key] = r.body.id;
      await until(`${key} to sync`, () => synced(admin, r.body.id));
    }
    const off = await s.api('PATCH', '/api/integrations/google/settings', { session: admin, body: { sync_enabled: false } });
    assert.equal(off.status, 200);
    assert.equal(off.body.status, 'paused');
    await until('the relays to finish the integration change', async () => {
      const st = await s.api('GET', '/api/integrations/google/status', { session: admin });
      return st.body.backlog && !st.body.backlog.running;
    });
    await new Promise((r) => setTimeout(r, 500));
    const callsBefore = (await s.emulator('GET', '/__emulator/calls')).length;

    const created = await s.api('POST', '/api/appointments', { session: admin, body: { title: 'Made while paused', ...slot(12) } });
    ids.paused = created.body.id;
    assert.equal(created.body.sync.status, 'disabled');
    await s.api('PATCH', `/api/appointments/${ids.keep}`, { session: admin, body: { title: 'Changed while paused' } });
    await s.api('POST', `/api/appointments/${ids.toCancel}/cancel`, { session: admin });
    await s.api('POST', `/api/appointments/${ids.keep}/sync`, { session: admin });
    // Ten poll periods of both relays.
    await new Promise((r) => setTimeout(r, 2500));
    const calls = await s.emulator('GET', '/__emulator/calls');
    assert.deepEqual(calls.slice(callsBefore), [], 'Google was called while sync was off');
    const got = await s.api('GET', `/api/appointments/${ids.keep}`, { session: admin });
    assert.equal(got.body.sync.status, 'disabled');
    assert.equal((await eventsOf(email, ids.keep!))[0]?.summary, 'Before pause keep');
  });

  test('5. re-enable + Sync now -> everything missed is synced, cancelled ones removed', async () => {
    const on = await s.api('PATCH', '/api/integrations/google/settings', { session: admin, body: { sync_enabled: true } });
    assert.equal(on.status, 200);
    assert.equal(on.body.status, 'active');
    const now = await s.api('POST', '/api/integrations/google/sync-now', { session: admin });
    assert.equal(now.status, 202);
    assert.ok(now.body.queued >= 3, `queued ${now.body.queued}`);
    await until('the missed creation to arrive', async () => (await eventsOf(email, ids.paused!)).length === 1);
    await until('the missed change to arrive', async () => (await eventsOf(email, ids.keep!))[0]?.summary === 'Changed while paused');
    await until('the missed cancellation to arrive', async () => (await eventsOf(email, ids.toCancel!)).length === 0);
    const second = await s.api('POST', '/api/integrations/google/sync-now', { session: admin });
    assert.equal(second.status, 202);
    await until('the backlog to finish', async () => {
      const st = await s.api('GET', '/api/integrations/google/status', { session: admin });
      return st.body.backlog && !st.body.backlog.running && st.body.counts.pending === 0 && st.body;
    });
    // Never two events for one appointment.
    const live = await s.liveEvents(email);
    const perAppointment = new Map<string, number>();
    for (const e of live) perAppointment.set(appointmentIdOf(e)!, (perAppointment.get(appointmentIdOf(e)!) ?? 0) + 1);
    assert.ok([...perAppointment.values()].every((n) => n === 1), JSON.stringify([...perAppointment]));
    assert.deepEqual([...perAppointment.keys()].sort(), [ids.keep, ids.paused].sort());
  });
});

describe('6. two users with their own Google accounts', () => {
  test("each one's assigned appointments land in their own calendar only; unassigned ones in the org calendar", async () => {
    const org = await createOrganisation(s.t.db, 'Clinic Six');
    const adminId = await createUser(s.t.db, org, { role: 'admin' });
    const drA = await createUser(s.t.db, org, { role: 'member' });
    const drB = await createUser(s.t.db, org, { role: 'member' });
    const admin = await session(adminId, org);
    const a = await session(drA, org);
    const b = await session(drB, org);
    const emails = { org: 'desk@clinic-six.test', a: 'dr.a@clinic-six.test', b: 'dr.b@clinic-six.test' };
    for (const email of Object.values(emails)) await s.emulator('POST', '/__emulator/accounts', { email });
    assert.match(await s.connect(admin, emails.org), /connected=1&level=org/);
    assert.match(await s.connect(a, emails.a, 'user'), /connected=1&level=user/);
    assert.match(await s.connect(b, emails.b, 'user'), /connected=1&level=user/);
    const mine = await s.api('GET', '/api/integrations/google/status?level=user', { session: a });
    assert.equal(mine.body.account_email, emails.a);

    const make = async (title: string, assignee: string | null, day: number) =>
      (await s.api('POST', '/api/appointments', { session: admin, body: { title, assigned_user_id: assignee, ...slot(day) } })).body.id as string;
    const forA = await make('Patient of A', drA, 20);
    const forB = await make('Patient of B', drB, 21);
    const nobody = await make('Walk-in', null, 22);
    for (const id of [forA, forB, nobody]) await until(`${id} to sync`, () => synced(admin, id));
    const ids = async (calendar: string) => (await s.liveEvents(calendar)).map(appointmentIdOf).sort();
    assert.deepEqual(await ids(emails.a), [forA]);
    assert.deepEqual(await ids(emails.b), [forB]);
    assert.deepEqual(await ids(emails.org), [nobody]);

    // Reassigning moves the event: no copy left behind.
    await s.api('PATCH', `/api/appointments/${nobody}`, { session: admin, body: { assigned_user_id: drB } });
    await until('the event to move to B', async () => (await ids(emails.b)).includes(nobody));
    await until('the org calendar to be empty', async () => (await ids(emails.org)).length === 0);
    assert.deepEqual(await ids(emails.b), [forB, nobody].sort());
    assert.deepEqual(await ids(emails.a), [forA]);
  });
});

describe('revoked tokens -> needs_reconnect -> reconnect', () => {
  test('changes made meanwhile arrive after reconnecting', async () => {
    const org = await createOrganisation(s.t.db, 'Clinic Revoked');
    const admin = await session(await createUser(s.t.db, org, { role: 'admin' }), org);
    const email = 'revoked@clinic.test';
    await s.emulator('POST', '/__emulator/accounts', { email });
    await s.connect(admin, email);
    const first = (await s.api('POST', '/api/appointments', { session: admin, body: { title: 'Before revoke', ...slot(25) } })).body.id as string;
    await until('first to sync', async () => (await eventsOf(email, first)).length === 1);

    await s.emulator('POST', `/__emulator/accounts/${encodeURIComponent(email)}/revoke`);
    await s.api('PATCH', `/api/appointments/${first}`, { session: admin, body: { title: 'Changed after revoke' } });
    const second = (await s.api('POST', '/api/appointments', { session: admin, body: { title: 'Created after revoke', ...slot(26) } })).body.id as string;
    const status = await until('needs_reconnect', async () => {
      const st = await s.api('GET', '/api/integrations/google/status', { session: admin });
      return st.body.status === 'needs_reconnect' && st.body;
    });
    assert.ok(status.last_error);
    assert.equal((await eventsOf(email, first))[0]?.summary, 'Before revoke');

    assert.match(await s.connect(admin, email), /connected=1/);
    await until('the change to arrive', async () => (await eventsOf(email, first))[0]?.summary === 'Changed after revoke');
    await until('the creation to arrive', async () => (await eventsOf(email, second)).length === 1);
    const after = await s.api('GET', '/api/integrations/google/status', { session: admin });
    assert.equal(after.body.status, 'active');
    assert.equal((await eventsOf(email, first)).length, 1);
  });
});

describe('no token in clear text anywhere', () => {
  test('every row of every table, and every API response and redirect', async () => {
    const store = createTokenStore(s.t.db, testKeyring(), googleConfig(s.emu.url));
    const refs = await s.t.db.any(sql.unsafe`select integration_id as id, organisation_id from calendar_credentials`);
    assert.ok(refs.length >= 5);
    const secrets: string[] = [];
    for (const r of refs) {
      const ref = { id: r.id as string, organisationId: r.organisation_id as string };
      secrets.push((await store.readRefreshToken(ref))!, await store.accessToken(ref));
    }
    assert.deepEqual(await secretsInDatabase(s.t.db, secrets), []);
    const seen = s.seen.join('\n');
    for (const secret of secrets) assert.ok(!seen.includes(secret), 'a token in an API response or redirect');
    // Sanity: the scan finds what it looks for.
    assert.ok(seen.includes('/settings/integrations/google-calendar'));
  });
});
