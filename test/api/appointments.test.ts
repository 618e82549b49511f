// CONTRACT §5 appointments through HTTP: the rows written, the outbox rows the triggers add,
// the sync object, and bad input of every kind answered 4xx with nothing written.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { sql } from '../../src/shared/db';
import { createIntegration, createUser, outboxRows } from '../helpers/fixtures';
import { count, createOrg, errorCode, startHarness, validAppointment, type Harness, type Org } from './support';

let h: Harness;
let org: Org;

before(async () => {
  h = await startHarness();
  org = await createOrg(h.db, 'Clinic');
});
after(async () => {
  await h.close();
});
beforeEach(async () => {
  await h.db.query(sql.unsafe`truncate sync_outbox`);
});

const create = async (over: Record<string, unknown> = {}) => {
  const r = await h.request('POST', '/api/appointments', { token: org.memberToken, body: validAppointment(over) });
  assert.equal(r.status, 201, r.text);
  return r.body as { id: string } & Record<string, any>;
};

describe('create, read, list', () => {
  test('POST creates the row, the trigger queues one insert, 201 answers the appointment', async () => {
    const doctor = await createUser(h.db, org.id);
    const r = await h.request('POST', '/api/appointments', {
      token: org.memberToken,
      body: {
        title: 'Dental check',
        starts_at: '2030-03-01T10:00:00+01:00',
        ends_at: '2030-03-01T10:45:00+01:00',
        time_zone: 'Europe/Brussels',
        assigned_user_id: doctor,
        description: 'Bring X-rays',
        location: 'Room 3',
      },
    });
    assert.equal(r.status, 201);
    const a = r.body;
    assert.equal(a.title, 'Dental check');
    assert.equal(a.starts_at, '2030-03-01T09:00:00.000Z');
    assert.equal(a.ends_at, '2030-03-01T09:45:00.000Z');
    assert.equal(a.time_zone, 'Europe/Brussels');
    assert.equal(a.assigned_user_id, doctor);
    assert.equal(a.organisation_id, org.id);
    assert.equal(a.status, 'scheduled');
    assert.deepEqual(a.sync, { status: 'disabled', external_event_id: null, last_synced_at: null, last_error: null });
    const row = await h.db.one(sql.unsafe`
      select title, description, location, time_zone, assigned_user_id, organisation_id, status from appointments where id = ${a.id}`);
    assert.deepEqual(row, {
      title: 'Dental check',
      description: 'Bring X-rays',
      location: 'Room 3',
      time_zone: 'Europe/Brussels',
      assigned_user_id: doctor,
      organisation_id: org.id,
      status: 'scheduled',
    });
    const outbox = await outboxRows(h.db);
    assert.deepEqual(
      outbox.map((o) => [o.appointment_id, o.operation, o.priority, o.organisation_id]),
      [[a.id, 'insert', 0, org.id]],
    );
  });

  test('time_zone defaults to UTC; optional fields to null', async () => {
    const r = await h.request('POST', '/api/appointments', {
      token: org.memberToken,
      body: { title: 'Minimal', starts_at: '2030-01-01T08:00:00Z', ends_at: '2030-01-01T09:00:00Z' },
    });
    assert.equal(r.status, 201);
    assert.equal(r.body.time_zone, 'UTC');
    assert.equal(r.body.description, null);
    assert.equal(r.body.assigned_user_id, null);
  });

  test('GET one: the sync object follows the V1 columns when an integration targets it', async () => {
    const a = await create();
    const org2 = await createOrg(h.db, 'Synced');
    const r0 = await h.request('GET', `/api/appointments/${a.id}`, { token: org.memberToken });
    assert.equal(r0.body.sync.status, 'disabled', 'no integration targets it');

    const b = await h.request('POST', '/api/appointments', { token: org2.adminToken, body: validAppointment() });
    const integration = await createIntegration(h.db, org2.id);
    const pending = await h.request('GET', `/api/appointments/${b.body.id}`, { token: org2.adminToken });
    assert.equal(pending.body.sync.status, 'pending');
    await h.db.query(sql.unsafe`
      update appointments set sync_status = 'synced', external_event_id = 'abc123def', last_synced_at = '2030-01-01T00:00:00Z'
      where id = ${b.body.id}`);
    const synced = await h.request('GET', `/api/appointments/${b.body.id}`, { token: org2.adminToken });
    assert.deepEqual(synced.body.sync, {
      status: 'synced',
      external_event_id: 'abc123def',
      last_synced_at: '2030-01-01T00:00:00.000Z',
      last_error: null,
    });
    await h.db.query(sql.unsafe`update calendar_integrations set sync_enabled = false where id = ${integration}`);
    const off = await h.request('GET', `/api/appointments/${b.body.id}`, { token: org2.adminToken });
    assert.equal(off.body.sync.status, 'disabled', 'sync off');
  });

  test('GET list filters by overlap with [from, to) and orders by start', async () => {
    const o = await createOrg(h.db, 'Lister');
    const mk = (title: string, s: string, e: string) =>
      h.request('POST', '/api/appointments', { token: o.adminToken, body: { title, starts_at: s, ends_at: e } });
    await mk('late', '2031-05-03T10:00:00Z', '2031-05-03T11:00:00Z');
    await mk('early', '2031-05-01T10:00:00Z', '2031-05-01T11:00:00Z');
    await mk('middle', '2031-05-02T10:00:00Z', '2031-05-02T11:00:00Z');
    const all = await h.request('GET', '/api/appointments', { token: o.memberToken });
    assert.deepEqual(all.body.map((x: { title: string }) => x.title), ['early', 'middle', 'late']);
    const some = await h.request('GET', '/api/appointments?from=2031-05-01T10:30:00Z&to=2031-05-03T10:00:00Z', { token: o.memberToken });
    assert.deepEqual(some.body.map((x: { title: string }) => x.title), ['early', 'middle']);
    const limited = await h.request('GET', '/api/appointments?limit=1', { token: o.memberToken });
    assert.equal(limited.body.length, 1);
    assert.ok(all.body.every((x: { sync: { status: string } }) => x.sync.status === 'disabled'));
  });
});

describe('change, cancel, delete, retry', () => {
  test('PATCH changes only the given fields; the trigger queues one update', async () => {
    const a = await create({ description: 'old', location: 'Room 1' });
    await h.db.query(sql.unsafe`truncate sync_outbox`);
    const r = await h.request('PATCH', `/api/appointments/${a.id}`, {
      token: org.memberToken,
      body: { title: 'Renamed', description: null, ends_at: '2030-01-15T10:00:00+01:00' },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.title, 'Renamed');
    assert.equal(r.body.description, null);
    assert.equal(r.body.location, 'Room 1');
    assert.equal(r.body.ends_at, '2030-01-15T09:00:00.000Z');
    assert.ok(r.body.updated_at > a.updated_at);
    assert.deepEqual((await outboxRows(h.db)).map((o) => [o.appointment_id, o.operation]), [[a.id, 'update']]);
  });

  test('PATCH is checked against the stored row: an end before the stored start is refused', async () => {
    const a = await create();
    await h.db.query(sql.unsafe`truncate sync_outbox`);
    const r = await h.request('PATCH', `/api/appointments/${a.id}`, { token: org.memberToken, body: { ends_at: '2030-01-15T08:00:00+01:00' } });
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /ends_at.*after starts_at/);
    assert.equal(await h.db.oneFirst(sql.unsafe`select ends_at from appointments where id = ${a.id}`), a.ends_at);
    assert.equal((await outboxRows(h.db)).length, 0);
  });

  test('cancel sets status cancelled and queues the change; cancelling twice is harmless', async () => {
    const a = await create();
    await h.db.query(sql.unsafe`truncate sync_outbox`);
    const r = await h.request('POST', `/api/appointments/${a.id}/cancel`, { token: org.memberToken });
    assert.equal(r.status, 200);
    assert.equal(r.body.status, 'cancelled');
    assert.equal(await h.db.oneFirst(sql.unsafe`select status from appointments where id = ${a.id}`), 'cancelled');
    assert.deepEqual((await outboxRows(h.db)).map((o) => o.operation), ['update']);
    const again = await h.request('POST', `/api/appointments/${a.id}/cancel`, { token: org.memberToken, body: {} });
    assert.equal(again.status, 200);
    assert.equal((await outboxRows(h.db)).length, 1, 'no change, nothing queued');
  });

  test('DELETE removes the row; the trigger queues a delete with its snapshot; then 404', async () => {
    const a = await create();
    await h.db.query(sql.unsafe`update appointments set external_event_id = 'evt12345' where id = ${a.id}`);
    await h.db.query(sql.unsafe`truncate sync_outbox`);
    const r = await h.request('DELETE', `/api/appointments/${a.id}`, { token: org.memberToken });
    assert.equal(r.status, 204);
    assert.equal(r.text, '');
    assert.equal(await h.db.oneFirst(sql.unsafe`select count(*)::int from appointments where id = ${a.id}`), 0);
    const [row, ...rest] = await outboxRows(h.db);
    assert.equal(rest.length, 0);
    assert.equal(row?.operation, 'delete');
    assert.equal(row?.appointment_id, a.id);
    assert.equal((row?.snapshot as { external_event_id: string }).external_event_id, 'evt12345');
    const again = await h.request('DELETE', `/api/appointments/${a.id}`, { token: org.memberToken });
    assert.equal(again.status, 404);
    assert.equal(errorCode(again), 'not_found');
    assert.equal((await h.request('GET', `/api/appointments/${a.id}`, { token: org.memberToken })).status, 404);
  });

  test('Retry queues a live resync row, marks the appointment pending, answers 202', async () => {
    const a = await create();
    await h.db.query(sql.unsafe`
      update appointments set sync_status = 'error', last_error = 'Google 403 requiredAccessLevel' where id = ${a.id}`);
    await h.db.query(sql.unsafe`truncate sync_outbox`);
    const r = await h.request('POST', `/api/appointments/${a.id}/sync`, { token: org.memberToken });
    assert.equal(r.status, 202);
    assert.deepEqual(r.body, { queued: true, appointment_id: a.id });
    assert.deepEqual(
      (await outboxRows(h.db)).map((o) => [o.appointment_id, o.operation, o.priority, o.organisation_id]),
      [[a.id, 'resync', 0, org.id]],
    );
    assert.equal(await h.db.oneFirst(sql.unsafe`select sync_status from appointments where id = ${a.id}`), 'pending');
  });
});

describe('bad input: 4xx naming the problem, nothing written', () => {
  const cases: [string, unknown, RegExp, string?][] = [
    ['missing title', { starts_at: '2030-01-01T10:00:00Z', ends_at: '2030-01-01T11:00:00Z' }, /title/],
    ['empty title', validAppointment({ title: '' }), /title/],
    ['title too long', validAppointment({ title: 'x'.repeat(1025) }), /title/],
    ['title of the wrong type', validAppointment({ title: 42 }), /title/],
    ['ends before starts', validAppointment({ ends_at: '2030-01-15T08:00:00+01:00' }), /ends_at.*after starts_at/],
    ['ends equal to starts', validAppointment({ ends_at: '2030-01-15T09:00:00+01:00' }), /ends_at/],
    ['no offset', validAppointment({ starts_at: '2030-01-15T09:00:00' }), /starts_at.*offset/],
    ['not a date', validAppointment({ starts_at: 'tomorrow' }), /starts_at/],
    ['February 31st', validAppointment({ starts_at: '2030-02-31T09:00:00Z', ends_at: '2030-03-31T09:00:00Z' }), /starts_at.*real date/],
    ['unknown IANA zone', validAppointment({ time_zone: 'Mars/Olympus_Mons' }), /time_zone.*Mars\/Olympus_Mons/],
    ['zone with bad characters', validAppointment({ time_zone: "Europe/Paris'; drop table" }), /time_zone/],
    ['unknown field', validAppointment({ colour: 'red' }), /unknown field.*colour/],
    ['assignee not a uuid', validAppointment({ assigned_user_id: 'bob' }), /assigned_user_id.*UUID/],
    ['description too long', validAppointment({ description: 'x'.repeat(8193) }), /description/],
    ['a NUL character', validAppointment({ location: 'Room\u00002' }), /location.*NUL/],
    ['array body', [validAppointment()], /body/],
    ['null body', null, /body/],
  ];
  for (const [name, body, message] of cases) {
    test(`POST with ${name}`, async () => {
      const before = await count(h.db, 'appointments');
      const r = await h.request('POST', '/api/appointments', { token: org.memberToken, payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 400, r.text);
      assert.equal(errorCode(r), 'invalid_request');
      assert.match(r.body.error.message, message);
      assert.equal(await count(h.db, 'appointments'), before);
      assert.equal(await count(h.db, 'sync_outbox'), 0);
    });
  }

  test('PATCH: unknown fields, empty patch, null title, bad zone', async () => {
    const a = await create();
    await h.db.query(sql.unsafe`truncate sync_outbox`);
    for (const [body, message] of [
      [{ nope: 1 }, /unknown field.*nope/],
      [{}, /at least one field/],
      [{ title: null }, /title/],
      [{ time_zone: 'Europe/Atlantis' }, /time_zone/],
      [{ starts_at: '2030-13-01T00:00:00Z' }, /starts_at/],
    ] as [unknown, RegExp][]) {
      const r = await h.request('PATCH', `/api/appointments/${a.id}`, { token: org.memberToken, body });
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      assert.match(r.body.error.message, message);
    }
    assert.equal(await h.db.oneFirst(sql.unsafe`select title from appointments where id = ${a.id}`), 'Check-up');
    assert.equal(await count(h.db, 'sync_outbox'), 0);
  });

  test('malformed JSON, empty JSON body, wrong media type, oversized body', async () => {
    const before = await count(h.db, 'appointments');
    const malformed = await h.request('POST', '/api/appointments', { token: org.memberToken, payload: '{"title": "x",', headers: { 'content-type': 'application/json' } });
    assert.equal(malformed.status, 400);
    assert.equal(errorCode(malformed), 'malformed_json');
    const empty = await h.request('POST', '/api/appointments', { token: org.memberToken, payload: '', headers: { 'content-type': 'application/json' } });
    assert.equal(empty.status, 400);
    assert.match(empty.body.error.message, /body/);
    const xml = await h.request('POST', '/api/appointments', { token: org.memberToken, payload: '<a/>', headers: { 'content-type': 'application/xml' } });
    assert.equal(xml.status, 415);
    assert.equal(errorCode(xml), 'unsupported_media_type');
    const huge = await h.request('POST', '/api/appointments', { token: org.memberToken, body: validAppointment({ description: 'x'.repeat(300_000) }) });
    assert.equal(huge.status, 413);
    assert.equal(errorCode(huge), 'payload_too_large');
    const poisoned = await h.request('POST', '/api/appointments', {
      token: org.memberToken,
      payload: '{"title":"x","starts_at":"2030-01-01T00:00:00Z","ends_at":"2030-01-01T01:00:00Z","__proto__":{"admin":true}}',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(poisoned.status, 400);
    errorCode(poisoned);
    assert.equal(await count(h.db, 'appointments'), before);
  });

  test('non-uuid ids and bad list queries', async () => {
    for (const [method, url] of [
      ['GET', '/api/appointments/42'],
      ['PATCH', '/api/appointments/not-a-uuid'],
      ['POST', "/api/appointments/1'%20or%20'1'='1/cancel"],
      ['DELETE', '/api/appointments/%00'],
      ['POST', '/api/appointments/xyz/sync'],
    ]) {
      const r = await h.request(method as 'GET', url!, { token: org.memberToken, body: method === 'PATCH' ? { title: 'x' } : undefined });
      assert.equal(r.status, 400, `${method} ${url}: ${r.text}`);
      assert.match(r.body.error.message, /params\.id.*UUID/);
    }
    for (const [q, message] of [
      ['from=yesterday', /querystring\.from/],
      ['to=2030-01-01T00:00:00Z&from=2030-02-01T00:00:00Z', /querystring\.to.*after from/],
      ['limit=0', /limit/],
      ['limit=abc', /limit/],
      ['limit=999999', /limit/],
    ] as [string, RegExp][]) {
      const r = await h.request('GET', `/api/appointments?${q}`, { token: org.memberToken });
      assert.equal(r.status, 400, `${q}: ${r.text}`);
      assert.match(r.body.error.message, message);
    }
  });
});
