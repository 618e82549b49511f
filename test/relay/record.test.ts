// Recording results in batches (relay/record.ts): several appointments per statement, a
// relay that lost its leases records nothing, and an appointment row a writer holds is
// recorded alone once the writer commits, without holding up the others or deadlocking.
import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import pg from 'pg';
import { z } from 'zod';
import { sql } from '../../src/shared/db';
import { claimBatch, type ClaimedGroup } from '../../relay/outbox';
import { createRecorder, type Completion } from '../../relay/record';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { createAppointment, createIntegration, createOrganisation } from '../helpers/fixtures';

let t: TestDatabase;
let integration: string;
before(async () => {
  t = await createTestDatabase();
});
after(() => t.drop());
beforeEach(async () => {
  await t.db.query(sql.unsafe`truncate sync_outbox, sync_backlog, appointments, appointment_external_links, calendar_integrations, organisations cascade`);
});

async function claimThree(): Promise<ClaimedGroup[]> {
  const org = await createOrganisation(t.db);
  integration = await createIntegration(t.db, org);
  await t.db.query(sql.unsafe`truncate sync_backlog`);
  for (let i = 0; i < 3; i++) await createAppointment(t.db, org, { title: `Visit ${i}` });
  const groups = await claimBatch(t.hot, 'relay-a', 10, 30_000);
  assert.equal(groups.length, 3);
  return groups;
}

function synced(group: ClaimedGroup): Completion {
  return {
    organisationId: group.organisationId,
    appointmentId: group.appointmentId,
    ids: group.ids,
    status: 'synced',
    link: { integrationId: integration, calendarId: 'primary', eventId: group.appointmentId.replace(/-/g, ''), generation: 0, etag: '"e1"', hash: 'h1' },
  };
}

const State = z.object({ sync_status: z.string(), external_event_id: z.string().nullable(), link_status: z.string().nullable(), etag: z.string().nullable(), rows: z.number() });
const stateOf = (id: string) =>
  t.db.one(sql.type(State)`
    select a.sync_status, a.external_event_id, l.sync_status as link_status, l.etag,
           (select count(*)::int from sync_outbox o where o.appointment_id = a.id) as rows
    from appointments a left join appointment_external_links l on l.appointment_id = a.id where a.id = ${id}`);

test('results of several appointments are recorded together: rows gone, links and V1 columns written', async () => {
  const groups = await claimThree();
  const recorder = createRecorder(t.hot, 'relay-a');
  assert.deepEqual(await Promise.all(groups.map((g) => recorder.complete(synced(g)))), ['recorded', 'recorded', 'recorded']);
  for (const g of groups) {
    assert.deepEqual(await stateOf(g.appointmentId), {
      sync_status: 'synced',
      external_event_id: g.appointmentId.replace(/-/g, ''),
      link_status: 'synced',
      etag: '"e1"',
      rows: 0,
    });
  }
});

test('a relay whose lease was taken over records nothing', async () => {
  const groups = await claimThree();
  const [lost, ...kept] = groups;
  await t.db.query(sql.unsafe`update sync_outbox set locked_by = 'relay-b' where appointment_id = ${lost!.appointmentId}`);
  const recorder = createRecorder(t.hot, 'relay-a');
  assert.deepEqual(await Promise.all(groups.map((g) => recorder.complete(synced(g)))), ['lease_lost', 'recorded', 'recorded']);
  assert.deepEqual(await stateOf(lost!.appointmentId), { sync_status: 'pending', external_event_id: null, link_status: 'pending', etag: null, rows: 1 });
  for (const g of kept) assert.equal((await stateOf(g.appointmentId)).rows, 0);
});

test('an appointment a writer holds is recorded once the writer commits; the others do not wait for it', async () => {
  const groups = await claimThree();
  const [held, ...free] = groups;
  const writer = new pg.Client({ connectionString: t.url });
  await writer.connect();
  try {
    // A backend transaction that has written the appointment and is still open.
    await writer.query('begin');
    await writer.query(`update appointments set description = 'edited' where id = $1`, [held!.appointmentId]);
    const recorder = createRecorder(t.hot, 'relay-a');
    let heldDone = false;
    const heldResult = recorder.complete(synced(held!)).then((r) => {
      heldDone = true;
      return r;
    });
    assert.deepEqual(await Promise.all(free.map((g) => recorder.complete(synced(g)))), ['recorded', 'recorded']);
    for (const g of free) assert.equal((await stateOf(g.appointmentId)).sync_status, 'synced');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(heldDone, false, 'waits for the writer');
    await writer.query('commit');
    assert.equal(await heldResult, 'recorded');
    // The writer's change has its own outbox row: the appointment stays pending for it.
    const after = await stateOf(held!.appointmentId);
    assert.equal(after.rows, 1);
    assert.equal(after.sync_status, 'pending');
  } finally {
    await writer.end();
  }
});
