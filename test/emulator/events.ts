// The Event resource: body parsing and validation, patch merging (google-api.md §3.4),
// extended-property limits (§3.3), time handling (§7) and Google's output shape (§3.3).

import { apiError, ApiError } from './errors.js';
import type { Calendar, EventStatus, StoredEvent, StoredTime } from './state.js';
import {
  dateStartInstant,
  dateTimeToInstant,
  formatInZone,
  formatUtcMillis,
  isValidDate,
  isValidTimeZone,
  parseDateTime,
} from './time.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export function isPlainObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Request body of a write; invalid JSON is 400 global/parseError "Parse Error" (§5). */
export function parseJsonBody(text: string): JsonObject {
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw apiError('parseError');
  }
  if (!isPlainObject(parsed)) throw apiError('parseError');
  return parsed;
}

// ---------------------------------------------------------------- field checks

function typeError(path: string, expected: string, value: unknown): ApiError {
  const shown = JSON.stringify(value);
  const message = `Invalid value at 'resource.${path}' (${expected}), ${shown === undefined ? 'undefined' : shown.slice(0, 100)}`;
  const err = new ApiError(400, { domain: 'global', reason: 'invalid', message }, { grpcStatus: 'INVALID_ARGUMENT' });
  return err;
}

type Check = (v: Json, path: string) => Json;

const str: Check = (v, path) => {
  if (typeof v !== 'string') throw typeError(path, 'TYPE_STRING', v);
  return v;
};
const bool: Check = (v, path) => {
  if (typeof v !== 'boolean') throw typeError(path, 'TYPE_BOOL', v);
  return v;
};
const int: Check = (v, path) => {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw typeError(path, 'TYPE_INT32', v);
  return v;
};
const oneOf =
  (...values: string[]): Check =>
  (v, path) => {
    if (typeof v !== 'string' || !values.includes(v)) {
      throw apiError('invalid', { message: `Invalid value for: ${path}` });
    }
    return v;
  };
const arrayOf =
  (item: Check): Check =>
  (v, path) => {
    if (!Array.isArray(v)) throw typeError(path, 'TYPE_ARRAY', v);
    return v.map((x, i) => item(x, `${path}[${i}]`));
  };
/** Known keys are checked; unknown keys are dropped, as Google does not echo them. */
const objectOf =
  (shape: Record<string, Check>): Check =>
  (v, path) => {
    if (!isPlainObject(v)) throw typeError(path, 'TYPE_MESSAGE', v);
    const out: JsonObject = {};
    for (const [k, check] of Object.entries(shape)) {
      const x = v[k];
      if (x === undefined || x === null) continue;
      out[k] = check(x, `${path}.${k}`);
    }
    return out;
  };
const stringMap: Check = (v, path) => {
  if (!isPlainObject(v)) throw typeError(path, 'TYPE_MESSAGE', v);
  const out: JsonObject = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === null) continue;
    if (typeof x !== 'string') throw typeError(`${path}.${k}`, 'TYPE_STRING', x);
    out[k] = x;
  }
  return out;
};

const eventDateTime = objectOf({ date: str, dateTime: str, timeZone: str });

/** Client-writable Event fields and their types (TYP). Read-only fields are ignored on write. */
const WRITABLE: Record<string, Check> = {
  summary: str,
  description: str,
  location: str,
  colorId: str,
  status: oneOf('confirmed', 'tentative', 'cancelled'),
  visibility: oneOf('default', 'public', 'private', 'confidential'),
  transparency: oneOf('opaque', 'transparent'),
  start: eventDateTime,
  end: eventDateTime,
  endTimeUnspecified: bool,
  recurrence: arrayOf(str),
  sequence: int,
  attendees: arrayOf(
    objectOf({
      email: str,
      displayName: str,
      optional: bool,
      responseStatus: oneOf('needsAction', 'declined', 'tentative', 'accepted'),
      comment: str,
      additionalGuests: int,
      resource: bool,
    }),
  ),
  extendedProperties: objectOf({ private: stringMap, shared: stringMap }),
  reminders: objectOf({
    useDefault: bool,
    overrides: arrayOf(objectOf({ method: oneOf('email', 'popup'), minutes: int })),
  }),
  source: objectOf({ url: str, title: str }),
  guestsCanModify: bool,
  guestsCanInviteOthers: bool,
  guestsCanSeeOtherGuests: bool,
  anyoneCanAddSelf: bool,
  locked: bool,
  privateCopy: bool,
  eventType: oneOf('default'),
};

// ---------------------------------------------------------------- extended properties (§3.3)

const EXT_KEY_MAX = 44;
const EXT_VALUE_MAX = 1024;
const EXT_COUNT_MAX = 300;
const EXT_BYTES_MAX = 32 * 1024;

/** Keys over 44 characters are dropped and values over 1024 truncated, silently (EXT). */
function limitMap(map: JsonObject | undefined): JsonObject | undefined {
  if (map === undefined) return undefined;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(map)) {
    if (k.length > EXT_KEY_MAX) continue;
    out[k] = typeof v === 'string' && v.length > EXT_VALUE_MAX ? v.slice(0, EXT_VALUE_MAX) : v;
  }
  return out;
}

function applyExtendedPropertyLimits(ext: JsonObject): JsonObject {
  const priv = limitMap(ext['private'] as JsonObject | undefined);
  const shared = limitMap(ext['shared'] as JsonObject | undefined);
  let count = 0;
  let bytes = 0;
  for (const m of [priv, shared]) {
    for (const [k, v] of Object.entries(m ?? {})) {
      count++;
      bytes += Buffer.byteLength(k) + Buffer.byteLength(String(v));
    }
  }
  if (count > EXT_COUNT_MAX || bytes > EXT_BYTES_MAX) {
    // Over 300 properties or 32 kB (EXT); the exact answer is UNCONFIRMED.
    throw apiError('invalid', { message: 'The extended properties of this event exceed the allowed size.' });
  }
  const out: JsonObject = {};
  if (priv !== undefined && Object.keys(priv).length > 0) out['private'] = priv;
  if (shared !== undefined && Object.keys(shared).length > 0) out['shared'] = shared;
  return out;
}

// ---------------------------------------------------------------- validation

export interface ValidEvent {
  status: EventStatus;
  fields: Record<string, unknown>;
  start: StoredTime;
  end: StoredTime;
  sequence?: number;
}

function parseTime(v: JsonObject | undefined, which: 'start' | 'end'): StoredTime | undefined {
  if (v === undefined) return undefined;
  const date = v['date'] as string | undefined;
  const dateTime = v['dateTime'] as string | undefined;
  const timeZone = v['timeZone'] as string | undefined;
  if (date === undefined && dateTime === undefined) return undefined;
  if (timeZone !== undefined && !isValidTimeZone(timeZone)) {
    throw apiError('invalid', { message: `Invalid time zone definition for ${which} time.` });
  }
  if (date !== undefined && dateTime !== undefined) {
    // Both set (e.g. a patch that switched kinds without nulling the other, §3.4): refuse.
    throw apiError('invalid', { message: `Invalid ${which} time.` });
  }
  const tz = timeZone !== undefined ? { timeZone } : {};
  if (date !== undefined) {
    if (!isValidDate(date)) throw apiError('invalid', { message: `Invalid ${which} time.` });
    return { kind: 'date', date, ...tz };
  }
  const parsed = parseDateTime(dateTime ?? '');
  if (!parsed) throw apiError('invalid', { message: `Invalid ${which} time.` });
  // An offset is required "unless a time zone is explicitly specified in timeZone" (§7).
  if (parsed.offset === null && timeZone === undefined) {
    throw apiError('required', { message: `Missing time zone definition for ${which} time.` });
  }
  const instant = dateTimeToInstant(dateTime ?? '', timeZone);
  if (instant === null) throw apiError('invalid', { message: `Invalid ${which} time.` });
  return { kind: 'dateTime', instant, ...tz };
}

/** Bounds of a stored time as instants; all-day dates are bounded in the calendar's zone. */
export function timeInstant(t: StoredTime, calendarZone: string): number {
  return t.kind === 'dateTime' ? t.instant : dateStartInstant(t.date, t.timeZone ?? calendarZone);
}

/** Validates a whole Event resource (insert, update, or a patch after merging). */
export function validateEvent(body: JsonObject, calendar: Calendar, defaultStatus: EventStatus): ValidEvent {
  const fields: Record<string, unknown> = {};
  for (const [k, check] of Object.entries(WRITABLE)) {
    const v = body[k];
    if (v === undefined || v === null) continue;
    fields[k] = check(v, k);
  }
  const start = parseTime(fields['start'] as JsonObject | undefined, 'start');
  const end = parseTime(fields['end'] as JsonObject | undefined, 'end');
  // "Missing end time." is what Google answers for an event without times (§5, UNCONFIRMED wording).
  if (!end) throw apiError('required', { message: 'Missing end time.' });
  if (!start) throw apiError('required', { message: 'Missing start time.' });
  if (start.kind !== end.kind) {
    throw apiError('invalid', { message: 'Start and end times must either both be date or both be dateTime.' });
  }
  const empty =
    start.kind === 'date' && end.kind === 'date'
      ? end.date <= start.date // all-day end is exclusive: the day after (§7)
      : timeInstant(end, calendar.timeZone) < timeInstant(start, calendar.timeZone);
  if (empty) throw apiError('timeRangeEmpty');
  const status = (fields['status'] as EventStatus | undefined) ?? defaultStatus;
  const sequence = fields['sequence'] as number | undefined;
  delete fields['start'];
  delete fields['end'];
  delete fields['status'];
  delete fields['sequence'];
  if (fields['extendedProperties'] !== undefined) {
    const limited = applyExtendedPropertyLimits(fields['extendedProperties'] as JsonObject);
    if (Object.keys(limited).length === 0) delete fields['extendedProperties'];
    else fields['extendedProperties'] = limited;
  }
  const out: ValidEvent = { status, fields, start, end };
  if (sequence !== undefined) out.sequence = sequence;
  return out;
}

// ---------------------------------------------------------------- patch (§3.4)

/** Deep-merges objects, replaces arrays and scalars, and deletes keys sent as null. */
export function mergePatch(target: JsonObject, patch: JsonObject): JsonObject {
  const out: JsonObject = { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (isPlainObject(v) && isPlainObject(out[k])) out[k] = mergePatch(out[k] as JsonObject, v);
    else out[k] = v;
  }
  return out;
}

function timeToWritable(t: StoredTime): JsonObject {
  const out: JsonObject =
    t.kind === 'date' ? { date: t.date } : { dateTime: formatInZone(t.instant, t.timeZone ?? 'UTC') };
  if (t.timeZone !== undefined) out['timeZone'] = t.timeZone;
  return out;
}

/** The stored event as a writable resource, the base a patch is merged into. */
export function storedToWritable(ev: StoredEvent): JsonObject {
  const base = structuredClone(ev.fields) as JsonObject;
  base['status'] = ev.status;
  base['start'] = timeToWritable(ev.start);
  base['end'] = timeToWritable(ev.end);
  return base;
}

// ---------------------------------------------------------------- output (§3.3, §7)

function renderTime(t: StoredTime, zone: string): JsonObject {
  if (t.kind === 'date') {
    const out: JsonObject = { date: t.date };
    if (t.timeZone !== undefined) out['timeZone'] = t.timeZone;
    return out;
  }
  const out: JsonObject = { dateTime: formatInZone(t.instant, zone) };
  if (t.timeZone !== undefined) out['timeZone'] = t.timeZone;
  return out;
}

function htmlLink(calendarId: string, eventId: string): string {
  const eid = Buffer.from(`${eventId} ${calendarId}`).toString('base64').replace(/=+$/, '');
  return `https://www.google.com/calendar/event?eid=${eid}`;
}

/**
 * Google's Event resource. dateTime is rendered in (query timeZone ?? event timeZone ?? calendar
 * zone) with its tz-database offset; a moved-away tombstone keeps only what is guaranteed (§4).
 */
export function renderEvent(ev: StoredEvent, calendar: Calendar, queryTimeZone?: string): JsonObject {
  if (ev.movedAway) {
    return { kind: 'calendar#event', etag: ev.etag, id: ev.id, status: 'cancelled' };
  }
  const f = ev.fields as JsonObject;
  const out: JsonObject = {
    kind: 'calendar#event',
    etag: ev.etag,
    id: ev.id,
    status: ev.status,
    htmlLink: htmlLink(calendar.id, ev.id),
    created: formatUtcMillis(ev.created),
    updated: formatUtcMillis(ev.updated),
  };
  for (const k of ['summary', 'description', 'location', 'colorId']) if (f[k] !== undefined) out[k] = f[k];
  const creator: JsonObject = { email: ev.creatorEmail };
  if (ev.creatorEmail === calendar.id) creator['self'] = true;
  out['creator'] = creator;
  // organizer.self: the organizer is the calendar this copy appears on.
  const organizer: JsonObject = { email: calendar.id };
  if (calendar.summary !== calendar.id) organizer['displayName'] = calendar.summary;
  organizer['self'] = true;
  out['organizer'] = organizer;
  out['start'] = renderTime(ev.start, queryTimeZone ?? ev.start.timeZone ?? calendar.timeZone);
  out['end'] = renderTime(ev.end, queryTimeZone ?? ev.end.timeZone ?? calendar.timeZone);
  for (const k of ['endTimeUnspecified', 'recurrence', 'transparency', 'visibility']) {
    if (f[k] !== undefined) out[k] = f[k];
  }
  out['iCalUID'] = ev.iCalUID;
  out['sequence'] = ev.sequence;
  if (Array.isArray(f['attendees'])) {
    out['attendees'] = f['attendees'].map((a) =>
      isPlainObject(a) ? { ...a, responseStatus: a['responseStatus'] ?? 'needsAction' } : a,
    );
  }
  for (const k of [
    'guestsCanInviteOthers',
    'guestsCanModify',
    'guestsCanSeeOtherGuests',
    'anyoneCanAddSelf',
    'privateCopy',
    'locked',
    'source',
    'extendedProperties',
  ]) {
    if (f[k] !== undefined) out[k] = f[k];
  }
  out['reminders'] = f['reminders'] ?? { useDefault: true };
  out['eventType'] = 'default';
  return out;
}

/** The event's start/end as instants for timeMin/timeMax filtering (§3.2). */
export function eventBounds(ev: StoredEvent, calendar: Calendar): { start: number; end: number } {
  return { start: timeInstant(ev.start, calendar.timeZone), end: timeInstant(ev.end, calendar.timeZone) };
}

/** Base32hex lowercase, 5..1024 characters (§4). */
export function isValidEventId(id: string): boolean {
  return /^[a-v0-9]{5,1024}$/.test(id);
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (isPlainObject(v)) {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Whether a write changed what `updated` tracks (reminders alone do not bump it, §3.3). */
export function changesBeyondReminders(before: StoredEvent, after: ValidEvent): boolean {
  const strip = (f: Record<string, unknown>): string => {
    const { reminders: _r, ...rest } = f;
    return canonicalJson(rest);
  };
  return (
    strip(before.fields) !== strip(after.fields) ||
    before.status !== after.status ||
    JSON.stringify(before.start) !== JSON.stringify(after.start) ||
    JSON.stringify(before.end) !== JSON.stringify(after.end)
  );
}

/** Google bumps `sequence` on changes attendees would care about: time, place, status. */
export function isSignificantChange(before: StoredEvent, after: ValidEvent): boolean {
  return (
    before.status !== after.status ||
    JSON.stringify(before.start) !== JSON.stringify(after.start) ||
    JSON.stringify(before.end) !== JSON.stringify(after.end) ||
    before.fields['location'] !== after.fields['location']
  );
}
