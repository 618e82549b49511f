// Prometheus metrics of one relay (`/metrics` on RELAY_METRICS_PORT). README "Metrics" says
// what each means. Outbox depth and age are read from the database at scrape time.
import http from 'node:http';
import client from 'prom-client';
import { z } from 'zod';
import { sql, type Db } from '../src/shared/db';

export type RelayMetrics = ReturnType<typeof createRelayMetrics>;

export function createRelayMetrics(db: Db) {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'cassius_relay_' });

  const outcomes = new client.Counter({
    name: 'cassius_relay_sync_outcomes_total',
    help: 'Appointments processed, by outcome (created, updated, moved, deleted, unchanged, disabled, retry, rate_limited, waiting_reconnect, error, parked, lease_lost)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const googleCalls = new client.Histogram({
    name: 'cassius_relay_google_call_seconds',
    help: 'Latency of Google Calendar calls, by method and HTTP status',
    labelNames: ['method', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const commitToCall = new client.Histogram({
    name: 'cassius_relay_commit_to_call_seconds',
    help: 'From the commit that captured a change to the start of its Google call',
    buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const rateLimitWaits = new client.Counter({
    name: 'cassius_relay_rate_limit_wait_seconds_total',
    help: 'Time spent waiting for the shared Google quota (GOOGLE_RATE_LIMIT_*)',
    registers: [registry],
  });
  const tokenRefreshes = new client.Counter({
    name: 'cassius_relay_token_refreshes_total',
    help: 'OAuth access-token refreshes, by outcome (ok, reconnect, error)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const listenerResubscriptions = new client.Counter({
    name: 'cassius_relay_listener_resubscriptions_total',
    help: 'Times the LISTEN connection was found dead and subscribed again',
    registers: [registry],
  });
  const inFlight = new client.Gauge({
    name: 'cassius_relay_in_flight_appointments',
    help: 'Appointments whose Google calls are running in this relay now (at most RELAY_CONCURRENCY)',
    registers: [registry],
  });
  const Depth = z.object({ pending: z.number(), failed: z.number(), waiting: z.number(), oldest_seconds: z.number().nullable() });
  const depth = new client.Gauge({
    name: 'cassius_outbox_rows',
    help: 'Outbox rows by state (pending, failed = parked dead letters, waiting = waiting for a reconnect); the same for every relay',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      const d = await db.one(sql.type(Depth)`
        select count(*) filter (where failed_at is null and waiting_for_integration_id is null)::int as pending,
               count(*) filter (where failed_at is not null)::int as failed,
               count(*) filter (where waiting_for_integration_id is not null)::int as waiting,
               extract(epoch from now() - min(created_at) filter (where failed_at is null and waiting_for_integration_id is null))::float8 as oldest_seconds
        from sync_outbox`);
      this.set({ state: 'pending' }, d.pending);
      this.set({ state: 'failed' }, d.failed);
      this.set({ state: 'waiting' }, d.waiting);
      oldest.set(d.oldest_seconds ?? 0);
    },
  });
  const oldest = new client.Gauge({
    name: 'cassius_outbox_oldest_pending_seconds',
    help: 'Age of the oldest pending outbox row (0 when empty)',
    registers: [registry],
  });
  void depth;

  return {
    registry,
    outcome: (outcome: string) => outcomes.inc({ outcome }),
    googleCall: (method: string, status: number | 'error', seconds: number) => googleCalls.observe({ method, status: String(status) }, seconds),
    commitToCall: (seconds: number) => commitToCall.observe(seconds),
    rateLimitWait: (ms: number) => rateLimitWaits.inc(ms / 1000),
    tokenRefresh: (outcome: string) => tokenRefreshes.inc({ outcome }),
    listenerResubscribed: () => listenerResubscriptions.inc(),
    setInFlight: (n: number) => inFlight.set(n),
  };
}

export async function serveMetrics(registry: client.Registry, port: number, host: string): Promise<http.Server> {
  const server = http.createServer(async (req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    try {
      const body = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType }).end(body);
    } catch (error) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end(`metrics unavailable: ${(error as Error).message}\n`);
    }
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  return server;
}
