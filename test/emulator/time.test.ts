// The emulator's own time math (google-api.md §7): tz-database offsets from Intl, wall-clock
// readings across DST gaps and overlaps, RFC 3339 parsing. Not a claim about Google.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dateStartInstant, dateTimeToInstant, formatInZone, isValidDate, parseDateTime } from './time.js';

test('formatInZone renders the tz-database offset, Z for zero', () => {
  const t = Date.parse('2030-01-10T08:00:00Z');
  assert.equal(formatInZone(t, 'Europe/Berlin'), '2030-01-10T09:00:00+01:00');
  assert.equal(formatInZone(Date.parse('2030-07-10T08:00:00Z'), 'Europe/Berlin'), '2030-07-10T10:00:00+02:00');
  assert.equal(formatInZone(t, 'America/St_Johns'), '2030-01-10T04:30:00-03:30');
  assert.equal(formatInZone(t, 'Asia/Kathmandu'), '2030-01-10T13:45:00+05:45');
  assert.equal(formatInZone(t, 'UTC'), '2030-01-10T08:00:00Z');
});

test('wall-clock times: earlier instant on overlaps, forward in gaps (Temporal "compatible")', () => {
  const at = (wall: string, tz: string): string => new Date(dateTimeToInstant(wall, tz) ?? NaN).toISOString();
  assert.equal(at('2030-03-31T02:30:00', 'Europe/Berlin'), '2030-03-31T01:30:00.000Z'); // gap -> 03:30+02:00
  assert.equal(at('2030-10-27T02:30:00', 'Europe/Berlin'), '2030-10-27T00:30:00.000Z'); // overlap -> +02:00
  assert.equal(at('2030-03-10T02:30:00', 'America/New_York'), '2030-03-10T07:30:00.000Z');
  assert.equal(at('2030-11-03T01:30:00', 'America/New_York'), '2030-11-03T05:30:00.000Z');
  assert.equal(at('2030-07-01T09:00:00', 'Asia/Kolkata'), '2030-07-01T03:30:00.000Z');
  assert.equal(at('2030-07-01T09:00:00.250+02:00', 'UTC'), '2030-07-01T07:00:00.250Z', 'an explicit offset wins');
  assert.equal(dateTimeToInstant('2030-07-01T09:00:00'), null, 'no offset and no zone');
  assert.equal(new Date(dateStartInstant('2030-02-01', 'Pacific/Auckland')).toISOString(), '2030-01-31T11:00:00.000Z');
});

test('RFC 3339 and date validation reject impossible values', () => {
  for (const bad of ['2030-02-30T10:00:00Z', '2030-13-01T10:00:00Z', '2030-01-01T24:00:00Z', '2030-01-01 10:00:00Z', '2030-01-01T10:00:00+25:00', '']) {
    assert.equal(parseDateTime(bad), null, bad);
  }
  assert.equal(isValidDate('2028-02-29'), true);
  assert.equal(isValidDate('2030-02-29'), false);
  assert.equal(isValidDate('2030-1-01'), false);
});
