// Draining a queue of N changes: the throughput figures (relay_throughput, relay_rss_mb,
// round trips per row, relay_scaling_4_over_1) for ours and the peer.
import pg from 'pg';
import { cloneDatabase, dbCounters } from './pg';
import type { Child } from './procs';
import { bulkInsert, collectDuplicates, createTenant, drainedQuery, startPeer, startRelays, type Ctx, type PeerMode, type Side } from './sides';
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

export async function drainRound(
  ctx: Ctx,
  side: Side,
  opts: { rows: number; processes?: number; mode?: PeerMode; profile?: boolean; timeoutMs?: number; concurrency?: number },
): Promise<DrainResult> {
  const bdb = await cloneDatabase(ctx.cluster, ctx.templates[side], `${side}_drain`);
  let procs: Child[] = [];
  const tenant = await createTenant(ctx, bdb);
  let client: pg.Client | null = null;
  try {
    procs =
      side === 'ours'
        ? await startRelays(ctx, bdb, opts.processes ?? 1, { profile: opts.profile ?? false, concurrency: opts.concurrency })
        : await startPeer(ctx, bdb, opts.mode ?? 'unbatched', opts.processes ?? 1, { profile: opts.profile ?? false });
    // Our own setup sessions end here, so their statistics are flushed before we count.
    await bdb.quiesce();
    client = new pg.Client({ connectionString: bdb.url, application_name: 'cassius-bench' });
    await client.connect();
    ctx.emu.clearReceived();
    await sleep(1_200); // statistics of the processes' start-up are flushed (at most 1 s late)
    const cpuBefore = procs.map((p) => p.cpuSeconds() ?? 0);
    const writesBefore = procs.map((p) => p.syscalls()?.writes ?? null);
    const machineBefore = machineCpu();
    const benchBefore = process.cpuUsage();
    const breakdown = Boolean(process.env.BENCH_STATEMENTS) && ctx.cluster.statements;
    if (breakdown) {
      await ctx.cluster.admin.query(`select pg_stat_statements_reset(0, (select oid from pg_database where datname = $1), 0)`, [bdb.name]);
    }
    const before = await dbCounters(ctx.cluster, bdb.name);
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
    const t0 = await bulkInsert(client, tenant.organisationId, opts.rows);
    own += 1;
    const timeoutMs = opts.timeoutMs ?? 300_000;
    await until(() => ctx.emu.received.size >= opts.rows, timeoutMs, `${opts.rows} appointments to reach Google (${side})`, 10);
    const c = client;
    await until(
      async () => {
        own += 1;
        return Boolean((await c.query(drainedQuery[side])).rows[0]?.done);
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
    const peakRssMb = procs[0]?.peakRssMb() ?? null;
    const cpu = procs.map((p, i) => (p.cpuSeconds() ?? 0) - (cpuBefore[i] ?? 0)).reduce((a, b) => a + b, 0);
    const writes = procs.map((p, i) => {
      const now = p.syscalls()?.writes;
      const before = writesBefore[i];
      return now === undefined || before === null || before === undefined ? null : now - before;
    });
    const writeSyscallsPerRow = writes.every((w) => w !== null) ? (writes as number[]).reduce((a, b) => a + b, 0) / opts.rows : null;
    await client.end();
    client = null;
    await Promise.all(procs.map((p) => p.stop()));
    procs = [];
    await sleep(300); // ended sessions flush their statistics on exit
    const after = await dbCounters(ctx.cluster, bdb.name);
    if (breakdown) {
      const top = await ctx.cluster.admin.query(
        `select calls::float8 / $2 as per_row, mean_exec_time as ms, mean_plan_time as plan_ms, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) as q
         from pg_stat_statements s join pg_database d on d.oid = s.dbid where d.datname = $1 order by calls desc limit 14`,
        [bdb.name, opts.rows],
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
      rowsPerSecond: opts.rows / seconds,
      seconds,
      peakRssMb,
      cpuSeconds: cpu,
      statementsPerRow:
        before.statements === null || after.statements === null ? null : (after.statements - before.statements - own) / opts.rows,
      commitsPerRow: (after.commits - before.commits - own) / opts.rows,
      writeSyscallsPerRow,
      machineCpuMsPerRow: ((machineAfter.busy - machineBefore.busy) * 1000) / opts.rows,
      emulatorCpuMsPerRow: (bench.user + bench.system) / 1000 / opts.rows,
      machineBusy: (machineAfter.busy - machineBefore.busy) / Math.max(1e-9, machineAfter.total - machineBefore.total),
      duplicates: collectDuplicates(ctx, side, [tenant]),
    };
  } finally {
    await client?.end().catch(() => {});
    await Promise.all(procs.map((p) => p.stop()));
    ctx.emu.clearReceived();
    await bdb.drop();
  }
}
