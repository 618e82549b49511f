// POST /api/appointments under 16 concurrent clients: the API server in a process of its own
// (src/server.ts, i.e. startServer), keep-alive HTTP clients in the bench process.
import path from 'node:path';
import { createOrganisation, createUser } from '../../test/helpers/fixtures';
import { googleConfig, TEST_TOKEN_KEY } from '../../test/helpers/google';
import { freePort } from '../../src/shared/embeddedPostgres';
import { signSession } from '../../src/shared/session';
import { cloneDatabase } from './pg';
import { ROOT, spawnChild } from './procs';
import type { Ctx } from './sides';
import { nowMs, percentile, sleep, until } from './util';

const APP_SECRET = 'bench-app-secret-0123456789abcdef0123456789';

export type ApiRound = { p50: number; p99: number; perSecond: number; requests: number; errors: number };

export async function apiRun(ctx: Ctx, rounds: number, seconds: number, clients: number): Promise<ApiRound[]> {
  const bdb = await cloneDatabase(ctx.cluster, ctx.templates.ours, 'ours_api');
  const organisationId = await createOrganisation(bdb.db, 'API clinic');
  const userId = await createUser(bdb.db, organisationId, { role: 'admin' });
  const token = await signSession({ sub: userId, org: organisationId }, APP_SECRET);
  const port = await freePort();
  const server = spawnChild({
    label: 'api-server',
    script: path.join(ROOT, 'src/server.ts'),
    env: {
      ...process.env,
      ...googleConfig(ctx.emu.url),
      DATABASE_URL: bdb.url,
      TOKEN_ENCRYPTION_KEY: TEST_TOKEN_KEY,
      APP_SECRET,
      PORT: String(port),
      HOST: '127.0.0.1',
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      LOG_LEVEL: 'warn',
    },
  });
  const base = `http://127.0.0.1:${port}`;
  try {
    await until(
      async () => {
        try {
          return (await fetch(`${base}/healthz`)).ok;
        } catch {
          return false;
        }
      },
      30_000,
      'the API server',
      100,
    );
    const post = async (i: number) => {
      const start = new Date(Date.UTC(2031, 0, 1, 8) + (i % 5000) * 3_600_000);
      const response = await fetch(`${base}/api/appointments`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          title: `Booked online ${i}`,
          starts_at: start.toISOString(),
          ends_at: new Date(start.getTime() + 1_800_000).toISOString(),
          time_zone: 'Europe/Paris',
          location: 'Room 2',
        }),
      });
      await response.arrayBuffer();
      return response.status;
    };
    // Warm-up: JIT, pools, the first connections.
    for (let i = 0; i < 50; i++) await post(i);
    const results: ApiRound[] = [];
    let seq = 100;
    for (let r = 0; r < rounds; r++) {
      const latencies: number[] = [];
      let errors = 0;
      const started = nowMs();
      const deadline = started + seconds * 1000;
      await Promise.all(
        Array.from({ length: clients }, async () => {
          while (nowMs() < deadline) {
            const t = nowMs();
            const status = await post(seq++).catch(() => 0);
            latencies.push(nowMs() - t);
            if (status !== 201) errors += 1;
          }
        }),
      );
      const elapsed = (nowMs() - started) / 1000;
      results.push({
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        perSecond: latencies.length / elapsed,
        requests: latencies.length,
        errors,
      });
      await sleep(500);
    }
    return results;
  } finally {
    await server.stop();
    await bdb.drop();
  }
}
