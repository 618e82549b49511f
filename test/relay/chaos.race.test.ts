// Chaos: several relay processes racing on the same appointments, and a burst during which one
// relay is killed with SIGKILL and replaced. Emulator latency 50-200 ms per call.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { z } from 'zod';
import { sql } from '../../src/shared/db';
import { startEmulator, type RunningEmulator } from '../emulator/index';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { createOrganisation } from '../helpers/fixtures';
import { connectGoogle } from '../helpers/google';
import {
  bulkCreate,
  convergeAndCheck,
  duplicateCount,
  figures,
  insertsDone,
  latencyJitter,
  liveByAppointment,
  size,
  sleep,
  Supervisor,
  waitQuiet,
  TEST_TIMEOUT,
} from '../helpers/chaos';

let t: TestDatabase;
let emu: RunningEmulator;
const supervisors: Supervisor[] = [];
const stops: (() => void)[] = [];

before(async () => {
  t = await createTestDatabase();
  emu = await startEmulator();
  emu.control.setConfig({ userRateLimitPerMinute: 1_000_000, projectRateLimitPerMinute: 1_000_000 });
});
after(async () => {
  for (const stop of stops) stop();
  await Promise.all(supervisors.map((s) => s.stop()));
  await emu.close();
  await t.drop();
});

function supervisor(): Supervisor {
  const s = new Supervisor({ databaseUrl: t.url, emulatorUrl: emu.url, config: { RELAY_LEASE_MS: 2_000 }, maxRestarts: 5 });
  supervisors.push(s);
  return s;
}

function jitter(): () => void {
  const stop = latencyJitter(emu.control, 50, 200);
  stops.push(stop);
  return stop;
}

let n = 0;
async function clinic() {
  n += 1;
  const email = `race${n}-${Date.now()}@gmail.test`;
  emu.control.addAccount({ email });
  const org = await createOrganisation(t.db, `Race clinic ${n}`);
  await connectGoogle(t.db, emu.url, { organisationId: org, email });
  return { org, email };
}

const rand = (max: number) => Math.floor(Math.random() * max);

describe('two relays racing on one appointment', () => {
  test('update -> update -> cancel ends with no live event; update -> update ends with the final content', { timeout: TEST_TIMEOUT }, async () => {
    const s = supervisor();
    await s.start(2);
    const stopJitter = jitter();
    try {
      const { org } = await clinic();
      const count = size(10, 60);
      const ids = await bulkCreate(t.db, org, count, { prefix: 'Race' });
      await waitQuiet(t.db, { timeoutMs: 60_000, what: 'initial sync' });
      const cancelled = ids.slice(0, count / 2);
      const updated = ids.slice(count / 2);
      const started = Date.now();
      // Each appointment gets its own sequence; gaps of 0-150 ms let the two relays pick up
      // different steps of the same appointment while Google answers in 50-200 ms.
      await Promise.all([
        ...cancelled.map(async (id, i) => {
          await sleep(rand(100));
          await t.db.query(sql.unsafe`update appointments set title = ${`Cancel-me ${i} v1`} where id = ${id}`);
          await sleep(rand(150));
          await t.db.query(sql.unsafe`update appointments set title = ${`Cancel-me ${i} v2`}, location = 'Room 9' where id = ${id}`);
          await sleep(rand(150));
          await t.db.query(sql.unsafe`update appointments set status = 'cancelled' where id = ${id}`);
        }),
        ...updated.map(async (id, i) => {
          await sleep(rand(100));
          await t.db.query(sql.unsafe`update appointments set title = ${`Keep ${i} v1`} where id = ${id}`);
          await sleep(rand(150));
          await t.db.query(sql.unsafe`
            update appointments set title = ${`Keep ${i} v2`}, starts_at = starts_at + interval '1 day', ends_at = ends_at + interval '1 day',
                                    time_zone = 'America/New_York'
            where id = ${id}`);
        }),
      ]);
      const report = await convergeAndCheck(t.db, emu.control, { supervisor: s, label: 'race', timeoutMs: 60_000 });
      const live = liveByAppointment(emu.control);
      for (const id of cancelled) assert.equal(live.get(id)?.length ?? 0, 0, `cancelled ${id} has no live event`);
      for (const id of updated) assert.match(live.get(id)?.[0]?.summary ?? '', /^Keep \d+ v2$/);
      assert.equal(report.duplicates, 0);
      figures('race', { appointments: count, duplicates: report.duplicates, convergeMs: Date.now() - started });
    } finally {
      stopJitter();
      assert.deepEqual(await s.stop(), []);
    }
  });
});

describe('a burst with a relay killed by SIGKILL', () => {
  test('2-4 relays, one kill -9 mid-burst and a replacement: converges with no duplicate', { timeout: TEST_TIMEOUT }, async () => {
    const relays = size(3, 4);
    const creates = size(300, 2000);
    const updates = size(100, 700);
    const s = supervisor();
    await s.start(relays);
    const stopJitter = jitter();
    try {
      const clinics = await Promise.all([clinic(), clinic(), clinic()]);
      const insertsBefore = insertsDone(emu.control);
      const chunk = 20;
      const chunks = creates / chunk;
      const ids: string[] = [];
      let killedWithLeases = -1;
      let victim = '';
      let replacement: Promise<unknown> = Promise.resolve();
      const started = Date.now();
      for (let c = 0; c < chunks; c++) {
        const { org } = clinics[c % clinics.length]!;
        ids.push(...(await bulkCreate(t.db, org, chunk, { prefix: `Burst ${c}` })));
        // Updates trail the creates: some hit synced events, some coalesce with pending inserts.
        if (c >= 2) {
          const per = Math.ceil(updates / (chunks - 2));
          const targets = Array.from({ length: per }, () => ids[rand(ids.length)]!);
          await t.db.query(sql.unsafe`
            update appointments set title = title || ' *', location = 'Updated ' || ${c}
            where id = any(${sql.array(targets, 'uuid')})`);
        }
        if (c === Math.floor(chunks / 2)) {
          // kill -9 the relay holding the most leases right now, then start a replacement.
          const leases = await t.db.any(sql.type(z.object({ locked_by: z.string(), n: z.number(), appointments: z.number() }))`
            select locked_by, count(*)::int as n, count(distinct appointment_id)::int as appointments
            from sync_outbox where locked_until > now() group by locked_by order by n desc`);
          if (process.env.CHAOS_DEBUG) console.log('leases at kill', JSON.stringify(leases));
          const busiest = leases[0]?.locked_by;
          const killed = await s.killOne((alive) => alive.find((r) => r.id === busiest) ?? alive[0]);
          victim = killed?.id ?? '';
          killedWithLeases = leases[0]?.n ?? 0;
          replacement = s.add();
        }
        await sleep(size(120, 60));
      }
      const burstMs = Date.now() - started;
      await replacement;
      const report = await convergeAndCheck(t.db, emu.control, { supervisor: s, label: 'burst', timeoutMs: size(90_000, 300_000) });
      assert.equal(report.duplicates, 0, 'no duplicate event');
      assert.equal(duplicateCount(emu.control), 0);
      assert.ok(victim, 'a relay was killed');
      assert.equal(s.alive().length, relays, 'the replacement runs');
      if (process.env.CHAOS_DEBUG) console.log(JSON.stringify(s.messageCounts()));
      figures('burst-kill9', {
        relays,
        creates,
        updates,
        eventsCreated: insertsDone(emu.control) - insertsBefore,
        duplicates: report.duplicates,
        leasesHeldByKilledRelay: killedWithLeases,
        burstMs,
        convergeAfterBurstMs: report.convergeMs,
        suspectsRunAlone: s.logCount(/running it alone/),
        totalMs: Date.now() - started,
      });
    } finally {
      stopJitter();
      assert.deepEqual(await s.stop(), []);
    }
  });
});
