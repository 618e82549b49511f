// A sustained stream of live changes (single-row transactions at a fixed rate) for:
// outbox_bloat_ratio (outbox size after N changes / after N/10) and held_xmin_throughput_ratio
// (delivered rate while another session holds a REPEATABLE READ snapshot / before it).
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { cloneDatabase, type BenchDb } from './pg';
import type { Child } from './procs';
import { collectDuplicates, createTenant, insertMany, isDrained, startPeer, startRelays, type Ctx, type Side } from './sides';
import { log, nowMs, percentile, sleep, until } from './util';

/**
 * Writes appointments every 10 ms, each tick's rows in one INSERT (one transaction). Open
 * loop: a fixed rate. Closed loop: keeps about `target` changes written but not yet relayed
 * (the relay runs flat out with a small standing queue).
 */
class LoadGenerator {
  readonly commits = new Map<string, number>();
  issued = 0;
  private inflight = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly pool: pg.Pool;
  private mode: { rate: number; since: number; base: number } | { target: number } = { target: 0 };
  private stopped = false;

  constructor(
    url: string,
    private readonly organisationId: string,
    private readonly relayed: () => number,
  ) {
    this.pool = new pg.Pool({ connectionString: url, max: 4, application_name: 'cassius-bench-load' });
    this.pool.on('error', () => {});
  }

  /** From now on, `rate` changes per second. */
  openLoop(rate: number): void {
    this.mode = { rate, since: nowMs(), base: this.issued };
  }

  /** From now on, keep about `target` changes written but not relayed. */
  closedLoop(target: number): void {
    this.mode = { target };
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), 10);
  }

  private tick(): void {
    if (this.inflight >= 4) return; // the database is behind: do not pile up sessions
    const m = this.mode;
    const due =
      'rate' in m
        ? Math.floor(((nowMs() - m.since) / 1000) * m.rate) - (this.issued - m.base)
        : Math.min(500, m.target - (this.issued - this.relayed()));
    if (due <= 0) return;
    const ids = Array.from({ length: due }, () => randomUUID());
    this.issued += due;
    this.inflight += 1;
    insertMany(this.pool, this.organisationId, ids)
      .then((at) => {
        for (const id of ids) this.commits.set(id, at);
      })
      .catch(() => (this.issued -= due))
      .finally(() => (this.inflight -= 1));
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await until(() => this.inflight === 0, 60_000, 'in-flight inserts');
    await this.pool.end();
  }
}

export type PhaseStats = { throughput: number; p50: number; p99: number; rows: number };

function phase(ctx: Ctx, load: LoadGenerator, from: number, to: number): PhaseStats {
  const now = nowMs();
  const latencies: number[] = [];
  let delivered = 0;
  for (const [id, committed] of load.commits) {
    const received = ctx.emu.received.get(id);
    if (received !== undefined && received >= from && received < to) delivered += 1;
    if (committed >= from && committed < to) latencies.push((received ?? now) - committed);
  }
  return {
    throughput: delivered / ((to - from) / 1000),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    rows: latencies.length,
  };
}

export type SustainedResult = {
  offeredRate: number;
  bloat: {
    smallBytes: number;
    largeBytes: number;
    ratio: number;
    smallAt: number;
    largeAt: number;
    autovacuums: number;
    /** Changes relayed per second over the closed-loop phase. */
    perSecond: number;
    /** Heap and index bytes at both points. */
    heap: [number, number];
    indexes: [number, number];
  } | null;
  xmin: XminResult | null;
};

export type XminResult = {
  clean: PhaseStats;
  held: PhaseStats;
  /** Seconds from release until p99 was back within `threshold` (null: not within the window). */
  recoverySeconds: number | null;
  thresholdMs: number;
  deadTuplesAtRelease: number;
  /** p99 of each 2-second bucket after release, ms. */
  bucketP99: number[];
};

const QUEUE_TABLE: Record<Side, string> = { ours: 'sync_outbox', peer: 'graphile_worker._private_jobs' };

async function tableStats(bdb: BenchDb, side: Side) {
  const table = QUEUE_TABLE[side];
  const [schema, name] = table.includes('.') ? table.split('.') : ['public', table];
  const row = (
    await bdb.pool.query(
      `select pg_total_relation_size($1::regclass)::float8 as total, pg_relation_size($1::regclass)::float8 as heap,
              pg_indexes_size($1::regclass)::float8 as indexes, coalesce(s.n_dead_tup, 0)::float8 as dead,
              coalesce(s.autovacuum_count, 0)::float8 as autovacuums
       from pg_stat_user_tables s where s.schemaname = $2 and s.relname = $3`,
      [table, schema, name],
    )
  ).rows[0] as { total: number; heap: number; indexes: number; dead: number; autovacuums: number } | undefined;
  return { total: row?.total ?? 0, heap: row?.heap ?? 0, indexes: row?.indexes ?? 0, dead: row?.dead ?? 0, autovacuums: row?.autovacuums ?? 0 };
}

/**
 * The queue table's largest size over a few seconds while the stream goes on: between two
 * vacuums its size is a sawtooth (dead rows pile up for about a second, then their space is
 * reused), so one instant's reading says more about where the sawtooth was than about bloat.
 */
export const PEAK_WINDOW_MS = 4_000;
async function peakTableStats(bdb: BenchDb, side: Side) {
  let peak = await tableStats(bdb, side);
  const until = nowMs() + PEAK_WINDOW_MS;
  while (nowMs() < until) {
    await sleep(200);
    const now = await tableStats(bdb, side);
    if (now.total > peak.total) peak = now;
  }
  return peak;
}

export async function sustainedRun(
  ctx: Ctx,
  side: Side,
  opts: {
    /** Open-loop rate of the clean, held and recovery phases. */
    rate: number;
    /** Closed-loop phase first (ours): relay flat out until `large` changes are relayed. */
    bloat: { small: number; large: number; standingQueue: number } | null;
    /** Measure a held snapshot (clean, held, recovery phases) after it. */
    xmin: boolean;
    cleanSeconds: number;
    holdSeconds: number;
    recoverySeconds: number;
  },
): Promise<SustainedResult> {
  const bdb = await cloneDatabase(ctx.cluster, ctx.templates[side], `${side}_sustained`);
  const tenant = await createTenant(ctx, bdb);
  let procs: Child[] = [];
  const holder = new pg.Client({ connectionString: bdb.url, application_name: 'cassius-bench-xmin-holder' });
  let load: LoadGenerator | null = null;
  try {
    procs = side === 'ours' ? await startRelays(ctx, bdb, 1) : await startPeer(ctx, bdb);
    await holder.connect();
    // Only this run's own changes count.
    const relayed = () => ctx.emu.receivedFor(tenant.organisationId);
    load = new LoadGenerator(bdb.url, tenant.organisationId, relayed);

    let bloat: SustainedResult['bloat'] = null;
    if (opts.bloat) {
      const { small, large, standingQueue } = opts.bloat;
      load.closedLoop(standingQueue);
      load.start();
      const started = nowMs();
      const limit = 1_800_000;
      await until(() => relayed() >= small, limit, `${small} changes relayed`, 20);
      const smallAt = relayed();
      const smallStats = await peakTableStats(bdb, side);
      log(`  ${side}: ${smallAt} changes relayed, queue table ${(smallStats.total / 1024).toFixed(0)} kB`);
      await until(() => relayed() >= large, limit, `${large} changes relayed`, 50);
      const largeAt = relayed();
      const largeStats = await peakTableStats(bdb, side);
      const seconds = (nowMs() - started) / 1000;
      log(`  ${side}: ${largeAt} changes relayed in ${seconds.toFixed(0)} s, queue table ${(largeStats.total / 1024).toFixed(0)} kB`);
      bloat = {
        smallBytes: smallStats.total,
        largeBytes: largeStats.total,
        ratio: largeStats.total / smallStats.total,
        smallAt,
        largeAt,
        autovacuums: largeStats.autovacuums,
        perSecond: largeAt / seconds,
        heap: [smallStats.heap, largeStats.heap],
        indexes: [smallStats.indexes, largeStats.indexes],
      };
      load.openLoop(opts.rate);
    } else {
      load.openLoop(opts.rate);
      load.start();
    }
    if (!opts.xmin) {
      await load.stop();
      const expected = load.commits.size;
      await until(() => relayed() >= expected, 600_000, `the ${side} backlog to drain`, 50);
      return { offeredRate: opts.rate, bloat, xmin: null };
    }
    // Settle at the new rate: the standing queue (or a cold start's backlog) is relayed first,
    // so the clean window measures the steady state.
    await sleep(Math.min(1_000, opts.cleanSeconds * 500));
    const settleUntil = nowMs() + 30_000;
    let caughtUpSince = 0;
    while (nowMs() < settleUntil) {
      const behind = load.issued - relayed();
      if (behind <= Math.max(5, opts.rate * 0.05)) {
        caughtUpSince ||= nowMs();
        if (nowMs() - caughtUpSince >= 2_000) break;
      } else caughtUpSince = 0;
      await sleep(50);
    }
    const cleanFrom = nowMs();
    await sleep(opts.cleanSeconds * 1000);
    const cleanTo = nowMs();

    // Another session holds the xmin horizon: a REPEATABLE READ transaction with its snapshot taken.
    await holder.query('begin isolation level repeatable read');
    await holder.query('select count(*) from organisations');
    const heldFrom = nowMs();
    await sleep(opts.holdSeconds * 1000);
    const heldTo = nowMs();
    const deadTuplesAtRelease = (await tableStats(bdb, side)).dead;
    await holder.query('commit');
    const released = nowMs();
    const clean = phase(ctx, load, cleanFrom, cleanTo);
    const thresholdMs = Math.max(1.5 * clean.p99, clean.p99 + 10);
    log(`  ${side}: held ${opts.holdSeconds} s; dead tuples in the queue table at release: ${deadTuplesAtRelease}`);

    // After release: 2-second buckets (by commit time) until two in a row have p99 <= threshold.
    const bucketMs = 2_000;
    let recoverySeconds: number | null = null;
    const bucketP99: number[] = [];
    for (let i = 0; (i + 2) * bucketMs <= opts.recoverySeconds * 1000 + bucketMs; i++) {
      const secondEnd = released + (i + 2) * bucketMs;
      const wait = secondEnd + thresholdMs - nowMs();
      if (wait > 0) await sleep(wait);
      const first = phase(ctx, load, released + i * bucketMs, released + (i + 1) * bucketMs);
      const second = phase(ctx, load, released + (i + 1) * bucketMs, secondEnd);
      bucketP99[i] = first.p99;
      bucketP99[i + 1] = second.p99;
      if (first.p99 <= thresholdMs && second.p99 <= thresholdMs) {
        recoverySeconds = (i * bucketMs) / 1000;
        break;
      }
    }
    await load.stop();
    const held = phase(ctx, load, heldFrom, heldTo);
    const expected = load.commits.size;
    await until(() => relayed() >= expected, 600_000, `the ${side} backlog to drain`, 50);
    await until(() => isDrained(bdb.pool, side), 120_000, 'drain', 50);
    return { offeredRate: opts.rate, bloat, xmin: { clean, held, recoverySeconds, thresholdMs, deadTuplesAtRelease, bucketP99 } };
  } finally {
    await holder.end().catch(() => {});
    await load?.stop().catch(() => {});
    await Promise.all(procs.map((p) => p.stop()));
    collectDuplicates(ctx, side, [tenant]);
    await bdb.drop();
  }
}
