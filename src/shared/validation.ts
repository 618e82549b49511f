// Zod building blocks shared by the HTTP routes. They validate, type, and document (OpenAPI)
// at once; each message names what is wrong.
import { z } from 'zod';

export const Uuid = z.string().uuid('must be a UUID');

export const IdParams = z.object({ id: Uuid.describe('appointment id') });

function realCalendarInstant(value: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value);
  if (!m) return false;
  const [year, month, day, hour] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
  if (year < 1000 || hour > 23) return false;
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

/** ISO 8601 date-time with an explicit offset (`Z` or `+02:00`), a real calendar date. */
export const IsoDateTime = z
  .string()
  .datetime({ offset: true, message: 'must be an ISO 8601 date-time with an offset, e.g. 2030-01-15T09:00:00+01:00' })
  .refine(realCalendarInstant, 'is not a real date and time')
  .describe('ISO 8601 date-time with offset');

/** An IANA zone name; existence is checked against the database's list (iana_time_zones). */
export const TimeZoneName = z
  .string()
  .min(1, 'must not be empty')
  .max(64, 'is too long')
  .regex(/^[A-Za-z0-9_+\-/]+$/, 'must be an IANA time zone name such as Europe/Paris')
  .describe('IANA time zone name, e.g. Europe/Paris');

export const Level = z
  .enum(['org', 'user'], { message: "must be 'org' or 'user'" })
  .default('org')
  .describe('org: the organisation calendar (writes: admins only); user: the caller\'s own calendar');
export type Level = z.infer<typeof Level>;
