// Syncing one appointment: read its current state, bring Google to it with the fewest calls,
// and record the result in the same transaction that completes its outbox rows. The rows say
// only "look at this appointment": the state is always read fresh, so a stale row can never
// overwrite newer data, and several rows of one appointment cost one Google call.
import { z } from 'zod';
import { AppointmentRow } from '../src/appointments/sql';
import { sql, type Db } from '../src/shared/db';
import type { Logger } from '../src/shared/logger';
import { describeGoogleFailure, type GoogleFailure } from '../src/integrations/google/errors';
import { NoCredentials, ReconnectRequired } from '../src/integrations/google/tokenStore';
import { backoffMs } from './backoff';
import { eventBody, eventIdFor, GoogleCallFailed, payloadHash, type GoogleClient, type IntegrationAuth } from './google';
import { parkRows, retryRows, waitForReconnect, type ClaimedGroup } from './outbox';
import { crashPoint } from './crashPoints';
import { AccountPaused, type RateLimiter } from './rateLimit';

const Integration = z.object({
  id: z.string(),
  organisation_id: z.string(),
  user_id: z.string().nullable(),
  connection_status: z.enum(['active', 'needs_reconnect', 'disconnecting', 'disconnected']),
  account_subject: z.string().nullable(),
  account_email: z.string().nullable(),
  calendar_id: z.string().nullable(),
  sync_enabled: z.boolean(),
  connected_at: z.string().nullable(),
});
type Integration = z.infer<typeof Integration>;

// What the relay needs of an appointment: the synced columns of the row.
const Appointment = AppointmentRow.pick({
  id: true,
  organisation_id: true,
  title: true,
  description: true,
  location: true,
  starts_at: true,
  ends_at: true,
  time_zone: true,
  status: true,
});

const Link = z.object({
  integration_id: z.string(),
  external_calendar_id: z.string(),
  external_event_id: z.string(),
  generation: z.number(),
  etag: z.string().nullable(),
  payload_hash: z.string().nullable(),
  sync_status: z.string(),
});
type Link = z.infer<typeof Link>;

const State = z.object({
  appointment: Appointment.nullable(),
  target: Integration.nullable(),
  link: Link.nullable(),
  link_integration: Integration.nullable(),
});
type State = z.infer<typeof State>;

const integrationJson = (alias: string) => sql.fragment`
  (select row_to_json(i) from (
     select id, organisation_id, user_id, connection_status, account_subject, account_email, calendar_id, sync_enabled, connected_at
     from calendar_integrations where id = ${sql.identifier([alias, 'integration_id'])}) i)`;

async function loadState(db: Db, group: ClaimedGroup): Promise<State> {
  // Tenant scoping: every lookup is keyed by the row's organisation as well as its ids.
  return db.one(sql.type(State)`
    select
      (select row_to_json(a) from (
         select id, organisation_id, title, description, location, starts_at, ends_at, time_zone, status
         from appointments where id = ${group.appointmentId} and organisation_id = ${group.organisationId}) a) as appointment,
      ${integrationJson('t')} as target,
      (select row_to_json(l) from (
         select integration_id, external_calendar_id, external_event_id, generation, etag, payload_hash, sync_status
         from appointment_external_links
         where appointment_id = ${group.appointmentId} and organisation_id = ${group.organisationId} and provider = 'google') l) as link,
      ${integrationJson('l')} as link_integration
    from (select 1) one
    left join appointment_sync_targets t on t.appointment_id = ${group.appointmentId} and t.organisation_id = ${group.organisationId}
    left join appointment_external_links l on l.appointment_id = ${group.appointmentId} and l.organisation_id = ${group.organisationId}
                                          and l.provider = 'google'`);
}

export type SyncOutcome =
  | 'created'
  | 'updated'
  | 'moved'
  | 'deleted'
  | 'unchanged'
  | 'disabled'
  | 'retry'
  | 'rate_limited'
  | 'waiting_reconnect'
  | 'error'
  | 'parked'
  | 'lease_lost';

export type SyncDeps = {
  db: Db;
  google: GoogleClient;
  limiter: RateLimiter;
  relayId: string;
  maxAttempts: number;
  log: Logger;
  /** Called once, just before the first Google call of this appointment (latency metric). */
  onFirstCall?: () => void;
};

const auth = (i: Integration): IntegrationAuth => ({ id: i.id, organisationId: i.organisation_id, accountKey: i.account_subject ?? i.id });
const calendarOf = (i: Integration) => i.calendar_id ?? 'primary';

/** A failure that concerns one integration (a wait or a pause), not the appointment. */
class IntegrationBlocked extends Error {
  constructor(readonly integration: Integration, override readonly cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

/** We saw the integration already marked needs_reconnect: no Google call was refused. */
function observedNeedsReconnect(message: string): ReconnectRequired {
  return Object.assign(new ReconnectRequired(message), { observed: true });
}

/** The Google event left where the link says, or gone. */
type Placement = { integration: Integration; calendarId: string; eventId: string; generation: number; etag: string | null };

export async function syncAppointment(deps: SyncDeps, group: ClaimedGroup): Promise<SyncOutcome> {
  const { db, relayId, log } = deps;
  if (group.attempts > deps.maxAttempts) {
    const message = `gave up after ${group.attempts - 1} attempts (last attempts did not finish: the relay crashed or its lease ran out)`;
    await db.transaction(async (tx) => {
      await parkRows(tx, relayId, group.ids, message);
      await tx.query(sql.unsafe`
        update appointments set sync_status = 'error', last_error = ${message}
        where id = ${group.appointmentId} and organisation_id = ${group.organisationId}`);
    });
    log.error({ appointment_id: group.appointmentId, outbox_ids: group.ids }, message);
    return 'parked';
  }

  const state = await loadState(db, group);
  const { appointment, target, link, link_integration: linkIntegration } = state;
  crashPoint('after_load', appointment?.title ?? (group.snapshot?.title as string | undefined));

  // Sync switched off on the integration that owns this appointment: no Google call at all.
  if (appointment && target && !target.sync_enabled) return finish(deps, group, { status: 'disabled', link: 'keep' }, 'disabled');
  if (!appointment && linkIntegration && !linkIntegration.sync_enabled) {
    // Hard-deleted while sync is off: the link stays, so re-enabling (its backlog lists the
    // integration's links) deletes the event then.
    return finish(deps, group, { status: null, link: 'keep' }, 'disabled');
  }

  const wanted = appointment && appointment.status === 'scheduled' && target ? target : null;
  let outcome: SyncOutcome = 'unchanged';
  try {
    let placement: Placement | null =
      link && linkIntegration
        ? {
            integration: linkIntegration,
            calendarId: link.external_calendar_id,
            eventId: link.external_event_id,
            generation: link.generation,
            etag: link.etag,
          }
        : null;
    let abandonedLink = false;
    if (link && !linkIntegration) abandonedLink = true; // its integration row is gone

    // 1. An event in the wrong place (cancelled, deleted, re-assigned, calendar changed): move or remove it.
    if (placement && (!wanted || placement.integration.id !== wanted.id || placement.calendarId !== calendarOf(wanted))) {
      const from = placement.integration;
      if (from.connection_status === 'needs_reconnect') throw new IntegrationBlocked(from, observedNeedsReconnect('the calendar holding the event needs reconnecting'));
      if (from.connection_status === 'disconnected') {
        // Tokens revoked: the old event cannot be touched any more (README: disconnect policy).
        placement = null;
        abandonedLink = true;
      } else if (wanted && wanted.connection_status === 'active' && from.account_subject === wanted.account_subject) {
        // Same Google account owns both calendars: move keeps the event id and leaves nothing behind.
        try {
          const moved = await callFor(wanted, () => deps.google.move(auth(wanted), placement!.calendarId, placement!.eventId, calendarOf(wanted)));
          placement = { ...placement, integration: wanted, calendarId: calendarOf(wanted), etag: moved.data.etag ?? null };
          outcome = 'moved';
        } catch (error) {
          // 'duplicate' (409): the destination already holds this id, e.g. the tombstone an
          // earlier move away from it left (target calendar switched A -> B -> A). Found by
          // test/relay/model.test.ts: the appointment was parked for good, its event stuck in B.
          if (!isGoogle(error, 'not_found', 'gone', 'permanent', 'duplicate')) throw error;
          // Not in the source (deleted by hand), not movable, or the id is taken at the
          // destination: delete what is left, then create (a 409 there adopts the id).
          await deleteEvent(deps, placement);
          placement = null;
        }
      } else {
        await deleteEvent(deps, placement);
        placement = null;
        outcome = 'deleted';
      }
    }

    // 2. Nothing should be in Google: record it.
    if (!wanted) {
      const status = appointment ? (target ? 'synced' : 'disabled') : null;
      return finish(deps, group, { status, link: link ? 'delete' : 'none' }, link && !abandonedLink ? 'deleted' : target ? 'unchanged' : 'disabled');
    }
    if (wanted.connection_status !== 'active') throw new IntegrationBlocked(wanted, observedNeedsReconnect('the target calendar needs reconnecting'));

    // 3. Create or update the event in the target calendar.
    const body = eventBody(appointment!);
    const hash = payloadHash(body);
    const forced = group.operations.has('resync');
    if (placement && outcome !== 'moved' && !forced && link?.payload_hash === hash && link.sync_status === 'synced') {
      return finish(deps, group, { status: 'synced', link: 'keep' }, 'unchanged');
    }
    let generation = placement?.generation ?? 0;
    let eventId = placement?.eventId ?? eventIdFor(appointment!.id, generation);
    let etag: string | null = null;
    const calendarId = calendarOf(wanted);
    if (!placement) {
      // Record the id before calling Google: an event can exist in Google only if a link names it.
      await writeIntent(db, group, wanted, calendarId, eventId, generation);
    }
    // A link Google never confirmed (no etag: written just before an insert whose answer we
    // never saw) may name an event that does not exist: insert again, and a 409 adopts it.
    const unconfirmed = placement !== null && outcome !== 'moved' && link?.etag === null;
    for (;;) {
      try {
        if (placement && !unconfirmed) {
          etag = (await callFor(wanted, () => deps.google.patch(auth(wanted), calendarId, eventId, body))).data.etag ?? null;
          if (outcome !== 'moved') outcome = 'updated';
        } else {
          try {
            etag = (await callFor(wanted, () => deps.google.insert(auth(wanted), calendarId, eventId, body))).data.etag ?? null;
            outcome = 'created';
          } catch (error) {
            if (!isGoogle(error, 'duplicate')) throw error;
            // 409: our own earlier insert succeeded and its answer was lost, or the id belongs to
            // a deleted event. Patching with the full body and status confirmed adopts it.
            etag = (await callFor(wanted, () => deps.google.patch(auth(wanted), calendarId, eventId, body))).data.etag ?? null;
            outcome = 'created';
          }
        }
        break;
      } catch (error) {
        // Deleted in Google for good (404/410, or a tombstone Google will not revive): the id
        // is burnt, so recreate under the next generation.
        const gone = isGoogle(error, 'not_found', 'gone') || (isGoogle(error, 'permanent') && reasonOf(error) === 'forbidden');
        if (!gone || generation >= 1000) throw error;
        generation += 1;
        eventId = eventIdFor(appointment!.id, generation);
        placement = null;
        await writeIntent(db, group, wanted, calendarId, eventId, generation);
        log.info({ appointment_id: group.appointmentId, generation }, 'event gone in Google; recreating under the next id');
      }
    }
    return finish(
      deps,
      group,
      { status: 'synced', link: { integration: wanted, calendarId, eventId, generation, etag, hash } },
      outcome,
    );
  } catch (error) {
    return handleFailure(deps, group, error);
  }

  async function callFor<T>(integration: Integration, fn: () => Promise<T>): Promise<T> {
    deps.onFirstCall?.();
    try {
      return await fn();
    } catch (error) {
      if (error instanceof ReconnectRequired || error instanceof NoCredentials || error instanceof AccountPaused) {
        throw new IntegrationBlocked(integration, error);
      }
      if (error instanceof GoogleCallFailed && ['reconnect', 'rate_limited', 'usage_limited'].includes(error.failure.kind)) {
        throw new IntegrationBlocked(integration, error);
      }
      throw error;
    }
  }

  async function deleteEvent(d: SyncDeps, p: Placement): Promise<void> {
    try {
      await callFor(p.integration, () => d.google.delete(auth(p.integration), p.calendarId, p.eventId));
    } catch (error) {
      // Already gone (deleted by hand, or our earlier delete's answer was lost): done.
      if (isGoogle(error, 'not_found', 'gone')) return;
      // No write access there (any more): nothing we may delete. This is also the case of a
      // link recorded for an insert that a read-only calendar refused, so moving on is right.
      if (isGoogle(error, 'permanent') && reasonOf(error) === 'requiredAccessLevel') {
        d.log.warn({ appointment_id: group.appointmentId, calendar_id: p.calendarId }, 'cannot delete the old event: no write access to its calendar');
        return;
      }
      throw error;
    }
  }
}

function isGoogle(error: unknown, ...kinds: GoogleFailure['kind'][]): error is GoogleCallFailed {
  return error instanceof GoogleCallFailed && kinds.includes(error.failure.kind);
}
function reasonOf(error: GoogleCallFailed): string | null {
  return error.failure.reason;
}

async function writeIntent(db: Db, group: ClaimedGroup, integration: Integration, calendarId: string, eventId: string, generation: number) {
  await db.query(sql.unsafe`
    insert into appointment_external_links
      (organisation_id, appointment_id, provider, integration_id, external_calendar_id, external_event_id, generation, sync_status, attempts)
    values (${group.organisationId}, ${group.appointmentId}, 'google', ${integration.id}, ${calendarId}, ${eventId}, ${generation}, 'pending', 1)
    on conflict (appointment_id, provider) do update set
      integration_id = excluded.integration_id, external_calendar_id = excluded.external_calendar_id,
      external_event_id = excluded.external_event_id, generation = excluded.generation, etag = null, payload_hash = null,
      sync_status = 'pending', attempts = appointment_external_links.attempts + 1, updated_at = now()`);
}

type Result = {
  /** The appointment's V1 sync_status, or null when the appointment no longer exists. */
  status: 'synced' | 'disabled' | null;
  link:
    | 'keep'
    | 'delete'
    | 'none'
    | { integration: Integration; calendarId: string; eventId: string; generation: number; etag: string | null; hash: string };
};

async function finish(deps: SyncDeps, group: ClaimedGroup, result: Result, outcome: SyncOutcome): Promise<SyncOutcome> {
  const { appointmentId, organisationId } = group;
  crashPoint('after_google');
  const link = typeof result.link === 'object' ? result.link : null;
  const eventId = link ? link.eventId : result.link === 'keep' ? sql.fragment`a.external_event_id` : null;
  // One statement (so one implicit transaction) records everything, and only if this relay
  // still holds every row's lease; otherwise its lease ran out and another relay owns the rows:
  // that relay's result is the one to keep. Dying here is dying before the commit.
  crashPoint('before_commit');
  const recorded = await deps.db
    .oneFirst(sql.type(z.object({ completed: z.boolean() }))`
      with done as (
        delete from sync_outbox where id = any(${sql.array(group.ids, 'int8')}) and locked_by = ${deps.relayId} returning id
      ),
      owned as (
        select count(*) = ${group.ids.length} as ok from done
      ),
      link_deleted as (
        delete from appointment_external_links
        where ${result.link === 'delete'} and (select ok from owned)
          and appointment_id = ${appointmentId} and organisation_id = ${organisationId}
      ),
      link_written as (
        insert into appointment_external_links
          (organisation_id, appointment_id, provider, integration_id, external_calendar_id, external_event_id, generation,
           etag, payload_hash, sync_status, last_synced_at, last_error, attempts)
        select ${organisationId}, ${appointmentId}, 'google', ${link?.integration.id ?? null}, ${link?.calendarId ?? null},
               ${link?.eventId ?? null}, ${link?.generation ?? 0}, ${link?.etag ?? null}, ${link?.hash ?? null}, 'synced', now(), null, 0
        where ${link !== null} and (select ok from owned)
        on conflict (appointment_id, provider) do update set
          integration_id = excluded.integration_id, external_calendar_id = excluded.external_calendar_id,
          external_event_id = excluded.external_event_id, generation = excluded.generation, etag = excluded.etag,
          payload_hash = excluded.payload_hash, sync_status = 'synced', last_synced_at = now(), last_error = null,
          attempts = 0, updated_at = now()
      ),
      integration_touched as (
        -- Bookkeeping at most once a second: every relay finishing an appointment of this
        -- integration would otherwise queue on this one row's lock.
        update calendar_integrations set last_sync_at = now(), last_error = null
        where ${link !== null} and (select ok from owned) and id = ${link?.integration.id ?? null}
          and (last_sync_at is null or last_sync_at < now() - interval '1 second' or last_error is not null)
      ),
      appointment_written as (
        update appointments a set
          -- A change committed while we worked has its own outbox row: stay 'pending' for it.
          sync_status = case when exists (
              select 1 from sync_outbox o where o.appointment_id = ${appointmentId} and o.id <> all(${sql.array(group.ids, 'int8')}))
            then 'pending' else ${result.status ?? 'synced'} end,
          external_event_id = ${eventId},
          last_synced_at = case when ${result.status ?? ''} = 'synced' then now() else a.last_synced_at end,
          last_error = null
        where ${result.status !== null} and (select ok from owned) and a.id = ${appointmentId} and a.organisation_id = ${organisationId}
      )
      select ok as completed from owned`);
  if (!recorded) {
    deps.log.warn({ appointment_id: appointmentId, outbox_ids: group.ids }, 'lease lost before recording; another relay owns the rows');
    return 'lease_lost';
  }
  return outcome;
}

async function handleFailure(deps: SyncDeps, group: ClaimedGroup, error: unknown): Promise<SyncOutcome> {
  const { db, relayId, log } = deps;
  const { appointmentId, organisationId, ids } = group;
  const context = { appointment_id: appointmentId, organisation_id: organisationId, outbox_ids: ids };

  if (error instanceof IntegrationBlocked) {
    const integration = error.integration;
    const cause = error.cause;
    if (cause instanceof AccountPaused) {
      await retryRows(db, relayId, ids, cause.until - Date.now(), cause.message, { countAttempt: false });
      return 'rate_limited';
    }
    if (cause instanceof GoogleCallFailed && (cause.failure.kind === 'rate_limited' || cause.failure.kind === 'usage_limited')) {
      // Google said slow down: pause the whole account for every relay. Usage limits make the
      // calendar read-only for hours (google-api.md §6): park the account's queue for an hour.
      const usage = cause.failure.kind === 'usage_limited';
      const pauseMs = cause.failure.retryAfterMs ?? (usage ? 3_600_000 : 30_000 + Math.random() * 30_000);
      const message = describeGoogleFailure(cause.failure);
      await deps.limiter.pause(integration.account_subject ?? integration.id, pauseMs, message);
      await db.transaction(async (tx) => {
        await retryRows(tx, relayId, ids, pauseMs, message, { countAttempt: false });
        if (usage) await tx.query(sql.unsafe`update calendar_integrations set last_error = ${message} where id = ${integration.id}`);
      });
      log.warn({ ...context, pause_ms: Math.round(pauseMs) }, message);
      return 'rate_limited';
    }
    // The user must reconnect: rows wait, unconsumed, and replay once reconnected.
    const message =
      cause instanceof GoogleCallFailed ? describeGoogleFailure(cause.failure) : `Google access needs reconnecting: ${(cause as Error).message}`;
    deps.google.forget(integration.id);
    // Only Google's refusal marks the integration, and only if nobody reconnected it since we
    // read it: otherwise a reconnection racing with this attempt would be undone.
    const refusedByGoogle = !(cause instanceof ReconnectRequired && cause.observed);
    await db.transaction(async (tx) => {
      if (refusedByGoogle) {
        await tx.query(sql.unsafe`
          update calendar_integrations set connection_status = 'needs_reconnect', last_error = ${message}
          where id = ${integration.id} and connection_status = 'active'
            and connected_at is not distinct from ${integration.connected_at}`);
      }
      await waitForReconnect(tx, relayId, ids, integration.id, message);
    });
    log.warn(context, message);
    return 'waiting_reconnect';
  }

  if (error instanceof GoogleCallFailed && error.failure.kind !== 'transient') {
    // Permanent (400, 403 on a read-only calendar, a calendar that does not exist): record it on
    // the appointment and park the rows; Retry, Sync now or the next change tries again.
    const message = describeGoogleFailure(error.failure);
    await db.transaction(async (tx) => {
      await parkRows(tx, relayId, ids, message);
      await tx.query(sql.unsafe`
        update appointments set sync_status = 'error', last_error = ${message}
        where id = ${appointmentId} and organisation_id = ${organisationId}`);
      await tx.query(sql.unsafe`
        update appointment_external_links set sync_status = 'error', last_error = ${message}, updated_at = now()
        where appointment_id = ${appointmentId} and organisation_id = ${organisationId}`);
      if (['requiredAccessLevel', 'notFound'].includes(error.failure.reason ?? '')) {
        await tx.query(sql.unsafe`
          update calendar_integrations set last_error = ${message}
          where id = (select integration_id from appointment_sync_targets where appointment_id = ${appointmentId})`);
      }
    });
    log.warn(context, message);
    return 'error';
  }

  // Transient (network, timeout, 5xx) or unexpected: back off; park after too many attempts.
  const message =
    error instanceof GoogleCallFailed ? describeGoogleFailure(error.failure) : `relay error: ${(error as Error)?.message ?? String(error)}`;
  if (group.attempts >= deps.maxAttempts) {
    await db.transaction(async (tx) => {
      await parkRows(tx, relayId, ids, `gave up after ${group.attempts} attempts: ${message}`);
      await tx.query(sql.unsafe`
        update appointments set sync_status = 'error', last_error = ${message}
        where id = ${appointmentId} and organisation_id = ${organisationId}`);
    });
    log.error(context, `gave up after ${group.attempts} attempts: ${message}`);
    return 'parked';
  }
  await db.transaction(async (tx) => {
    await retryRows(tx, relayId, ids, backoffMs(group.attempts), message);
    await tx.query(sql.unsafe`
      update appointments set last_error = ${message} where id = ${appointmentId} and organisation_id = ${organisationId}`);
  });
  log.warn({ ...context, attempts: group.attempts }, message);
  return 'retry';
}
