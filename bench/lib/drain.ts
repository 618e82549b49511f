// Draining a queue of N changes: the throughput figures (relay_throughput, relay_rss_mb,
// round trips per row, relay_scaling_4_over_1) for ours and the peer.
import pg from 'pg';
import { cloneDatabase, dbCounters } from './pg';
import type { Child } from './procs';
import { bulkInsert, collectDuplicates, createTenant, isDrained, startPeer, startRelays, warmUp, type Ctx, type PeerMode, type Side } from './sides';
import { log, machineCpu, nowMs, sleep, until } from './util';

export type DrainResult = {
  rowsPerSecond: number;
  seconds: number;
  /** Peak RSS of the first process (VmHWM), MB. */
  peakRssMb: number | null;
  /** CPU seconds of all the side's processes during the drain. */
  cpuSeconds: number | null;
  /** Statements (round trips) per row, pg_stat_statements; null without it. */
  statementsPerRow: number | null;
  commitsPerRow: number;
  /** Busy CPU of the whole machine per row, ms (relay + PostgreSQL + emulator + anything else running). */
  machineCpuMsPerRow: number;
  /** CPU of the bench process per row, ms: the in-process Google emulator (plus the bench's few polls). */
  emulatorCpuMsPerRow: number;
  /** Busy share of the machine's cores during the drain (1 = all cores busy). */
  machineBusy: number;
  /** Write system calls of the side's processes per row (socket writes: SQL and HTTP). */
  writeSyscallsPerRow: number | null;
  duplicates: number;
};

export type DrainOptions = {
  rows: number;
  timeoutMs?: number;
  /** Every Google call of the measured drain delayed this long. */
  googleLatencyMs?: number;
  /** Statement and transaction counts (waits ~1 s for the processes' statistics); default true. */
  counters?: boolean;
};

/**
 * One side's processes on a database of their own, warmed up, ready to drain queues one after
 * another: the rounds of a figure reuse them (starting processes and warming them up cost a
 * few seconds a round), each round inserting new appointments into the same database.
 */
export type Drainer = { drain(opts: DrainOptions): Promise<DrainResult>; close(): Promise<void> };

export async function startDrainer(
  ctx: Ctx,
  side: Side,
  opts: { processes?: number; mode?: PeerMode; profile?: boolean; concurrency?: number; warmupRows?: number } = {},
): Promise<Drainer> {
  const processes = opts.processes ?? 1;
  const bdb = await cloneDatabase(ctx.cluster, ctx.templates[side], `${side}_drain`);
  let procs: Child[] = [];
  let client: pg.Client | null = null;
  const close = async () => {
    await client?.end().catch(() => {});
    client = null;
    await Promise.all(procs.map((p) => p.stop()));
    procs = [];
    ctx.emu.clearReceived();
    await bdb.drop();
  };
  try {
    const tenant = await createTenant(ctx, bdb);
    procs =
      side === 'ours'
        ? await startRelays(ctx, bdb, processes, { profile: opts.profile ?? false, concurrency: opts.concurrency })
        : await startPeer(ctx, bdb, opts.mode ?? 'tuned', processes, { profile: opts.profile ?? false });
    client = new pg.Client({ connectionString: bdb.url, application_name: 'cassius-bench' });
    await client.connect();
    const c = client;
    // A drain measures the steady state, and 4 fresh relays do not each pay for compiling their
    // code inside a 4-relay figure.
    const warmup = opts.warmupRows ?? ctx.warmupRows * processes;
    if (warmup > 0) await warmUp(ctx, c, side, tenant, warmup);
    // Our own setup sessions end here: from now on the database's counters are the processes'.
    await bdb.quiesce();
    collectDuplicates(ctx, side, [tenant]);

    let reported = false;
    async function drain(d: DrainOptions): Promise<DrainResult> {
      const counters = d.counters ?? true;
      const timeoutMs = d.timeoutMs ?? 300_000;
      // Counters of the processes' earlier work are reported (a backend reports at most once a
      // second): after the warm-up; after a drain, that drain waited already.
      if (counters && !reported) await sleep(1_200);
      reported = false;
      ctx.emu.clearReceived();
      const fault = d.googleLatencyMs ? ctx.emu.control.addFault({ pathPrefix: '/calendar/v3/', latencyMs: d.googleLatencyMs, forMs: 3_600_000 }) : null;
      try {
        const cpuBefore = procs.map((p) => p.cpuSeconds() ?? 0);
        const writesBefore = procs.map((p) => p.syscalls()?.writes ?? null);
        const machineBefore = machineCpu();
        const benchBefore = process.cpuUsage();
        const breakdown = Boolean(process.env.BENCH_STATEMENTS) && ctx.cluster.statements;
        if (breakdown) {
          await ctx.cluster.admin.query(`select pg_stat_statements_reset(0, (select oid from pg_database where datname = $1), 0)`, [bdb.name]);
        }
        const before = counters ? await dbCounters(ctx.cluster, bdb.name) : null;
        let own = 0;
        const waits = new Map<string, number>();
        const sampler = process.env.BENCH_WAITS
          ? setInterval(() => {
              void ctx.cluster.admin
                .query(
                  `select coalesce(wait_event_type, 'CPU') || ':' || coalesce(wait_event, state) ||
                          case when wait_event_type = 'Lock' then ' (' || left(regexp_replace(query, '\\s+', ' ', 'g'), 60) || ')' else '' end as w
                   from pg_stat_activity where datname = $1 and state <> 'idle'`,
                  [bdb.name],
                )
                .then((r) => r.rows.forEach((row: { w: string }) => waits.set(row.w, (waits.get(row.w) ?? 0) + 1)));
            }, 50)
          : null;
        const t0 = await bulkInsert(c, tenant.organisationId, d.rows);
        own += 1;
        await until(() => ctx.emu.received.size >= d.rows, timeoutMs, `${d.rows} appointments to reach Google (${side})`, 10);
        await until(
          async () => {
            own += 1;
            return isDrained(c, side);
          },
          timeoutMs,
          `the ${side} queue to drain`,
          5,
        );
        const t1 = nowMs();
        const machineAfter = machineCpu();
        const bench = process.cpuUsage(benchBefore);
        if (sampler) {
          clearInterval(sampler);
          const top = [...waits.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10);
          log(`  ${side} ${opts.mode ?? ''} PostgreSQL wait events (samples every 50 ms): ${top.map(([w, n]) => `${w} ${n}`).join(', ')}`);
        }
        const cpu = procs.map((p, i) => (p.cpuSeconds() ?? 0) - (cpuBefore[i] ?? 0)).reduce((a, b) => a + b, 0);
        const writes = procs.map((p, i) => {
          const now = p.syscalls()?.writes;
          const before = writesBefore[i];
          return now === undefined || before === null || before === undefined ? null : now - before;
        });
        const writeSyscallsPerRow = writes.every((w) => w !== null) ? (writes as number[]).reduce((a, b) => a + b, 0) / d.rows : null;
        if (counters) await sleep(1_200); // the drain's last transactions are reported
        reported = counters;
        const after = counters ? await dbCounters(ctx.cluster, bdb.name) : null;
        if (breakdown) {
          const top = await ctx.cluster.admin.query(
            `select calls::float8 / $2 as per_row, mean_exec_time as ms, mean_plan_time as plan_ms, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) as q
             from pg_stat_statements s join pg_database d on d.oid = s.dbid where d.datname = $1 order by calls desc limit 14`,
            [bdb.name, d.rows],
          );
          log(
            `  ${side} ${opts.mode ?? ''} statements per row (mean execution + planning ms): ` +
              top.rows
                .map((r: { per_row: number; ms: number; plan_ms: number; q: string }) => `\n    ${r.per_row.toFixed(3)}  ${r.ms.toFixed(2)} + ${r.plan_ms.toFixed(2)} ms  ${r.q}`)
                .join(''),
          );
        }
        const seconds = (t1 - t0) / 1000;
        return {
          rowsPerSecond: d.rows / seconds,
          seconds,
          peakRssMb: procs[0]?.peakRssMb() ?? null,
          cpuSeconds: cpu,
          statementsPerRow:
            before?.statements == null || after?.statements == null ? null : (after.statements - before.statements - own) / d.rows,
          commitsPerRow: before && after ? (after.commits - before.commits - own) / d.rows : Number.NaN,
          writeSyscallsPerRow,
          machineCpuMsPerRow: ((machineAfter.busy - machineBefore.busy) * 1000) / d.rows,
          emulatorCpuMsPerRow: (bench.user + bench.system) / 1000 / d.rows,
          machineBusy: (machineAfter.busy - machineBefore.busy) / Math.max(1e-9, machineAfter.total - machineBefore.total),
          duplicates: collectDuplicates(ctx, side, [tenant]),
        };
      } finally {
        if (fault) ctx.emu.control.removeFault(fault.id);
        ctx.emu.clearReceived();
      }
    }
    return { drain, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** One drain by freshly started (and warmed-up) processes on a fresh database. */
export async function drainRound(
  ctx: Ctx,
  side: Side,
  opts: DrainOptions & { processes?: number; mode?: PeerMode; profile?: boolean; concurrency?: number; warmupRows?: number },
): Promise<DrainResult> {
  const drainer = await startDrainer(ctx, side, opts);
  try {
    return await drainer.drain(opts);
  } finally {
    await drainer.close();
  }
}
