// SQL of the appointments routes. Writes are plain statements on `appointments`: the capture
// triggers put them in the outbox in the same transaction, exactly as for any other writer.
// Every statement is scoped by organisation_id.
import { z } from 'zod';
import { sql, type Db } from '../shared/db';

export type Conn = Pick<Db, 'query' | 'one' | 'maybeOne' | 'any' | 'exists'>;

export const SyncStatus = z.enum(['pending', 'synced', 'error', 'disabled']);

export const AppointmentRow = z.object({
  id: z.string(),
  organisation_id: z.string(),
  assigned_user_id: z.string().nullable(),
  title: z.string(),
  description: z.string().nullable(),
  location: z.string().nullable(),
  starts_at: z.string(),
  ends_at: z.string(),
  time_zone: z.string(),
  status: z.enum(['scheduled', 'cancelled']),
  created_at: z.string(),
  updated_at: z.string(),
  sync_status: SyncStatus,
  external_event_id: z.string().nullable(),
  last_synced_at: z.string().nullable(),
  last_error: z.string().nullable(),
});
export type AppointmentRow = z.infer<typeof AppointmentRow>;

// The V1 sync columns as the relay keeps them, except that an appointment no connected
// integration targets (appointment_sync_targets), or whose integration has sync off, reads
// `disabled` (CONTRACT §5), whatever the relay last wrote.
const selectAppointments = sql.fragment`
  select a.id, a.organisation_id, a.assigned_user_id, a.title, a.description, a.location,
         a.starts_at, a.ends_at, a.time_zone, a.status, a.created_at, a.updated_at,
         case when t.integration_id is null or not coalesce(ci.sync_enabled, false) then 'disabled'
              else a.sync_status end as sync_status,
         a.external_event_id, a.last_synced_at, a.last_error
  from appointments a
  left join appointment_sync_targets t on t.appointment_id = a.id
  left join calendar_integrations ci on ci.id = t.integration_id and ci.organisation_id = a.organisation_id`;

export async function findAppointment(db: Conn, organisationId: string, id: string): Promise<AppointmentRow | null> {
  return db.maybeOne(sql.type(AppointmentRow)`${selectAppointments} where a.organisation_id = ${organisationId} and a.id = ${id}`);
}

export async function listAppointments(
  db: Conn,
  organisationId: string,
  range: { from?: string; to?: string; limit: number },
): Promise<readonly AppointmentRow[]> {
  // An appointment is in [from, to) when it overlaps it.
  const conditions = [sql.fragment`a.organisation_id = ${organisationId}`];
  if (range.from) conditions.push(sql.fragment`a.ends_at > ${range.from}::timestamptz`);
  if (range.to) conditions.push(sql.fragment`a.starts_at < ${range.to}::timestamptz`);
  return db.any(sql.type(AppointmentRow)`
    ${selectAppointments} where ${sql.join(conditions, sql.fragment` and `)}
    order by a.starts_at, a.id limit ${range.limit}`);
}

export async function timeZoneExists(db: Conn, name: string): Promise<boolean> {
  return db.exists(sql.unsafe`select 1 from iana_time_zones where name = ${name}`);
}

export async function userInOrganisation(db: Conn, organisationId: string, userId: string): Promise<boolean> {
  return db.exists(sql.unsafe`select 1 from users where id = ${userId} and organisation_id = ${organisationId}`);
}

export type AppointmentFields = {
  title: string;
  starts_at: string;
  ends_at: string;
  time_zone: string;
  assigned_user_id: string | null;
  description: string | null;
  location: string | null;
};

export async function insertAppointment(db: Conn, organisationId: string, f: AppointmentFields): Promise<string> {
  const row = await db.one(sql.type(z.object({ id: z.string() }))`
    insert into appointments (organisation_id, assigned_user_id, title, description, location, starts_at, ends_at, time_zone)
    values (${organisationId}, ${f.assigned_user_id}, ${f.title}, ${f.description}, ${f.location},
            ${f.starts_at}::timestamptz, ${f.ends_at}::timestamptz, ${f.time_zone})
    returning id`);
  return row.id;
}

const Current = z.object({ starts_at: z.string(), ends_at: z.string() });

/** Locks the row; null when it does not exist in this organisation. */
export async function lockAppointment(db: Conn, organisationId: string, id: string) {
  return db.maybeOne(sql.type(Current)`
    select starts_at, ends_at from appointments where id = ${id} and organisation_id = ${organisationId} for update`);
}

export async function updateAppointment(db: Conn, organisationId: string, id: string, f: Partial<AppointmentFields>): Promise<void> {
  const sets = [];
  if (f.title !== undefined) sets.push(sql.fragment`title = ${f.title}`);
  if (f.starts_at !== undefined) sets.push(sql.fragment`starts_at = ${f.starts_at}::timestamptz`);
  if (f.ends_at !== undefined) sets.push(sql.fragment`ends_at = ${f.ends_at}::timestamptz`);
  if (f.time_zone !== undefined) sets.push(sql.fragment`time_zone = ${f.time_zone}`);
  if (f.assigned_user_id !== undefined) sets.push(sql.fragment`assigned_user_id = ${f.assigned_user_id}`);
  if (f.description !== undefined) sets.push(sql.fragment`description = ${f.description}`);
  if (f.location !== undefined) sets.push(sql.fragment`location = ${f.location}`);
  if (sets.length === 0) return;
  await db.query(sql.unsafe`
    update appointments set ${sql.join(sets, sql.fragment`, `)} where id = ${id} and organisation_id = ${organisationId}`);
}

export async function cancelAppointment(db: Conn, organisationId: string, id: string): Promise<boolean> {
  const result = await db.query(sql.unsafe`
    update appointments set status = 'cancelled' where id = ${id} and organisation_id = ${organisationId}`);
  return result.rowCount > 0;
}

export async function deleteAppointment(db: Conn, organisationId: string, id: string): Promise<boolean> {
  const result = await db.query(sql.unsafe`delete from appointments where id = ${id} and organisation_id = ${organisationId}`);
  return result.rowCount > 0;
}

/**
 * "Retry": a live (priority 0) resync row for the relay, which coalesces it with any parked or
 * failed row of the appointment and so revives it; the V1 status reads pending meanwhile.
 * Writing sync_status alone never enqueues (the capture triggers ignore the V1 columns).
 */
export async function queueResync(db: Conn, organisationId: string, id: string): Promise<boolean> {
  const exists = await db.maybeOne(sql.type(z.object({ id: z.string() }))`
    select id from appointments where id = ${id} and organisation_id = ${organisationId} for update`);
  if (!exists) return false;
  await db.query(sql.unsafe`
    insert into sync_outbox (organisation_id, appointment_id, operation, priority) values (${organisationId}, ${id}, 'resync', 0)`);
  await db.query(sql.unsafe`update appointments set sync_status = 'pending' where id = ${id} and organisation_id = ${organisationId}`);
  await db.query(sql.unsafe`select sync_outbox_notify()`);
  return true;
}
