// Recording what the relay did, batched (relay/batch.ts): the intent written before an insert,
// and the result that completes an appointment's outbox rows. Each is one statement for all
// the appointments that reached that point together.
import { z } from 'zod';
import { createBatcher } from './batch';
import type { HotPool } from './hotPool';

/** The event id is recorded before Google is asked to insert it: an event exists in Google only if a link names it. */
export type Intent = {
  organisationId: string;
  appointmentId: string;
  integrationId: string;
  calendarId: string;
  eventId: string;
  generation: number;
};

export type Completion = {
  organisationId: string;
  appointmentId: string;
  /** The outbox rows this relay leased; recorded only if it still holds every one. */
  ids: number[];
  /** The appointment's V1 sync_status, or null when the appointment no longer exists. */
  status: 'synced' | 'disabled' | null;
  link:
    | 'keep'
    | 'delete'
    | 'none'
    | { integrationId: string; calendarId: string; eventId: string; generation: number; etag: string | null; hash: string };
};

/** `recorded`; `lease_lost`: another relay took the rows over, and its result is the one to keep. */
export type Recorded = 'recorded' | 'lease_lost';

export type Recorder = {
  intent(intent: Intent): Promise<void>;
  complete(completion: Completion): Promise<Recorded>;
};

const MAX_BATCH = 100;
// Results wait up to this long for others to share their statement (River's completer flushes
// every 50 ms). A relay whose calls each wait on Google finishes a few appointments per window
// instead of sending one statement each; its slots do not wait for it (relay.ts). The cost: an
// appointment shows 'synced' up to 50 ms later. Only while other results may come
// (`othersComing`: calls in flight or queued); a lone result goes at once.
const COMPLETION_WINDOW_MS = 50;

export function createRecorder(db: HotPool, relayId: string, othersComing?: () => boolean): Recorder {
  const intents = createBatcher({ run: (items: Intent[]) => writeIntents(db, items), maxBatch: MAX_BATCH, key: (i) => i.appointmentId });
  const completions = createBatcher({
    run: (items: Completion[]) => recordCompletions(db, relayId, items, { waitForWriters: false }),
    maxBatch: MAX_BATCH,
    delayMs: COMPLETION_WINDOW_MS,
    othersComing,
    key: (c) => c.appointmentId,
  });
  return {
    intent: (intent) => intents.add(intent),
    async complete(completion) {
      const result = await completions.add(completion);
      if (result !== 'busy') return result;
      // A writer holds the appointment's row right now: record it alone, waiting for the
      // writer, outside the batches (which go on without it). Holding no other appointment's
      // lock while it waits, it cannot deadlock with a transaction that writes several.
      const [alone] = await recordCompletions(db, relayId, [completion], { waitForWriters: true });
      return alone === 'recorded' ? 'recorded' : 'lease_lost';
    },
  };
}

async function writeIntents(db: HotPool, intents: Intent[]): Promise<void[]> {
  const rows = intents.map((i) => ({
    organisation_id: i.organisationId,
    appointment_id: i.appointmentId,
    integration_id: i.integrationId,
    calendar_id: i.calendarId,
    event_id: i.eventId,
    generation: i.generation,
  }));
  await db.run(
    'relay_write_intents',
    `insert into appointment_external_links
       (organisation_id, appointment_id, provider, integration_id, external_calendar_id, external_event_id, generation, sync_status, attempts)
     select x.organisation_id, x.appointment_id, 'google', x.integration_id, x.calendar_id, x.event_id, x.generation, 'pending', 1
     from jsonb_to_recordset($1::jsonb) as x(
       organisation_id uuid, appointment_id uuid, integration_id uuid, calendar_id text, event_id text, generation integer)
     on conflict (appointment_id, provider) do update set
       integration_id = excluded.integration_id, external_calendar_id = excluded.external_calendar_id,
       external_event_id = excluded.external_event_id, generation = excluded.generation, etag = null, payload_hash = null,
       sync_status = 'pending', attempts = appointment_external_links.attempts + 1, updated_at = now()`,
    [JSON.stringify(rows)],
  );
  return intents.map(() => undefined);
}

const CompletionResult = z.object({ appointment_id: z.string(), outcome: z.enum(['recorded', 'lease_lost', 'busy']) });

/**
 * One round trip (so one transaction) records every completion whose relay still holds all
 * its rows' leases: sync_outbox_complete in db/migrations/0003_claim_function.sql. Dying
 * before it returns is dying before the commit.
 */
async function recordCompletions(
  db: HotPool,
  relayId: string,
  completions: Completion[],
  opts: { waitForWriters: boolean },
): Promise<('recorded' | 'lease_lost' | 'busy')[]> {
  const rows = completions.map((c) => {
    const link = typeof c.link === 'object' ? c.link : null;
    return {
      organisation_id: c.organisationId,
      appointment_id: c.appointmentId,
      ids: c.ids,
      status: c.status,
      link: link ? 'write' : c.link,
      integration_id: link?.integrationId ?? null,
      calendar_id: link?.calendarId ?? null,
      event_id: link?.eventId ?? null,
      generation: link?.generation ?? 0,
      etag: link?.etag ?? null,
      payload_hash: link?.hash ?? null,
    };
  });
  const results = await db.rows(
    'sync_outbox_complete',
    'select * from sync_outbox_complete($1, $2::jsonb, $3)',
    [relayId, JSON.stringify(rows), opts.waitForWriters],
    CompletionResult,
  );
  const byAppointment = new Map(results.map((r) => [r.appointment_id, r.outcome]));
  return completions.map((c) => byAppointment.get(c.appointmentId) ?? 'lease_lost');
}
