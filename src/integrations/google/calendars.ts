// The connected account's calendars (calendarList.list, paged to the end), with a writable flag
// from the access role. The access token comes from the shared token store; a 401 is retried
// once with a fresh token; a refused authorization marks the integration needs_reconnect.
import type { calendar_v3 } from '@googleapis/calendar';
import { z } from 'zod';
import type { Db } from '../../shared/db';
import { HttpError } from '../../shared/errors';
import { bearer, type CalendarApi } from './calendarApi';
import { classifyGoogleError, describeGoogleFailure } from './errors';
import { markNeedsReconnect, type IntegrationRow } from './integration';
import { NoCredentials, ReconnectRequired, type TokenStore } from './tokenStore';

export const WRITABLE_ROLES = new Set(['owner', 'writer', 'writerWithoutPrivateAccess']);

export const Calendar = z.object({
  id: z.string(),
  summary: z.string(),
  primary: z.boolean(),
  access_role: z.string().describe('owner, writer, writerWithoutPrivateAccess, reader or freeBusyReader'),
  time_zone: z.string().nullable(),
  writable: z.boolean().describe('events can be written there (owner, writer, writerWithoutPrivateAccess)'),
});
export type Calendar = z.infer<typeof Calendar>;

export const needsReconnect = (message: string) =>
  new HttpError(409, 'needs_reconnect', `Google refused the saved authorization; reconnect the account (${message})`.slice(0, 500));

const MAX_PAGES = 50;

async function listWith(api: CalendarApi, token: string): Promise<Calendar[]> {
  const calendars: Calendar[] = [];
  let pageToken: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const res = await api.calendarList.list({ maxResults: 250, pageToken, showHidden: true }, bearer(token));
    const data: calendar_v3.Schema$CalendarList = res.data;
    for (const item of data.items ?? []) {
      if (!item.id || item.deleted) continue;
      const role = item.accessRole ?? 'reader';
      calendars.push({
        id: item.id,
        summary: item.summaryOverride ?? item.summary ?? item.id,
        primary: item.primary === true,
        access_role: role,
        time_zone: item.timeZone ?? null,
        writable: WRITABLE_ROLES.has(role),
      });
    }
    pageToken = data.nextPageToken ?? undefined;
    if (!pageToken) break;
  }
  return calendars;
}

export async function listCalendars(
  deps: { db: Db; tokenStore: TokenStore; calendarApi: CalendarApi },
  integration: IntegrationRow,
): Promise<Calendar[]> {
  const ref = { id: integration.id, organisationId: integration.organisation_id };
  const reconnect = async (message: string) => {
    await markNeedsReconnect(deps.db, integration, message);
    return needsReconnect(message);
  };
  try {
    let token = await deps.tokenStore.accessToken(ref);
    try {
      return await listWith(deps.calendarApi, token);
    } catch (error) {
      if (classifyGoogleError(error).kind !== 'auth') throw error;
      token = await deps.tokenStore.accessToken(ref, token);
      return await listWith(deps.calendarApi, token);
    }
  } catch (error) {
    if (error instanceof ReconnectRequired) throw await reconnect(error.message);
    if (error instanceof NoCredentials) throw new HttpError(409, 'not_connected', 'no Google account is connected at this level');
    if (error instanceof HttpError) throw error;
    const failure = classifyGoogleError(error);
    const description = describeGoogleFailure(failure);
    if (failure.kind === 'reconnect' || failure.kind === 'auth') throw await reconnect(description);
    throw new HttpError(502, 'google_error', description);
  }
}
