// Commit-to-call latency: COMMIT of one change -> the emulator receiving its Google call, on
// one clock (the emulator runs in this process). Idle system: one change at a time, spaced out.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { cloneDatabase } from './pg';
import type { Child } from './procs';
import { collectDuplicates, createTenant, insertOne, startPeer, startRelays, type Ctx, type Side } from './sides';
import { percentile, sleep } from './util';

export type LatencyResult = { p50: number; p99: number; max: number; samples: number };

export async function latencyRound(ctx: Ctx, side: Side, samples: number, gapMs: number): Promise<LatencyResult> {
  const bdb = await cloneDatabase(ctx.cluster, ctx.templates[side], `${side}_latency`);
  const tenant = await createTenant(ctx, bdb);
  let procs: Child[] = [];
  const client = new pg.Client({ connectionString: bdb.url, application_name: 'cassius-bench' });
  try {
    procs = side === 'ours' ? await startRelays(ctx, bdb, 1) : await startPeer(ctx, bdb, 'unbatched');
    await client.connect();
    const measured: number[] = [];
    const warmup = Math.min(20, Math.ceil(samples / 10));
    for (let i = 0; i < warmup + samples; i++) {
      const id = randomUUID();
      const committed = await insertOne(client, tenant.organisationId, id);
      const received = await ctx.emu.waitForAppointment(id, 30_000);
      if (i >= warmup) measured.push(received - committed);
      // Spaced out: the previous change is recorded and the relay idle before the next one.
      await sleep(gapMs * (1 + Math.random()));
    }
    return { p50: percentile(measured, 50), p99: percentile(measured, 99), max: Math.max(...measured), samples: measured.length };
  } finally {
    await client.end().catch(() => {});
    await Promise.all(procs.map((p) => p.stop()));
    collectDuplicates(ctx, side, [tenant]);
    ctx.emu.clearReceived();
    await bdb.drop();
  }
}
