// The outbox is filled by triggers in the writer's own transaction: plain SQL writes are
// captured exactly like API writes, nothing is captured for a rolled-back transaction, and
// notifications are sent per statement (folded per transaction), never per row.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, beforeEach, describe, test } from 'node:test';
import type pg from 'pg';
import { z } from 'zod';
import { sql } from '../../src/shared/db';
import { createTestDatabase, pgClient, type TestDatabase } from '../helpers/db';
import { createAppointment, createIntegration, createOrganisation, createUser, outboxRows } from '../helpers/fixtures';

let t: TestDatabase;
let listener: pg.Client;
let notifications: string[] = [];

before(async () => {
  t = await createTestDatabase();
  listener = await pgClient(t.url);
  listener.on('notification', (n) => notifications.push(n.channel));
  await listener.query('listen sync_outbox');
});
after(async () => {
  await listener.end();
  await t.drop();
});
beforeEach(async () => {
  await t.db.query(sql.unsafe`truncate sync_outbox, sync_backlog`);
  notifications = [];
});

/** Notifications are delivered asynchronously: give them time to arrive before counting. */
async function notificationsAfter(ms = 300): Promise<number> {
  await sleep(ms);
  return notifications.length;
}

describe('appointments capture', () => {
  test('a plain INSERT enqueues one insert row and notifies', async () => {
    const org = await createOrganisation(t.db);
    const id = await createAppointment(t.db, org);
    const rows = await outboxRows(t.db);
    assert.deepEqual(
      rows.map((r) => [r.organisation_id, r.appointment_id, r.operation, r.priority]),
      [[org, id, 'insert', 0]],
    );
    assert.equal(await notificationsAfter(), 1);
  });

  test('an UPDATE of each synced column enqueues one update row', async () => {
    const org = await createOrganisation(t.db);
    const user = await createUser(t.db, org);
    const id = await createAppointment(t.db, org);
    const changes = [
      sql.fragment`title = 'Changed'`,
      sql.fragment`description = 'Bring the X-rays'`,
      sql.fragment`location = 'Room 2'`,
      sql.fragment`starts_at = starts_at - interval '1 hour'`,
      sql.fragment`ends_at = ends_at + interval '1 hour'`,
      sql.fragment`time_zone = 'Asia/Tokyo'`,
      sql.fragment`assigned_user_id = ${user}`,
      sql.fragment`status = 'cancelled'`,
    ];
    await t.db.query(sql.unsafe`truncate sync_outbox`);
    for (const change of changes) {
      await t.db.query(sql.unsafe`update appointments set ${change} where id = ${id}`);
    }
    const rows = await outboxRows(t.db);
    assert.equal(rows.length, changes.length);
    assert.ok(rows.every((r) => r.operation === 'update' && r.appointment_id === id));
  });

  test('a cancel is captured as an update to status cancelled', async () => {
    const org = await createOrganisation(t.db);
    const id = await createAppointment(t.db, org);
    await t.db.query(sql.unsafe`truncate sync_outbox`);
    await t.db.query(sql.unsafe`update appointments set status = 'cancelled' where id = ${id}`);
    assert.deepEqual((await outboxRows(t.db)).map((r) => r.operation), ['update']);
  });

  test('a hard DELETE keeps what the relay needs to delete the event', async () => {
    const org = await createOrganisation(t.db);
    const user = await createUser(t.db, org);
    const id = await createAppointment(t.db, org, { assignedUserId: user, title: 'To delete' });
    await t.db.query(sql.unsafe`update appointments set external_event_id = 'abcdef12345' where id = ${id}`);
    await t.db.query(sql.unsafe`truncate sync_outbox`);
    await t.db.query(sql.unsafe`delete from appointments where id = ${id}`);
    const rows = await outboxRows(t.db);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.operation, 'delete');
    assert.equal(rows[0]!.appointment_id, id);
    assert.deepEqual(rows[0]!.snapshot, {
      organisation_id: org,
      assigned_user_id: user,
      title: 'To delete',
      status: 'scheduled',
      external_event_id: 'abcdef12345',
    });
  });

  test('updates that change no synced column enqueue nothing (no relay loop)', async () => {
    const org = await createOrganisation(t.db);
    const id = await createAppointment(t.db, org);
    await t.db.query(sql.unsafe`truncate sync_outbox`);
    await sleep(300); // let the insert's own notification arrive before counting from zero
    notifications = [];
    // What the relay writes, what a toucher writes, and a no-op rewrite of synced values.
    await t.db.query(sql.unsafe`
      update appointments set external_event_id = 'abc12345', sync_status = 'synced', last_synced_at = now(), last_error = null
      where id = ${id}`);
    await t.db.query(sql.unsafe`update appointments set updated_at = now() + interval '1 minute' where id = ${id}`);
    await t.db.query(sql.unsafe`update appointments set title = title, starts_at = starts_at where id = ${id}`);
    assert.equal((await outboxRows(t.db)).length, 0);
    assert.equal(await notificationsAfter(), 0);
    const status = await t.db.oneFirst(sql.unsafe`select sync_status from appointments where id = ${id}`);
    assert.equal(status, 'synced', 'a write of no synced column leaves sync_status alone');
  });

  test('a synced change bumps updated_at and sets sync_status back to pending', async () => {
    const org = await createOrganisation(t.db);
    const id = await createAppointment(t.db, org);
    await t.db.query(sql.unsafe`
      update appointments set sync_status = 'synced', updated_at = '2020-01-01T00:00:00Z' where id = ${id}`);
    await t.db.query(sql.unsafe`update appointments set title = 'Moved' where id = ${id}`);
    const row = await t.db.one(
      sql.type(z.object({ sync_status: z.string(), recent: z.boolean() }))`
        select sync_status, updated_at > now() - interval '1 minute' as recent from appointments where id = ${id}`,
    );
    assert.deepEqual(row, { sync_status: 'pending', recent: true });
  });

  test('a rolled-back transaction leaves no outbox row and sends no notification', async () => {
    const org = await createOrganisation(t.db);
    await t.db.query(sql.unsafe`truncate sync_outbox`);
    await sleep(200);
    notifications = [];
    await assert.rejects(
      t.db.transaction(async (tx) => {
        await createAppointment(tx as never, org);
        throw new Error('backend gave up');
      }),
      /backend gave up/,
    );
    assert.equal((await outboxRows(t.db)).length, 0);
    assert.equal(await notificationsAfter(), 0);
  });

  test('a listener is notified only after COMMIT, once for several statements', async () => {
    const org = await createOrganisation(t.db);
    await sleep(200);
    notifications = [];
    const writer = await pgClient(t.url);
    try {
      await writer.query('begin');
      for (let i = 0; i < 3; i++) {
        await writer.query(
          `insert into appointments (organisation_id, title, starts_at, ends_at) values ($1, 'x', now(), now() + interval '1 hour')`,
          [org],
        );
      }
      await writer.query(`update appointments set title = 'y' where organisation_id = $1`, [org]);
      assert.equal(await notificationsAfter(300), 0, 'nothing before commit');
      await writer.query('commit');
      assert.equal(await notificationsAfter(300), 1, 'one notification for the whole transaction');
    } finally {
      await writer.end();
    }
    assert.equal((await outboxRows(t.db)).length, 6);
  });

  test('a 10,000-row UPDATE captures 10,000 rows with a single notification', async () => {
    const org = await createOrganisation(t.db);
    await t.db.query(sql.unsafe`
      insert into appointments (organisation_id, title, starts_at, ends_at)
      select ${org}, 'Bulk ' || g, now() + g * interval '1 hour', now() + g * interval '1 hour' + interval '30 minutes'
      from generate_series(1, 10000) g`);
    await sleep(300);
    await t.db.query(sql.unsafe`truncate sync_outbox`);
    notifications = [];
    await t.db.query(sql.unsafe`update appointments set location = 'Annex' where organisation_id = ${org}`);
    const count = await t.db.oneFirst(sql.unsafe`select count(*)::int from sync_outbox where operation = 'update'`);
    assert.equal(count, 10000);
    assert.equal(await notificationsAfter(500), 1);
  });
});

describe('calendar_integrations capture', () => {
  const backlog = () =>
    t.db.any(
      sql.type(z.object({ integration_id: z.string(), reason: z.string(), cursor_appointment_id: z.string().nullable() }))`
        select integration_id, reason, cursor_appointment_id from sync_backlog where completed_at is null order by id`,
    );

  test('a new integration, a target calendar change and a sync toggle each start (or restart) one backlog job', async () => {
    const org = await createOrganisation(t.db);
    const integration = await createIntegration(t.db, org);
    assert.deepEqual(await backlog(), [{ integration_id: integration, reason: 'integration_changed', cursor_appointment_id: null }]);
    await t.db.query(sql.unsafe`update sync_backlog set cursor_appointment_id = gen_random_uuid()`);
    await t.db.query(sql.unsafe`update calendar_integrations set calendar_id = 'team@group.calendar.google.com' where id = ${integration}`);
    await t.db.query(sql.unsafe`update calendar_integrations set sync_enabled = false where id = ${integration}`);
    const jobs = await backlog();
    assert.equal(jobs.length, 1, 'a running job is restarted, not doubled');
    assert.equal(jobs[0]!.cursor_appointment_id, null);
    assert.ok((await notificationsAfter()) >= 1);
  });

  test('bookkeeping updates (last_sync_at, last_error) start nothing', async () => {
    const org = await createOrganisation(t.db);
    const integration = await createIntegration(t.db, org);
    await t.db.query(sql.unsafe`truncate sync_backlog`);
    await t.db.query(sql.unsafe`update calendar_integrations set last_sync_at = now(), last_error = 'x' where id = ${integration}`);
    assert.deepEqual(await backlog(), []);
  });

  test('reconnecting releases the rows that waited for it', async () => {
    const org = await createOrganisation(t.db);
    const integration = await createIntegration(t.db, org);
    await createAppointment(t.db, org);
    await t.db.query(sql.unsafe`update calendar_integrations set connection_status = 'needs_reconnect' where id = ${integration}`);
    await t.db.query(sql.unsafe`
      update sync_outbox set waiting_for_integration_id = ${integration}, run_at = now() + interval '1 day'`);
    await t.db.query(sql.unsafe`update calendar_integrations set connection_status = 'active' where id = ${integration}`);
    const waiting = await t.db.oneFirst(sql.unsafe`
      select count(*)::int from sync_outbox where waiting_for_integration_id is not null or run_at > now()`);
    assert.equal(waiting, 0);
  });
});
