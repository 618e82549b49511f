// The relay against real PostgreSQL and the Google emulator: plain SQL writes in, Google
// events and recorded rows out.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { z } from 'zod';
import { sql } from '../../src/shared/db';
import { startRelay, type Relay } from '../../relay/relay';
import { eventIdFor } from '../../relay/google';
import { startEmulator, type RunningEmulator } from '../emulator/index';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { createAppointment, createOrganisation, createUser } from '../helpers/fixtures';
import { connectGoogle, drained, relayConfig, waitFor } from '../helpers/google';

let t: TestDatabase;
let emu: RunningEmulator;
let relay: Relay;

before(async () => {
  t = await createTestDatabase();
  emu = await startEmulator();
  relay = await startRelay(relayConfig(t.url, emu.url, { RELAY_MAX_ATTEMPTS: 4 }));
});
after(async () => {
  await relay.stop();
  await emu.close();
  await t.drop();
});

type GEvent = {
  id: string;
  status: string;
  summary?: string;
  description?: string;
  location?: string;
  start?: { dateTime?: string; timeZone?: string };
  end?: { dateTime?: string; timeZone?: string };
  extendedProperties?: { private?: Record<string, string> };
};
const events = (calendarId: string) => emu.control.events(calendarId) as unknown as GEvent[];
const live = (calendarId: string) => events(calendarId).filter((e) => e.status !== 'cancelled');

const Sync = z.object({
  sync_status: z.string(),
  external_event_id: z.string().nullable(),
  last_error: z.string().nullable(),
  last_synced_at: z.string().nullable(),
});
const syncOf = (id: string) =>
  t.db.one(sql.type(Sync)`select sync_status, external_event_id, last_error, last_synced_at from appointments where id = ${id}`);

let n = 0;
/** A fresh organisation with an org-level Google account connected. */
async function clinic(opts: { calendars?: { id?: string; summary: string; accessRole: 'owner' | 'writer' | 'reader' }[] } = {}) {
  n += 1;
  const email = `clinic${n}-${Date.now()}@gmail.test`;
  emu.control.addAccount({ email, calendars: opts.calendars ?? [] });
  const org = await createOrganisation(t.db, `Clinic ${n}`);
  const integration = await connectGoogle(t.db, emu.url, { organisationId: org, email });
  await drained(t.db);
  return { org, email, integration };
}

const calls = (path: string, method?: string) =>
  emu.control.calls().filter((c) => c.path.includes(path) && (!method || c.method === method));

describe('create, update, cancel, delete', () => {
  test('a plain SQL insert becomes exactly one Google event with the appointment content', async () => {
    const { org, email } = await clinic();
    const id = await createAppointment(t.db, org, {
      title: 'Dental check-up',
      description: 'Bring X-rays',
      location: 'Room 4',
      startsAt: '2030-03-10T08:00:00Z',
      endsAt: '2030-03-10T08:45:00Z',
      timeZone: 'Europe/Paris',
    });
    const sync = await waitFor(async () => {
      const s = await syncOf(id);
      return s.sync_status === 'synced' ? s : null;
    });
    const all = live(email);
    assert.equal(all.length, 1);
    const event = all[0]!;
    assert.equal(event.id, eventIdFor(id, 0));
    assert.equal(sync.external_event_id, event.id);
    assert.equal(event.summary, 'Dental check-up');
    assert.equal(event.description, 'Bring X-rays');
    assert.equal(event.location, 'Room 4');
    assert.equal(Date.parse(event.start!.dateTime!), Date.parse('2030-03-10T08:00:00Z'));
    assert.equal(Date.parse(event.end!.dateTime!), Date.parse('2030-03-10T08:45:00Z'));
    assert.equal(event.start!.timeZone, 'Europe/Paris');
    assert.equal(event.extendedProperties?.private?.cassiusAppointmentId, id);
    assert.equal(event.extendedProperties?.private?.cassiusOrganisationId, org);
    const inserts = emu.control.calls().filter((c) => c.method === 'POST' && c.path === `/calendar/v3/calendars/${encodeURIComponent(email)}/events`);
    assert.ok(inserts.length >= 1);
    for (const c of inserts) assert.match(String((c as { query?: unknown }).query ? JSON.stringify((c as { query?: unknown }).query) : c.path), /sendUpdates|events/);
    const link = await t.db.one(sql.type(z.object({ sync_status: z.string(), external_calendar_id: z.string(), generation: z.number() }))`
      select sync_status, external_calendar_id, generation from appointment_external_links where appointment_id = ${id}`);
    assert.deepEqual(link, { sync_status: 'synced', external_calendar_id: email, generation: 0 });
  });

  test('an update patches the event; a change Google does not show makes no call', async () => {
    const { org, email } = await clinic();
    const id = await createAppointment(t.db, org, { title: 'Before' });
    await waitFor(async () => (await syncOf(id)).sync_status === 'synced');
    await t.db.query(sql.unsafe`update appointments set title = 'After', location = 'Annex' where id = ${id}`);
    await waitFor(async () => live(email)[0]?.summary === 'After', 10_000, 'the patched title');
    assert.equal(live(email)[0]!.location, 'Annex');
    assert.equal(live(email).length, 1);
    await drained(t.db);
    const before = emu.control.calls().length;
    // Same instant written differently, and a title rewritten to itself: nothing Google shows changes.
    await t.db.query(sql.unsafe`update appointments set starts_at = starts_at + interval '0 seconds', title = 'After' where id = ${id}`);
    await t.db.query(sql.unsafe`update appointments set time_zone = 'Europe/Paris' where id = ${id}`);
    await drained(t.db);
    assert.equal(emu.control.calls().length, before, 'no Google call for an unchanged event');
  });

  test('several pending changes of one appointment are coalesced into its latest state', async () => {
    const { org, email } = await clinic();
    await relay.stop();
    try {
      const id = await createAppointment(t.db, org, { title: 'v0' });
      for (let i = 1; i <= 5; i++) await t.db.query(sql.unsafe`update appointments set title = ${`v${i}`} where id = ${id}`);
      emu.control.clearCalls();
    } finally {
      relay = await startRelay(relayConfig(t.url, emu.url, { RELAY_MAX_ATTEMPTS: 4 }));
    }
    await waitFor(async () => live(email)[0]?.summary === 'v5', 10_000, 'the latest title');
    await drained(t.db);
    assert.equal(emu.control.calls().filter((c) => c.path.includes('/events')).length, 1, 'one Google call for six changes');
  });

  test('cancel deletes the event; the appointment stays synced with no event id', async () => {
    const { org, email } = await clinic();
    const id = await createAppointment(t.db, org);
    await waitFor(async () => live(email).length === 1);
    await t.db.query(sql.unsafe`update appointments set status = 'cancelled' where id = ${id}`);
    await waitFor(async () => live(email).length === 0, 10_000, 'the event to be deleted');
    await drained(t.db);
    const sync = await syncOf(id);
    assert.equal(sync.sync_status, 'synced');
    assert.equal(sync.external_event_id, null);
    assert.equal(await t.db.oneFirst(sql.unsafe`select count(*)::int from appointment_external_links where appointment_id = ${id}`), 0);
  });

  test('a hard DELETE deletes the Google event too', async () => {
    const { org, email } = await clinic();
    const id = await createAppointment(t.db, org);
    await waitFor(async () => live(email).length === 1);
    await t.db.query(sql.unsafe`delete from appointments where id = ${id}`);
    await waitFor(async () => live(email).length === 0, 10_000, 'the event to be deleted');
    await drained(t.db);
    assert.equal(await t.db.oneFirst(sql.unsafe`select count(*)::int from appointment_external_links where appointment_id = ${id}`), 0);
  });
});

describe('idempotency and recreation', () => {
  test('an insert whose answer is lost is adopted on the 409, never duplicated', async () => {
    const { org, email } = await clinic();
    emu.control.addFault({ method: 'POST', pathPrefix: `/calendar/v3/calendars/${encodeURIComponent(email)}/events`, dropAfterCommit: true, count: 1 });
    const id = await createAppointment(t.db, org, { title: 'Lost answer' });
    await waitFor(async () => (await syncOf(id)).sync_status === 'synced', 15_000, 'sync after the lost answer');
    assert.equal(events(email).length, 1, 'exactly one event, deleted or not');
    assert.equal(live(email)[0]!.summary, 'Lost answer');
    assert.ok(calls('/events', 'POST').some((c) => c.status === 409), 'the retry met a 409 and adopted the event');
  });

  test('an insert that never reached Google is retried as an insert, keeping generation 0', async () => {
    const { org, email } = await clinic();
    // Every try of the first attempt is dropped before Google acts (3 = 1 + 2 quick retries).
    emu.control.addFault({ method: 'POST', pathPrefix: `/calendar/v3/calendars/${encodeURIComponent(email)}/events`, dropBeforeCommit: true, count: 3 });
    const id = await createAppointment(t.db, org, { title: 'Second try' });
    await waitFor(async () => (await syncOf(id)).sync_status === 'synced', 20_000, 'synced on the next attempt');
    assert.deepEqual(events(email).map((e) => e.id), [eventIdFor(id, 0)], 'one event, first generation, no tombstone');
    assert.equal(calls(`/calendars/${encodeURIComponent(email)}/events`, 'PATCH').length, 0, 'no patch of an event that never existed');
  });

  test('an event deleted in Google is restored on the next change (tombstone undeleted)', async () => {
    const { org, email } = await clinic();
    const id = await createAppointment(t.db, org, { title: 'Keep me' });
    await waitFor(async () => live(email).length === 1);
    await deleteInGoogle(email, eventIdFor(id, 0));
    assert.equal(live(email).length, 0);
    await t.db.query(sql.unsafe`update appointments set title = 'Keep me!' where id = ${id}`);
    await waitFor(async () => live(email)[0]?.summary === 'Keep me!', 10_000, 'the event back');
    assert.equal(live(email).length, 1);
  });

  test('when Google refuses to revive a deleted event, it is recreated under the next generation id', async () => {
    const { org, email } = await clinic();
    emu.control.setConfig({ tombstoneWrites: 'forbidden' });
    try {
      const id = await createAppointment(t.db, org, { title: 'Phoenix' });
      await waitFor(async () => live(email).length === 1);
      await deleteInGoogle(email, eventIdFor(id, 0));
      await t.db.query(sql.unsafe`update appointments set title = 'Phoenix 2' where id = ${id}`);
      await waitFor(async () => live(email)[0]?.summary === 'Phoenix 2', 10_000, 'the recreated event');
      assert.equal(live(email)[0]!.id, eventIdFor(id, 1));
      await waitFor(async () => (await syncOf(id)).external_event_id === eventIdFor(id, 1), 5_000, 'the new id recorded');
      const generation = await t.db.oneFirst(sql.unsafe`select generation from appointment_external_links where appointment_id = ${id}`);
      assert.equal(generation, 1);
    } finally {
      emu.control.setConfig({ tombstoneWrites: 'allow' });
    }
  });
});

/** Deletes an event as a person would in Google Calendar (through the API with the account's own token). */
async function deleteInGoogle(calendarId: string, eventId: string) {
  const integration = await t.db.one(sql.type(z.object({ id: z.string(), organisation_id: z.string() }))`
    select id, organisation_id from calendar_integrations where account_email = ${calendarId}`);
  const { createTokenStore } = await import('../../src/integrations/google/tokenStore');
  const { googleConfig, testKeyring } = await import('../helpers/google');
  const token = await createTokenStore(t.db, testKeyring(), googleConfig(emu.url)).accessToken({ id: integration.id, organisationId: integration.organisation_id });
  const res = await fetch(`${emu.url}/calendar/v3/calendars/${encodeURIComponent(calendarId)}/events/${eventId}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 204);
}

describe('targets', () => {
  test('no integration, or sync off: no Google call and sync_status disabled', async () => {
    const org = await createOrganisation(t.db, 'Offline clinic');
    const id = await createAppointment(t.db, org);
    await waitFor(async () => (await syncOf(id)).sync_status === 'disabled', 10_000, 'disabled');

    const { org: org2, email, integration } = await clinic();
    await t.db.query(sql.unsafe`update calendar_integrations set sync_enabled = false where id = ${integration}`);
    await drained(t.db);
    const before = emu.control.calls().length;
    const id2 = await createAppointment(t.db, org2);
    await waitFor(async () => (await syncOf(id2)).sync_status === 'disabled', 10_000, 'disabled by the toggle');
    assert.equal(emu.control.calls().length, before);
    assert.equal(live(email).length, 0);
  });

  test("an assigned user's own integration wins; re-assigning moves the event without leaving a copy", async () => {
    const { org, email: orgEmail } = await clinic();
    const alice = await createUser(t.db, org, { email: `alice${Date.now()}@clinic.test` });
    const aliceGoogle = `alice-${Date.now()}@gmail.test`;
    emu.control.addAccount({ email: aliceGoogle });
    await connectGoogle(t.db, emu.url, { organisationId: org, userId: alice, email: aliceGoogle });
    await drained(t.db);
    const id = await createAppointment(t.db, org, { assignedUserId: alice, title: 'Alice only' });
    await waitFor(async () => live(aliceGoogle).length === 1, 10_000, "the event in Alice's calendar");
    assert.equal(live(orgEmail).length, 0);
    await t.db.query(sql.unsafe`update appointments set assigned_user_id = null where id = ${id}`);
    await waitFor(async () => live(orgEmail).length === 1 && live(aliceGoogle).length === 0, 10_000, 'the event moved to the org calendar');
    const link = await t.db.oneFirst(sql.unsafe`select external_calendar_id from appointment_external_links where appointment_id = ${id}`);
    assert.equal(link, orgEmail);
  });

  test('changing the target calendar of the same account moves every event with events.move', async () => {
    const { org, email, integration } = await clinic({ calendars: [{ summary: 'Team', accessRole: 'owner' }] });
    const team = emu.control.account(email).calendars.find((c) => c.summary === 'Team')!.id;
    const ids = [await createAppointment(t.db, org), await createAppointment(t.db, org)];
    await waitFor(async () => live(email).length === 2);
    await t.db.query(sql.unsafe`update calendar_integrations set calendar_id = ${team} where id = ${integration}`);
    await waitFor(async () => live(team).length === 2 && live(email).length === 0, 15_000, 'both events moved');
    assert.ok(calls('/move', 'POST').length >= 2, 'moved, not deleted and recreated');
    assert.deepEqual(live(team).map((e) => e.id).sort(), ids.map((i) => eventIdFor(i, 0)).sort());
  });
});

describe('errors', () => {
  test('a read-only calendar: sync_status error naming Google reason; Retry after fixing it syncs', async () => {
    const { org, email, integration } = await clinic({ calendars: [{ summary: 'Holidays', accessRole: 'reader' }] });
    const holidays = emu.control.account(email).calendars.find((c) => c.summary === 'Holidays')!.id;
    await t.db.query(sql.unsafe`update calendar_integrations set calendar_id = ${holidays} where id = ${integration}`);
    await drained(t.db);
    const id = await createAppointment(t.db, org);
    const sync = await waitFor(async () => {
      const s = await syncOf(id);
      return s.sync_status === 'error' ? s : null;
    });
    assert.match(sync.last_error!, /requiredAccessLevel/);
    assert.match(sync.last_error!, /read access/);
    const parked = await t.db.oneFirst(sql.unsafe`select count(*)::int from sync_outbox where appointment_id = ${id} and failed_at is not null`);
    assert.equal(parked, 1, 'parked as a dead letter');
    // Fix the calendar (the integration change requeues), then Retry explicitly as the API does.
    await t.db.query(sql.unsafe`update calendar_integrations set calendar_id = ${email} where id = ${integration}`);
    await t.db.query(sql.unsafe`insert into sync_outbox (organisation_id, appointment_id, operation) values (${org}, ${id}, 'resync')`);
    await waitFor(async () => (await syncOf(id)).sync_status === 'synced', 10_000, 'synced after Retry');
    assert.equal(live(email).length, 1);
    await drained(t.db);
    assert.equal(await t.db.oneFirst(sql.unsafe`select count(*)::int from sync_outbox where appointment_id = ${id}`), 0);
  });

  test('5xx answers are retried with backoff until they succeed', async () => {
    const { org, email } = await clinic();
    emu.control.addFault({ pathPrefix: `/calendar/v3/calendars/${encodeURIComponent(email)}/events`, status: 503, count: 4 });
    const id = await createAppointment(t.db, org);
    await waitFor(async () => (await syncOf(id)).sync_status === 'synced', 20_000, 'synced after 503s');
    assert.equal(live(email).length, 1);
  });

  test('a call Google never answers is abandoned after GOOGLE_TIMEOUT_MS (5 s here) and retried: one event', async () => {
    const { org, email } = await clinic();
    // The first insert hangs for a minute; the relay must not wait for it.
    emu.control.addFault({ method: 'POST', pathPrefix: `/calendar/v3/calendars/${encodeURIComponent(email)}/events`, latencyMs: 60_000, count: 1 });
    const id = await createAppointment(t.db, org, { title: 'Hung call' });
    // Synced well before the hung call could have answered: it was abandoned and sent again.
    await waitFor(async () => (await syncOf(id)).sync_status === 'synced', 20_000, 'synced after the hung call was abandoned');
    assert.deepEqual(live(email).map((e) => e.summary), ['Hung call']);
  });

  test('a rate limit pauses the account for every relay, then everything syncs', async () => {
    const { org, email } = await clinic();
    emu.control.addFault({ pathPrefix: `/calendar/v3/calendars/${encodeURIComponent(email)}/events`, status: 429, reason: 'rateLimitExceeded', count: 1, retryAfterS: 1 });
    const ids = [await createAppointment(t.db, org), await createAppointment(t.db, org)];
    await waitFor(async () => live(email).length === 2, 20_000, 'both events after the pause');
    for (const id of ids) await waitFor(async () => (await syncOf(id)).sync_status === 'synced', 5_000, 'recorded as synced');
    const paused = await t.db.oneFirst(sql.unsafe`select count(*)::int from google_rate_limits where paused_until is not null and account_key <> '*'`);
    assert.ok(paused >= 1, 'the pause was recorded for all relays');
  });

  test('revoked tokens: needs_reconnect, rows wait unconsumed, reconnecting replays them', async () => {
    const { org, email, integration } = await clinic();
    emu.control.revoke(email);
    const id = await createAppointment(t.db, org, { title: 'While revoked' });
    await waitFor(
      async () => (await t.db.oneFirst(sql.unsafe`select connection_status from calendar_integrations where id = ${integration}`)) === 'needs_reconnect',
      10_000,
      'needs_reconnect',
    );
    const waiting = await t.db.oneFirst(sql.unsafe`select count(*)::int from sync_outbox where waiting_for_integration_id = ${integration}`);
    assert.ok(waiting >= 1, 'the change waits');
    await t.db.query(sql.unsafe`update appointments set title = 'Changed while revoked' where id = ${id}`);
    await connectGoogle(t.db, emu.url, { organisationId: org, email });
    await waitFor(async () => live(email)[0]?.summary === 'Changed while revoked', 15_000, 'the replay after reconnecting');
    assert.equal(live(email).length, 1);
  });
});
