// The calendar-only Google client. No auth client is attached: callers pass the access token
// from the token store per request, so refreshing is coordinated across relays in one place,
// and the library's own retry is off (retry: false): the relay owns one backoff policy.
import { calendar, type calendar_v3 } from '@googleapis/calendar';

export type CalendarApi = calendar_v3.Calendar;

/** `timeoutMs` null: the caller abandons its calls itself (the relay: relay/google.ts). */
export function createCalendarApi(apiUrl: string, timeoutMs: number | null = 15_000): CalendarApi {
  // The library keeps only the origin of rootUrl (google-api.md §8.1).
  return calendar({ version: 'v3', rootUrl: apiUrl, retry: false, ...(timeoutMs === null ? {} : { timeout: timeoutMs }) });
}

export function bearer(accessToken: string) {
  return { headers: { Authorization: `Bearer ${accessToken}` }, retry: false };
}
