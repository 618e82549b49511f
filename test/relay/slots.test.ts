// RELAY_CONCURRENCY bounds the Google calls in flight, not the results waiting to be recorded:
// an appointment whose result cannot be recorded yet (a backend transaction holds its row)
// must not keep the relay from calling Google for the others.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import { sql } from '../../src/shared/db';
import { startRelay, type Relay } from '../../relay/relay';
import { startEmulator, type RunningEmulator } from '../emulator/index';
import { createTestDatabase, pgClient, type TestDatabase } from '../helpers/db';
import { createAppointment, createOrganisation } from '../helpers/fixtures';
import { connectGoogle, drained, relayConfig, waitFor } from '../helpers/google';

let t: TestDatabase;
let emu: RunningEmulator;
let relay: Relay;

before(async () => {
  t = await createTestDatabase();
  emu = await startEmulator();
  relay = await startRelay(relayConfig(t.url, emu.url, { RELAY_CONCURRENCY: 1 }));
});
after(async () => {
  await relay.stop();
  await emu.close();
  await t.drop();
});

const Status = z.object({ sync_status: z.string(), title: z.string() });

test('a result waiting for a backend transaction does not hold a call slot (concurrency 1)', async () => {
  const email = `slots-${Date.now()}@gmail.test`;
  emu.control.addAccount({ email });
  const org = await createOrganisation(t.db, 'Slots clinic');
  await connectGoogle(t.db, emu.url, { organisationId: org, email });
  const held = await createAppointment(t.db, org, { title: 'Held' });
  await drained(t.db);

  // The backend is in the middle of changing `held` (its row is locked, uncommitted), while
  // a Retry of `held` is queued: the relay patches the event, then its result must wait.
  const backend = await pgClient(t.url);
  try {
    await backend.query('begin');
    await backend.query(`update appointments set title = 'Held, renamed' where id = $1`, [held]);
    await t.db.query(sql.unsafe`
      insert into sync_outbox (organisation_id, appointment_id, operation) values (${org}, ${held}, 'resync')`);
    await waitFor(async () => emu.control.calls().some((c) => c.method === 'PATCH' && c.path.includes(held.replace(/-/g, ''))), 10_000, 'the retried patch');

    const other = await createAppointment(t.db, org, { title: 'Other' });
    const inserted = await waitFor(
      async () => emu.control.events(email).some((e) => (e as { summary?: string }).summary === 'Other'),
      10_000,
      'the other appointment to reach Google while the first result waits',
    );
    assert.ok(inserted);
    const otherSync = await waitFor(async () => {
      const row = await t.db.one(sql.type(Status)`select sync_status, title from appointments where id = ${other}`);
      return row.sync_status === 'synced' ? row : null;
    });
    assert.equal(otherSync.title, 'Other');
    assert.equal(
      (await t.db.one(sql.type(z.object({ n: z.number() }))`select count(*)::int as n from sync_outbox where appointment_id = ${held}`)).n,
      1,
      "the held appointment's row is still there: its result is not recorded yet",
    );
  } finally {
    await backend.query('commit');
    await backend.end();
  }
  // Once the backend commits, its own change syncs too.
  await drained(t.db);
  const event = emu.control.events(email).find((e) => (e as { id?: string }).id === held.replace(/-/g, '')) as { summary?: string };
  assert.equal(event.summary, 'Held, renamed');
});
