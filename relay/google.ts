// Google Calendar calls of the relay: what an event looks like, its deterministic id, and one
// wrapper that adds quota, the access token (refreshed once on a 401), quick retries of
// transient failures, and metrics around every call.
import { createHash } from 'node:crypto';
import pRetry, { AbortError } from 'p-retry';
import type { calendar_v3 } from '@googleapis/calendar';
import { bearer, type CalendarApi } from '../src/integrations/google/calendarApi';
import { classifyGoogleError, type GoogleFailure } from '../src/integrations/google/errors';
import { ReconnectRequired, type TokenStore } from '../src/integrations/google/tokenStore';
import type { RateLimiter } from './rateLimit';

export type AppointmentContent = {
  id: string;
  organisation_id: string;
  title: string;
  description: string | null;
  location: string | null;
  starts_at: string;
  ends_at: string;
  time_zone: string;
};

/**
 * The event id for an appointment: the UUID's hex digits are valid base32hex (google-api.md
 * §4), so a retried insert always names the same event and Google answers 409 instead of
 * creating a duplicate. A deleted id can never be inserted again, so an event recreated after
 * a deletion in Google takes the next generation: `<hex>g<n>` ('g' is base32hex, never hex).
 */
export function eventIdFor(appointmentId: string, generation: number): string {
  const hex = appointmentId.replace(/-/g, '').toLowerCase();
  return generation === 0 ? hex : `${hex}g${generation}`;
}

// Building an Intl.DateTimeFormat costs far more than using one: one per zone, kept.
const formatters = new Map<string, Intl.DateTimeFormat>();
function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-GB', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

// en-GB with 2-digit fields formats as "15/01/2030, 10:00:00"; format() and this pattern cost
// a third of formatToParts() (which built ~1 % of the relay's CPU per change in a drain).
const EN_GB = /^(\d{2})\/(\d{2})\/(\d{4}),? (\d{2}):(\d{2}):(\d{2})$/;

function wallClockParts(formatter: Intl.DateTimeFormat, date: Date): Record<'year' | 'month' | 'day' | 'hour' | 'minute' | 'second', string> {
  const m = EN_GB.exec(formatter.format(date));
  if (m) return { day: m[1]!, month: m[2]!, year: m[3]!, hour: m[4]!, minute: m[5]!, second: m[6]! };
  // Another ICU might format differently: the slower, structured way.
  const parts = Object.fromEntries(formatter.formatToParts(date).map((p) => [p.type, p.value]));
  return { year: parts.year!, month: parts.month!, day: parts.day!, hour: parts.hour!, minute: parts.minute!, second: parts.second! };
}

/** Offset form of an instant in a zone, e.g. 2030-01-15T10:00:00+01:00 (Google wants an offset). */
function localDateTime(iso: string, timeZone: string): string {
  const date = new Date(iso);
  const parts = wallClockParts(formatterFor(timeZone), date);
  const local = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second);
  const offsetMinutes = Math.round((local - Math.floor(date.getTime() / 1000) * 1000) / 60_000);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  const offset = `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}:${parts.second}${offset}`;
}

/**
 * The complete event we want Google to hold. Always whole: start and end with offset and IANA
 * zone (google-api.md §3.4, §7), status confirmed (undeletes a tombstone on patch), no
 * attendees (they trigger Google's usage limits and e-mails, mission-anchors §3.6).
 */
export function eventBody(a: AppointmentContent): calendar_v3.Schema$Event {
  return {
    summary: a.title,
    description: a.description,
    location: a.location,
    start: { dateTime: localDateTime(a.starts_at, a.time_zone), timeZone: a.time_zone },
    end: { dateTime: localDateTime(a.ends_at, a.time_zone), timeZone: a.time_zone },
    status: 'confirmed',
    extendedProperties: {
      private: { cassiusAppointmentId: a.id, cassiusOrganisationId: a.organisation_id },
    },
  };
}

/** Identifies what Google shows; an unchanged hash means no call is needed. */
export function payloadHash(body: calendar_v3.Schema$Event): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 32);
}

export class GoogleCallFailed extends Error {
  constructor(readonly failure: GoogleFailure) {
    super(failure.message);
    this.name = 'GoogleCallFailed';
  }
}

export type IntegrationAuth = { id: string; organisationId: string; accountKey: string };

type CallOptions = ReturnType<typeof bearer> & { signal: AbortSignal };

export type CallMetrics = {
  onCall(method: string, status: number | 'error', seconds: number): void;
};

export type GoogleClient = ReturnType<typeof createGoogleClient>;

export function createGoogleClient(deps: {
  api: CalendarApi;
  tokens: TokenStore;
  limiter: RateLimiter;
  metrics: CallMetrics;
  /** Quick in-call retries of transient failures (between calls the outbox backs off). */
  retries?: number;
  /** A call without an answer after this long is abandoned (a transient failure). */
  timeoutMs: number;
}) {
  const { api, tokens, limiter, metrics } = deps;
  // Access tokens cached in memory only, until shortly before they expire or Google refuses one.
  const cache = new Map<string, string>();

  async function token(auth: IntegrationAuth, rejected: string | null = null): Promise<string> {
    if (!rejected) {
      const cached = cache.get(auth.id);
      if (cached) return cached;
    }
    const fresh = await tokens.accessToken({ id: auth.id, organisationId: auth.organisationId }, rejected);
    cache.set(auth.id, fresh);
    // Forget it well before any realistic expiry; the store knows the real expiry.
    setTimeout(() => cache.get(auth.id) === fresh && cache.delete(auth.id), 60_000).unref();
    return fresh;
  }

  async function call<T>(auth: IntegrationAuth, method: string, fn: (options: CallOptions) => Promise<T>): Promise<T> {
    return pRetry(
      async () => {
        await limiter.acquire(auth.accountKey);
        let accessToken = await token(auth);
        const timed = async () => {
          const started = performance.now();
          // Our own timer, cleared when the answer is in: the library's `timeout` option makes
          // an AbortSignal.timeout that fires GOOGLE_TIMEOUT_MS after every call, answered or
          // not, and builds a DOMException each time (5-8 % of the relay's CPU in a drain).
          const abandon = new AbortController();
          const timer = setTimeout(() => abandon.abort(), deps.timeoutMs);
          try {
            const result = await fn({ ...bearer(accessToken), signal: abandon.signal });
            metrics.onCall(method, (result as { status?: number }).status ?? 200, (performance.now() - started) / 1000);
            return result;
          } catch (error) {
            const failure = classifyGoogleError(error);
            metrics.onCall(method, failure.status ?? 'error', (performance.now() - started) / 1000);
            throw new GoogleCallFailed(failure);
          } finally {
            clearTimeout(timer);
          }
        };
        try {
          return await timed();
        } catch (error) {
          if (!(error instanceof GoogleCallFailed) || error.failure.kind !== 'auth') throw error;
          // 401: the token expired or was revoked. Refresh once (coordinated across relays by
          // the token store) and replay; a second 401 means the grant itself is gone.
          cache.delete(auth.id);
          accessToken = await token(auth, accessToken);
          try {
            return await timed();
          } catch (second) {
            if (second instanceof GoogleCallFailed && second.failure.kind === 'auth') {
              throw new ReconnectRequired(`Google refused a freshly refreshed token: ${second.failure.message}`);
            }
            throw second;
          }
        }
      },
      {
        retries: deps.retries ?? 2,
        minTimeout: 200,
        factor: 3,
        randomize: true,
        shouldRetry: ({ error }) => error instanceof GoogleCallFailed && error.failure.kind === 'transient',
      },
    ).catch((error: unknown) => {
      throw error instanceof AbortError ? error.cause : error;
    });
  }

  return {
    forget(integrationId: string) {
      cache.delete(integrationId);
    },
    insert(auth: IntegrationAuth, calendarId: string, id: string, body: calendar_v3.Schema$Event) {
      return call(auth, 'events.insert', (o) =>
        api.events.insert({ calendarId, sendUpdates: 'none', requestBody: { ...body, id } }, o),
      );
    },
    patch(auth: IntegrationAuth, calendarId: string, eventId: string, body: calendar_v3.Schema$Event) {
      return call(auth, 'events.patch', (o) => api.events.patch({ calendarId, eventId, sendUpdates: 'none', requestBody: body }, o));
    },
    delete(auth: IntegrationAuth, calendarId: string, eventId: string) {
      return call(auth, 'events.delete', (o) => api.events.delete({ calendarId, eventId, sendUpdates: 'none' }, o));
    },
    move(auth: IntegrationAuth, calendarId: string, eventId: string, destination: string) {
      return call(auth, 'events.move', (o) => api.events.move({ calendarId, eventId, destination, sendUpdates: 'none' }, o));
    },
  };
}
