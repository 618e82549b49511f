// `npm run bench` (bench/run.ts) and the smoke test call runBench(): one run measures every
// figure of issue 8 side by side with its peer, and returns bench/results.json's content
// (CONTRACT section 9: key -> {value, unit, peer?, ratio?, conditions}).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { apiRun } from './lib/api';
import { liveUnderBacklogRound } from './lib/backlog';
import { drainRound, startDrainer, type DrainResult } from './lib/drain';
import { startBenchEmulator } from './lib/emulator';
import { compareInsertRates, insertTargets } from './lib/inserts';
import { startLatencyTarget, type LatencyResult } from './lib/latency';
import { createTemplate, dropAllDatabases, dropTemplate, startCluster, type Template } from './lib/pg';
import { relayCommand, ROOT } from './lib/procs';
import { formatProfile, summarizeProfile } from './lib/profile';
import { PEER_TUNING, type Ctx, type PeerMode, type Side } from './lib/sides';
import { PEAK_WINDOW_MS, sustainedRun, type XminResult } from './lib/sustained';
import { log, median, nowMs, round, setQuiet } from './lib/util';
import { preparePeerDatabase } from './peer/schema';

export type Figure = { value: number | null; unit: string; peer?: number | null; ratio?: number | null; conditions: string };
export type Results = Record<string, Figure>;

/** The figures of issue 8, in table order. */
export const ISSUE_KEYS = [
  'relay_throughput',
  'commit_to_call_p50_ms',
  'commit_to_call_p99_ms',
  'live_under_backlog_p99_ms',
  'relay_scaling_4_over_1',
  'duplicates',
  'trigger_insert_overhead',
  'relay_rss_mb',
  'outbox_bloat_ratio',
  'held_xmin_throughput_ratio',
  'api_create_p99_ms',
] as const;

/** Issue 8's targets, for the printed table only: no test or CI step asserts a figure. */
export const TARGETS: Record<string, { text: string; met(f: Figure): boolean | null }> = {
  relay_throughput: { text: 'ratio >= 1.5', met: (f) => (f.ratio == null ? null : f.ratio >= 1.5) },
  commit_to_call_p50_ms: { text: '<= 3, ratio <= 1.0', met: (f) => (f.value == null ? null : f.value <= 3 && (f.ratio ?? 0) <= 1) },
  commit_to_call_p99_ms: { text: '<= 10, ratio <= 1.0', met: (f) => (f.value == null ? null : f.value <= 10 && (f.ratio ?? 0) <= 1) },
  live_under_backlog_p99_ms: { text: '<= 2,000', met: (f) => (f.value == null ? null : f.value <= 2000) },
  relay_scaling_4_over_1: { text: '>= 3.0', met: (f) => (f.value == null ? null : f.value >= 3) },
  duplicates: { text: '0', met: (f) => (f.value == null ? null : f.value === 0) },
  trigger_insert_overhead: { text: '<= 1.3', met: (f) => (f.value == null ? null : f.value <= 1.3) },
  relay_rss_mb: { text: '<= 150', met: (f) => (f.value == null ? null : f.value <= 150) },
  outbox_bloat_ratio: { text: '<= 1.5', met: (f) => (f.value == null ? null : f.value <= 1.5) },
  held_xmin_throughput_ratio: { text: '>= 0.5, p99 back < 60 s', met: (f) => (f.value == null ? null : f.value >= 0.5 && !/not back/.test(f.conditions)) },
  api_create_p99_ms: { text: 'report', met: () => null },
};

export type Mode = 'full' | 'quick' | 'tiny';

type Sizes = {
  rounds: number;
  concurrency: number;
  warmupRows: number;
  throughputRows: number;
  /** The unbatched peer's one extra drain (its rate is what matters, and it is the slowest). */
  unbatchedRows: number;
  latencySamples: number;
  latencyGapMs: number;
  backlogRows: number;
  liveGapMs: number;
  scalingRows: number;
  scalingLatencyMs: number;
  scalingConcurrency: number;
  insertSeconds: number;
  sustainedRate: number;
  bloatSmall: number;
  bloatLarge: number;
  cleanSeconds: number;
  holdSeconds: number;
  recoverySeconds: number;
  apiSeconds: number;
  apiClients: number;
};

const SIZES: Record<Mode, Sizes> = {
  full: {
    rounds: 3,
    concurrency: 16,
    warmupRows: 500,
    throughputRows: 20_000,
    unbatchedRows: 3_000,
    latencySamples: 500,
    latencyGapMs: 5,
    backlogRows: 10_000,
    liveGapMs: 50,
    scalingRows: 800,
    scalingLatencyMs: 20,
    scalingConcurrency: 2,
    insertSeconds: 2,
    sustainedRate: 1_000,
    bloatSmall: 10_000,
    bloatLarge: 100_000,
    cleanSeconds: 8,
    holdSeconds: 60,
    recoverySeconds: 60,
    apiSeconds: 10,
    apiClients: 16,
  },
  quick: {
    rounds: 1,
    concurrency: 16,
    warmupRows: 300,
    throughputRows: 1_000,
    unbatchedRows: 500,
    latencySamples: 100,
    latencyGapMs: 10,
    backlogRows: 600,
    liveGapMs: 50,
    scalingRows: 200,
    scalingLatencyMs: 20,
    scalingConcurrency: 2,
    insertSeconds: 1,
    sustainedRate: 500,
    bloatSmall: 300,
    bloatLarge: 3_000,
    cleanSeconds: 4,
    holdSeconds: 6,
    recoverySeconds: 8,
    apiSeconds: 3,
    apiClients: 16,
  },
  tiny: {
    rounds: 1,
    concurrency: 8,
    warmupRows: 20,
    throughputRows: 50,
    unbatchedRows: 50,
    latencySamples: 5,
    latencyGapMs: 5,
    backlogRows: 50,
    liveGapMs: 30,
    scalingRows: 40,
    scalingLatencyMs: 20,
    scalingConcurrency: 2,
    insertSeconds: 0.2,
    sustainedRate: 100,
    bloatSmall: 20,
    bloatLarge: 100,
    cleanSeconds: 1,
    holdSeconds: 1,
    recoverySeconds: 2,
    apiSeconds: 0.5,
    apiClients: 4,
  },
};

export type BenchOptions = {
  mode: Mode;
  /** Where results.json goes (default bench/results.json); null: not written. */
  resultsFile?: string | null;
  /** Profile one extra (unmeasured) relay drain with --cpu-prof and summarize it. */
  profile?: boolean;
  /** No progress lines on stderr. */
  quiet?: boolean;
};

const ms = (v: number) => round(v, 3);

export async function runBench(options: BenchOptions): Promise<Results> {
  const rounds = Number(process.env.BENCH_ROUNDS);
  const sizes = { ...SIZES[options.mode], ...(Number.isInteger(rounds) && rounds > 0 ? { rounds } : {}) };
  setQuiet(options.quiet ?? false);
  const started = nowMs();
  const load = os.loadavg().map((l) => l.toFixed(1)).join(' / ');
  log(`mode ${options.mode}, ${sizes.rounds} round(s); machine: ${os.cpus().length} CPU, load average ${load}`);
  const cluster = await startCluster();
  const emu = await startBenchEmulator();
  const templates: Template[] = [];
  const results: Results = {};
  try {
    const ours = await createTemplate(cluster, 'ours');
    templates.push(ours);
    const peer = await createTemplate(cluster, 'peer', preparePeerDatabase);
    templates.push(peer);
    const profileDir = options.profile ? fs.mkdtempSync(path.join(os.tmpdir(), 'cassius-bench-prof-')) : null;
    const ctx: Ctx = {
      cluster,
      emu,
      templates: { ours, peer },
      concurrency: sizes.concurrency,
      warmupRows: sizes.warmupRows,
      duplicates: { ours: { events: 0, surplus: 0, calendars: 0 }, peer: { events: 0, surplus: 0, calendars: 0 } },
      profileDir,
    };
    const common = `${cluster.description}; emulator in the bench process (zero added latency, quotas raised so they never bind); `;
    const ourTuning = `ours: 1 relay process, RELAY_CONCURRENCY ${sizes.concurrency}, RELAY_BATCH_SIZE 64, RELAY_POLL_MS 1000, local quota raised so it never binds`;
    const peerTuning = PEER_TUNING(sizes.concurrency);
    const roundsText = `median of ${sizes.rounds} alternating round(s)`;

    // 1. Throughput: N queued changes drained by one process; peak RSS; round trips per row.
    log(`relay_throughput: ${sizes.throughputRows} queued changes, ours vs graphile-worker (tuned; unbatched once)`);
    const drains: Record<'ours' | PeerMode, DrainResult[]> = { ours: [], unbatched: [], tuned: [] };
    // Ours and the peer alternate (the order flips every round). The peer is graphile-worker
    // tuned as its documentation recommends; its defaults (unbatched), an extra figure, run
    // in the first round only.
    // Set up (and warmed up) side by side: nothing is measured yet.
    const [ourDrainer, peerDrainer] = await Promise.all([startDrainer(ctx, 'ours'), startDrainer(ctx, 'peer', { mode: 'tuned' })]);
    const drainers = { ours: ourDrainer, tuned: peerDrainer };
    try {
      for (let r = 0; r < sizes.rounds; r++) {
        const order: ('ours' | PeerMode)[] = r % 2 === 0 ? ['ours', 'tuned'] : ['tuned', 'ours'];
        if (r === 0) order.push('unbatched');
        for (const which of order) {
          const result =
            which === 'unbatched'
              ? await drainRound(ctx, 'peer', { rows: sizes.unbatchedRows, mode: 'unbatched' })
              : await drainers[which].drain({ rows: sizes.throughputRows });
          drains[which].push(result);
          log(
            `  round ${r + 1} ${which}: ${result.rowsPerSecond.toFixed(0)} rows/s, ${result.statementsPerRow?.toFixed(2) ?? '-'} statements/row, ` +
              `${result.commitsPerRow.toFixed(2)} commits/row, peak RSS ${result.peakRssMb?.toFixed(0)} MB, CPU ${result.cpuSeconds?.toFixed(1)} s, ` +
              `machine ${result.machineCpuMsPerRow.toFixed(2)} ms/row at ${Math.round(100 * result.machineBusy)} % busy`,
          );
        }
      }
    } finally {
      await drainers.ours.close();
      await drainers.tuned.close();
    }
    const med = (list: DrainResult[], pick: (d: DrainResult) => number | null) => {
      const values = list.map(pick).filter((v): v is number => v !== null && Number.isFinite(v));
      return values.length ? median(values) : null;
    };
    const ourRate = med(drains.ours, (d) => d.rowsPerSecond)!;
    const peerRate = med(drains.tuned, (d) => d.rowsPerSecond)!;
    const unbatchedRate = med(drains.unbatched, (d) => d.rowsPerSecond)!;
    const trips = (list: DrainResult[]) => med(list, (d) => d.statementsPerRow);
    const commits = (list: DrainResult[]) => med(list, (d) => d.commitsPerRow);
    const cpuPerRow = (list: DrainResult[], rows: number) => {
      const v = med(list, (d) => d.cpuSeconds);
      return v === null ? '-' : `${((v / rows) * 1000).toFixed(2)} ms`;
    };
    const msPerRow = (list: DrainResult[], pick: (d: DrainResult) => number) => `${median(list.map(pick)).toFixed(2)} ms`;
    const cpuText = (label: string, list: DrainResult[]) =>
      `${label} ${cpuPerRow(list, sizes.throughputRows)} in the worker process, ${msPerRow(list, (d) => d.emulatorCpuMsPerRow)} in the emulator, ` +
      `${msPerRow(list, (d) => d.machineCpuMsPerRow)} on the whole machine (${Math.round(100 * median(list.map((d) => d.machineBusy)))} % of both cores busy)`;
    const drainConditions =
      `${sizes.throughputRows} changes queued by one INSERT, then drained by one process; clock from COMMIT to the queue being empty; ` +
      `each side's process started once on a database of its own and warmed up with ${sizes.warmupRows} unmeasured changes, then one drain per round; ` +
      common +
      `${ourTuning}; peer: ${peerTuning}; ` +
      `round trips per row (pg_stat_statements calls, BEGIN/COMMIT included): ours ${fmtN(trips(drains.ours))}, peer ${fmtN(trips(drains.tuned))}, unbatched peer ${fmtN(trips(drains.unbatched))}; ` +
      `transactions per row: ours ${fmtN(commits(drains.ours))}, peer ${fmtN(commits(drains.tuned))}, unbatched peer ${fmtN(commits(drains.unbatched))}; ` +
      `CPU per change: ${cpuText('ours', drains.ours)}; ${cpuText('peer', drains.tuned)}; ` +
      `write syscalls per change: ours ${fmtN(med(drains.ours, (d) => d.writeSyscallsPerRow))}, peer ${fmtN(med(drains.tuned, (d) => d.writeSyscallsPerRow))}; ${roundsText}`;
    results.relay_throughput = {
      value: round(ourRate),
      unit: 'changes/s',
      peer: round(peerRate),
      ratio: round(ourRate / peerRate),
      conditions: drainConditions,
    };
    results.relay_throughput_vs_unbatched_peer = {
      value: round(ourRate),
      unit: 'changes/s',
      peer: round(unbatchedRate),
      ratio: round(ourRate / unbatchedRate),
      conditions:
        `as relay_throughput, but the peer with graphile-worker's defaults (no localQueue, no batched completion: one claim and one ` +
        `completion per job, as in the issue's reference figure), draining ${sizes.unbatchedRows} queued changes; round 1 only`,
    };
    results.relay_round_trips_per_row = {
      value: trips(drains.ours) === null ? null : round(trips(drains.ours)!),
      unit: 'statements/change',
      peer: trips(drains.tuned) === null ? null : round(trips(drains.tuned)!),
      ratio: trips(drains.ours) && trips(drains.tuned) ? round(trips(drains.ours)! / trips(drains.tuned)!) : null,
      conditions:
        `statements executed per change during relay_throughput (pg_stat_statements calls, top level, utility statements included; ` +
        `the bench's own queries subtracted); each is one client-server round trip. Unbatched peer: ${fmtN(trips(drains.unbatched))}. ` +
        (cluster.statements ? '' : 'pg_stat_statements is not loaded on this server: not counted. ') +
        roundsText,
    };
    // The same process served every round: its high-water mark after the last one is the peak.
    const peakOf = (list: DrainResult[]) => list.map((d) => d.peakRssMb).reduce<number | null>((a, b) => (b === null ? a : Math.max(a ?? 0, b)), null);
    const ourRss = peakOf(drains.ours);
    const peerRss = peakOf(drains.tuned);
    results.relay_rss_mb = {
      value: ourRss === null ? null : round(ourRss),
      unit: 'MB',
      peer: peerRss === null ? null : round(peerRss),
      ratio: ourRss && peerRss ? round(ourRss / peerRss) : null,
      conditions:
        `peak resident set (VmHWM of /proc/<pid>/status) of the relay process over its start-up, warm-up and the ${sizes.rounds} relay_throughput drains ` +
        `(${sizes.throughputRows} changes each), the relay as \`npm run relay\` runs it: bundled by esbuild (prerelay), then \`${relayCommand().text}\`; ` +
        `peer: the graphile-worker process (tuned), bundled the same way, plain node (default heap), over the same`,
    };

    // 2. Commit-to-call latency, idle system.
    log(`commit_to_call: ${sizes.latencySamples} spaced-out single changes per round`);
    const lat: Record<Side, LatencyResult[]> = { ours: [], peer: [] };
    const [ourTarget, peerTarget] = await Promise.all([startLatencyTarget(ctx, 'ours'), startLatencyTarget(ctx, 'peer')]);
    const latencyTargets = { ours: ourTarget, peer: peerTarget };
    try {
      for (let r = 0; r < sizes.rounds; r++) {
        for (const side of (r % 2 === 0 ? ['ours', 'peer'] : ['peer', 'ours']) as Side[]) {
          const result = await latencyTargets[side].round(sizes.latencySamples, sizes.latencyGapMs);
          lat[side].push(result);
          log(`  round ${r + 1} ${side}: p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms, max ${result.max.toFixed(1)} ms`);
        }
      }
    } finally {
      await latencyTargets.ours.close();
      await latencyTargets.peer.close();
    }
    const latConditions =
      `${sizes.latencySamples} single-row INSERT transactions per round, one at a time, ${sizes.latencyGapMs}-${2 * sizes.latencyGapMs} ms apart after each call arrived ` +
      `(each side's process started once and warmed up with ${sizes.warmupRows} changes, then a few unmeasured single changes per round); ` +
      `from the COMMIT acknowledgement in the bench process to the emulator (same process, same clock) receiving the Google call; ` +
      common +
      `${ourTuning}; peer: ${peerTuning}; ${roundsText}`;
    for (const [key, pick] of [
      ['commit_to_call_p50_ms', (l: LatencyResult) => l.p50],
      ['commit_to_call_p99_ms', (l: LatencyResult) => l.p99],
    ] as const) {
      const ourValue = median(lat.ours.map(pick));
      const peerValue = median(lat.peer.map(pick));
      results[key] = { value: ms(ourValue), unit: 'ms', peer: ms(peerValue), ratio: round(ourValue / peerValue), conditions: latConditions };
    }

    // 3. Live changes under another tenant's backlog.
    log(`live_under_backlog: tenant A's Sync now of ${sizes.backlogRows} appointments, tenant B's live changes every ~${sizes.liveGapMs} ms`);
    const backlog = [];
    for (let r = 0; r < sizes.rounds; r++) {
      const result = await liveUnderBacklogRound(ctx, sizes.backlogRows, sizes.liveGapMs);
      backlog.push(result);
      log(
        `  round ${r + 1}: p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms over ${result.samples} live changes; ` +
          `backlog drained in ${result.drainSeconds.toFixed(1)} s (${result.backlogPerSecond.toFixed(0)}/s)`,
      );
    }
    results.live_under_backlog_p99_ms = {
      value: ms(median(backlog.map((b) => b.p99))),
      unit: 'ms',
      conditions:
        `tenant A: ${sizes.backlogRows} appointments, "Sync now" (a sync_backlog row) expanded and drained by 1 relay; tenant B: a single-row INSERT every ` +
        `${sizes.liveGapMs / 2}-${(sizes.liveGapMs * 3) / 2} ms while it drains (${median(backlog.map((b) => b.samples)).toFixed(0)} samples per round), ` +
        `COMMIT -> emulator receiving B's call; p50 ${ms(median(backlog.map((b) => b.p50)))} ms; backlog drain ${round(median(backlog.map((b) => b.backlogPerSecond)))} changes/s; ` +
        common +
        `${ourTuning}; no peer (graphile-worker has no per-tenant fairness: a FIFO queue serves B after A's backlog); ${roundsText}`,
    };

    // 4. Scaling: 4 relays / 1 relay with a 20 ms Google.
    log(`relay_scaling: ${sizes.scalingRows} changes, emulator latency ${sizes.scalingLatencyMs} ms, 1 relay vs 4 relays`);
    const scaling: Record<'one' | 'four', DrainResult[]> = { one: [], four: [] };
    // The 1-relay and 4-relay sets each have a database of their own; the idle set only polls.
    const [oneRelay, fourRelays] = await Promise.all([
      startDrainer(ctx, 'ours', { processes: 1, concurrency: sizes.scalingConcurrency }),
      startDrainer(ctx, 'ours', { processes: 4, concurrency: sizes.scalingConcurrency }),
    ]);
    const sets = { one: oneRelay, four: fourRelays };
    try {
      for (let r = 0; r < sizes.rounds; r++) {
        for (const which of (r % 2 === 0 ? ['one', 'four'] : ['four', 'one']) as ('one' | 'four')[]) {
          const result = await sets[which].drain({ rows: sizes.scalingRows, googleLatencyMs: sizes.scalingLatencyMs, counters: false });
          scaling[which].push(result);
          log(`  round ${r + 1} ${which === 'one' ? '1 relay' : '4 relays'}: ${result.rowsPerSecond.toFixed(0)} rows/s`);
        }
      }
    } finally {
      await sets.one.close();
      await sets.four.close();
    }
    const one = median(scaling.one.map((d) => d.rowsPerSecond));
    const four = median(scaling.four.map((d) => d.rowsPerSecond));
    results.relay_scaling_4_over_1 = {
      value: round(four / one),
      unit: 'ratio',
      conditions:
        `${sizes.scalingRows} queued changes drained by 1 relay (${round(one)} changes/s, ${Math.round(100 * median(scaling.one.map((d) => d.machineBusy)))} % of both cores busy) ` +
        `and by 4 relay processes (${round(four)} changes/s, ${Math.round(100 * median(scaling.four.map((d) => d.machineBusy)))} % busy), ` +
        `each RELAY_CONCURRENCY ${sizes.scalingConcurrency} (so one relay is bound by Google's ${sizes.scalingLatencyMs} ms at <= ${Math.round((sizes.scalingConcurrency * 1000) / sizes.scalingLatencyMs)} calls/s, ` +
        `well below what this machine's database commits; at the default concurrency 16 one relay is already database-bound here and more relays cannot add throughput); ` +
        `every Calendar call delayed ${sizes.scalingLatencyMs} ms by an emulator fault (after ${sizes.warmupRows} unmeasured warm-up changes per relay without it); ` +
        `${cluster.description}; all on the same 2 cores; ${roundsText}`,
    };

    // 5. Capture trigger cost on plain INSERTs.
    log(`trigger_insert_overhead: single-row INSERTs for ${sizes.insertSeconds} s with and ${sizes.insertSeconds} s without the capture triggers, alternating every 250 ms`);
    const targets = await insertTargets(ctx);
    const inserts: Record<string, number[]> = { with1: [], without1: [], with8: [], without8: [] };
    try {
      for (let r = 0; r < sizes.rounds; r++) {
        for (const clients of [1, 8]) {
          const rates = await compareInsertRates(targets, sizes.insertSeconds, clients);
          inserts[`with${clients}`]!.push(rates.with);
          inserts[`without${clients}`]!.push(rates.without);
        }
        log(
          `  round ${r + 1}: 1 client ${inserts.without1!.at(-1)!.toFixed(0)} / ${inserts.with1!.at(-1)!.toFixed(0)} per s; ` +
            `8 clients ${inserts.without8!.at(-1)!.toFixed(0)} / ${inserts.with8!.at(-1)!.toFixed(0)} per s (without / with)`,
        );
      }
    } finally {
      await targets.withTriggers.bdb.drop();
      await targets.withoutTriggers.bdb.drop();
    }
    const w1 = median(inserts.with1!);
    const wo1 = median(inserts.without1!);
    const w8 = median(inserts.with8!);
    const wo8 = median(inserts.without8!);
    // The median of each round's ratio (a round's two rates were taken side by side).
    const ratioOf = (clients: 1 | 8) => median(inserts[`without${clients}`]!.map((wo, i) => wo / inserts[`with${clients}`]![i]!));
    results.trigger_insert_overhead = {
      value: round(ratioOf(1)),
      unit: 'ratio (rate without / rate with)',
      conditions:
        `one session inserting one appointment per transaction (autocommit, prepared) for ${sizes.insertSeconds} s into each of two scratch databases, ` +
        `one without the capture triggers (disabled), the two alternating every 250 ms so both see the same disk: ${round(wo1)}/s without, ` +
        `${round(w1)}/s with them (statement-level: one outbox INSERT ... SELECT and one NOTIFY per statement); ratio: median of the rounds' ratios; ` +
        `commit-bound (fsync on); ${cluster.description}; ${roundsText}`,
    };
    results.trigger_insert_overhead_8_sessions = {
      value: round(ratioOf(8)),
      unit: 'ratio (rate without / rate with)',
      conditions:
        `as trigger_insert_overhead with 8 concurrent sessions (NOTIFY's commit-time lock is shared by all of them): ${round(wo8)}/s without, ${round(w8)}/s with; ${roundsText}`,
    };

    // 6a. Outbox bloat: the relay runs flat out (closed loop: new changes keep a small standing
    // queue) until 100,000 are relayed; outbox size after 10,000 and after 100,000.
    const standingQueue = 256;
    log(`outbox_bloat: relay flat out until ${sizes.bloatLarge} changes are relayed`);
    ctx.emu.clearReceived();
    const bloatRun = await sustainedRun(ctx, 'ours', {
      rate: 0,
      bloat: { small: sizes.bloatSmall, large: sizes.bloatLarge, standingQueue },
      xmin: false,
      cleanSeconds: 0,
      holdSeconds: 0,
      recoverySeconds: 0,
    });
    ctx.emu.clearReceived();
    const bloat = bloatRun.bloat!;
    results.outbox_bloat_ratio = {
      value: round(bloat.ratio),
      unit: 'ratio',
      conditions:
        `pg_total_relation_size('sync_outbox') (heap + indexes + TOAST), its largest over the ${PEAK_WINDOW_MS / 1000} s after ${bloat.largeAt} changes had been relayed (${kb(bloat.largeBytes)}) / ` +
        `its largest over the ${PEAK_WINDOW_MS / 1000} s after ${bloat.smallAt} had (${kb(bloat.smallBytes)}) (the size is a sawtooth between vacuums); the relay ran flat out (${round(bloat.perSecond)} changes/s sustained) while new changes kept ` +
        `about ${standingQueue} unrelayed (one multi-row INSERT transaction per 10 ms tick), 1 relay ` +
        `(heap ${kb(bloat.heap[0])} -> ${kb(bloat.heap[1])}, indexes ${kb(bloat.indexes[0])} -> ${kb(bloat.indexes[1])}) ` +
        `(${ourTuning}); autovacuum ran ${bloat.autovacuums} times on the outbox (its per-table settings: scale factor 0, threshold 500); ${common}1 run`,
    };

    // 6b. Held xmin horizon, ours then the peer, each on a fresh database: an open-loop stream,
    // a snapshot held in the middle. (Side by side they saved a minute, but each one's vacuum
    // after the release showed up in the other's recovery.) One offered rate for both, which
    // both keep up with when nothing is held: 40 % of the slower side's relay_throughput (the
    // writes now share the machine), at most the anchor's 1,000/s.
    const slower = Math.min(ourRate, peerRate);
    const rate = Math.max(50, Math.min(sizes.sustainedRate, Math.floor((0.4 * slower) / 50) * 50));
    const rateText =
      rate === sizes.sustainedRate
        ? `${rate}/s`
        : `${rate}/s (40 % of the slower side's relay_throughput, ${round(slower)}/s, below the ${sizes.sustainedRate}/s of the graphile-worker anchor)`;
    const xminRun = async (side: Side) => {
      log(`held_xmin (${side}): ${rate} changes/s, ${sizes.cleanSeconds} s clean, then a snapshot held ${sizes.holdSeconds} s`);
      ctx.emu.clearReceived();
      const run = await sustainedRun(ctx, side, {
        rate,
        bloat: null,
        xmin: true,
        cleanSeconds: sizes.cleanSeconds,
        holdSeconds: sizes.holdSeconds,
        recoverySeconds: sizes.recoverySeconds,
      });
      ctx.emu.clearReceived();
      logSustained(side, run.xmin!);
      return run.xmin!;
    };
    const ourXmin = await xminRun('ours');
    const peerXmin = await xminRun('peer');
    const heldRatio = ourXmin.held.throughput / ourXmin.clean.throughput;
    const peerHeldRatio = peerXmin.held.throughput / peerXmin.clean.throughput;
    results.held_xmin_throughput_ratio = {
      value: round(heldRatio),
      unit: 'ratio',
      peer: round(peerHeldRatio),
      ratio: round(heldRatio / peerHeldRatio),
      conditions:
        `${rateText} offered (one INSERT transaction per 10 ms tick, same rate for the peer, each on a fresh database, one after the other); delivered rate while another session ` +
        `of the same database holds a REPEATABLE READ transaction with its snapshot taken for ${sizes.holdSeconds} s / delivered rate in the ${sizes.cleanSeconds} s before; ` +
        sustainedText('ours', ourXmin, sizes.recoverySeconds) +
        `; peer (${peerTuning}): ${sustainedText('peer', peerXmin, sizes.recoverySeconds)}` +
        `; "normal" p99 = max(1.5 x clean p99, clean p99 + 10 ms), checked on 2 s buckets by commit time; ${common}1 run`,
    };

    // 7. The API.
    log(`api_create: POST /api/appointments, ${sizes.apiClients} concurrent clients, ${sizes.apiSeconds} s per round`);
    try {
      const api = await apiRun(ctx, sizes.rounds, sizes.apiSeconds, sizes.apiClients);
      for (const [i, a] of api.entries()) {
        log(`  round ${i + 1}: p50 ${a.p50.toFixed(1)} ms, p99 ${a.p99.toFixed(1)} ms, ${a.perSecond.toFixed(0)} requests/s, ${a.errors} errors`);
      }
      results.api_create_p99_ms = {
        value: ms(median(api.map((a) => a.p99))),
        unit: 'ms',
        conditions:
          `POST /api/appointments (Bearer session JWT, JSON body, 201 with the created appointment), ${sizes.apiClients} concurrent keep-alive clients ` +
          `for ${sizes.apiSeconds} s per round; p50 ${ms(median(api.map((a) => a.p50)))} ms, ${round(median(api.map((a) => a.perSecond)))} requests/s, ` +
          `${api.reduce((n, a) => n + a.errors, 0)} non-201 answers; API server (src/server.ts startServer) in its own process, LOG_LEVEL warn, no relay running; ` +
          `clients in the bench process; ${cluster.description}; ${roundsText} (after 50 warm-up requests)`,
      };
    } catch (error) {
      log(`  api_create failed: ${(error as Error).message}`);
      results.api_create_p99_ms = { value: null, unit: 'ms', conditions: `not measured: the API server could not be benchmarked (${(error as Error).message.split('\n')[0]})` };
    }

    // 8. Duplicates across every run above.
    results.duplicates = {
      value: ctx.duplicates.ours.surplus,
      unit: 'events',
      peer: ctx.duplicates.peer.surplus,
      conditions:
        `surplus Google events per cassiusAppointmentId (extendedProperties.private), over every calendar of this run: ` +
        `ours ${ctx.duplicates.ours.events} events in ${ctx.duplicates.ours.calendars} calendars, peer ${ctx.duplicates.peer.events} events in ` +
        `${ctx.duplicates.peer.calendars} calendars; no faults other than added latency, no process killed`,
    };

    if (options.profile && profileDir) {
      log('profile: one more (unmeasured) relay drain under node --cpu-prof');
      await drainRound(ctx, 'ours', { rows: sizes.throughputRows, profile: true });
      // One profile per thread (tsx's loader runs in a worker): the main thread's is the largest.
      const file = fs
        .readdirSync(profileDir)
        .filter((f) => f.endsWith('.cpuprofile'))
        .sort((a, b) => fs.statSync(path.join(profileDir, b)).size - fs.statSync(path.join(profileDir, a)).size)[0];
      if (file) {
        const text = formatProfile(`relay during a ${sizes.throughputRows}-change drain`, summarizeProfile(path.join(profileDir, file), 25));
        fs.writeFileSync(path.join(ROOT, 'bench/profile-relay.txt'), `${text}\n`);
        process.stdout.write(`${text}\n`);
      }
      fs.rmSync(profileDir, { recursive: true, force: true });
    }

    const seconds = (nowMs() - started) / 1000;
    results.bench_run_seconds = {
      value: Math.round(seconds),
      unit: 's',
      conditions: `BENCH mode ${options.mode} on ${new Date().toISOString().slice(0, 10)}, code ${codeVersion()}, ${os.cpus().length} CPU (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}; load average at start ${load} (other work on the machine shares its cores)`,
    };
    const ordered: Results = {};
    for (const key of [...ISSUE_KEYS, ...Object.keys(results).filter((k) => !(ISSUE_KEYS as readonly string[]).includes(k))]) {
      if (results[key]) ordered[key] = results[key];
    }
    const file = options.resultsFile === undefined ? path.join(ROOT, 'bench/results.json') : options.resultsFile;
    if (file) fs.writeFileSync(file, `${JSON.stringify(ordered, null, 2)}\n`);
    return ordered;
  } finally {
    await dropAllDatabases();
    for (const t of templates) await dropTemplate(cluster, t);
    await emu.close();
    await cluster.stop();
  }
}

/** The commit measured, and whether relay/ or src/ had uncommitted changes (processes compile the working tree). */
function codeVersion(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'relay', 'src', 'db'], { cwd: ROOT, encoding: 'utf8' }).trim();
    return dirty ? `${head} + uncommitted changes in relay/src/db` : head;
  } catch {
    return 'unknown';
  }
}

function fmtN(v: number | null): string {
  return v === null ? 'n/a' : v.toFixed(2);
}

function kb(bytes: number): string {
  return `${Math.round(bytes / 1024)} kB`;
}

function logSustained(side: Side, s: XminResult): void {
  log(
    `  ${side}: clean ${s.clean.throughput.toFixed(0)}/s p50 ${s.clean.p50.toFixed(1)} p99 ${s.clean.p99.toFixed(1)} ms; ` +
      `held ${s.held.throughput.toFixed(0)}/s p50 ${s.held.p50.toFixed(1)} p99 ${s.held.p99.toFixed(1)} ms; ` +
      `p99 back under ${s.thresholdMs.toFixed(0)} ms ${s.recoverySeconds === null ? 'NOT within the window' : `${s.recoverySeconds} s after release`}`,
  );
}

function sustainedText(side: Side, s: XminResult, window: number): string {
  return (
    `${side}: clean ${round(s.clean.throughput)}/s (p50 ${ms(s.clean.p50)} ms, p99 ${ms(s.clean.p99)} ms), held ${round(s.held.throughput)}/s ` +
    `(p50 ${ms(s.held.p50)} ms, p99 ${ms(s.held.p99)} ms), ${s.deadTuplesAtRelease} dead tuples in the queue table at release, p99 ` +
    (s.recoverySeconds === null ? `not back under ${ms(s.thresholdMs)} ms within ${window} s of release` : `back under ${ms(s.thresholdMs)} ms ${s.recoverySeconds} s after release`) +
    ` (p99 of the 2 s buckets after release: ${s.bucketP99.map((v) => Math.round(v)).join(', ')} ms)`
  );
}

/** The results as a Markdown table (README / docs/performance.md and the console). */
export function resultsTable(results: Results): string {
  const lines = ['| key | ours | unit | peer | ratio | target | met |', '|---|---|---|---|---|---|---|'];
  for (const [key, f] of Object.entries(results)) {
    if (key === 'bench_run_seconds') continue;
    const target = TARGETS[key];
    const met = target ? target.met(f) : null;
    lines.push(
      `| \`${key}\` | ${fmt(f.value)} | ${f.unit} | ${f.peer === undefined ? '' : fmt(f.peer)} | ${f.ratio === undefined ? '' : fmt(f.ratio)} | ` +
        `${target?.text ?? ''} | ${met === null ? '' : met ? 'yes' : '**no**'} |`,
    );
  }
  return lines.join('\n');
}

function fmt(v: number | null | undefined): string {
  if (v === null || v === undefined) return '-';
  return v.toLocaleString('en-US', { maximumFractionDigits: 3 });
}
