// Chaos: relay processes killed (SIGKILL) at each boundary of a sync, and a poison row that
// kills every relay touching it. Relays run as separate processes with the crash hooks of
// relay/crashPoints.ts; a supervisor replaces the dead ones.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { z } from 'zod';
import { sql } from '../../src/shared/db';
import { startEmulator, type RunningEmulator } from '../emulator/index';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { createAppointment, createOrganisation } from '../helpers/fixtures';
import { connectGoogle, waitFor } from '../helpers/google';
import { bulkCreate, convergeAndCheck, figures, insertsDone, size, sleep, Supervisor, type SupervisorOptions, TEST_TIMEOUT } from '../helpers/chaos';

let t: TestDatabase;
let emu: RunningEmulator;
const supervisors: Supervisor[] = [];

before(async () => {
  t = await createTestDatabase();
  emu = await startEmulator();
  // The account quota is not under test here (chaos.google covers rate limits).
  emu.control.setConfig({ userRateLimitPerMinute: 1_000_000, projectRateLimitPerMinute: 1_000_000 });
});
after(async () => {
  await Promise.all(supervisors.map((s) => s.stop()));
  await emu.close();
  await t.drop();
});

function supervisor(opts: Omit<SupervisorOptions, 'databaseUrl' | 'emulatorUrl'>): Supervisor {
  const s = new Supervisor({ databaseUrl: t.url, emulatorUrl: emu.url, ...opts, config: { RELAY_LEASE_MS: 2_000, ...opts.config } });
  supervisors.push(s);
  return s;
}

let n = 0;
async function clinic() {
  n += 1;
  const email = `crash${n}-${Date.now()}@gmail.test`;
  emu.control.addAccount({ email });
  const org = await createOrganisation(t.db, `Crash clinic ${n}`);
  const integration = await connectGoogle(t.db, emu.url, { organisationId: org, email });
  return { org, email, integration };
}

const POINTS = ['after_claim', 'after_load', 'after_google', 'before_commit'] as const;

/**
 * One relay with the crash point armed at rate 1 takes the pending work and dies on its first
 * pass through the point; a clean replacement must then converge to the invariant.
 */
async function crashThenConverge(point: (typeof POINTS)[number], label: string) {
  const s = supervisor({ env: { RELAY_CRASH_AT: point, RELAY_CRASH_RATE: '1' }, replacementEnv: {}, maxRestarts: 1 });
  const started = Date.now();
  await s.start(1);
  await waitFor(async () => s.crashes === 1, 20_000, `the relay to crash at ${point}`);
  await waitFor(async () => s.alive().length === 1, 20_000, 'the replacement relay');
  const report = await convergeAndCheck(t.db, emu.control, { supervisor: s, label: `${point}, ${label}`, timeoutMs: 60_000 });
  const bad = await s.stop();
  assert.deepEqual(bad, [], 'the replacement drains and exits 0 on SIGTERM');
  assert.deepEqual(s.unexpectedExits, []);
  return { ...report, totalMs: Date.now() - started };
}

describe('a relay killed at each boundary', () => {
  for (const point of POINTS) {
    test(`killed ${point}: creates, then updates / cancels / deletes, converge with no duplicate`, { timeout: TEST_TIMEOUT }, async () => {
      const { org } = await clinic();
      const count = size(6, 40);
      const insertsBefore = insertsDone(emu.control);
      // Stage 1: creates (one of them already updated before any relay saw it).
      const ids = await bulkCreate(t.db, org, count, { prefix: `Crash ${point}` });
      await t.db.query(sql.unsafe`update appointments set title = title || ' (edited)' where id = ${ids[0]!}`);
      const created = await crashThenConverge(point, 'creates');
      assert.equal(created.duplicates, 0);

      // Stage 2: updates of content and time, a cancellation, a hard delete, and a new one.
      const [a, b, c, d] = ids as [string, string, string, string];
      await t.db.query(sql.unsafe`update appointments set title = 'Moved later', starts_at = starts_at + interval '2 hours',
                                   ends_at = ends_at + interval '2 hours', time_zone = 'Asia/Tokyo' where id = ${a}`);
      await t.db.query(sql.unsafe`update appointments set description = null, location = 'Annex' where id = ${b}`);
      await t.db.query(sql.unsafe`update appointments set status = 'cancelled' where id = ${c}`);
      await t.db.query(sql.unsafe`delete from appointments where id = ${d}`);
      const extra = await createAppointment(t.db, org, { title: `Late ${point}` });
      const updated = await crashThenConverge(point, 'updates, cancel, delete');
      assert.equal(updated.duplicates, 0);
      const live = await t.db.oneFirst(sql.type(z.object({ n: z.number() }))`
        select count(*)::int as n from appointments where organisation_id = ${org} and status = 'scheduled'`);
      assert.equal(live, count - 2 + 1);
      assert.ok(extra);
      const adopted = emu.control.calls().filter((c) => c.method === 'POST' && /\/events$/.test(c.path) && c.status === 409).length;
      figures(`crash-${point}`, {
        appointments: count + 1,
        eventsCreated: insertsDone(emu.control) - insertsBefore,
        duplicates: updated.duplicates,
        convergeMsCreates: created.totalMs,
        convergeMsUpdates: updated.totalMs,
        insertConflictsAdoptedSoFar: adopted,
      });
    });
  }
});

describe('a poison row', () => {
  test('crashes every relay that touches it until it is parked after K attempts; the others sync; a new change revives it', { timeout: TEST_TIMEOUT }, async () => {
    const { org } = await clinic();
    const maxAttempts = 3;
    const poison = await createAppointment(t.db, org, { title: 'poison pill' });
    const others = await bulkCreate(t.db, org, size(6, 30), { prefix: 'Healthy' });
    const s = supervisor({
      config: { RELAY_MAX_ATTEMPTS: maxAttempts },
      env: { RELAY_CRASH_AT: 'after_load', RELAY_CRASH_TITLE: 'poison' },
      maxRestarts: 12,
    });
    const started = Date.now();
    await s.start(2);
    await waitFor(
      async () => (await t.db.oneFirst(sql.unsafe`select count(*)::int from sync_outbox where appointment_id = ${poison} and failed_at is not null`)) > 0,
      60_000,
      'the poison row to be parked',
    );
    const parkedAfterMs = Date.now() - started;
    const report = await convergeAndCheck(t.db, emu.control, { supervisor: s, label: 'poison parked', expectParked: [poison], timeoutMs: 60_000 });
    assert.equal(report.liveAppointments, others.length + (await previousLive()), 'every other appointment synced');
    const row = await t.db.one(sql.type(z.object({ sync_status: z.string(), last_error: z.string().nullable() }))`
      select sync_status, last_error from appointments where id = ${poison}`);
    assert.equal(row.sync_status, 'error');
    assert.match(row.last_error ?? '', /gave up after/);
    assert.equal(s.crashes, maxAttempts, 'one crash per attempt, then parked without another');

    // Relays stop dying: the parked row is not claimed again on its own.
    const crashes = s.crashes;
    await sleep(3_000);
    assert.equal(s.crashes, crashes);
    assert.equal(s.alive().length, 2);

    // A new change revives the dead letter (the relays no longer crash on it: no "poison").
    await t.db.query(sql.unsafe`update appointments set title = 'cured pill' where id = ${poison}`);
    const revived = await convergeAndCheck(t.db, emu.control, { supervisor: s, label: 'poison revived', timeoutMs: 30_000 });
    assert.equal(revived.duplicates, 0);
    assert.deepEqual(await s.stop(), []);
    assert.deepEqual(s.unexpectedExits, []);
    figures('poison', { crashes, parkedAfterMs, others: others.length, duplicates: revived.duplicates, reviveMs: revived.convergeMs });
  });
});

/** Scheduled appointments of earlier tests in this file (they stay synced). */
async function previousLive(): Promise<number> {
  return t.db.oneFirst(sql.type(z.object({ n: z.number() }))`
    select count(*)::int as n from appointments where status = 'scheduled' and title not like 'Healthy%' and title not like '%poison%'`);
}
