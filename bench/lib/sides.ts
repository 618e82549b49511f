// The two systems under test, started the same way: ours (relay processes on a database with
// our capture triggers) and the peer (graphile-worker processes on a database with its
// trigger). Plus the tenants and the writes both receive.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type pg from 'pg';
import { createOrganisation } from '../../test/helpers/fixtures';
import { connectGoogle, relayConfig, relayEnv } from '../../test/helpers/google';
import type { RelayConfig } from '../../src/shared/config';
import type { BenchEmulator } from './emulator';
import type { BenchCluster, BenchDb, Template } from './pg';
import { peerScript, relayCommand, spawnChild, type Child } from './procs';
import { nowMs, until } from './util';

export type Side = 'ours' | 'peer';
export type PeerMode = 'unbatched' | 'tuned';

export type Ctx = {
  cluster: BenchCluster;
  emu: BenchEmulator;
  templates: { ours: Template; peer: Template };
  /** Google calls in flight per relay / peer process (the shared concurrency budget). */
  concurrency: number;
  /**
   * Changes each process relays, unmeasured, before its first measured round: V8 compiles a
   * process's hot paths (the Google client, the driver) during its first few hundred changes,
   * at several times the steady CPU cost per change. Both sides get the same warm-up.
   */
  warmupRows: number;
  /** Surplus events per appointment found so far, per side (the `duplicates` figure). */
  duplicates: Record<Side, { events: number; surplus: number; calendars: number }>;
  /** Directory for --cpu-prof output, when profiling. */
  profileDir: string | null;
};

export type Tenant = { organisationId: string; integrationId: string; calendarId: string };

let tenantSeq = 0;

/** An organisation with its Google account connected through the real OAuth dance. */
export async function createTenant(ctx: Ctx, bdb: BenchDb): Promise<Tenant> {
  tenantSeq += 1;
  const email = `bench-${tenantSeq}-${randomUUID().slice(0, 8)}@gmail.test`;
  ctx.emu.control.addAccount({ email });
  const organisationId = await createOrganisation(bdb.db, `Bench clinic ${tenantSeq}`);
  const integrationId = await connectGoogle(bdb.db, ctx.emu.url, { organisationId, email });
  // Connecting queues an "integration changed" backlog job; it has nothing to sync yet and
  // must not re-sync the rows the benchmark is about to write.
  await bdb.pool.query(`update sync_backlog set completed_at = now() where completed_at is null`).catch(() => {});
  return { organisationId, integrationId, calendarId: email };
}

/** Counts events per appointment in the tenants' calendars, then frees the emulator's memory. */
export function collectDuplicates(ctx: Ctx, side: Side, tenants: readonly Tenant[]): number {
  let surplus = 0;
  for (const tenant of tenants) {
    const perAppointment = new Map<string, number>();
    const events = ctx.emu.control.events(tenant.calendarId) as { extendedProperties?: { private?: Record<string, string> } }[];
    for (const event of events) {
      const id = event.extendedProperties?.private?.cassiusAppointmentId;
      if (id) perAppointment.set(id, (perAppointment.get(id) ?? 0) + 1);
    }
    for (const n of perAppointment.values()) surplus += n - 1;
    ctx.duplicates[side].events += events.length;
    ctx.duplicates[side].calendars += 1;
    ctx.emu.forgetEvents(tenant.calendarId);
  }
  ctx.duplicates[side].surplus += surplus;
  return surplus;
}

const START = Date.parse('2031-01-06T08:00:00Z');

/** `rows` appointments in one INSERT statement; returns the COMMIT acknowledgement time. */
export async function bulkInsert(client: pg.ClientBase | pg.Pool, organisationId: string, rows: number): Promise<number> {
  await client.query(
    `insert into appointments (organisation_id, title, starts_at, ends_at, time_zone)
     select $1, 'Bench appointment ' || g, t.at, t.at + interval '30 minutes', 'Europe/Paris'
     from generate_series(1, $2::int) g
     cross join lateral (select to_timestamp($3::float8 / 1000) + (g % 4000) * interval '1 hour' as at) t`,
    [organisationId, rows, START],
  );
  return nowMs();
}

/** One appointment in its own transaction (a live change); returns the COMMIT acknowledgement time. */
export async function insertOne(client: pg.ClientBase | pg.Pool, organisationId: string, id: string): Promise<number> {
  const at = START + Math.floor(Math.random() * 4000) * 3_600_000;
  await client.query({
    name: 'bench-insert-one',
    text: `insert into appointments (id, organisation_id, title, starts_at, ends_at, time_zone)
           values ($1, $2, 'Live change', $3, $4, 'Europe/Paris')`,
    values: [id, organisationId, new Date(at).toISOString(), new Date(at + 1_800_000).toISOString()],
  });
  return nowMs();
}

/** Several appointments in one INSERT (one transaction) with the given ids; returns the COMMIT acknowledgement time. */
export async function insertMany(client: pg.ClientBase | pg.Pool, organisationId: string, ids: string[]): Promise<number> {
  const at = START + Math.floor(Math.random() * 4000) * 3_600_000;
  await client.query({
    name: 'bench-insert-many',
    text: `insert into appointments (id, organisation_id, title, starts_at, ends_at, time_zone)
           select id, $2, 'Live change', $3, $4, 'Europe/Paris' from unnest($1::uuid[]) id`,
    values: [ids, organisationId, new Date(at).toISOString(), new Date(at + 1_800_000).toISOString()],
  });
  return nowMs();
}

export function ourRelayConfig(ctx: Ctx, bdb: BenchDb, overrides: Partial<RelayConfig> = {}): RelayConfig {
  return relayConfig(bdb.url, ctx.emu.url, {
    // Production defaults (src/shared/config.ts), not the tests' smaller ones.
    RELAY_CONCURRENCY: ctx.concurrency,
    RELAY_BATCH_SIZE: 64,
    RELAY_POLL_MS: 1_000,
    RELAY_LEASE_MS: 30_000,
    // Our own quota must never bind in a benchmark.
    GOOGLE_RATE_LIMIT_PER_ACCOUNT_PER_MIN: 100_000_000,
    GOOGLE_RATE_LIMIT_PER_PROJECT_PER_MIN: 100_000_000,
    LOG_LEVEL: 'info',
    ...overrides,
  });
}

let relaySeq = 0;

export async function startRelays(
  ctx: Ctx,
  bdb: BenchDb,
  count: number,
  opts: { profile?: boolean; concurrency?: number } = {},
): Promise<Child[]> {
  const relays: Child[] = [];
  for (let i = 0; i < count; i++) {
    relaySeq += 1;
    const profile = opts.profile && ctx.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${ctx.profileDir}`] : [];
    // BENCH_RELAY_SCRIPT: measure a variant of the relay (e.g. a patched copy) instead.
    const variant = process.env.BENCH_RELAY_SCRIPT;
    const relay = variant ? { script: variant, nodeArgs: [] } : relayCommand();
    relays.push(
      spawnChild({
        label: `relay-${relaySeq}`,
        script: relay.script,
        env: relayEnv(
          ourRelayConfig(ctx, bdb, { RELAY_ID: `bench-relay-${relaySeq}`, RELAY_CONCURRENCY: opts.concurrency ?? ctx.concurrency }),
        ),
        readyPattern: /relay started/,
        nodeArgs: [...relay.nodeArgs, ...profile],
      }),
    );
  }
  try {
    await Promise.all(relays.map((r) => r.ready));
  } catch (error) {
    await Promise.all(relays.map((r) => r.stop()));
    throw error;
  }
  return relays;
}

export async function startPeer(ctx: Ctx, bdb: BenchDb, mode: PeerMode = 'tuned', count = 1, opts: { profile?: boolean } = {}): Promise<Child[]> {
  const workers: Child[] = [];
  for (let i = 0; i < count; i++) {
    workers.push(
      spawnChild({
        label: `peer-${mode}`,
        nodeArgs: opts.profile && ctx.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${ctx.profileDir}`] : [],
        script: peerScript(),
        env: {
          ...process.env,
          PEER_DATABASE_URL: bdb.url,
          PEER_EMULATOR_URL: ctx.emu.url,
          PEER_CONCURRENCY: String(ctx.concurrency),
          PEER_MODE: mode,
          PEER_BATCH_DELAY_MS: String(PEER_BATCH_DELAY_MS),
        },
        readyPattern: /peer ready/,
      }),
    );
  }
  try {
    await Promise.all(workers.map((w) => w.ready));
  } catch (error) {
    await Promise.all(workers.map((w) => w.stop()));
    throw error;
  }
  return workers;
}

/** The tuned peer's completion batching window (the docs suggest starting at 250 ms; 0 still batches). */
export const PEER_BATCH_DELAY_MS = 0;

export const PEER_TUNING = (concurrency: number) =>
  `graphile-worker 0.17.3 as its documentation recommends for throughput: concurrency ${concurrency}, maxPoolSize ${Math.max(10, concurrency + 4)}, ` +
  `localQueue.size = concurrency + 1 (${concurrency + 1}), completeJobBatchDelay = failJobBatchDelay = ${PEER_BATCH_DELAY_MS} ms (batched completion), ` +
  `pollInterval 1000 ms (LISTEN/NOTIFY wakes it), jobs enqueued by a statement-level trigger calling graphile_worker.add_jobs()`;

/** The table the side's pending work lives in, and a query that is true once it is empty. */
const drainedQuery: Record<Side, string> = {
  ours: 'select not exists (select 1 from sync_outbox where failed_at is null) as done',
  peer: 'select not exists (select 1 from graphile_worker._private_jobs) as done',
};

/** Whether the side's queue is empty (nothing left to relay). */
export async function isDrained(client: pg.ClientBase | pg.Pool, side: Side): Promise<boolean> {
  return Boolean((await client.query(drainedQuery[side])).rows[0]?.done);
}

/**
 * Warm-up (Ctx.warmupRows): `rows` changes relayed, unmeasured, before a process's first
 * measured round. Counted per organisation: two sides may warm up at the same time.
 */
export async function warmUp(ctx: Ctx, client: pg.ClientBase, side: Side, tenant: Tenant, rows: number): Promise<void> {
  await bulkInsert(client, tenant.organisationId, rows);
  await until(() => ctx.emu.receivedFor(tenant.organisationId) >= rows, 300_000, `${rows} warm-up changes to reach Google (${side})`, 10);
  await until(() => isDrained(client, side), 60_000, `the ${side} warm-up to drain`, 5);
}
