// Rows for tests, written with plain SQL exactly as the Cassius backend would.
import { z } from 'zod';
import { sql, type Db } from '../../src/shared/db';

const Id = z.object({ id: z.string().uuid() });

export async function createOrganisation(db: Db, name = 'Clinic'): Promise<string> {
  return (await db.one(sql.type(Id)`insert into organisations (name) values (${name}) returning id`)).id;
}

export async function createUser(
  db: Db,
  organisationId: string,
  opts: { email?: string; name?: string; role?: 'admin' | 'member' } = {},
): Promise<string> {
  const email = opts.email ?? `user-${Math.random().toString(36).slice(2)}@clinic.test`;
  return (
    await db.one(sql.type(Id)`
      insert into users (organisation_id, email, name, role)
      values (${organisationId}, ${email}, ${opts.name ?? 'Dr Test'}, ${opts.role ?? 'member'})
      returning id`)
  ).id;
}

export type AppointmentInput = {
  title?: string;
  startsAt?: string;
  endsAt?: string;
  timeZone?: string;
  assignedUserId?: string | null;
  description?: string | null;
  location?: string | null;
};

export async function createAppointment(db: Db, organisationId: string, input: AppointmentInput = {}): Promise<string> {
  const startsAt = input.startsAt ?? '2030-01-15T09:00:00Z';
  const endsAt = input.endsAt ?? '2030-01-15T09:30:00Z';
  return (
    await db.one(sql.type(Id)`
      insert into appointments (organisation_id, assigned_user_id, title, description, location, starts_at, ends_at, time_zone)
      values (${organisationId}, ${input.assignedUserId ?? null}, ${input.title ?? 'Check-up'}, ${input.description ?? null},
              ${input.location ?? null}, ${startsAt}, ${endsAt}, ${input.timeZone ?? 'Europe/Paris'})
      returning id`)
  ).id;
}

export async function createIntegration(
  db: Db,
  organisationId: string,
  opts: { userId?: string | null; calendarId?: string; email?: string; syncEnabled?: boolean } = {},
): Promise<string> {
  const email = opts.email ?? `calendar-${Math.random().toString(36).slice(2)}@gmail.test`;
  return (
    await db.one(sql.type(Id)`
      insert into calendar_integrations (organisation_id, user_id, account_email, account_subject, calendar_id, sync_enabled, connected_at)
      values (${organisationId}, ${opts.userId ?? null}, ${email}, ${`sub-${email}`}, ${opts.calendarId ?? email},
              ${opts.syncEnabled ?? true}, now())
      returning id`)
  ).id;
}

const OutboxRow = z.object({
  id: z.number(),
  organisation_id: z.string(),
  appointment_id: z.string(),
  operation: z.string(),
  priority: z.number(),
  snapshot: z.unknown(),
});
export type OutboxRow = z.infer<typeof OutboxRow>;

export async function outboxRows(db: Db): Promise<readonly OutboxRow[]> {
  return db.any(sql.type(OutboxRow)`
    select id, organisation_id, appointment_id, operation, priority, snapshot from sync_outbox order by id`);
}
