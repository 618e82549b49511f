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

/**
 * Inserts per second with and without the capture triggers, from `clients` sessions each
 * inserting one row per transaction: the two alternate in slices of `sliceMs` for `seconds` each,
 * so that both see the same disk (a commit-bound rate drifts by tens of percent over seconds on
 * a shared machine; measured one after the other, that drift was most of the difference).
 */
export async function compareInsertRates(
  targets: { withTriggers: InsertTarget; withoutTriggers: InsertTarget },
  seconds: number,
  clients: number,
  sliceMs = 250,
): Promise<{ with: number; without: number }> {
  const open = async (target: InsertTarget) =>
    Promise.all(
      Array.from({ length: clients }, async () => {
        const c = new pg.Client({ connectionString: target.bdb.url, application_name: 'cassius-bench-insert' });
        await c.connect();
        return c;
      }),
    );
  const sides = {
    with: { target: targets.withTriggers, sessions: await open(targets.withTriggers), inserted: 0, ms: 0 },
    without: { target: targets.withoutTriggers, sessions: await open(targets.withoutTriggers), inserted: 0, ms: 0 },
  };
  try {
    const slices = Math.max(1, Math.round((seconds * 1000) / sliceMs));
    for (let i = 0; i < slices; i++) {
      for (const which of i % 2 === 0 ? (['with', 'without'] as const) : (['without', 'with'] as const)) {
        const side = sides[which];
        const started = nowMs();
        const deadline = started + sliceMs;
        await Promise.all(
          side.sessions.map(async (c) => {
            while (nowMs() < deadline) {
              await c.query({
                name: 'plain-insert',
                text: `insert into appointments (organisation_id, title, starts_at, ends_at, time_zone)
                       values ($1, 'Walk-in', '2031-02-03T09:00:00Z', '2031-02-03T09:20:00Z', 'Europe/Paris')`,
                values: [side.target.organisationId],
              });
              side.inserted += 1;
            }
          }),
        );
        side.ms += nowMs() - started;
      }
    }
    return { with: (sides.with.inserted / sides.with.ms) * 1000, without: (sides.without.inserted / sides.without.ms) * 1000 };
  } finally {
    await Promise.all([...sides.with.sessions, ...sides.without.sessions].map((c) => c.end().catch(() => {})));
  }
}
