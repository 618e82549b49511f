// The minimal scopes (google-api.md §2.2): list calendars with their access role, create /
// change / delete events, and learn the account (id_token: sub + email). Never `calendar`.
export const CALENDAR_LIST_SCOPE = 'https://www.googleapis.com/auth/calendar.calendarlist.readonly';
export const CALENDAR_EVENTS_SCOPE = 'https://www.googleapis.com/auth/calendar.events';
export const REQUIRED_SCOPES = ['openid', 'email', CALENDAR_LIST_SCOPE, CALENDAR_EVENTS_SCOPE] as const;

/** Google answers `email` as `https://www.googleapis.com/auth/userinfo.email`; both count. */
export function missingScopes(granted: string | readonly string[]): string[] {
  const set = new Set(typeof granted === 'string' ? granted.split(/\s+/).filter(Boolean) : granted);
  if (set.has('https://www.googleapis.com/auth/userinfo.email')) set.add('email');
  return REQUIRED_SCOPES.filter((s) => !set.has(s));
}
