// One relay daemon: claims outbox rows, syncs their appointments to Google with bounded
// concurrency, and records the results. Any number may run at once (README "Running N relays").
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import type { RelayConfig } from '../src/shared/config';
import { createKeyring } from '../src/shared/crypto';
import { createDb, type Db } from '../src/shared/db';
import { createLogger, type Logger } from '../src/shared/logger';
import { createCalendarApi } from '../src/integrations/google/calendarApi';
import { createTokenStore } from '../src/integrations/google/tokenStore';
import { expandBacklog, finishDisconnects } from './backlog';
import { createGoogleClient } from './google';
import { createRelayMetrics, serveMetrics } from './metrics';
import { claimBatch, deferRows, extendLeases, releaseRows, type ClaimedGroup } from './outbox';
import { createRateLimiter } from './rateLimit';
import { createHotPool } from './hotPool';
import { createRecorder } from './record';
import { syncAppointment } from './sync';
import { crashPoint } from './crashPoints';
import { createOutboxVacuum } from './vacuum';
import { createWakeup } from './wakeup';

export type Relay = {
  id: string;
  metricsUrl: string | null;
  /** Stops claiming, lets in-flight calls finish (at most `drainMs`), hands back the rest. */
  stop(drainMs?: number): Promise<void>;
};

/**
 * Session settings of every relay connection:
 * - Server-side TCP keepalives: PostgreSQL notices a vanished relay within ~25 s and ends its
 *   session, so no transaction or lock of a dead relay outlives its lease.
 * - Asynchronous commit. Everything a relay writes is progress it can redo: if PostgreSQL
 *   crashes before flushing it, the outbox rows come back and the sync runs again, harmlessly
 *   (deterministic event ids, 409 adopts, patches are idempotent). The changes themselves are
 *   committed synchronously by the writers, and any later synchronous commit flushes ours too.
 *   Not waiting for the WAL flush on every claim and result was a third of the database's
 *   time per change (bench: IO:WalSync). The one exception, a rotated refresh token, sets
 *   synchronous_commit back on for its own transaction (tokenStore.ts).
 */
function relaySessionUrl(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  if (!url.searchParams.has('options')) {
    url.searchParams.set(
      'options',
      '-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3 -c synchronous_commit=off',
    );
  }
  return url.toString();
}

export async function startRelay(config: RelayConfig, opts: { log?: Logger } = {}): Promise<Relay> {
  const id = config.RELAY_ID ?? `${os.hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const log = (opts.log ?? createLogger('relay', config.LOG_LEVEL)).child({ relay_id: id });
  const databaseUrl = relaySessionUrl(config.DATABASE_URL);
  const db: Db = await createDb(databaseUrl, {
    applicationName: `cassius-relay ${id}`.slice(0, 63),
    maximumPoolSize: config.RELAY_CONCURRENCY + 4,
    // A relay never holds a transaction across a Google call; one left idle is a bug or a
    // half-dead connection, and must not keep rows or locks.
    idleInTransactionSessionTimeout: 30_000,
    statementTimeout: 30_000,
    connectionTimeout: 10_000,
    idleTimeout: 60_000,
  });
  // The claim and the batched results (one statement each at a time, plus a writer-blocked
  // result recorded alone, plus intents): a few connections suffice.
  const hot = createHotPool(databaseUrl, {
    applicationName: `cassius-relay ${id}`.slice(0, 63),
    max: 4,
    statementTimeoutMs: 30_000,
    idleInTransactionTimeoutMs: 30_000,
  });
  const metrics = createRelayMetrics(db);
  const keyring = createKeyring(config.TOKEN_ENCRYPTION_KEY, config.TOKEN_ENCRYPTION_OLD_KEYS?.split(',') ?? []);
  const tokens = createTokenStore(db, keyring, config, { onRefresh: metrics.tokenRefresh });
  const limiter = createRateLimiter(
    db,
    { perAccountPerMinute: config.GOOGLE_RATE_LIMIT_PER_ACCOUNT_PER_MIN, perProjectPerMinute: config.GOOGLE_RATE_LIMIT_PER_PROJECT_PER_MIN },
    metrics.rateLimitWait,
  );
  const google = createGoogleClient({
    api: createCalendarApi(config.GOOGLE_API_URL, null),
    timeoutMs: config.GOOGLE_TIMEOUT_MS,
    tokens,
    limiter,
    metrics: { onCall: metrics.googleCall },
  });
  // Other results may follow while a call runs or an appointment waits for a slot.
  const recorder = createRecorder(hot, id, () => calling > 0 || queue.length > 0);
  const vacuum = createOutboxVacuum(db, log);
  const wakeup = await createWakeup({
    databaseUrl,
    db,
    relayId: id,
    pollMs: config.RELAY_POLL_MS,
    log,
    onResubscribe: metrics.listenerResubscribed,
  });

  let metricsServer: http.Server | null = null;
  let metricsUrl: string | null = null;
  if (config.RELAY_METRICS_PORT !== undefined) {
    metricsServer = await serveMetrics(metrics.registry, config.RELAY_METRICS_PORT, config.RELAY_METRICS_HOST);
    const address = metricsServer.address() as { port: number };
    metricsUrl = `http://${config.RELAY_METRICS_HOST}:${address.port}/metrics`;
  }

  // Groups started and not yet recorded (their leases are ours until then).
  const inFlight = new Map<string, ClaimedGroup>();
  // Of those, how many may still call Google: RELAY_CONCURRENCY bounds this, not inFlight. A
  // group whose calls are over frees its slot while its result waits to be recorded
  // (relay/record.ts gathers results into one statement), so recording never idles a slot.
  let calling = 0;
  // Claimed ahead of free slots (graphile-worker's localQueue): a claim is a serialized
  // statement, so taking a batch at a time and starting each group the moment a slot frees
  // keeps the slots busy without paying one claim per appointment. Leases cover queued groups.
  // Live changes queue ahead of backlog (priority 0 before 1), as in the claim itself.
  const queue: { group: ClaimedGroup; claimedAt: number }[] = [];
  let stopping = false;

  function enqueue(group: ClaimedGroup, claimedAt: number): void {
    const behind = queue.findIndex((q) => q.group.priority > group.priority);
    queue.splice(behind === -1 ? queue.length : behind, 0, { group, claimedAt });
  }

  function startQueued(): void {
    // A suspect chosen to run alone (below) runs alone: nothing starts beside it. Groups queued
    // before it still run at full concurrency (blocking them too made a kill -9 of a relay with
    // a full queue drain that whole queue one group at a time: the chaos burst test, 3x slower).
    while (!stopping && !(alone !== null && inFlight.has(alone)) && calling < config.RELAY_CONCURRENCY && queue.length > 0) {
      const { group, claimedAt } = queue.shift()!;
      inFlight.set(group.appointmentId, group);
      calling += 1;
      void processGroup(group, claimedAt);
    }
    metrics.setInFlight(calling);
  }

  async function processGroup(group: ClaimedGroup, claimedAt: number): Promise<void> {
    let firstCall = true;
    let slotHeld = true;
    const releaseSlot = () => {
      if (!slotHeld) return;
      slotHeld = false;
      calling -= 1;
      startQueued();
      wakeup.poke(); // room in the local queue: claim more
    };
    try {
      const outcome = await syncAppointment(
        {
          db,
          google,
          limiter,
          recorder,
          relayId: id,
          maxAttempts: config.RELAY_MAX_ATTEMPTS,
          log,
          onFirstCall: () => {
            if (!firstCall) return;
            firstCall = false;
            metrics.commitToCall((group.ageMs + performance.now() - claimedAt) / 1000);
          },
          onGoogleDone: releaseSlot,
        },
        group,
      );
      metrics.outcome(outcome);
      log.debug({ appointment_id: group.appointmentId, organisation_id: group.organisationId, outbox_ids: group.ids, outcome }, 'synced');
    } catch (error) {
      // Recording itself failed (e.g. the database went away): the lease runs out and another
      // attempt follows; nothing is lost.
      metrics.outcome('retry');
      log.error({ appointment_id: group.appointmentId, outbox_ids: group.ids, err: (error as Error).message }, 'could not record a sync result');
    } finally {
      inFlight.delete(group.appointmentId);
      releaseSlot();
      startQueued();
      // Recorded: a change to this appointment that arrived meanwhile is claimable now.
      wakeup.poke();
    }
  }

  // Leases are renewed well before they run out, so a slow Google call is never taken over.
  const heartbeat = setInterval(() => {
    const ids = [...inFlight.values(), ...queue.map((q) => q.group)].flatMap((g) => g.ids);
    extendLeases(db, id, ids, config.RELAY_LEASE_MS).catch((error: Error) => log.warn({ err: error.message }, 'lease heartbeat failed'));
  }, Math.max(1_000, Math.floor(config.RELAY_LEASE_MS / 3)));
  heartbeat.unref();

  // Backlog expansion, disconnect bookkeeping and the outbox's vacuum (relay/vacuum.ts), at most
  // every half second, beside the claim loop rather than in it: a live change's claim never
  // waits behind it.
  // A wake-up that comes too soon still gets its maintenance, half a second later: dropping it
  // left a backlog job (e.g. from connecting an integration just after the relay's start)
  // waiting for the next poll, up to RELAY_POLL_MS (found by test/relay/chaos.listener.test.ts).
  let lastMaintenance = 0;
  let maintenanceDue: NodeJS.Timeout | null = null;
  let maintaining: Promise<void> | null = null;
  let maintainAgain = false;
  let maintenanceFailures = 0;
  function maintain(): void {
    if (stopping) return;
    if (maintaining) {
      // Asked while running: that request may concern work its queries had already passed.
      maintainAgain = true;
      return;
    }
    const since = Date.now() - lastMaintenance;
    if (since < 500) {
      maintenanceDue ??= setTimeout(() => {
        maintenanceDue = null;
        maintain();
      }, 500 - since);
      return;
    }
    lastMaintenance = Date.now();
    maintaining = (async () => {
      while (!stopping && (await expandBacklog(db))) {
        // keep expanding while there is headroom
      }
      await finishDisconnects(db, tokens, config, log);
      await vacuum.maybeVacuum();
      maintenanceFailures = 0;
    })()
      .catch((error: Error) => {
        // The claim loop backs off and reports an unreachable database; this only adds how often.
        maintenanceFailures += 1;
        if (maintenanceFailures === 1 || maintenanceFailures % 20 === 0) {
          log.warn({ err: error.message, failures: maintenanceFailures }, 'backlog maintenance failed; retrying on the next wake-up');
        }
      })
      .finally(() => {
        maintaining = null;
        if (maintainAgain) {
          maintainAgain = false;
          maintain();
        }
      });
  }

  // Quarantine of suspects (added after the chaos suite's poison-row test failed: a row that
  // crashed every relay took its batch-mates down with it, until they too were parked after K
  // "attempts" with no event in Google). A group whose previous attempt never finished may be
  // what killed that relay, so it runs alone: the most-tried suspect, once nothing else is in
  // flight; the other suspects are deferred, still marked; innocent groups are handed back;
  // and nothing more is claimed until it is done. Only crashes and lost leases make suspects,
  // so the ordinary path keeps its full concurrency.
  let isolating = false;
  let alone: string | null = null;
  async function isolateSuspects(groups: ClaimedGroup[]): Promise<ClaimedGroup[]> {
    const suspects = groups.filter((g) => g.unfinished);
    if (suspects.length === 0) return groups;
    isolating = true;
    const innocent = groups.filter((g) => !g.unfinished);
    if (inFlight.size > 0 || queue.length > 0) {
      // Run the innocent ones now; the suspects wait for an idle relay.
      await deferRows(db, id, suspects.flatMap((g) => g.ids));
      return innocent;
    }
    const chosen = suspects.reduce((a, b) => (b.attempts > a.attempts ? b : a));
    await deferRows(db, id, suspects.filter((g) => g !== chosen).flatMap((g) => g.ids));
    await releaseRows(db, id, innocent.flatMap((g) => g.ids));
    alone = chosen.appointmentId;
    log.warn({ appointment_id: chosen.appointmentId, outbox_ids: chosen.ids, attempts: chosen.attempts }, 'previous attempt did not finish; running it alone');
    return [chosen];
  }

  // Claimed ahead of free slots: at most a batch, and about twice the concurrency, so that
  // with several relays none sits on a long queue while the others run dry; but at least 16,
  // so that a relay with few slots does not pay one claim per two or three appointments.
  const prefetch = Math.min(config.RELAY_BATCH_SIZE, Math.max(2 * config.RELAY_CONCURRENCY, 16));

  const loop = (async () => {
    let failures = 0;
    while (!stopping) {
      try {
        maintain();
        if (isolating && inFlight.size > 0) {
          await wakeup.wait();
          continue;
        }
        isolating = false;
        alone = null;
        startQueued();
        // Refill the local queue when it runs low; otherwise wait for a slot or a notification.
        const room = config.RELAY_CONCURRENCY + prefetch - calling - queue.length;
        if (queue.length > prefetch / 2 || room <= 0) {
          await wakeup.wait();
          continue;
        }
        const limit = Math.min(prefetch, room);
        const claimed = await claimBatch(hot, id, limit, config.RELAY_LEASE_MS);
        const claimedAt = performance.now();
        failures = 0;
        if (claimed.length > 0) crashPoint('after_claim');
        for (const group of await isolateSuspects(claimed)) enqueue(group, claimedAt);
        startQueued();
        // Never sleep after a full batch: there is probably more.
        if (claimed.length < limit && !isolating) await wakeup.wait();
      } catch (error) {
        // The database is unreachable (restart, failover): back off, keep trying, never exit.
        failures += 1;
        const delay = Math.min(10_000, 250 * 2 ** Math.min(failures, 6));
        if (failures === 1 || failures % 20 === 0) log.warn({ err: (error as Error).message, failures }, `outbox claim failed; retrying in ${delay} ms`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  })();

  log.info({ concurrency: config.RELAY_CONCURRENCY, batch: config.RELAY_BATCH_SIZE, metrics: metricsUrl }, 'relay started');

  return {
    id,
    metricsUrl,
    async stop(drainMs = 10_000) {
      if (stopping) return;
      stopping = true;
      wakeup.poke();
      await loop;
      if (maintenanceDue) clearTimeout(maintenanceDue);
      await maintaining;
      const deadline = Date.now() + drainMs;
      while (inFlight.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      const unfinished = [...inFlight.values(), ...queue.splice(0).map((q) => q.group)].flatMap((g) => g.ids);
      await releaseRows(db, id, unfinished).catch(() => {});
      clearInterval(heartbeat);
      await wakeup.close();
      await new Promise<void>((resolve) => (metricsServer ? metricsServer.close(() => resolve()) : resolve()));
      await hot.end();
      await db.end();
      log.info({ released: unfinished.length }, 'relay stopped');
    },
  };
}
