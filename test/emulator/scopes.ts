// OAuth scopes: the known set, Google's short aliases, and which Calendar methods accept which
// scopes (google-api.md §2.1, taken from the discovery document).

const P = 'https://www.googleapis.com/auth/';

export const SCOPE = {
  openid: 'openid',
  email: `${P}userinfo.email`,
  profile: `${P}userinfo.profile`,
  calendar: `${P}calendar`,
  calendarReadonly: `${P}calendar.readonly`,
  events: `${P}calendar.events`,
  eventsReadonly: `${P}calendar.events.readonly`,
  eventsOwned: `${P}calendar.events.owned`,
  eventsOwnedReadonly: `${P}calendar.events.owned.readonly`,
  eventsPublicReadonly: `${P}calendar.events.public.readonly`,
  eventsFreebusy: `${P}calendar.events.freebusy`,
  appCreated: `${P}calendar.app.created`,
  calendarList: `${P}calendar.calendarlist`,
  calendarListReadonly: `${P}calendar.calendarlist.readonly`,
  calendars: `${P}calendar.calendars`,
  calendarsReadonly: `${P}calendar.calendars.readonly`,
  acls: `${P}calendar.acls`,
  aclsReadonly: `${P}calendar.acls.readonly`,
  settingsReadonly: `${P}calendar.settings.readonly`,
  freebusy: `${P}calendar.freebusy`,
} as const;

const KNOWN = new Set<string>(Object.values(SCOPE));

/** Google answers with the long form of the sign-in aliases in the token's `scope`. */
const ALIASES: Record<string, string> = {
  email: SCOPE.email,
  profile: SCOPE.profile,
};

export function normalizeScope(s: string): string {
  return ALIASES[s] ?? s;
}

export function isKnownScope(s: string): boolean {
  return KNOWN.has(normalizeScope(s));
}

/** Sign-in scopes are never optional on the consent screen (§2.3, GP). */
export function isSignInScope(s: string): boolean {
  const n = normalizeScope(s);
  return n === SCOPE.openid || n === SCOPE.email || n === SCOPE.profile;
}

/** Splits a space-delimited scope parameter, normalises aliases, drops duplicates, keeps order. */
export function parseScopeParam(raw: string | null | undefined): string[] {
  if (!raw) return [];
  const out: string[] = [];
  for (const part of raw.split(/[\s]+/)) {
    if (part === '') continue;
    const n = normalizeScope(part);
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

const WRITE = [SCOPE.calendar, SCOPE.appCreated, SCOPE.events, SCOPE.eventsOwned];
const READ_EVENTS = [
  ...WRITE,
  SCOPE.calendarReadonly,
  SCOPE.eventsReadonly,
  SCOPE.eventsOwnedReadonly,
  SCOPE.eventsPublicReadonly,
  SCOPE.eventsFreebusy,
];

export type CalendarMethod =
  | 'calendarList.list'
  | 'calendarList.get'
  | 'calendars.get'
  | 'events.insert'
  | 'events.get'
  | 'events.list'
  | 'events.patch'
  | 'events.update'
  | 'events.delete'
  | 'events.move';

/** §2.1 table: accepted scopes per method. */
export const ACCEPTED_SCOPES: Record<CalendarMethod, readonly string[]> = {
  'calendarList.list': [
    SCOPE.calendar,
    SCOPE.calendarReadonly,
    SCOPE.calendarList,
    SCOPE.calendarListReadonly,
  ],
  'calendarList.get': [
    SCOPE.calendar,
    SCOPE.calendarReadonly,
    SCOPE.calendarList,
    SCOPE.calendarListReadonly,
  ],
  'calendars.get': [
    SCOPE.calendar,
    SCOPE.calendarReadonly,
    SCOPE.appCreated,
    SCOPE.calendars,
    SCOPE.calendarsReadonly,
  ],
  'events.insert': WRITE,
  'events.patch': WRITE,
  'events.update': WRITE,
  'events.delete': WRITE,
  'events.move': [SCOPE.calendar, SCOPE.events, SCOPE.eventsOwned],
  'events.get': READ_EVENTS,
  'events.list': READ_EVENTS,
};

/** The gRPC method name Google puts into ErrorInfo.metadata.method (§5). */
export const RPC_METHOD: Record<CalendarMethod, string> = {
  'calendarList.list': 'calendar.v3.CalendarList.List',
  'calendarList.get': 'calendar.v3.CalendarList.Get',
  'calendars.get': 'calendar.v3.Calendars.Get',
  'events.insert': 'calendar.v3.Events.Insert',
  'events.get': 'calendar.v3.Events.Get',
  'events.list': 'calendar.v3.Events.List',
  'events.patch': 'calendar.v3.Events.Patch',
  'events.update': 'calendar.v3.Events.Update',
  'events.delete': 'calendar.v3.Events.Delete',
  'events.move': 'calendar.v3.Events.Move',
};

/** Scopes that reach every calendar the account can see, as opposed to `.owned` / `app.created`. */
export const UNRESTRICTED_SCOPES = new Set<string>([
  SCOPE.calendar,
  SCOPE.calendarReadonly,
  SCOPE.events,
  SCOPE.eventsReadonly,
  SCOPE.eventsPublicReadonly,
  SCOPE.eventsFreebusy,
  SCOPE.calendarList,
  SCOPE.calendarListReadonly,
  SCOPE.calendars,
  SCOPE.calendarsReadonly,
]);
/** `.owned` scopes reach only calendars whose role is owner (§2.2: modelled, 403 elsewhere). */
export const OWNED_SCOPES = new Set<string>([SCOPE.eventsOwned, SCOPE.eventsOwnedReadonly]);
