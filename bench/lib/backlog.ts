// Tenant B's live changes while tenant A's "Sync now" of N appointments drains (fair claim).
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { cloneDatabase } from './pg';
import type { Child } from './procs';
import { bulkInsert, collectDuplicates, createTenant, insertOne, startRelays, type Ctx } from './sides';
import { nowMs, percentile, sleep, until } from './util';

export type BacklogResult = { p50: number; p99: number; max: number; samples: number; drainSeconds: number; backlogPerSecond: number };

export async function liveUnderBacklogRound(ctx: Ctx, backlogRows: number, gapMs: number): Promise<BacklogResult> {
  const bdb = await cloneDatabase(ctx.cluster, ctx.templates.ours, 'ours_backlog');
  const a = await createTenant(ctx, bdb);
  const b = await createTenant(ctx, bdb);
  let procs: Child[] = [];
  const client = new pg.Client({ connectionString: bdb.url, application_name: 'cassius-bench' });
  try {
    // Tenant A's appointments exist already; their own capture rows are gone (as if synced
    // long ago), so the backlog below is the only work for them.
    await bulkInsert(bdb.pool, a.organisationId, backlogRows);
    await bdb.pool.query('delete from sync_outbox');
    procs = await startRelays(ctx, bdb, 1);
    await client.connect();
    ctx.emu.clearReceived();
    const started = nowMs();
    await client.query(`insert into sync_backlog (organisation_id, integration_id, reason) values ($1, $2, 'sync_now')`, [
      a.organisationId,
      a.integrationId,
    ]);
    await client.query(`select pg_notify('sync_outbox', '')`);
    const latencies: number[] = [];
    const pending: Promise<void>[] = [];
    let liveReceived = 0;
    let lastBacklogCall = started;
    while (ctx.emu.received.size - liveReceived < backlogRows) {
      if (nowMs() - started > 600_000) throw new Error('the backlog did not drain within 10 minutes');
      const id = randomUUID();
      const committed = await insertOne(client, b.organisationId, id);
      pending.push(
        ctx.emu.waitForAppointment(id, 120_000).then((received) => {
          liveReceived += 1;
          latencies.push(received - committed);
        }),
      );
      lastBacklogCall = nowMs();
      await sleep(gapMs * (0.5 + Math.random()));
    }
    await Promise.all(pending);
    const drainSeconds = (lastBacklogCall - started) / 1000;
    await until(async () => Boolean((await client.query('select not exists (select 1 from sync_outbox) as done')).rows[0]?.done), 60_000, 'drain');
    return {
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: Math.max(...latencies),
      samples: latencies.length,
      drainSeconds,
      backlogPerSecond: backlogRows / drainSeconds,
    };
  } finally {
    await client.end().catch(() => {});
    await Promise.all(procs.map((p) => p.stop()));
    collectDuplicates(ctx, 'ours', [a, b]);
    ctx.emu.clearReceived();
    await bdb.drop();
  }
}
