// Keeping the outbox small. It is a queue: every change is inserted, leased once and deleted,
// so it makes dead rows as fast as the relay works, and they must go within seconds, not at
// autovacuum's pace: autovacuum visits a database at most once per autovacuum_naptime (a
// minute by default), whatever the table's own thresholds say. Measured (bench outbox_bloat):
// a minute of churn at ~600 changes/s made the table 7x the size it had at 10,000 changes; and
// after a long transaction held the xmin horizon, every claim crawled over its dead rows until
// autovacuum came (held_xmin). So the relay vacuums the outbox itself once enough dead rows
// are there, at most every second across all relays; autovacuum stays as it is.
// The outbox's size is the high-water mark of dead + live rows between two vacuums, so the
// cadence sets it: every 2,000 dead rows / 2 s it was 1.5-2.5 MB and moved 0.8-1.56x between
// 10,000 and 100,000 changes relayed at ~1,100/s; every 1,000 / 1 s, 1.1-1.7 MB and 0.96-1.10x,
// at the same throughput (a vacuum of a table this size takes a few ms).
import { z } from 'zod';
import { sql, type Db } from '../src/shared/db';
import type { Logger } from '../src/shared/logger';

const Stats = z.object({
  dead: z.number(),
  owner: z.boolean(),
  // Seconds since the last vacuum by anyone (a relay or autovacuum); null: never.
  since_vacuum: z.number().nullable(),
});

export type OutboxVacuum = { maybeVacuum(): Promise<void> };

export function createOutboxVacuum(
  db: Db,
  log: Logger,
  opts: { deadRows?: number; minIntervalMs?: number } = {},
): OutboxVacuum {
  const deadRows = opts.deadRows ?? 1_000;
  const minIntervalMs = opts.minIntervalMs ?? 1_000;
  let lastCheck = 0;
  let allowed = true;
  return {
    async maybeVacuum() {
      if (!allowed || Date.now() - lastCheck < minIntervalMs) return;
      lastCheck = Date.now();
      const stats = await db.one(sql.type(Stats)`
        select coalesce(s.n_dead_tup, 0)::int as dead, pg_has_role(c.relowner, 'USAGE') as owner,
               extract(epoch from now() - greatest(s.last_vacuum, s.last_autovacuum))::float8 as since_vacuum
        from pg_class c left join pg_stat_user_tables s on s.relid = c.oid
        where c.oid = 'sync_outbox'::regclass`);
      if (!stats.owner) {
        // Only the owner may vacuum a table: leave it to autovacuum (README: outbox upkeep).
        allowed = false;
        log.info('the relay does not own sync_outbox: vacuuming it is left to autovacuum');
        return;
      }
      if (stats.dead < deadRows || (stats.since_vacuum !== null && stats.since_vacuum * 1000 < minIntervalMs)) return;
      // skip_locked: another relay (or autovacuum) is on it already.
      await db.query(sql.unsafe`vacuum (skip_locked) sync_outbox`);
      log.debug({ dead_rows: stats.dead }, 'vacuumed sync_outbox');
    },
  };
}
