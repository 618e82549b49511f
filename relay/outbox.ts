// The outbox queries of the relay, one function per statement (graphile-worker's
// sql/getJobs.ts style). State machine of a row: README "Outbox row states".
import { z } from 'zod';
import { sql, type Db } from '../src/shared/db';
import type { HotPool } from './hotPool';
import { SyncState } from './state';

export const ClaimedGroup = z.object({
  appointment_id: z.string(),
  organisation_id: z.string(),
  ids: z.array(z.number()),
  operations: z.array(z.enum(['insert', 'update', 'delete', 'resync'])),
  priority: z.number(),
  attempts: z.number(),
  // A hard delete's snapshot of the row: the relay needs it to find the event.
  snapshot: z.record(z.unknown()).nullable(),
  // Milliseconds from the newest row's commit-time insertion to this claim (commit-to-call latency).
  age_ms: z.number(),
  // Some row's previous attempt never finished (its relay died or lost the lease): this
  // appointment may be what killed that relay, so the relay runs it alone (relay.ts).
  unfinished: z.boolean(),
  // What to sync, read after the lease was taken (relay/state.ts).
  state: SyncState,
});

/** All claimed rows of one appointment, with its state: processed together as one Google call. */
export type ClaimedGroup = {
  appointmentId: string;
  organisationId: string;
  ids: number[];
  attempts: number;
  priority: number;
  operations: Set<'insert' | 'update' | 'delete' | 'resync'>;
  snapshot: Record<string, unknown> | null;
  ageMs: number;
  unfinished: boolean;
  state: SyncState;
};

/**
 * Leases up to `limit` appointments' pending rows for `leaseMs` and returns them with their
 * state, in one round trip. Fairness across tenants, coalescing and the lock that serializes
 * claims: sync_outbox_claim (db/migrations/0003_claim_function.sql).
 */
export async function claimBatch(hot: HotPool, relayId: string, limit: number, leaseMs: number): Promise<ClaimedGroup[]> {
  const rows = await hot.rows('sync_outbox_claim', 'select * from sync_outbox_claim($1, $2, $3)', [relayId, limit, leaseMs], ClaimedGroup);
  return rows.map((row) => ({
    appointmentId: row.appointment_id,
    organisationId: row.organisation_id,
    ids: row.ids,
    attempts: row.attempts,
    priority: row.priority,
    operations: new Set(row.operations),
    snapshot: row.snapshot,
    ageMs: row.age_ms,
    unfinished: row.unfinished,
    state: row.state,
  }));
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
