// Syncing one appointment: read its current state, bring Google to it with the fewest calls,
// and record the result in the same transaction that completes its outbox rows. The rows say
// only "look at this appointment": the state is always read fresh, so a stale row can never
// overwrite newer data, and several rows of one appointment cost one Google call.
import { sql, type Db } from '../src/shared/db';
import type { Logger } from '../src/shared/logger';
import { describeGoogleFailure, type GoogleFailure } from '../src/integrations/google/errors';
import { NoCredentials, ReconnectRequired } from '../src/integrations/google/tokenStore';
import { backoffMs } from './backoff';
import { eventBody, eventIdFor, GoogleCallFailed, payloadHash, type GoogleClient, type IntegrationAuth } from './google';
import { parkRows, retryRows, waitForReconnect, type ClaimedGroup } from './outbox';
import { crashPoint } from './crashPoints';
import { AccountPaused, type RateLimiter } from './rateLimit';
import type { Completion, Recorder } from './record';
import type { Integration } from './state';

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
  /** Batched writes of intents and results (relay/record.ts). */
  recorder: Recorder;
  relayId: string;
  maxAttempts: number;
  log: Logger;
  /** Called once, just before the first Google call of this appointment (latency metric). */
  onFirstCall?: () => void;
  /** Called when this appointment will make no more Google calls: only recording is left. */
  onGoogleDone?: () => void;
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

  const { appointment, target, link, link_integration: linkIntegration } = group.state;
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
      await writeIntent(deps, group, wanted, calendarId, eventId, generation);
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
        await writeIntent(deps, group, wanted, calendarId, eventId, generation);
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

function writeIntent(deps: SyncDeps, group: ClaimedGroup, integration: Integration, calendarId: string, eventId: string, generation: number) {
  return deps.recorder.intent({
    organisationId: group.organisationId,
    appointmentId: group.appointmentId,
    integrationId: integration.id,
    calendarId,
    eventId,
    generation,
  });
}

type Result = Pick<Completion, 'status'> & {
  link: 'keep' | 'delete' | 'none' | { integration: Integration; calendarId: string; eventId: string; generation: number; etag: string | null; hash: string };
};

async function finish(deps: SyncDeps, group: ClaimedGroup, result: Result, outcome: SyncOutcome): Promise<SyncOutcome> {
  deps.onGoogleDone?.();
  crashPoint('after_google');
  const link = result.link;
  // Recorded only if this relay still holds every row's lease; otherwise its lease ran out and
  // another relay owns the rows: that relay's result is the one to keep. Dying here is dying
  // before the commit.
  crashPoint('before_commit');
  const recorded = await deps.recorder.complete({
    organisationId: group.organisationId,
    appointmentId: group.appointmentId,
    ids: group.ids,
    status: result.status,
    link:
      typeof link === 'object'
        ? { integrationId: link.integration.id, calendarId: link.calendarId, eventId: link.eventId, generation: link.generation, etag: link.etag, hash: link.hash }
        : link,
  });
  if (recorded === 'lease_lost') {
    deps.log.warn({ appointment_id: group.appointmentId, outbox_ids: group.ids }, 'lease lost before recording; another relay owns the rows');
    return 'lease_lost';
  }
  return outcome;
}

async function handleFailure(deps: SyncDeps, group: ClaimedGroup, error: unknown): Promise<SyncOutcome> {
  deps.onGoogleDone?.();
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
