// When to look at the outbox: on a NOTIFY from the capture triggers, or at the latest after a
// jittered poll interval, so a lost notification never strands a row.
//
// A dead LISTEN connection is the most repeated bug of the job-queue peers (graphile-worker
// #541, GoodJob #303, bullmq #4729; research/engineering-anchors.md). pg-listen reconnects
// after errors; on top of that a watchdog NOTIFYs a private ping through the ordinary pool
// every few seconds and expects to hear it on the listener. A listener that stays silent
// (half-open TCP, pg_terminate_backend, a failover) is torn down and subscribed again.
import createSubscriber, { type Subscriber } from 'pg-listen';
import { sql, type Db } from '../src/shared/db';
import type { Logger } from '../src/shared/logger';
import { jitter } from './backoff';

export const CHANNEL = 'sync_outbox';

export type Wakeup = {
  /** Resolves on a notification, a `poke()`, or after about `pollMs`. */
  wait(): Promise<'notified' | 'poll'>;
  /** Wakes the waiter (e.g. work finished and more may be claimable). */
  poke(): void;
  /** Listener (re)subscriptions so far, for metrics and tests. */
  readonly resubscriptions: number;
  close(): Promise<void>;
};

export async function createWakeup(opts: {
  databaseUrl: string;
  db: Db;
  relayId: string;
  pollMs: number;
  log: Logger;
  /** How often to check that the listener still hears us. */
  watchdogMs?: number;
  onResubscribe?: () => void;
}): Promise<Wakeup> {
  const { log, relayId } = opts;
  const watchdogMs = opts.watchdogMs ?? 5_000;
  const pingChannel = `sync_outbox_ping_${relayId.replace(/[^a-z0-9_]/gi, '_')}`.slice(0, 63).toLowerCase();
  let pending = false;
  let wake: (() => void) | null = null;
  let lastPingHeard = Date.now();
  let subscriber: Subscriber | null = null;
  let resubscriptions = 0;
  let closed = false;

  const signal = () => {
    pending = true;
    wake?.();
  };

  async function subscribe(): Promise<void> {
    const next = createSubscriber(
      { connectionString: opts.databaseUrl, application_name: `cassius-relay-listen ${relayId}`.slice(0, 63) },
      // Retry forever: a relay must outlive a PostgreSQL restart of any length.
      { paranoidChecking: 10_000, retryLimit: Infinity, retryTimeout: Infinity, retryInterval: (n) => Math.min(5_000, 250 * 2 ** n), parse: (s) => s },
    );
    next.events.on('notification', (n) => {
      if (n.channel === pingChannel) lastPingHeard = Date.now();
      else signal();
    });
    next.events.on('error', (error) => log.warn({ err: error.message }, 'outbox listener error; resubscribing'));
    next.events.on('reconnect', (attempt) => attempt === 1 && log.warn('outbox listener lost its connection; reconnecting'));
    next.events.on('connected', () => signal()); // anything committed while we were away
    await next.connect();
    await next.listenTo(CHANNEL);
    await next.listenTo(pingChannel);
    subscriber = next;
    lastPingHeard = Date.now();
  }

  async function resubscribe(reason: string): Promise<void> {
    resubscriptions += 1;
    opts.onResubscribe?.();
    log.warn({ reason }, 'outbox listener is not hearing notifications; subscribing again');
    const old = subscriber;
    subscriber = null;
    old?.close().catch(() => {});
    try {
      await subscribe();
    } catch (error) {
      log.warn({ err: (error as Error).message }, 'resubscribe failed; polling meanwhile, will retry');
    }
    signal();
  }

  try {
    await subscribe();
  } catch (error) {
    // Start anyway: the poll keeps the relay working and the watchdog keeps trying to listen.
    log.warn({ err: (error as Error).message }, 'could not LISTEN at start; polling until it works');
  }

  let watchdogBusy = false;
  const watchdog = setInterval(async () => {
    if (closed || watchdogBusy) return;
    watchdogBusy = true;
    try {
      if (!subscriber || Date.now() - lastPingHeard > watchdogMs * 2.5) {
        await resubscribe(subscriber ? 'ping not heard' : 'not subscribed');
      }
      await opts.db.query(sql.unsafe`select pg_notify(${pingChannel}, '')`).catch(() => {});
    } finally {
      watchdogBusy = false;
    }
  }, watchdogMs);
  watchdog.unref();

  return {
    get resubscriptions() {
      return resubscriptions;
    },
    poke: signal,
    async wait() {
      if (pending) {
        pending = false;
        return 'notified';
      }
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          wake = null;
          resolve('poll');
        }, jitter(opts.pollMs));
        wake = () => {
          clearTimeout(timer);
          wake = null;
          pending = false;
          resolve('notified');
        };
      });
    },
    async close() {
      closed = true;
      clearInterval(watchdog);
      wake?.();
      await subscriber?.close().catch(() => {});
    },
  };
}
