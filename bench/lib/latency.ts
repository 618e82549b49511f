// Commit-to-call latency: COMMIT of one change -> the emulator receiving its Google call, on
// one clock (the emulator runs in this process). Idle system: one change at a time, spaced out.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { cloneDatabase } from './pg';
import type { Child } from './procs';
import { collectDuplicates, createTenant, insertOne, startPeer, startRelays, warmUp, type Ctx, type Side } from './sides';
import { percentile, sleep } from './util';

export type LatencyResult = { p50: number; p99: number; max: number; samples: number };

/**
 * One side's process on a database of its own, warmed up, measuring rounds of single changes
 * one after another (the rounds of a figure reuse it, as the throughput drains do).
 */
export type LatencyTarget = { round(samples: number, gapMs: number): Promise<LatencyResult>; close(): Promise<void> };

export async function startLatencyTarget(ctx: Ctx, side: Side): Promise<LatencyTarget> {
  const bdb = await cloneDatabase(ctx.cluster, ctx.templates[side], `${side}_latency`);
  let procs: Child[] = [];
  const client = new pg.Client({ connectionString: bdb.url, application_name: 'cassius-bench' });
  const close = async () => {
    await client.end().catch(() => {});
    await Promise.all(procs.map((p) => p.stop()));
    ctx.emu.clearReceived();
    await bdb.drop();
  };
  try {
    const tenant = await createTenant(ctx, bdb);
    procs = side === 'ours' ? await startRelays(ctx, bdb, 1) : await startPeer(ctx, bdb);
    await client.connect();
    // Warm-up, as for the drains: the process's hot paths compiled first.
    await warmUp(ctx, client, side, tenant, ctx.warmupRows);
    collectDuplicates(ctx, side, [tenant]);
    return {
      async round(samples, gapMs) {
        const measured: number[] = [];
        ctx.emu.clearReceived();
        const unmeasured = Math.min(20, Math.ceil(samples / 10));
        try {
          for (let i = 0; i < unmeasured + samples; i++) {
            const id = randomUUID();
            const committed = await insertOne(client, tenant.organisationId, id);
            const received = await ctx.emu.waitForAppointment(id, 30_000);
            if (i >= unmeasured) measured.push(received - committed);
            // Spaced out: one change at a time, the next one some time after the previous
            // one's call arrived.
            await sleep(gapMs * (1 + Math.random()));
          }
        } finally {
          collectDuplicates(ctx, side, [tenant]);
          ctx.emu.clearReceived();
        }
        return { p50: percentile(measured, 50), p99: percentile(measured, 99), max: Math.max(...measured), samples: measured.length };
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
