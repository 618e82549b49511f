// The outbox queries of the relay, one function per statement (graphile-worker's
// sql/getJobs.ts style). State machine of a row: README "Outbox row states".
import { z } from 'zod';
import { sql, type Db } from '../src/shared/db';

// Claims are serialized by this transaction-scoped advisory lock. Reason: the claim must not
// lease rows of an appointment another relay is working on, and it checks that with NOT
// EXISTS on live leases. Under READ COMMITTED that check is only sound if every earlier
// claim has committed before our statement takes its snapshot, which the lock guarantees.
// A claim holds it for ~1 ms, so relays barely wait on each other.
const CLAIM_LOCK_KEY = 5_224_031_001;

export const ClaimedRow = z.object({
  id: z.number(),
  organisation_id: z.string(),
  appointment_id: z.string(),
  operation: z.enum(['insert', 'update', 'delete', 'resync']),
  priority: z.number(),
  snapshot: z.record(z.unknown()).nullable(),
  attempts: z.number(),
  // Milliseconds from the row's commit-time insertion to this claim (commit-to-call latency).
  age_ms: z.number(),
  // The row's previous attempt never finished: it was still leased (lease run out) when claimed.
  unfinished: z.boolean(),
});
export type ClaimedRow = z.infer<typeof ClaimedRow>;

/** All claimed rows of one appointment: processed together as one Google call. */
export type ClaimedGroup = {
  appointmentId: string;
  organisationId: string;
  rows: ClaimedRow[];
  ids: number[];
  attempts: number;
  priority: number;
  operations: Set<ClaimedRow['operation']>;
  snapshot: Record<string, unknown> | null;
  ageMs: number;
  /**
   * Some row's previous attempt never finished (its relay died or lost the lease): this
   * appointment may be what killed that relay, so the relay runs it alone (relay.ts).
   */
  unfinished: boolean;
};

/**
 * Leases up to `limit` appointments' pending rows for `leaseMs`.
 *
 * Fairness: organisations take turns. A loose index scan lists the organisations with
 * claimable rows, each contributes its oldest `perOrganisation` rows, and appointments are
 * ranked by (priority, turn within organisation), so live changes (priority 0) of every
 * tenant go before any backlog (priority 1), and one tenant's 10,000-row backlog cannot push
 * another tenant's single change behind it.
 *
 * Coalescing: every unleased row of a chosen appointment is taken (including parked, waiting
 * and backed-off ones), since the relay syncs the appointment's current state, not the rows'.
 */
export async function claimBatch(db: Db, relayId: string, limit: number, leaseMs: number): Promise<ClaimedGroup[]> {
  const rows = await db.transaction(async (tx) => {
    await tx.query(sql.unsafe`select pg_advisory_xact_lock(${CLAIM_LOCK_KEY})`);
    return tx.any(sql.type(ClaimedRow)`
      with recursive organisations_with_work(organisation_id) as (
        (select organisation_id from sync_outbox
         where failed_at is null and waiting_for_integration_id is null
         order by organisation_id limit 1)
        union all
        select (select o.organisation_id from sync_outbox o
                where o.failed_at is null and o.waiting_for_integration_id is null
                  and o.organisation_id > w.organisation_id
                order by o.organisation_id limit 1)
        from organisations_with_work w where w.organisation_id is not null
      ),
      candidates as (
        select c.appointment_id, c.priority, c.id,
               row_number() over (partition by c.organisation_id order by c.priority, c.id) as turn
        from organisations_with_work w
        cross join lateral (
          select o.id, o.organisation_id, o.appointment_id, o.priority
          from sync_outbox o
          where o.organisation_id = w.organisation_id
            and o.failed_at is null and o.waiting_for_integration_id is null
            and o.run_at <= now()
            and (o.locked_until is null or o.locked_until < now())
            and not exists (
              select 1 from sync_outbox busy
              where busy.appointment_id = o.appointment_id and busy.locked_until >= now())
          order by o.priority, o.id
          limit ${limit}
        ) c
        where w.organisation_id is not null
      ),
      chosen as (
        select appointment_id from (
          select distinct on (appointment_id) appointment_id, priority, turn, id
          from candidates order by appointment_id, priority, id
        ) first_row_per_appointment
        order by priority, turn, id
        limit ${limit}
      ),
      lockable as (
        select o.id, o.locked_by as previous_owner from sync_outbox o
        where o.appointment_id in (select appointment_id from chosen)
          and (o.locked_until is null or o.locked_until < now())
        for update skip locked
      )
      update sync_outbox o
      set locked_by = ${relayId},
          locked_until = now() + ${leaseMs} * interval '1 millisecond',
          -- A parked row revived by a new change (or Retry / Sync now) starts counting afresh;
          -- otherwise a row parked after K attempts would be parked again at once, untried.
          attempts = case when o.failed_at is not null then 1 else o.attempts + 1 end,
          failed_at = null
      from lockable
      where o.id = lockable.id
      returning o.id, o.organisation_id, o.appointment_id, o.operation, o.priority, o.snapshot, o.attempts,
                (extract(epoch from clock_timestamp() - o.created_at) * 1000)::float8 as age_ms,
                lockable.previous_owner is not null as unfinished`);
  });
  return groupByAppointment(rows);
}

function groupByAppointment(rows: readonly ClaimedRow[]): ClaimedGroup[] {
  const groups = new Map<string, ClaimedGroup>();
  for (const row of [...rows].sort((a, b) => a.id - b.id)) {
    let group = groups.get(row.appointment_id);
    if (!group) {
      group = {
        appointmentId: row.appointment_id,
        organisationId: row.organisation_id,
        rows: [],
        ids: [],
        attempts: 0,
        priority: row.priority,
        operations: new Set(),
        snapshot: null,
        ageMs: 0,
        unfinished: false,
      };
      groups.set(row.appointment_id, group);
    }
    group.rows.push(row);
    group.ids.push(row.id);
    group.attempts = Math.max(group.attempts, row.attempts);
    group.priority = Math.min(group.priority, row.priority);
    group.operations.add(row.operation);
    group.snapshot = row.snapshot ?? group.snapshot;
    group.unfinished ||= row.unfinished;
    // The newest change is what the user waits for.
    group.ageMs = group.ageMs === 0 ? row.age_ms : Math.min(group.ageMs, row.age_ms);
  }
  return [...groups.values()];
}

type Tx = Pick<Db, 'query'>;

/**
 * Deletes the group's rows if this relay still holds their lease; returns false otherwise
 * (the lease ran out and another relay took over: its result wins, ours must not be recorded).
 */
export async function completeRows(tx: Tx, relayId: string, ids: number[]): Promise<boolean> {
  const result = await tx.query(sql.unsafe`
    delete from sync_outbox where id = any(${sql.array(ids, 'int8')}) and locked_by = ${relayId}`);
  return result.rowCount === ids.length;
}

/** Hands the rows back for another attempt at `delayMs` from now. */
export async function retryRows(
  tx: Tx,
  relayId: string,
  ids: number[],
  delayMs: number,
  error: string,
  opts: { countAttempt: boolean } = { countAttempt: true },
): Promise<void> {
  await tx.query(sql.unsafe`
    update sync_outbox
    set locked_by = null, locked_until = null, last_error = ${error},
        run_at = now() + ${Math.round(delayMs)} * interval '1 millisecond',
        attempts = case when ${opts.countAttempt} then attempts else greatest(attempts - 1, 0) end
    where id = any(${sql.array(ids, 'int8')}) and locked_by = ${relayId}`);
}

/** Dead letter: kept for DBAs, revived only by Retry, Sync now or a new change. */
export async function parkRows(tx: Tx, relayId: string, ids: number[], error: string): Promise<void> {
  await tx.query(sql.unsafe`
    update sync_outbox set locked_by = null, locked_until = null, failed_at = now(), last_error = ${error}
    where id = any(${sql.array(ids, 'int8')}) and locked_by = ${relayId}`);
}

/** The rows wait, unconsumed, until the integration is reconnected (a trigger releases them). */
export async function waitForReconnect(tx: Tx, relayId: string, ids: number[], integrationId: string, error: string): Promise<void> {
  await tx.query(sql.unsafe`
    update sync_outbox
    set locked_by = null, locked_until = null, last_error = ${error}, waiting_for_integration_id = ${integrationId},
        attempts = greatest(attempts - 1, 0)
    where id = any(${sql.array(ids, 'int8')}) and locked_by = ${relayId}`);
  // If it was reconnected between our failure and now, release at once: the trigger has run already.
  await tx.query(sql.unsafe`
    update sync_outbox o set waiting_for_integration_id = null, run_at = now()
    from calendar_integrations i
    where o.id = any(${sql.array(ids, 'int8')}) and i.id = ${integrationId} and i.connection_status = 'active'`);
}

/** Heartbeat: keeps the leases of rows still being worked on. */
export async function extendLeases(db: Db, relayId: string, ids: number[], leaseMs: number): Promise<void> {
  if (ids.length === 0) return;
  await db.query(sql.unsafe`
    update sync_outbox set locked_until = now() + ${leaseMs} * interval '1 millisecond'
    where id = any(${sql.array(ids, 'int8')}) and locked_by = ${relayId}`);
}

/**
 * Hands back rows whose previous attempt never finished without trying them, the attempt not
 * counted: they stay marked unfinished (locked_by kept, lease ended) for the next claim.
 */
export async function deferRows(db: Db, relayId: string, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await db.query(sql.unsafe`
    update sync_outbox set locked_until = now() - interval '1 millisecond', attempts = greatest(attempts - 1, 0)
    where id = any(${sql.array(ids, 'int8')}) and locked_by = ${relayId}`);
}

/** On shutdown: unfinished rows go back at once, the attempt not counted. */
export async function releaseRows(db: Db, relayId: string, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await db.query(sql.unsafe`
    update sync_outbox set locked_by = null, locked_until = null, attempts = greatest(attempts - 1, 0)
    where id = any(${sql.array(ids, 'int8')}) and locked_by = ${relayId}`);
}
