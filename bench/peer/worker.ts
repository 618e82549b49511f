// The peer: what a team would build instead of our relay. A graphile-worker 0.17 process whose
// task does the same per-change work (read the appointment and its integration, one Google
// call through the same Calendar client, write the link), fed by a trigger on appointments
// (bench/peer/schema.ts). Started by the bench as a child process, like our relays.
//
// PEER_MODE=unbatched: graphile-worker's defaults (one claim and one completion per job).
// PEER_MODE=tuned: as its performance docs recommend: localQueue.size = concurrency + 1 and
// batched completion (completeJobBatchDelay / failJobBatchDelay, PEER_BATCH_DELAY_MS).
import { run, type Logger as GwLogger, type Task } from 'graphile-worker';
import { Logger } from 'graphile-worker';
import { createDb } from '../../src/shared/db';
import { createKeyring } from '../../src/shared/crypto';
import { bearer, createCalendarApi } from '../../src/integrations/google/calendarApi';
import { createTokenStore } from '../../src/integrations/google/tokenStore';
import { eventBody, eventIdFor } from '../../relay/google';
import { googleConfig, TEST_TOKEN_KEY } from '../../test/helpers/google';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};

const databaseUrl = env('PEER_DATABASE_URL');
const emulatorUrl = env('PEER_EMULATOR_URL');
const concurrency = Number(env('PEER_CONCURRENCY'));
const mode = env('PEER_MODE');
const batchDelayMs = Number(process.env.PEER_BATCH_DELAY_MS ?? '0');

const api = createCalendarApi(`${emulatorUrl}/`, 15_000);
const tokenDb = await createDb(databaseUrl, { maximumPoolSize: 2, applicationName: 'peer-tokens' });
const tokens = createTokenStore(tokenDb, createKeyring(TEST_TOKEN_KEY), googleConfig(emulatorUrl));
const cachedTokens = new Map<string, Promise<string>>();
const tokenFor = (integrationId: string, organisationId: string) => {
  let token = cachedTokens.get(integrationId);
  if (!token) {
    token = tokens.accessToken({ id: integrationId, organisationId }, null);
    cachedTokens.set(integrationId, token);
  }
  return token;
};

type Row = {
  id: string;
  organisation_id: string;
  title: string;
  description: string | null;
  location: string | null;
  starts_at: Date;
  ends_at: Date;
  time_zone: string;
  integration_id: string;
  calendar_id: string | null;
};

const syncAppointment: Task = async (payload, helpers) => {
  const { id } = payload as { id: string };
  // 1. The appointment and the integration it syncs to, in one query.
  const { rows } = await helpers.query<Row>(
    `select a.id, a.organisation_id, a.title, a.description, a.location, a.starts_at, a.ends_at, a.time_zone,
            i.id as integration_id, i.calendar_id
     from appointments a
     join appointment_sync_targets t on t.appointment_id = a.id
     join calendar_integrations i on i.id = t.integration_id
     where a.id = $1 and a.status = 'scheduled' and i.connection_status = 'active' and i.sync_enabled`,
    [id],
  );
  const row = rows[0];
  if (!row) return;
  const token = await tokenFor(row.integration_id, row.organisation_id);
  const body = eventBody({ ...row, starts_at: row.starts_at.toISOString(), ends_at: row.ends_at.toISOString() });
  const eventId = eventIdFor(row.id, 0);
  const calendarId = row.calendar_id ?? 'primary';
  // 2. One Google call (a retried job patches what its first attempt created: no duplicate).
  let etag: string | null | undefined;
  try {
    etag = (await api.events.insert({ calendarId, sendUpdates: 'none', requestBody: { ...body, id: eventId } }, bearer(token))).data.etag;
  } catch (error) {
    if ((error as { status?: number }).status !== 409) throw error;
    etag = (await api.events.patch({ calendarId, eventId, sendUpdates: 'none', requestBody: body }, bearer(token))).data.etag;
  }
  // 3. The link.
  await helpers.query(
    `insert into appointment_external_links
       (organisation_id, appointment_id, provider, integration_id, external_calendar_id, external_event_id, etag, sync_status, last_synced_at)
     values ($1, $2, 'google', $3, $4, $5, $6, 'synced', now())
     on conflict (appointment_id, provider) do update set
       external_event_id = excluded.external_event_id, etag = excluded.etag, sync_status = 'synced',
       last_synced_at = now(), updated_at = now()`,
    [row.organisation_id, row.id, row.integration_id, calendarId, eventId, etag ?? null],
  );
};

const quiet: GwLogger = new Logger(() => (level, message) => {
  if (level === 'error') process.stderr.write(`peer: ${message}\n`);
});

const tuned = mode === 'tuned';
const runner = await run({
  connectionString: databaseUrl,
  concurrency,
  // The docs: "10 or concurrentJobs + 2, whichever is larger" (+2 more: the task uses the pool).
  maxPoolSize: Math.max(10, concurrency + 4),
  // New jobs arrive by LISTEN/NOTIFY; the poll is only the fallback (default 2 s).
  pollInterval: 1_000,
  logger: quiet,
  taskList: { sync_appointment: syncAppointment },
  preset: {
    worker: tuned
      ? { localQueue: { size: concurrency + 1 }, completeJobBatchDelay: batchDelayMs, failJobBatchDelay: batchDelayMs }
      : {},
  },
});
process.stdout.write(`peer ready (${mode}, concurrency ${concurrency})\n`);
// graphile-worker handles SIGTERM itself (graceful shutdown, then exit).
await runner.promise;
await tokenDb.end();
process.exit(0);
