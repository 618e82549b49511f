// Demo data for `npm start` (demo mode) and the browser tests: one clinic with an administrator
// and two members, appointments over the next days, and in the Google emulator a Google
// account per user whose calendar list shows every picker state (writable and read-only).
// Rows are written with plain SQL, exactly as the Cassius backend writes them.
import { z } from 'zod';
import { sql, type Db } from '../shared/db';

export const DEMO_ORGANISATION = 'Demo Clinic';
export const DEMO_TIME_ZONE = 'Europe/London';

export type DemoUser = { email: string; name: string; role: 'admin' | 'member' };

export const DEMO_USERS: readonly DemoUser[] = [
  { email: 'admin@demo.clinic', name: 'Dr Ada Admin', role: 'admin' },
  { email: 'alice@demo.clinic', name: 'Dr Alice Martin', role: 'member' },
  { email: 'bob@demo.clinic', name: 'Dr Bob Okafor', role: 'member' },
];

/** The clinic's shared Google calendars: every demo account sees them (CONTRACT §8 sharing by id). */
export const DEMO_TEAM_CALENDAR = 'demo-clinic-team@group.calendar.google.com';
export const DEMO_HOLIDAYS_CALENDAR = 'en.uk.holidays.demo@group.v.calendar.google.com';

/** Body of `POST /__emulator/accounts` for each demo user (the Google account has the user's email). */
export function demoGoogleAccounts(): { email: string; name: string; time_zone: string; calendars: { id?: string; summary: string; access_role: string }[] }[] {
  return DEMO_USERS.map((u, i) => ({
    email: u.email,
    name: u.name,
    time_zone: DEMO_TIME_ZONE,
    calendars: [
      // The first account creates the shared calendars; the others are given access to them.
      { id: DEMO_TEAM_CALENDAR, summary: 'Demo Clinic team', access_role: i === 0 ? 'owner' : 'writer' },
      { id: DEMO_HOLIDAYS_CALENDAR, summary: 'UK public holidays', access_role: 'reader' },
      ...(u.role === 'admin' ? [{ summary: 'Clinic rota (view only)', access_role: 'reader' }] : []),
    ],
  }));
}

/**
 * Creates the demo Google accounts in the emulator at `emulatorUrl` (its /__emulator control
 * surface). Accounts that exist already are kept: the emulator keeps them until it restarts.
 */
export async function ensureDemoGoogleAccounts(emulatorUrl: string): Promise<string[]> {
  const created: string[] = [];
  for (const account of demoGoogleAccounts()) {
    const res = await fetch(`${emulatorUrl}/__emulator/accounts`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(account),
    });
    if (res.status === 201) created.push(account.email);
    else if (res.status !== 409) throw new Error(`emulator refused demo account ${account.email}: ${res.status} ${await res.text()}`);
  }
  return created;
}

// The UTC instant of a wall-clock time in `timeZone` (two passes settle DST edges).
function zonedInstant(year: number, month: number, day: number, hour: number, minute: number, timeZone: string): Date {
  const wall = Date.UTC(year, month, day, hour, minute);
  let guess = wall;
  for (let i = 0; i < 2; i++) {
    const parts = Object.fromEntries(
      new Intl.DateTimeFormat('en-GB', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric' })
        .formatToParts(new Date(guess))
        .map((p) => [p.type, p.value]),
    );
    const shown = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute));
    guess += wall - shown;
  }
  return new Date(guess);
}

type Slot = { day: number; hour: number; minute: number; minutes: number; title: string; location: string | null; assignee: string | null };

// day = days from today; assignee = a demo user's email, or null (unassigned: the clinic calendar).
const SLOTS: readonly Slot[] = [
  { day: 1, hour: 9, minute: 0, minutes: 30, title: 'Check-up: Mrs Patel', location: 'Room 1', assignee: 'alice@demo.clinic' },
  { day: 1, hour: 10, minute: 0, minutes: 45, title: 'Vaccination: Leo Brown', location: 'Room 1', assignee: 'alice@demo.clinic' },
  { day: 1, hour: 11, minute: 30, minutes: 30, title: 'Blood test: Mr Chen', location: 'Room 2', assignee: 'bob@demo.clinic' },
  { day: 1, hour: 14, minute: 0, minutes: 60, title: 'Team meeting', location: 'Staff room', assignee: null },
  { day: 2, hour: 9, minute: 30, minutes: 30, title: 'Follow-up: Ms Garcia', location: 'Room 2', assignee: 'bob@demo.clinic' },
  { day: 2, hour: 11, minute: 0, minutes: 30, title: 'New patient: Mr Dubois', location: 'Room 1', assignee: 'alice@demo.clinic' },
  { day: 2, hour: 15, minute: 0, minutes: 30, title: 'Phone consultation (unassigned)', location: null, assignee: null },
  { day: 3, hour: 8, minute: 45, minutes: 30, title: 'Physiotherapy: Mrs Novak', location: 'Gym', assignee: 'bob@demo.clinic' },
  { day: 3, hour: 13, minute: 30, minutes: 45, title: 'Check-up: Mr Rossi', location: 'Room 1', assignee: 'alice@demo.clinic' },
  { day: 4, hour: 10, minute: 0, minutes: 30, title: 'Walk-in slot', location: 'Reception', assignee: null },
  { day: 4, hour: 16, minute: 0, minutes: 30, title: 'Test results: Ms Kowalski', location: 'Room 2', assignee: 'bob@demo.clinic' },
  { day: 5, hour: 9, minute: 0, minutes: 120, title: 'Minor surgery list', location: 'Treatment room', assignee: null },
];

const Id = z.object({ id: z.string() });
const Exists = z.object({ exists: z.boolean() });

export type SeedResult = { seeded: boolean; organisationId: string | null; users: readonly DemoUser[] };

/**
 * Seeds the demo clinic when the database has no organisation at all; otherwise changes
 * nothing. Safe when two processes start at once (an advisory lock serialises them).
 */
export async function seedDemoData(db: Db, now: Date = new Date()): Promise<SeedResult> {
  return db.transaction(async (tx) => {
    await tx.query(sql.unsafe`select pg_advisory_xact_lock(7241865325823965)`);
    const { exists } = await tx.one(sql.type(Exists)`select exists (select 1 from organisations) as exists`);
    if (exists) return { seeded: false, organisationId: null, users: DEMO_USERS };
    const org = await tx.one(sql.type(Id)`insert into organisations (name) values (${DEMO_ORGANISATION}) returning id`);
    const ids = new Map<string, string>();
    for (const u of DEMO_USERS) {
      const row = await tx.one(sql.type(Id)`
        insert into users (organisation_id, email, name, role) values (${org.id}, ${u.email}, ${u.name}, ${u.role}) returning id`);
      ids.set(u.email, row.id);
    }
    const today = new Intl.DateTimeFormat('en-CA', { timeZone: DEMO_TIME_ZONE, year: 'numeric', month: '2-digit', day: '2-digit' }).format(now);
    const [y, m, d] = today.split('-').map(Number) as [number, number, number];
    for (const s of SLOTS) {
      const start = zonedInstant(y, m - 1, d + s.day, s.hour, s.minute, DEMO_TIME_ZONE);
      const end = new Date(start.getTime() + s.minutes * 60_000);
      await tx.query(sql.unsafe`
        insert into appointments (organisation_id, assigned_user_id, title, location, starts_at, ends_at, time_zone)
        values (${org.id}, ${s.assignee ? (ids.get(s.assignee) ?? null) : null}, ${s.title}, ${s.location},
                ${start.toISOString()}, ${end.toISOString()}, ${DEMO_TIME_ZONE})`);
    }
    return { seeded: true, organisationId: org.id, users: DEMO_USERS };
  });
}

const DemoUserRow = z.object({ id: z.string(), organisation_id: z.string(), email: z.string(), name: z.string(), role: z.enum(['admin', 'member']) });
export type DemoUserRow = z.infer<typeof DemoUserRow>;

/** Users whose email is given, for the demo sign-in (case-insensitive; the oldest organisation first). */
export async function findUserByEmail(db: Pick<Db, 'maybeOne'>, email: string): Promise<DemoUserRow | null> {
  return db.maybeOne(sql.type(DemoUserRow)`
    select u.id, u.organisation_id, u.email, u.name, u.role
    from users u join organisations o on o.id = u.organisation_id
    where lower(u.email) = lower(${email})
    order by o.created_at, u.created_at limit 1`);
}

/** Every user, for the list of demo sign-in links. */
export async function listUsers(db: Pick<Db, 'any'>, limit = 50): Promise<readonly DemoUserRow[]> {
  return db.any(sql.type(DemoUserRow)`
    select u.id, u.organisation_id, u.email, u.name, u.role
    from users u join organisations o on o.id = u.organisation_id
    order by o.created_at, u.role, u.email limit ${limit}`);
}
