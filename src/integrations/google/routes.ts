// CONTRACT §5, Google integration. `?level=org` (default) is the organisation's calendar:
// everyone in the organisation may read it, only admins may change it (403 for members);
// `?level=user` is always the caller's own integration, so another user's cannot be reached.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { identityOf, type Auth, type Identity } from '../../shared/auth';
import type { Keyring } from '../../shared/crypto';
import { sql, type Db } from '../../shared/db';
import { HttpError, badRequest, errorResponses, forbidden } from '../../shared/errors';
import { Level } from '../../shared/validation';
import type { CalendarApi } from './calendarApi';
import { Calendar, listCalendars } from './calendars';
import { authorizationUrl, CallbackQuery, handleCallback, type ConnectDeps } from './connect';
import { findIntegration, holdsTokens, IntegrationStatus, integrationStatus, type IntegrationRow, type Owner } from './integration';
import { createOAuthClient, type GoogleConfig } from './oauth';
import type { TokenStore } from './tokenStore';

export type GoogleRoutesOptions = {
  db: Db;
  auth: Auth;
  keyring: Keyring;
  tokenStore: TokenStore;
  calendarApi: CalendarApi;
  google: GoogleConfig;
  appSecret: string;
  publicUrl: string;
};

const LevelQuery = z.object({ level: Level });
const ConnectQuery = z.object({
  level: Level,
  login_hint: z.string().max(320, 'must be at most 320 characters').optional().describe('passed to Google: the account to preselect'),
});
const SettingsBody = z
  .object({
    calendar_id: z.string().min(1, 'must not be empty').max(1024).optional().describe('one of the account\'s writable calendars'),
    sync_enabled: z.boolean().optional(),
  })
  .strict()
  .refine((b) => b.calendar_id !== undefined || b.sync_enabled !== undefined, { message: 'give calendar_id and/or sync_enabled' });
const DisconnectBody = z
  .object({
    remove_events: z
      .boolean()
      .optional()
      .describe('true: delete the events Cassius created in that calendar first (202, done by the relay), then revoke'),
  })
  .strict()
  .nullish();
const SyncNowAnswer = z.object({
  queued: z.number().int().describe('appointments of this integration changed since the last sync, or pending / in error'),
  backlog_id: z.number().int(),
  running: z.literal(true),
});

const REVOKE_TIMEOUT_MS = 10_000;
const tags = ['google integration'];
const security: Record<string, string[]>[] = [{ bearer: [] }, { cookie: [] }];
const notConnected = () => new HttpError(409, 'not_connected', 'no Google account is connected at this level; connect one first');

export const googleRoutesPlugin: FastifyPluginAsyncZod<GoogleRoutesOptions> = async (app, opts) => {
  const { db, auth, tokenStore, calendarApi } = opts;
  const connectDeps: ConnectDeps = opts;

  const owner = (who: Identity, level: Level): Owner => ({ organisationId: who.organisationId, userId: who.userId, level });
  const mustWrite = (who: Identity, level: Level) => {
    if (level === 'org' && who.role !== 'admin') throw forbidden('only an organisation admin can change the organisation calendar');
  };
  const connected = async (o: Owner): Promise<IntegrationRow> => {
    const row = await findIntegration(db, o);
    if (!holdsTokens(row)) throw notConnected();
    return row;
  };

  // The callback authenticates itself (a browser navigation back from Google: failures are
  // redirects to the settings page, never JSON), so it lives outside the identity hook.
  app.get(
    '/integrations/google/callback',
    {
      schema: {
        tags,
        summary: "Google's redirect back after consent; always a 302 to the settings page",
        querystring: CallbackQuery,
        response: { 302: z.null().describe('to /settings/integrations/google-calendar?connected=1 or ?error=<code>') },
      },
    },
    async (request, reply) => {
      const who = await auth.identify(request);
      const location = await handleCallback(connectDeps, who, request.query, request.log);
      return reply.header('Cache-Control', 'no-store').redirect(location, 302);
    },
  );

  await app.register(async (scoped) => {
    scoped.addHook('onRequest', auth.requireIdentity);
    const r = scoped.withTypeProvider<import('fastify-type-provider-zod').ZodTypeProvider>();

    r.get(
      '/integrations/google/connect',
      {
        schema: {
          tags,
          security,
          summary: "302 to Google's consent page (signed single-use state, PKCE S256)",
          querystring: ConnectQuery,
          response: { 302: z.null(), ...errorResponses(400, 401, 403, 409) },
        },
      },
      async (request, reply) => {
        const who = identityOf(request);
        const { level, login_hint } = request.query;
        mustWrite(who, level);
        const existing = await findIntegration(db, owner(who, level));
        if (existing?.connection_status === 'disconnecting') {
          throw new HttpError(409, 'disconnect_in_progress', 'the previous disconnection is still removing events; try again shortly');
        }
        const url = await authorizationUrl(connectDeps, who, level, login_hint);
        return reply.header('Cache-Control', 'no-store').redirect(url, 302);
      },
    );

    r.get(
      '/integrations/google/status',
      {
        schema: { tags, security, summary: 'Connection, target calendar, sync state and counts', querystring: LevelQuery, response: { 200: IntegrationStatus, ...errorResponses(400, 401) } },
      },
      async (request) => {
        const who = identityOf(request);
        return integrationStatus(db, owner(who, request.query.level));
      },
    );

    r.get(
      '/integrations/google/calendars',
      {
        schema: {
          tags,
          security,
          summary: "The connected account's calendars, with whether events can be written there",
          querystring: LevelQuery,
          response: { 200: z.array(Calendar), ...errorResponses(400, 401, 409, 502) },
        },
      },
      async (request) => {
        const who = identityOf(request);
        const row = await connected(owner(who, request.query.level));
        return listCalendars({ db, tokenStore, calendarApi }, row);
      },
    );

    r.patch(
      '/integrations/google/settings',
      {
        schema: {
          tags,
          security,
          summary: 'Change the target calendar (the relay moves the events) and/or turn sync on or off',
          querystring: LevelQuery,
          body: SettingsBody,
          response: { 200: IntegrationStatus, ...errorResponses(400, 401, 403, 409, 413, 415, 502) },
        },
      },
      async (request) => {
        const who = identityOf(request);
        const level = request.query.level;
        mustWrite(who, level);
        const o = owner(who, level);
        const row = await connected(o);
        const { calendar_id, sync_enabled } = request.body;
        if (calendar_id !== undefined && calendar_id !== row.calendar_id) {
          const calendars = await listCalendars({ db, tokenStore, calendarApi }, row);
          const chosen = calendars.find((c) => c.id === calendar_id);
          if (!chosen) throw badRequest(`body.calendar_id: the Google account ${row.account_email ?? ''} has no calendar '${calendar_id}'`, 'unknown_calendar');
          if (!chosen.writable) {
            throw badRequest(
              `body.calendar_id: '${chosen.summary}' (${chosen.id}) is read-only for this account (access role ${chosen.access_role}); choose a calendar it can write to`,
              'calendar_not_writable',
            );
          }
        }
        const sets = [];
        if (calendar_id !== undefined) sets.push(sql.fragment`calendar_id = ${calendar_id}`);
        if (sync_enabled !== undefined) sets.push(sql.fragment`sync_enabled = ${sync_enabled}`);
        // A changed target or toggle starts the relay's re-targeting through the table's trigger.
        await db.query(sql.unsafe`
          update calendar_integrations set ${sql.join(sets, sql.fragment`, `)}
          where id = ${row.id} and organisation_id = ${row.organisation_id}`);
        return integrationStatus(db, o);
      },
    );

    r.post(
      '/integrations/google/disconnect',
      {
        schema: {
          tags,
          security,
          summary: 'Revoke at Google, delete the tokens, stop sync; with remove_events the relay first deletes the events (202)',
          querystring: LevelQuery,
          body: DisconnectBody,
          response: {
            200: IntegrationStatus.extend({ revoked: z.boolean().describe('Google confirmed the revocation') }),
            202: IntegrationStatus,
            ...errorResponses(400, 401, 403, 413, 415),
          },
        },
      },
      async (request, reply) => {
        const who = identityOf(request);
        const level = request.query.level;
        mustWrite(who, level);
        const o = owner(who, level);
        const row = await findIntegration(db, o);
        if (!row || row.connection_status === 'disconnected') {
          return reply.code(200).send({ ...(await integrationStatus(db, o, row)), revoked: false });
        }
        const ref = { id: row.id, organisationId: row.organisation_id };
        if (request.body?.remove_events === true) {
          // The relay deletes this integration's events, then revokes, deletes the tokens and
          // sets 'disconnected' itself.
          await db.query(sql.unsafe`
            update calendar_integrations set connection_status = 'disconnecting'
            where id = ${row.id} and organisation_id = ${row.organisation_id} and connection_status <> 'disconnected'`);
          return reply.code(202).send(await integrationStatus(db, o));
        }
        // Revoke first (best effort: Google may be down or the grant already dead), then forget
        // the tokens whatever happened. Links stay: the events already in that calendar cannot
        // be touched once revoked, and they are kept if the same account reconnects.
        let revoked = false;
        const refreshToken = await tokenStore.readRefreshToken(ref).catch(() => null);
        if (refreshToken) {
          try {
            // The library retries a failing revoke a few times; never wait on Google for long.
            let timer: NodeJS.Timeout | undefined;
            const timeout = new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new Error('Google revoke timed out')), REVOKE_TIMEOUT_MS);
            });
            await Promise.race([createOAuthClient(opts.google).revokeToken(refreshToken), timeout]).finally(() => clearTimeout(timer));
            revoked = true;
          } catch (error) {
            const { status, data } = (error as { response?: { status?: number; data?: { error?: unknown } } }).response ?? {};
            request.log.warn({ google_status: status ?? null, google_error: typeof data?.error === 'string' ? data.error : null }, 'Google revoke failed; tokens deleted anyway');
          }
        }
        await db.transaction(async (tx) => {
          await tokenStore.remove(ref, tx);
          await tx.query(sql.unsafe`
            update calendar_integrations set connection_status = 'disconnected', last_error = null
            where id = ${row.id} and organisation_id = ${row.organisation_id}`);
        });
        return reply.code(200).send({ ...(await integrationStatus(db, o)), revoked });
      },
    );

    r.post(
      '/integrations/google/sync-now',
      {
        schema: {
          tags,
          security,
          summary: 'Queue the backlog: every appointment changed since the last sync, or pending / in error (202)',
          querystring: LevelQuery,
          response: { 202: SyncNowAnswer, ...errorResponses(400, 401, 403, 409) },
        },
      },
      async (request, reply) => {
        const who = identityOf(request);
        const level = request.query.level;
        mustWrite(who, level);
        const row = await connected(owner(who, level));
        if (!row.sync_enabled) throw new HttpError(409, 'sync_disabled', 'sync is off for this integration; turn it on first');
        const answer = await db.transaction(async (tx) => {
          // One running job per integration: a second press joins it (the relay expands the
          // job into outbox rows in batches, at backlog priority).
          const created = await tx.maybeOne(sql.type(z.object({ id: z.number() }))`
            insert into sync_backlog (organisation_id, integration_id, reason, since)
            values (${row.organisation_id}, ${row.id}, 'sync_now', ${row.last_sync_at}::timestamptz)
            on conflict (integration_id) where completed_at is null do nothing
            returning id`);
          const job =
            created !== null
              ? { id: created.id, since: row.last_sync_at }
              : await tx.one(sql.type(z.object({ id: z.number(), since: z.string().nullable() }))`
                  select id, since from sync_backlog where integration_id = ${row.id} and completed_at is null`);
          const since = job.since;
          const count = await tx.one(sql.type(z.object({ queued: z.number() }))`
            select count(*)::int as queued
            from appointment_sync_targets t join appointments a on a.id = t.appointment_id
            where t.organisation_id = ${row.organisation_id} and a.organisation_id = ${row.organisation_id}
              and t.integration_id = ${row.id}
              and (${since}::timestamptz is null or a.updated_at > ${since}::timestamptz or a.sync_status in ('pending', 'error'))`);
          await tx.query(sql.unsafe`select sync_outbox_notify()`);
          return { queued: count.queued, backlog_id: job.id, running: true as const };
        });
        return reply.code(202).send(answer);
      },
    );
  });
};
