// Model-based test of the relay (fast-check): random sequences of create / update / cancel /
// restore / hard delete / reassign (to users with and without an integration of their own) /
// target-calendar change / sync off and on (+ Sync now), interleaved with random Google faults
// (503, lost answers, 429) and relay kills (SIGKILL, then a replacement). Whatever the
// sequence, once quiet Google must hold exactly the database's final state (the chaos
// invariant, test/helpers/chaos.ts). Replay a failure with CHAOS_SEED=<seed> (printed) and
// CHAOS_PATH=<path> (from fast-check's report); relay timing still varies between replays.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { z } from 'zod';
import { sql } from '../../src/shared/db';
import { startEmulator, type RunningEmulator } from '../emulator/index';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { createOrganisation, createUser } from '../helpers/fixtures';
import { connectGoogle } from '../helpers/google';
import { assertInvariant, figures, insertsDone, LARGE, liveByAppointment, size, sleep, Supervisor, waitQuiet } from '../helpers/chaos';

let t: TestDatabase;
let emu: RunningEmulator;
let s: Supervisor;

before(async () => {
  t = await createTestDatabase();
  emu = await startEmulator();
  emu.control.setConfig({ userRateLimitPerMinute: 1_000_000, projectRateLimitPerMinute: 1_000_000 });
  s = new Supervisor({ databaseUrl: t.url, emulatorUrl: emu.url, config: { RELAY_LEASE_MS: 2_000 }, maxRestarts: 0 });
  await s.start(2);
});
after(async () => {
  await s?.stop();
  await emu?.close();
  await t?.drop();
});

// ------------------------------------------------------------------------------- the world

type Integration = { id: string; organisationId: string; email: string; calendars: string[] };
type User = { id: string; org: 'A' | 'B' };

/**
 * Per run, fresh: clinic A with an org-level calendar (account with a second, owned calendar),
 * user 0 with a calendar of her own (also with a second one), user 1 without; clinic B with NO
 * org-level calendar, user 2 with a calendar of his own, user 3 without (his appointments have
 * no target at all).
 */
type World = { orgs: { A: string; B: string }; users: User[]; integrations: Integration[] };

let worldSeq = 0;
async function createWorld(): Promise<World> {
  worldSeq += 1;
  const tag = `${worldSeq}-${Date.now().toString(36)}`;
  const A = await createOrganisation(t.db, `Model A ${tag}`);
  const B = await createOrganisation(t.db, `Model B ${tag}`);
  const users: User[] = [
    { id: await createUser(t.db, A, { email: `u0-${tag}@a.test` }), org: 'A' },
    { id: await createUser(t.db, A, { email: `u1-${tag}@a.test` }), org: 'A' },
    { id: await createUser(t.db, B, { email: `u2-${tag}@b.test` }), org: 'B' },
    { id: await createUser(t.db, B, { email: `u3-${tag}@b.test` }), org: 'B' },
  ];
  const account = async (email: string, second: boolean, organisationId: string, userId: string | null): Promise<Integration> => {
    const info = emu.control.addAccount({ email, calendars: second ? [{ summary: `${email} second`, accessRole: 'owner' }] : [] });
    const id = await connectGoogle(t.db, emu.url, { organisationId, userId, email });
    return { id, organisationId, email, calendars: info.calendars.map((c) => c.id) };
  };
  const integrations = [
    await account(`org-a-${tag}@gmail.test`, true, A, null),
    await account(`u0-${tag}@gmail.test`, true, A, users[0]!.id),
    await account(`u2-${tag}@gmail.test`, false, B, users[2]!.id),
  ];
  return { orgs: { A, B }, users, integrations };
}

// ------------------------------------------------------------------------------- the model

type Appt = { id: string; org: 'A' | 'B'; cancelled: boolean; deleted: boolean };
type Model = { appts: Appt[]; syncOff: Set<number>; kills: number };
type Real = { world: World; pending: Promise<unknown>[]; stats: Record<string, number> };

const alive = (m: Readonly<Model>) => m.appts.filter((a) => !a.deleted);
const pickFrom = <T>(xs: readonly T[], n: number): T => xs[n % xs.length]!;
const count = (r: Real, what: string) => (r.stats[what] = (r.stats[what] ?? 0) + 1);

type Content = {
  title?: string;
  description?: string | null;
  location?: string | null;
  startMinutes?: number;
  durationMinutes?: number;
  timeZone?: string;
};

const text = (max: number) => fc.stringMatching(new RegExp(`^[A-Za-z0-9]([A-Za-z0-9 .,'éü-]{0,${max}}[A-Za-z0-9])?$`));
const contentFields = {
  title: text(28),
  description: fc.option(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9 .,\n]{0,40}[A-Za-z0-9.]$/), { nil: null }),
  location: fc.option(text(20), { nil: null }),
  startMinutes: fc.integer({ min: 0, max: 60 * 24 * 60 }),
  durationMinutes: fc.integer({ min: 5, max: 240 }),
  timeZone: fc.constantFrom('Europe/Paris', 'America/New_York', 'Asia/Kolkata', 'UTC', 'Australia/Sydney'),
};
const fullContent = fc.record(contentFields);
const partialContent = fc.record(contentFields, { requiredKeys: [] });

const BASE = Date.parse('2030-05-01T06:00:00Z');
const instants = (c: Content) => {
  const start = BASE + (c.startMinutes ?? 0) * 60_000;
  return { startsAt: new Date(start).toISOString(), endsAt: new Date(start + (c.durationMinutes ?? 30) * 60_000).toISOString() };
};

type Cmd = fc.AsyncCommand<Model, Real>;

class Create implements Cmd {
  constructor(readonly org: 'A' | 'B', readonly user: number | null, readonly c: Required<Content>) {}
  check = (m: Readonly<Model>) => m.appts.length < 40;
  async run(m: Model, r: Real) {
    const userId = this.user === null ? null : r.world.users.filter((u) => u.org === this.org)[this.user]!.id;
    const { startsAt, endsAt } = instants(this.c);
    const id = await t.db.oneFirst(sql.type(z.object({ id: z.string() }))`
      insert into appointments (organisation_id, assigned_user_id, title, description, location, starts_at, ends_at, time_zone)
      values (${r.world.orgs[this.org]}, ${userId}, ${this.c.title}, ${this.c.description}, ${this.c.location}, ${startsAt}, ${endsAt}, ${this.c.timeZone})
      returning id`);
    m.appts.push({ id, org: this.org, cancelled: false, deleted: false });
    count(r, 'create');
  }
  toString = () => `create(${this.org}, user ${this.user}, ${JSON.stringify(this.c)})`;
}

class Update implements Cmd {
  constructor(readonly pick: number, readonly c: Content) {}
  check = (m: Readonly<Model>) => alive(m).length > 0;
  async run(m: Model, r: Real) {
    const a = pickFrom(alive(m), this.pick);
    const sets = [];
    if (this.c.title !== undefined) sets.push(sql.fragment`title = ${this.c.title}`);
    if (this.c.description !== undefined) sets.push(sql.fragment`description = ${this.c.description}`);
    if (this.c.location !== undefined) sets.push(sql.fragment`location = ${this.c.location}`);
    if (this.c.timeZone !== undefined) sets.push(sql.fragment`time_zone = ${this.c.timeZone}`);
    if (this.c.startMinutes !== undefined || this.c.durationMinutes !== undefined) {
      const { startsAt, endsAt } = instants(this.c);
      sets.push(sql.fragment`starts_at = ${startsAt}, ends_at = ${endsAt}`);
    }
    if (sets.length === 0) return;
    await t.db.query(sql.unsafe`update appointments set ${sql.join(sets, sql.fragment`, `)} where id = ${a.id}`);
    count(r, 'update');
  }
  toString = () => `update(#${this.pick}, ${JSON.stringify(this.c)})`;
}

class SetStatus implements Cmd {
  constructor(readonly pick: number, readonly cancel: boolean) {}
  check = (m: Readonly<Model>) => alive(m).some((a) => a.cancelled !== this.cancel);
  async run(m: Model, r: Real) {
    const a = pickFrom(alive(m).filter((x) => x.cancelled !== this.cancel), this.pick);
    await t.db.query(sql.unsafe`update appointments set status = ${this.cancel ? 'cancelled' : 'scheduled'} where id = ${a.id}`);
    a.cancelled = this.cancel;
    count(r, this.cancel ? 'cancel' : 'restore');
  }
  toString = () => `${this.cancel ? 'cancel' : 'restore'}(#${this.pick})`;
}

class Delete implements Cmd {
  constructor(readonly pick: number) {}
  check = (m: Readonly<Model>) => alive(m).length > 0;
  async run(m: Model, r: Real) {
    const a = pickFrom(alive(m), this.pick);
    await t.db.query(sql.unsafe`delete from appointments where id = ${a.id}`);
    a.deleted = true;
    count(r, 'delete');
  }
  toString = () => `delete(#${this.pick})`;
}

let handEdits = 0;
/** Someone deletes the event in Google Calendar's UI, then the clinic edits the appointment. */
class DeleteInGoogle implements Cmd {
  constructor(readonly pick: number) {}
  check = (m: Readonly<Model>) => alive(m).length > 0;
  async run(m: Model, r: Real) {
    const a = pickFrom(alive(m), this.pick);
    for (const e of liveByAppointment(emu.control).get(a.id) ?? []) emu.control.deleteEventAsUser(e.calendarId, e.id);
    handEdits += 1;
    await t.db.query(sql.unsafe`update appointments set title = ${`Edited after a UI delete ${handEdits}`} where id = ${a.id}`);
    count(r, 'delete_in_google');
  }
  toString = () => `deleteInGoogleThenEdit(#${this.pick})`;
}

class Reassign implements Cmd {
  constructor(readonly pick: number, readonly user: number | null) {}
  check = (m: Readonly<Model>) => alive(m).length > 0;
  async run(m: Model, r: Real) {
    const a = pickFrom(alive(m), this.pick);
    const userId = this.user === null ? null : r.world.users.filter((u) => u.org === a.org)[this.user]!.id;
    await t.db.query(sql.unsafe`update appointments set assigned_user_id = ${userId} where id = ${a.id}`);
    count(r, 'reassign');
  }
  toString = () => `reassign(#${this.pick}, user ${this.user})`;
}

class ChangeCalendar implements Cmd {
  constructor(readonly integration: number, readonly calendar: number) {}
  check = () => true;
  async run(_m: Model, r: Real) {
    const i = r.world.integrations[this.integration]!;
    await t.db.query(sql.unsafe`update calendar_integrations set calendar_id = ${pickFrom(i.calendars, this.calendar)} where id = ${i.id}`);
    count(r, 'calendar');
  }
  toString = () => `calendar(integration ${this.integration}, #${this.calendar})`;
}

async function syncOn(i: Integration): Promise<void> {
  await t.db.query(sql.unsafe`update calendar_integrations set sync_enabled = true where id = ${i.id}`);
  // "Sync now", as the API's route does it (a running job is joined, not doubled).
  await t.db.query(sql.unsafe`
    insert into sync_backlog (organisation_id, integration_id, reason, since) values (${i.organisationId}, ${i.id}, 'sync_now', null)
    on conflict (integration_id) where completed_at is null do nothing`);
}

class ToggleSync implements Cmd {
  constructor(readonly integration: number) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const i = r.world.integrations[this.integration]!;
    if (m.syncOff.has(this.integration)) {
      await syncOn(i);
      m.syncOff.delete(this.integration);
      count(r, 'sync_on');
    } else {
      await t.db.query(sql.unsafe`update calendar_integrations set sync_enabled = false where id = ${i.id}`);
      m.syncOff.add(this.integration);
      count(r, 'sync_off');
    }
  }
  toString = () => `toggleSync(integration ${this.integration})`;
}

type FaultKind = '503' | 'drop-POST' | 'drop-PATCH' | 'drop-DELETE' | '429';
class Fault implements Cmd {
  constructor(readonly kind: FaultKind, readonly times: number) {}
  check = () => true;
  async run(_m: Model, r: Real) {
    const pathPrefix = '/calendar/v3/';
    if (this.kind === '503') emu.control.addFault({ pathPrefix, status: 503, count: this.times });
    else if (this.kind === '429') emu.control.addFault({ pathPrefix, status: 429, reason: 'rateLimitExceeded', count: 1, retryAfterS: 1 });
    else emu.control.addFault({ pathPrefix, method: this.kind.slice(5), dropAfterCommit: true, count: Math.min(this.times, 2) });
    count(r, `fault ${this.kind}`);
  }
  toString = () => `fault(${this.kind} x${this.times})`;
}

class KillRelay implements Cmd {
  check = (m: Readonly<Model>) => m.kills < 2;
  async run(m: Model, r: Real) {
    const victim = await s.killOne();
    if (!victim) return;
    m.kills += 1;
    r.pending.push(s.add());
    count(r, 'kill');
  }
  toString = () => 'kill -9 a relay (replacement started)';
}

class Pause implements Cmd {
  constructor(readonly ms: number) {}
  check = () => true;
  async run() {
    await sleep(this.ms);
  }
  toString = () => `pause(${this.ms} ms)`;
}

const pick = fc.nat(1_000);
const create = fc
  .tuple(fc.constantFrom<'A' | 'B'>('A', 'B'), fc.option(fc.constantFrom(0, 1), { nil: null }), fullContent)
  .map(([o, u, c]) => new Create(o, u, c));
const commandArbs: fc.Arbitrary<Cmd>[] = [
  create,
  create,
  fc.tuple(pick, partialContent).map(([p, c]) => new Update(p, c)),
  fc.tuple(pick, partialContent).map(([p, c]) => new Update(p, c)),
  pick.map((p) => new SetStatus(p, true)),
  pick.map((p) => new SetStatus(p, false)),
  pick.map((p) => new Delete(p)),
  pick.map((p) => new DeleteInGoogle(p)),
  fc.tuple(pick, fc.option(fc.constantFrom(0, 1), { nil: null })).map(([p, u]) => new Reassign(p, u)),
  fc.tuple(fc.constantFrom(0, 1, 2), pick).map(([i, c]) => new ChangeCalendar(i, c)),
  fc.constantFrom(0, 1, 2).map((i) => new ToggleSync(i)),
  fc.tuple(fc.constantFrom<FaultKind>('503', 'drop-POST', 'drop-PATCH', 'drop-DELETE', '429'), fc.integer({ min: 1, max: 4 })).map(([k, n]) => new Fault(k, n)),
  fc.constant(new KillRelay()),
  fc.integer({ min: 0, max: 400 }).map((ms) => new Pause(ms)),
];

// --------------------------------------------------------------------------------- the test

describe('model-based: random changes, faults and relay kills always converge', () => {
  const numRuns = size(6, 40);
  const maxCommands = size(30, 60);
  test(`${numRuns} random runs of up to ${maxCommands} commands`, { timeout: LARGE ? 60 * 60_000 : 300_000 }, async () => {
    const seed = process.env.CHAOS_SEED ? Number(process.env.CHAOS_SEED) : Date.now() % 2 ** 31;
    console.log(`model seed ${seed} (replay: CHAOS_SEED=${seed})`);
    const totals: Record<string, number> = {};
    const converge: number[] = [];
    let run = 0;
    const insertsBefore = insertsDone(emu.control);
    const started = Date.now();
    const oneRun = async (tombstoneWrites: 'allow' | 'forbidden', prelude: Cmd[], cmds: Cmd[]) => {
      run += 1;
      emu.control.setConfig({ tombstoneWrites });
      const world = await createWorld();
      const real: Real = { world, pending: [], stats: {} };
      const model: Model = { appts: [], syncOff: new Set(), kills: 0 };
      await fc.asyncModelRun(() => ({ model, real }), [...prelude, ...cmds]);
      await Promise.all(real.pending);
      emu.control.clearFaults();
      // Sync that is still off at the end: turn it back on and press Sync now.
      for (const i of model.syncOff) await syncOn(world.integrations[i]!);
      const quietStart = Date.now();
      try {
        await waitQuiet(t.db, { timeoutMs: 120_000, what: `model run ${run}` });
        converge.push(Date.now() - quietStart);
        await assertInvariant(t.db, emu.control, { supervisor: s, label: `model run ${run}, seed ${seed}` });
      } catch (error) {
        // fast-check reports the commands; this is what went wrong with them.
        console.log(`model run ${run} (tombstoneWrites ${tombstoneWrites}) failed: ${(error as Error).message}`);
        throw error;
      }
      for (const [k, v] of Object.entries(real.stats)) totals[k] = (totals[k] ?? 0) + v;
    };
    await fc.assert(
      fc.asyncProperty(
        // Google either revives a deleted event on patch, or refuses (403) so a new id is needed.
        fc.constantFrom<'allow' | 'forbidden'>('allow', 'forbidden'),
        // A few appointments first, so that every run has something to change, then the commands
        // (a plain array rather than fc.commands: its runs start tiny, and shrinking is off anyway).
        fc.array(create, { minLength: 3, maxLength: 8 }),
        fc.array(fc.oneof(...commandArbs), { minLength: Math.floor(maxCommands / 2), maxLength: maxCommands, size: 'max' }),
        oneRun,
      ),
      { numRuns, seed, endOnFailure: true, verbose: 1, ...(process.env.CHAOS_PATH ? { path: process.env.CHAOS_PATH } : {}) },
    );
    emu.control.setConfig({ tombstoneWrites: 'allow' });
    const duplicates = (await assertInvariant(t.db, emu.control)).duplicates;
    figures('model', {
      seed,
      runs: run,
      commands: totals,
      eventsCreated: insertsDone(emu.control) - insertsBefore,
      duplicates,
      convergeMsMax: Math.max(...converge),
      convergeMsAvg: Math.round(converge.reduce((a, b) => a + b, 0) / converge.length),
      totalMs: Date.now() - started,
    });
  });
});

describe('regressions the model found', () => {
  test('target calendar switched A -> B -> A on the same account: the event moves back (409 on the move is not fatal)', async () => {
    const world = await createWorld();
    const org = world.integrations[0]!;
    const [primary, second] = org.calendars as [string, string];
    const id = await t.db.oneFirst(sql.type(z.object({ id: z.string() }))`
      insert into appointments (organisation_id, title, starts_at, ends_at) values (${world.orgs.A}, 'Back and forth', ${new Date(BASE).toISOString()},
             ${new Date(BASE + 1_800_000).toISOString()}) returning id`);
    for (const calendar of [second, primary, second]) {
      await t.db.query(sql.unsafe`update calendar_integrations set calendar_id = ${calendar} where id = ${org.id}`);
      await waitQuiet(t.db, { timeoutMs: 30_000 });
      const report = await assertInvariant(t.db, emu.control, { supervisor: s, label: `moved to ${calendar}` });
      assert.equal(report.duplicates, 0);
      assert.equal(
        (emu.control.events(calendar) as { id: string; status: string }[]).filter((e) => e.status !== 'cancelled').length,
        1,
        `the event is live in ${calendar}`,
      );
    }
    assert.ok(id);
  });
});

