// Calendar API v3 (google-api.md §3, §4): calendarList, calendars.get and events
// insert/get/list/patch/update/delete/move, with auth, scopes (§2.1), access roles, rate and
// usage limits (§6), ETags (§3.5), tombstones (§4) and paging/sync tokens (§3.2).

import { createHash } from 'node:crypto';
import { apiError, insufficientScopes, ApiError } from './errors.js';
import { json, type EmuRequest, type Reply } from './http.js';
import { authenticate } from './oauth.js';
import {
  ACCEPTED_SCOPES,
  OWNED_SCOPES,
  RPC_METHOD,
  UNRESTRICTED_SCOPES,
  type CalendarMethod,
} from './scopes.js';
import {
  ACCESS_ROLES,
  isWritableRole,
  randomBase32,
  roleRank,
  type AccessRole,
  type AccessTokenRecord,
  type Account,
  type Calendar,
  type EmulatorState,
  type StoredEvent,
} from './state.js';
import {
  changesBeyondReminders,
  eventBounds,
  isSignificantChange,
  isValidEventId,
  mergePatch,
  parseJsonBody,
  renderEvent,
  storedToWritable,
  validateEvent,
  type JsonObject,
} from './events.js';
import { dateTimeToInstant, formatUtcMillis, isValidTimeZone, parseDateTime } from './time.js';

interface Ctx {
  state: EmulatorState;
  req: EmuRequest;
  token: AccessTokenRecord;
  account: Account;
}

const WRITES = new Set<CalendarMethod>(['events.insert', 'events.patch', 'events.update', 'events.delete', 'events.move']);

export async function handleCalendar(state: EmulatorState, req: EmuRequest): Promise<Reply> {
  const s = req.segments.slice(2); // after "calendar", "v3"
  const m = req.method;
  let method: CalendarMethod | undefined;
  if (s[0] === 'users' && s[1] === 'me' && s[2] === 'calendarList') {
    if (s.length === 3 && m === 'GET') method = 'calendarList.list';
    else if (s.length === 4 && m === 'GET') method = 'calendarList.get';
  } else if (s[0] === 'calendars' && s.length >= 2) {
    if (s.length === 2 && m === 'GET') method = 'calendars.get';
    else if (s.length === 3 && s[2] === 'events') {
      if (m === 'GET') method = 'events.list';
      else if (m === 'POST') method = 'events.insert';
    } else if (s.length === 4 && s[2] === 'events') {
      if (m === 'GET') method = 'events.get';
      else if (m === 'PATCH') method = 'events.patch';
      else if (m === 'PUT') method = 'events.update';
      else if (m === 'DELETE') method = 'events.delete';
    } else if (s.length === 5 && s[2] === 'events' && s[4] === 'move' && m === 'POST') {
      method = 'events.move';
    }
  }
  if (!method) throw apiError('notFound');

  const token = authenticate(state, req);
  const account = state.getAccount(token.account);
  if (!account) throw apiError('notFound');
  const ctx: Ctx = { state, req, token, account };
  enforceRateLimits(ctx, method);
  const accepted = ACCEPTED_SCOPES[method];
  if (!token.scopes.some((sc) => accepted.includes(sc))) throw insufficientScopes(RPC_METHOD[method], accepted);
  recordSendUpdates(req);

  switch (method) {
    case 'calendarList.list':
      return listCalendarList(ctx);
    case 'calendarList.get':
      return getCalendarListEntry(ctx, s[3] ?? '');
    case 'calendars.get':
      return getCalendar(ctx, s[1] ?? '');
    default: {
      const { calendar, role } = resolveCalendar(ctx, s[1] ?? '', method);
      if (WRITES.has(method)) checkUsageLimit(ctx);
      const eventId = s[3] ?? '';
      switch (method) {
        case 'events.list':
          return listEvents(ctx, calendar, role);
        case 'events.insert':
          return insertEvent(ctx, calendar);
        case 'events.get':
          return getEvent(ctx, calendar, eventId);
        case 'events.patch':
          return writeEvent(ctx, calendar, eventId, 'patch');
        case 'events.update':
          return writeEvent(ctx, calendar, eventId, 'update');
        case 'events.delete':
          return deleteEvent(ctx, calendar, eventId);
        case 'events.move':
          return moveEvent(ctx, calendar, eventId);
      }
    }
  }
  throw apiError('notFound');
}

// ---------------------------------------------------------------- cross-cutting checks

/** §6: sliding-window per-user and per-project limits; 403 or 429 as configured. */
function enforceRateLimits(ctx: Ctx, method: CalendarMethod): void {
  const { state, token } = ctx;
  const cfg = state.config;
  const now = state.now();
  const cost = method === 'events.patch' ? cfg.patchQuotaCost : 1;
  const userUsed = state.rateLimiter.hit(`user\n${token.clientId}\n${token.account}`, now, cost);
  const projectUsed = state.rateLimiter.hit(`project\n${token.clientId}`, now, cost);
  let reason: string | undefined;
  if (userUsed > cfg.userRateLimitPerMinute) reason = 'userRateLimitExceeded';
  else if (projectUsed > cfg.projectRateLimitPerMinute) reason = 'rateLimitExceeded';
  if (!reason) return;
  const err = cfg.rateLimitStatus === 429 ? apiError('rateLimitExceeded', { status: 429 }) : apiError(reason);
  throw withRetryAfter(err, cfg.retryAfterS);
}

function withRetryAfter(err: ApiError, seconds: number | null): ApiError {
  if (seconds !== null) err.headers['Retry-After'] = String(seconds);
  return err;
}

/** §6 usage limits: the account is read-only until a moment; reads keep working. */
function checkUsageLimit(ctx: Ctx): void {
  if (ctx.account.readOnlyUntil > ctx.state.now()) {
    throw withRetryAfter(apiError('quotaExceeded'), ctx.state.config.retryAfterS);
  }
}

function recordSendUpdates(req: EmuRequest): void {
  const v = req.query.get('sendUpdates');
  if (v === null) return;
  req.log.sendUpdates = v;
  if (v !== 'all' && v !== 'externalOnly' && v !== 'none') {
    throw apiError('invalidParameter', {
      status: 400,
      message: `Invalid value '${v}'. Values must match the following regular expression: '(all|externalOnly|none)'`,
      location: 'sendUpdates',
    });
  }
}

/**
 * The calendar a call is about: `primary` is the token's account; a calendar the account cannot
 * see is 404 (§5); a reader writing is 403 requiredAccessLevel; `.owned` scopes reach only
 * calendars the account owns (§2.2).
 */
function resolveCalendar(ctx: Ctx, rawId: string, method: CalendarMethod): { calendar: Calendar; role: AccessRole } {
  const id = rawId === 'primary' ? ctx.account.email : rawId;
  const calendar = ctx.state.calendars.get(id);
  const role = calendar ? ctx.state.roleOf(calendar.id, ctx.account.email) : undefined;
  if (!calendar || !role) throw apiError('notFound');
  checkScopeReach(ctx, method, role);
  if (WRITES.has(method)) {
    if (!isWritableRole(role)) throw apiError('requiredAccessLevel');
  } else if (roleRank(role) < roleRank('reader')) {
    throw apiError('requiredAccessLevel', { message: 'You need to have reader access to this calendar.' });
  }
  return { calendar, role };
}

function checkScopeReach(ctx: Ctx, method: CalendarMethod, role: AccessRole): void {
  const usable = ctx.token.scopes.filter((sc) => ACCEPTED_SCOPES[method].includes(sc));
  if (usable.some((sc) => UNRESTRICTED_SCOPES.has(sc))) return;
  if (role === 'owner' && usable.some((sc) => OWNED_SCOPES.has(sc))) return;
  // Only `.owned` on a calendar not owned, or `app.created` (no app-created calendars here).
  throw insufficientScopes(RPC_METHOD[method], ACCEPTED_SCOPES[method]);
}

// ---------------------------------------------------------------- query parameters

function badParam(name: string, value: string): ApiError {
  return apiError('invalid', { message: `Invalid value '${value}' for parameter '${name}'.`, location: name });
}

function intParam(q: URLSearchParams, name: string, def: number, max: number): number {
  const v = q.get(name);
  if (v === null) return def;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw badParam(name, v);
  return Math.min(Number(v), max);
}

function boolParam(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  if (v === null) return false;
  if (v !== 'true' && v !== 'false') throw badParam(name, v);
  return v === 'true';
}

/** RFC 3339 with a mandatory offset, as timeMin/timeMax/updatedMin require (§3.2). */
function instantParam(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null) return undefined;
  const p = parseDateTime(v);
  const instant = p && p.offset !== null ? dateTimeToInstant(v) : null;
  if (instant === null) throw apiError('badRequest', { message: 'Bad Request', location: name });
  return instant;
}

function timeZoneParam(q: URLSearchParams): string | undefined {
  const tz = q.get('timeZone');
  if (tz === null) return undefined;
  if (!isValidTimeZone(tz)) throw apiError('invalid', { message: 'Invalid time zone definition.', location: 'timeZone' });
  return tz;
}

// Page and sync tokens are opaque to clients; internally they are signed-free base64url JSON.
interface PageState {
  v: 1;
  k: string; // what is being paged (calendar id or calendarList + account)
  o: number; // offset
  s: number; // change sequence snapshot at the first page
  h: string; // hash of the query that started the paging
  e?: 1; // next answer is a deliberately empty page (shortPages switch)
}

function encodeToken(obj: object): string {
  return `CiA${Buffer.from(JSON.stringify(obj)).toString('base64url')}`;
}

function decodeToken<T>(tok: string): T | undefined {
  if (!tok.startsWith('CiA')) return undefined;
  try {
    return JSON.parse(Buffer.from(tok.slice(3), 'base64url').toString('utf8')) as T;
  } catch {
    return undefined;
  }
}

function queryHash(q: URLSearchParams): string {
  const pairs = [...q].filter(([k]) => k !== 'pageToken' && k !== 'maxResults').sort();
  return createHash('sha1').update(JSON.stringify(pairs)).digest('base64url').slice(0, 12);
}

function readPageToken(q: URLSearchParams, key: string): PageState | undefined {
  const raw = q.get('pageToken');
  if (raw === null || raw === '') return undefined;
  const st = decodeToken<PageState>(raw);
  if (!st || st.v !== 1 || st.k !== key || st.h !== queryHash(q) || typeof st.o !== 'number') {
    throw apiError('invalid', { message: 'Invalid Value', location: 'pageToken' });
  }
  return st;
}

function listEtag(parts: string[]): string {
  const h = createHash('sha1').update(parts.join('|')).digest();
  return `"p${h.readUIntBE(0, 6).toString().padStart(15, '0')}"`;
}

// ---------------------------------------------------------------- calendarList (§3.1)

function calendarListEntry(cal: Calendar, role: AccessRole, account: Account): JsonObject {
  const entry: JsonObject = {
    kind: 'calendar#calendarListEntry',
    etag: `"${cal.created * 1000}"`,
    id: cal.id,
    summary: cal.summary,
  };
  if (cal.description !== undefined) entry['description'] = cal.description;
  entry['timeZone'] = cal.timeZone;
  entry['colorId'] = cal.id === account.email ? '14' : '7';
  entry['backgroundColor'] = cal.id === account.email ? '#9fe1e7' : '#42d692';
  entry['foregroundColor'] = '#000000';
  entry['selected'] = true;
  entry['accessRole'] = role;
  entry['defaultReminders'] = [];
  if (cal.id === account.email) entry['primary'] = true;
  entry['conferenceProperties'] = { allowedConferenceSolutionTypes: ['hangoutsMeet'] };
  return entry;
}

function listCalendarList(ctx: Ctx): Reply {
  const { state, req, account } = ctx;
  const q = req.query;
  const maxResults = intParam(q, 'maxResults', 100, 250);
  const minRole = q.get('minAccessRole');
  if (minRole !== null && !ACCESS_ROLES.includes(minRole as AccessRole)) throw badParam('minAccessRole', minRole);
  boolParam(q, 'showDeleted');
  boolParam(q, 'showHidden');
  if (q.get('syncToken') !== null && minRole !== null) {
    throw apiError('invalid', { message: 'Sync token cannot be combined with minAccessRole.', location: 'syncToken' });
  }
  const key = `calendarList:${account.email}`;
  const page = readPageToken(q, key);
  const offset = page?.o ?? 0;
  const all: { cal: Calendar; role: AccessRole }[] = [];
  for (const id of state.calendarOrder.get(account.email) ?? []) {
    const cal = state.calendars.get(id);
    const role = state.roleOf(id, account.email);
    if (!cal || !role) continue;
    // minAccessRole=writer includes writerWithoutPrivateAccess (§3.1 UNCONFIRMED, defensive).
    if (minRole !== null && roleRank(role) < roleRank(minRole as AccessRole)) continue;
    all.push({ cal, role });
  }
  const slice = all.slice(offset, offset + maxResults);
  const items = slice.map(({ cal, role }) => calendarListEntry(cal, role, account));
  const body: JsonObject = {
    kind: 'calendar#calendarList',
    etag: listEtag(all.map(({ cal, role }) => `${cal.id}:${role}`)),
  };
  if (offset + maxResults < all.length) {
    body['nextPageToken'] = encodeToken({ v: 1, k: key, o: offset + maxResults, s: 0, h: queryHash(q) } satisfies PageState);
  } else {
    // The emulator does not track calendar-list changes: a later sync returns the whole list.
    body['nextSyncToken'] = encodeToken({ t: 'calendarList', a: account.email });
  }
  body['items'] = items;
  return json(200, body);
}

function getCalendarListEntry(ctx: Ctx, rawId: string): Reply {
  const id = rawId === 'primary' ? ctx.account.email : rawId;
  const cal = ctx.state.calendars.get(id);
  const role = cal ? ctx.state.roleOf(cal.id, ctx.account.email) : undefined;
  if (!cal || !role) throw apiError('notFound');
  return json(200, calendarListEntry(cal, role, ctx.account));
}

function getCalendar(ctx: Ctx, rawId: string): Reply {
  const id = rawId === 'primary' ? ctx.account.email : rawId;
  const cal = ctx.state.calendars.get(id);
  const role = cal ? ctx.state.roleOf(cal.id, ctx.account.email) : undefined;
  if (!cal || !role) throw apiError('notFound');
  const body: JsonObject = { kind: 'calendar#calendar', etag: `"${cal.created * 1000}"`, id: cal.id, summary: cal.summary };
  if (cal.description !== undefined) body['description'] = cal.description;
  body['timeZone'] = cal.timeZone;
  body['conferenceProperties'] = { allowedConferenceSolutionTypes: ['hangoutsMeet'] };
  return json(200, body);
}

// ---------------------------------------------------------------- events

function findEvent(calendar: Calendar, id: string): StoredEvent {
  const ev = calendar.events.get(id);
  if (!ev) throw apiError('notFound');
  return ev;
}

/** §3.5: If-Match with a stale etag is 412 (update, delete and, in the emulator, patch). */
function checkIfMatch(req: EmuRequest, ev: StoredEvent): void {
  const h = req.headers['if-match'];
  if (h === undefined) return;
  const v = Array.isArray(h) ? h.join(', ') : h;
  if (v.trim() === '*' || v === ev.etag) return;
  throw apiError('conditionNotMet', { location: 'If-Match', locationType: 'header' });
}

function eventReply(ctx: Ctx, calendar: Calendar, ev: StoredEvent): Reply {
  const tz = timeZoneParam(ctx.req.query);
  return json(200, renderEvent(ev, calendar, tz), { ETag: ev.etag });
}

function touch(state: EmulatorState, calendar: Calendar, ev: StoredEvent, bumpUpdated = true): void {
  ev.etag = state.nextEtag();
  if (bumpUpdated) ev.updated = Math.max(state.now(), ev.updated + 1);
  ev.changeSeq = ++calendar.changeSeq;
}

function insertEvent(ctx: Ctx, calendar: Calendar): Reply {
  const { state, req } = ctx;
  const body = parseJsonBody(req.bodyText);
  req.log.body = body;
  timeZoneParam(req.query);
  const ev = createEvent(state, calendar, body, ctx.account.email);
  return eventReply(ctx, calendar, ev);
}

/** events.insert's core, shared with the control surface's seeding. */
export function createEvent(state: EmulatorState, calendar: Calendar, body: JsonObject, creatorEmail: string): StoredEvent {
  let id: string;
  if (body['id'] !== undefined && body['id'] !== null) {
    if (typeof body['id'] !== 'string' || !isValidEventId(body['id'])) {
      throw apiError('invalid', { message: 'Invalid resource id value.' });
    }
    id = body['id'];
  } else {
    id = randomBase32(26);
  }
  const valid = validateEvent(body, calendar, 'confirmed');
  // Ids are unique per calendar forever: a deleted event's id is still taken (§4).
  if (calendar.events.has(id)) throw apiError('duplicate');
  const now = state.now();
  const ev: StoredEvent = {
    id,
    status: valid.status,
    fields: valid.fields,
    start: valid.start,
    end: valid.end,
    created: now,
    updated: now,
    etag: state.nextEtag(),
    sequence: valid.sequence ?? 0,
    iCalUID: `${id}@google.com`,
    creatorEmail,
    changeSeq: ++calendar.changeSeq,
    movedAway: false,
    deletedInUi: false,
  };
  calendar.events.set(id, ev);
  return ev;
}

/** A person deleting the event in Google Calendar's UI (control surface). */
export function deleteEventAsUser(state: EmulatorState, calendar: Calendar, id: string): StoredEvent {
  const ev = findEvent(calendar, id);
  if (ev.status === 'cancelled') throw apiError('deleted');
  ev.status = 'cancelled';
  ev.deletedInUi = true;
  ev.sequence++;
  touch(state, calendar, ev);
  return ev;
}

function getEvent(ctx: Ctx, calendar: Calendar, id: string): Reply {
  const ev = findEvent(calendar, id);
  // §3.5: If-None-Match with the current etag is 304 with an empty body.
  const inm = ctx.req.headers['if-none-match'];
  if (inm !== undefined && (Array.isArray(inm) ? inm.includes(ev.etag) : inm === ev.etag)) {
    return { status: 304, headers: { ETag: ev.etag } };
  }
  // A deleted event is still returned, status cancelled (§4).
  return eventReply(ctx, calendar, ev);
}

function writeEvent(ctx: Ctx, calendar: Calendar, id: string, kind: 'patch' | 'update'): Reply {
  const { state, req } = ctx;
  const ev = findEvent(calendar, id);
  checkIfMatch(req, ev);
  // §4 CONFLICTING evidence: after a UI delete, update got 403 (ruby-client#1811); after an
  // API delete it worked. UI deletes always refuse; API deletes refuse behind a switch.
  if (ev.status === 'cancelled' && (ev.deletedInUi || state.config.tombstoneWrites === 'forbidden')) {
    throw apiError('forbidden');
  }
  const body = parseJsonBody(req.bodyText);
  req.log.body = body;
  timeZoneParam(req.query);
  // patch keeps cancelled unless status is sent; update without status means confirmed (§4).
  const valid =
    kind === 'patch'
      ? validateEvent(mergePatch(storedToWritable(ev), body), calendar, ev.status)
      : validateEvent(body, calendar, 'confirmed');
  if (valid.sequence !== undefined && valid.sequence < ev.sequence) {
    throw apiError('invalid', {
      message: 'Invalid sequence value. The specified sequence number is below the current sequence number of the resource.',
    });
  }
  const bumpUpdated = changesBeyondReminders(ev, valid);
  const significant = isSignificantChange(ev, valid);
  ev.status = valid.status;
  ev.fields = valid.fields;
  ev.start = valid.start;
  ev.end = valid.end;
  ev.movedAway = false;
  if (ev.status !== 'cancelled') ev.deletedInUi = false;
  ev.sequence = valid.sequence ?? (significant ? ev.sequence + 1 : ev.sequence);
  touch(state, calendar, ev, bumpUpdated);
  return eventReply(ctx, calendar, ev);
}

function deleteEvent(ctx: Ctx, calendar: Calendar, id: string): Reply {
  const ev = findEvent(calendar, id);
  checkIfMatch(ctx.req, ev);
  if (ev.status === 'cancelled') throw apiError('deleted'); // §4: second delete is 410
  // A delete leaves a permanent tombstone with its details (§4).
  ev.status = 'cancelled';
  ev.sequence++;
  touch(ctx.state, calendar, ev);
  return { status: 204 };
}

function moveEvent(ctx: Ctx, source: Calendar, id: string): Reply {
  const { state, req } = ctx;
  const destParam = req.query.get('destination');
  if (!destParam) {
    throw apiError('required', { message: 'Required parameter: destination', location: 'destination' });
  }
  const { calendar: dest } = resolveCalendar(ctx, destParam, 'events.move');
  const ev = findEvent(source, id);
  checkIfMatch(req, ev);
  // Moving a deleted event: UNCONFIRMED; answered like a second delete.
  if (ev.status === 'cancelled') throw apiError('deleted');
  if (dest === source) return eventReply(ctx, source, ev);
  if (dest.events.has(id)) throw apiError('duplicate');
  const moved: StoredEvent = {
    ...ev,
    fields: structuredClone(ev.fields),
    etag: state.nextEtag(),
    updated: Math.max(state.now(), ev.updated + 1),
    changeSeq: ++dest.changeSeq,
  };
  dest.events.set(id, moved);
  // The source keeps a cancelled event where only the id is guaranteed (§4, TYP Event.status).
  ev.status = 'cancelled';
  ev.movedAway = true;
  touch(state, source, ev);
  return eventReply(ctx, dest, moved);
}

// ---------------------------------------------------------------- events.list (§3.2)

interface SyncState {
  v: 1;
  c: string;
  s: number;
  ep: number;
}

const SYNC_INCOMPATIBLE = [
  'iCalUID',
  'orderBy',
  'privateExtendedProperty',
  'sharedExtendedProperty',
  'q',
  'timeMin',
  'timeMax',
  'updatedMin',
];

function extFilters(q: URLSearchParams, name: string): [string, string][] {
  return q.getAll(name).map((raw) => {
    const i = raw.indexOf('=');
    if (i <= 0) throw badParam(name, raw);
    return [raw.slice(0, i), raw.slice(i + 1)];
  });
}

function matchesExt(ev: StoredEvent, kind: 'private' | 'shared', filters: [string, string][]): boolean {
  if (filters.length === 0) return true;
  const ext = ev.fields['extendedProperties'] as JsonObject | undefined;
  const map = (ext?.[kind] ?? {}) as JsonObject;
  // Repeats of one kind are OR'ed (§3.2 CONFLICT, emulator: OR).
  return filters.some(([k, v]) => map[k] === v);
}

function matchesText(ev: StoredEvent, text: string): boolean {
  const hay = [ev.fields['summary'], ev.fields['description'], ev.fields['location']]
    .filter((x): x is string => typeof x === 'string')
    .join('\n')
    .toLowerCase();
  return text
    .toLowerCase()
    .split(/\s+/)
    .filter((w) => w !== '')
    .every((w) => hay.includes(w));
}

function listEvents(ctx: Ctx, calendar: Calendar, role: AccessRole): Reply {
  const { state, req } = ctx;
  const q = req.query;
  const maxResults = intParam(q, 'maxResults', 250, 2500);
  const showDeleted = boolParam(q, 'showDeleted');
  const singleEvents = boolParam(q, 'singleEvents');
  const tz = timeZoneParam(q);
  const orderBy = q.get('orderBy');
  if (orderBy !== null && orderBy !== 'startTime' && orderBy !== 'updated') throw badParam('orderBy', orderBy);
  if (orderBy === 'startTime' && !singleEvents) {
    throw apiError('badRequest', { message: 'The requested ordering is not available for the particular query.', location: 'orderBy' });
  }
  const syncRaw = q.get('syncToken');
  let sinceSeq: number | undefined;
  if (syncRaw !== null) {
    const bad = SYNC_INCOMPATIBLE.find((p) => q.has(p));
    if (bad) {
      throw apiError('invalid', { message: `Sync token cannot be combined with the ${bad} parameter.`, location: 'syncToken' });
    }
    const st = decodeToken<SyncState>(syncRaw);
    if (state.config.syncTokensExpired || !st || st.v !== 1 || st.c !== calendar.id || st.ep !== calendar.syncEpoch) {
      throw apiError('fullSyncRequired', { location: 'syncToken' });
    }
    sinceSeq = st.s;
  }
  const timeMin = instantParam(q, 'timeMin');
  const timeMax = instantParam(q, 'timeMax');
  if (timeMin !== undefined && timeMax !== undefined && timeMin >= timeMax) {
    throw apiError('timeRangeEmpty', { location: 'timeMax' });
  }
  const updatedMin = instantParam(q, 'updatedMin');
  const priv = extFilters(q, 'privateExtendedProperty');
  const shared = extFilters(q, 'sharedExtendedProperty');
  const text = q.get('q');
  const iCalUID = q.get('iCalUID');

  const key = `events:${calendar.id}`;
  const page = readPageToken(q, key);
  const offset = page?.o ?? 0;
  const snapshot = page?.s ?? calendar.changeSeq;

  let candidates = [...calendar.events.values()].filter((ev) => {
    if (sinceSeq !== undefined) return ev.changeSeq > sinceSeq && ev.changeSeq <= snapshot;
    const b = eventBounds(ev, calendar);
    // Both bounds are exclusive: timeMax bounds the start, timeMin the end (§3.2).
    if (timeMin !== undefined && !(b.end > timeMin)) return false;
    if (timeMax !== undefined && !(b.start < timeMax)) return false;
    if (updatedMin !== undefined && ev.updated < updatedMin) return false;
    if (!matchesExt(ev, 'private', priv) || !matchesExt(ev, 'shared', shared)) return false;
    if (text !== null && !matchesText(ev, text)) return false;
    if (iCalUID !== null && ev.iCalUID !== iCalUID) return false;
    return true;
  });
  if (orderBy === 'startTime') {
    candidates = candidates.sort((a, b) => eventBounds(a, calendar).start - eventBounds(b, calendar).start);
  } else if (orderBy === 'updated') {
    candidates = candidates.sort((a, b) => a.updated - b.updated);
  }
  // Paging runs over deleted events too and filters them afterwards, so pages can come back
  // short or empty while a nextPageToken exists, as Google's do (§3.2).
  const includeDeleted = showDeleted || sinceSeq !== undefined || updatedMin !== undefined;
  const hash = queryHash(q);
  let items: StoredEvent[] = [];
  let nextOffset = offset;
  let emptyNext = false;
  if (page?.e === 1) {
    nextOffset = offset; // a deliberately empty page (shortPages)
  } else {
    items = candidates.slice(offset, offset + maxResults);
    nextOffset = offset + maxResults;
    emptyNext = state.config.shortPages;
  }
  if (!includeDeleted) items = items.filter((ev) => ev.status !== 'cancelled');

  const body: JsonObject = {
    kind: 'calendar#events',
    etag: listEtag([calendar.id, String(calendar.changeSeq)]),
    summary: calendar.summary,
  };
  if (calendar.description !== undefined) body['description'] = calendar.description;
  let lastUpdated = calendar.created;
  for (const e of calendar.events.values()) if (e.updated > lastUpdated) lastUpdated = e.updated;
  body['updated'] = formatUtcMillis(lastUpdated);
  body['timeZone'] = calendar.timeZone;
  body['accessRole'] = role;
  body['defaultReminders'] = [];
  if (nextOffset < candidates.length) {
    const st: PageState = { v: 1, k: key, o: nextOffset, s: snapshot, h: hash };
    if (emptyNext) st.e = 1;
    body['nextPageToken'] = encodeToken(st);
  } else {
    body['nextSyncToken'] = encodeToken({ v: 1, c: calendar.id, s: snapshot, ep: calendar.syncEpoch } satisfies SyncState);
  }
  body['items'] = items.map((ev) => renderEvent(ev, calendar, tz));
  return json(200, body);
}

/** Control surface view: every event incl. deleted ones, as Google Event resources. */
export function renderCalendarEvents(state: EmulatorState, calendarId: string): JsonObject[] | undefined {
  const cal = state.calendars.get(calendarId);
  if (!cal) return undefined;
  return [...cal.events.values()].map((ev) => renderEvent(ev, cal));
}
