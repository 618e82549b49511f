// Plain single-row INSERT rate into appointments, with our capture triggers and without them.
import pg from 'pg';
import { createOrganisation } from '../../test/helpers/fixtures';
import { cloneDatabase, type BenchDb } from './pg';
import type { Ctx } from './sides';
import { nowMs } from './util';

const CAPTURE_TRIGGERS = ['appointments_capture_insert', 'appointments_capture_update', 'appointments_capture_delete'];

export type InsertTarget = { bdb: BenchDb; organisationId: string };

export async function insertTargets(ctx: Ctx): Promise<{ withTriggers: InsertTarget; withoutTriggers: InsertTarget }> {
  const make = async (label: string, disable: boolean): Promise<InsertTarget> => {
    const bdb = await cloneDatabase(ctx.cluster, ctx.templates.ours, label);
    if (disable) for (const t of CAPTURE_TRIGGERS) await bdb.pool.query(`alter table appointments disable trigger ${t}`);
    return { bdb, organisationId: await createOrganisation(bdb.db, 'Insert clinic') };
  };
  return { withTriggers: await make('ins_with', false), withoutTriggers: await make('ins_without', true) };
}

/** Inserts per second from `clients` sessions, each inserting one row per transaction for `seconds`. */
export async function insertRate(target: InsertTarget, seconds: number, clients: number): Promise<number> {
  const sessions = await Promise.all(
    Array.from({ length: clients }, async () => {
      const c = new pg.Client({ connectionString: target.bdb.url, application_name: 'cassius-bench-insert' });
      await c.connect();
      return c;
    }),
  );
  try {
    let inserted = 0;
    const started = nowMs();
    const deadline = started + seconds * 1000;
    await Promise.all(
      sessions.map(async (c) => {
        while (nowMs() < deadline) {
          await c.query({
            name: 'plain-insert',
            text: `insert into appointments (organisation_id, title, starts_at, ends_at, time_zone)
                   values ($1, 'Walk-in', '2031-02-03T09:00:00Z', '2031-02-03T09:20:00Z', 'Europe/Paris')`,
            values: [target.organisationId],
          });
          inserted += 1;
        }
      }),
    );
    return inserted / ((nowMs() - started) / 1000);
  } finally {
    await Promise.all(sessions.map((c) => c.end().catch(() => {})));
  }
}
