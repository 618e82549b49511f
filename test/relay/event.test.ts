// What the relay sends Google: whole start/end with the zone's real offset (DST included), the
// IANA zone, our private properties, and deterministic base32hex ids.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventBody, eventIdFor, payloadHash } from '../../relay/google';

const appointment = (starts_at: string, ends_at: string, time_zone: string) => ({
  id: '3f2b8c1e-9a4d-4e6f-8b21-0c7d5e9a1b2c',
  organisation_id: '11111111-2222-3333-4444-555555555555',
  title: 'Check-up',
  description: null,
  location: null,
  starts_at,
  ends_at,
  time_zone,
});

test('dateTime carries the offset of the zone at that instant, and the IANA zone', () => {
  const cases: [string, string, string][] = [
    ['2030-01-15T09:00:00.000Z', 'Europe/Paris', '2030-01-15T10:00:00+01:00'],
    ['2030-07-15T09:00:00.000Z', 'Europe/Paris', '2030-07-15T11:00:00+02:00'],
    ['2030-03-31T00:59:59.000Z', 'Europe/Paris', '2030-03-31T01:59:59+01:00'], // last second before the spring change
    ['2030-03-31T01:00:00.000Z', 'Europe/Paris', '2030-03-31T03:00:00+02:00'],
    ['2030-01-15T09:00:00.000Z', 'Asia/Kolkata', '2030-01-15T14:30:00+05:30'],
    ['2030-01-15T09:00:00.000Z', 'America/St_Johns', '2030-01-15T05:30:00-03:30'],
    ['2030-01-15T23:30:00.000Z', 'Pacific/Kiritimati', '2030-01-16T13:30:00+14:00'],
    ['2030-01-15T09:00:00.000Z', 'UTC', '2030-01-15T09:00:00+00:00'],
  ];
  for (const [instant, zone, expected] of cases) {
    const body = eventBody(appointment(instant, '2031-01-01T00:00:00.000Z', zone));
    assert.equal(body.start!.dateTime, expected, `${instant} in ${zone}`);
    assert.equal(body.start!.timeZone, zone);
    assert.equal(Date.parse(body.start!.dateTime!), Date.parse(instant), 'the same instant');
  }
});

test('the body is complete: status confirmed, private properties, no attendees', () => {
  const body = eventBody(appointment('2030-01-15T09:00:00Z', '2030-01-15T09:30:00Z', 'Europe/Paris'));
  assert.equal(body.status, 'confirmed');
  assert.deepEqual(body.extendedProperties, {
    private: { cassiusAppointmentId: '3f2b8c1e-9a4d-4e6f-8b21-0c7d5e9a1b2c', cassiusOrganisationId: '11111111-2222-3333-4444-555555555555' },
  });
  assert.equal(body.attendees, undefined);
  assert.equal(body.description, null, 'null clears a description removed in Cassius');
});

test('event ids are base32hex, 5-1024 chars, distinct per generation', () => {
  const id = '3f2b8c1e-9a4d-4e6f-8b21-0c7d5e9a1b2c';
  const ids = [0, 1, 2, 10].map((g) => eventIdFor(id, g));
  for (const e of ids) assert.match(e, /^[a-v0-9]{5,1024}$/);
  assert.equal(ids[0], '3f2b8c1e9a4d4e6f8b210c7d5e9a1b2c');
  assert.equal(new Set(ids).size, ids.length);
});

test('the payload hash changes with what Google shows, not with how it was written', () => {
  const a = eventBody(appointment('2030-01-15T09:00:00Z', '2030-01-15T09:30:00Z', 'Europe/Paris'));
  const b = eventBody(appointment('2030-01-15T09:00:00.000Z', '2030-01-15T09:30:00.000Z', 'Europe/Paris'));
  const c = eventBody(appointment('2030-01-15T09:00:00Z', '2030-01-15T09:45:00Z', 'Europe/Paris'));
  assert.equal(payloadHash(a), payloadHash(b));
  assert.notEqual(payloadHash(a), payloadHash(c));
});
