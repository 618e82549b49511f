// The claim query on its own: fairness across tenants, live before backlog, one relay per
// appointment, leases that expire, and rows that wait or are parked.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { z } from 'zod';
import { sql } from '../../src/shared/db';
import { eventIdFor } from '../../relay/google';
import { claimBatch, completeRows, parkRows, retryRows, waitForReconnect } from '../../relay/outbox';
import { createTestDatabase, pgClient, type TestDatabase } from '../helpers/db';
import { createAppointment, createIntegration, createOrganisation } from '../helpers/fixtures';

let t: TestDatabase;
before(async () => {
  t = await createTestDatabase();
});
after(() => t.drop());
beforeEach(async () => {
  await t.db.query(sql.unsafe`truncate sync_outbox, sync_backlog, appointments, calendar_integrations, organisations cascade`);
});

async function bulk(org: string, count: number, title = 'Bulk') {
  await t.db.query(sql.unsafe`
    insert into appointments (organisation_id, title, starts_at, ends_at)
    select ${org}, ${title} || g, now() + g * interval '1 hour', now() + g * interval '1 hour' + interval '30 minutes'
    from generate_series(1, ${count}) g`);
}

describe('claimBatch', () => {
  test("one tenant's 5,000-row burst does not delay another tenant's single change", async () => {
    const big = await createOrganisation(t.db, 'Big');
    const small = await createOrganisation(t.db, 'Small');
    await bulk(big, 5000);
    const lone = await createAppointment(t.db, small);
    const groups = await claimBatch(t.hot, 'relay-a', 10, 30_000);
    assert.equal(groups.length, 10);
    assert.ok(groups.some((g) => g.appointmentId === lone), 'the small tenant is served in the first batch');
  });

  test('live changes of every tenant go before any backlog row', async () => {
    const a = await createOrganisation(t.db, 'A');
    const b = await createOrganisation(t.db, 'B');
    await bulk(a, 50);
    await t.db.query(sql.unsafe`update sync_outbox set priority = 1`); // A's rows are backlog
    const live = await createAppointment(t.db, b);
    const groups = await claimBatch(t.hot, 'relay-a', 1, 30_000);
    assert.deepEqual(groups.map((g) => g.appointmentId), [live]);
  });

  test('all pending rows of an appointment are claimed together, and by one relay only', async () => {
    const org = await createOrganisation(t.db);
    const id = await createAppointment(t.db, org);
    for (let i = 0; i < 3; i++) await t.db.query(sql.unsafe`update appointments set title = ${`t${i}`} where id = ${id}`);
    const [first, second] = await Promise.all([claimBatch(t.hot, 'relay-a', 10, 30_000), claimBatch(t.hot, 'relay-b', 10, 30_000)]);
    const winners = [first, second].filter((g) => g.length > 0);
    assert.equal(winners.length, 1, 'exactly one relay got the appointment');
    assert.equal(winners[0]![0]!.ids.length, 4, 'insert + 3 updates coalesced');
    // A change arriving while it is leased waits for the lease holder, not a second relay.
    await t.db.query(sql.unsafe`update appointments set title = 'later' where id = ${id}`);
    assert.deepEqual(await claimBatch(t.hot, 'relay-c', 10, 30_000), []);
  });

  test("a dead relay's lease runs out and its rows are claimed again, attempts counted", async () => {
    const org = await createOrganisation(t.db);
    const id = await createAppointment(t.db, org);
    const [claimed] = await claimBatch(t.hot, 'relay-dead', 10, 50);
    assert.equal(claimed!.attempts, 1);
    await new Promise((r) => setTimeout(r, 120));
    const [reclaimed] = await claimBatch(t.hot, 'relay-b', 10, 30_000);
    assert.equal(reclaimed!.appointmentId, id);
    assert.equal(reclaimed!.attempts, 2);
    // The dead relay cannot complete rows it no longer owns.
    assert.equal(await t.db.transaction((tx) => completeRows(tx, 'relay-dead', claimed!.ids)), false);
    assert.equal(await t.db.transaction((tx) => completeRows(tx, 'relay-b', reclaimed!.ids)), true);
    assert.equal(await t.db.oneFirst(sql.unsafe`select count(*)::int from sync_outbox`), 0);
  });

  test('backed-off, parked and waiting rows are not claimed on their own; a new change revives them', async () => {
    const org = await createOrganisation(t.db);
    const integration = await createIntegration(t.db, org);
    await t.db.query(sql.unsafe`update calendar_integrations set connection_status = 'needs_reconnect' where id = ${integration}`);
    await t.db.query(sql.unsafe`truncate sync_backlog`);
    const [a, b, c] = [await createAppointment(t.db, org), await createAppointment(t.db, org), await createAppointment(t.db, org)];
    const groups = await claimBatch(t.hot, 'r', 10, 30_000);
    const byId = new Map(groups.map((g) => [g.appointmentId, g.ids]));
    await t.db.transaction(async (tx) => {
      await retryRows(tx, 'r', byId.get(a)!, 60_000, 'HTTP 503');
      await parkRows(tx, 'r', byId.get(b)!, 'Google 400');
      await waitForReconnect(tx, 'r', byId.get(c)!, integration, 'invalid_grant');
    });
    assert.deepEqual(await claimBatch(t.hot, 'r2', 10, 30_000), []);
    const Row = z.object({ attempts: z.number(), failed: z.boolean(), waiting: z.boolean() });
    const c0 = await t.db.one(sql.type(Row)`
      select attempts, failed_at is not null as failed, waiting_for_integration_id is not null as waiting from sync_outbox where appointment_id = ${c}`);
    assert.deepEqual(c0, { attempts: 0, failed: false, waiting: true }, 'waiting does not consume an attempt');
    // Retry / a new change of the parked appointment revives its dead letter with it.
    await t.db.query(sql.unsafe`insert into sync_outbox (organisation_id, appointment_id, operation) values (${org}, ${b}, 'resync')`);
    const revived = await claimBatch(t.hot, 'r2', 10, 30_000);
    assert.equal(revived.length, 1);
    assert.equal(revived[0]!.appointmentId, b);
    assert.equal(revived[0]!.ids.length, 2, 'the parked row comes along and is completed with it');
  });
});

describe('what the claim hands the relay', () => {
  const Link = z.object({ external_event_id: z.string(), external_calendar_id: z.string(), generation: z.number(), sync_status: z.string(), etag: z.string().nullable() });

  test("each appointment's state, and a create's event id recorded before any Google call", async () => {
    const org = await createOrganisation(t.db);
    const integration = await createIntegration(t.db, org, { calendarId: 'clinic@gmail.test' });
    const id = await createAppointment(t.db, org, { title: 'Check-up' });
    const [group] = await claimBatch(t.hot, 'relay-a', 10, 30_000);
    assert.equal(group!.state.appointment?.title, 'Check-up');
    assert.equal(group!.state.target?.id, integration);
    assert.equal(group!.state.link_integration?.id, integration);
    // The id rule is written twice (SQL in the claim, eventIdFor in the relay): they must agree.
    const expected = { external_event_id: eventIdFor(id, 0), external_calendar_id: 'clinic@gmail.test', generation: 0, sync_status: 'pending', etag: null };
    const { integration_id, payload_hash, ...handed } = group!.state.link!;
    assert.deepEqual({ integration_id, payload_hash, ...handed }, { integration_id: integration, payload_hash: null, ...expected });
    const row = await t.db.one(sql.type(Link)`
      select external_event_id, external_calendar_id, generation, sync_status, etag from appointment_external_links where appointment_id = ${id}`);
    assert.deepEqual(row, expected);
  });

  test('no event id is recorded when nothing is to be created', async () => {
    const org = await createOrganisation(t.db);
    const unconnected = await createAppointment(t.db, org); // no integration at all
    const other = await createOrganisation(t.db);
    await createIntegration(t.db, other, { syncEnabled: false });
    const syncOff = await createAppointment(t.db, other);
    const cancelled = await createAppointment(t.db, other);
    await t.db.query(sql.unsafe`update appointments set status = 'cancelled' where id = ${cancelled}`);
    const groups = await claimBatch(t.hot, 'relay-a', 10, 30_000);
    assert.deepEqual(new Set(groups.map((g) => g.appointmentId)), new Set([unconnected, syncOff, cancelled]));
    assert.ok(groups.every((g) => g.state.link === null));
    assert.equal(await t.db.oneFirst(sql.unsafe`select count(*)::int from appointment_external_links`), 0);
  });
});

describe("the claim's plan", () => {
  // A session keeps the claim's plans from its first call (db/migrations/0003). Made while a
  // table looked nearly empty, a plan that read the whole table per row cost no more than a
  // lookup by key, and some sessions got it (db/migrations/0005).
  async function explainedClaims(relayId: string, between: () => Promise<void>) {
    const session = await pgClient(t.url);
    const plans: string[] = [];
    session.on('notice', (n) => plans.push(n.message ?? ''));
    try {
      await session.query(`load 'auto_explain'`);
      await session.query(
        `set auto_explain.log_min_duration = 0; set auto_explain.log_nested_statements = on; set auto_explain.log_level = notice; set auto_explain.log_analyze = on`,
      );
      await session.query(`select * from sync_outbox_claim($1, 16, 30000)`, [relayId]); // plans made here
      await between();
      plans.length = 0;
      const claimed = await session.query(`select * from sync_outbox_claim($1, 16, 30000)`, [relayId]);
      return { claimed: claimed.rowCount ?? 0, plans };
    } finally {
      await session.end();
    }
  }
  const removedByJoinFilter = (plan: string) => Math.max(0, ...[...plan.matchAll(/Rows Removed by Join Filter: (\d+)/g)].map((m) => Number(m[1])));

  test("made while the outbox looked empty, still looks each candidate's appointment up by key", async () => {
    const org = await createOrganisation(t.db);
    await t.db.query(sql.unsafe`vacuum sync_outbox`); // its statistics now say: no rows
    const { claimed, plans } = await explainedClaims('relay-a', async () => {
      await bulk(org, 300);
      await claimBatch(t.hot, 'relay-b', 16, 30_000); // leased rows: the check has something to find
    });
    assert.equal(claimed, 16);
    const choose = plans.find((p) => p.includes('organisations_with_work'));
    assert.ok(choose, 'the choosing statement was explained');
    const lines = choose.split('\n');
    const busy = lines.findIndex((l) => /Index Scan using sync_outbox_appointment on sync_outbox busy/.test(l));
    assert.ok(busy >= 0, `the leased-rows check reads sync_outbox_appointment:\n${choose}`);
    assert.match(lines[busy + 1] ?? '', /Index Cond: \(appointment_id = /, `the check looks the candidate's appointment up:\n${choose}`);
    assert.ok(removedByJoinFilter(choose) < 16, `no row read per candidate only to be filtered out:\n${choose}`);
  });

  test('made while there was one integration, still reads the target integration by id', async () => {
    const org = await createOrganisation(t.db);
    await createIntegration(t.db, org);
    await createAppointment(t.db, org);
    await t.db.query(sql.unsafe`vacuum analyze calendar_integrations`); // its statistics now say: one row
    const { claimed, plans } = await explainedClaims('relay-a', async () => {
      for (let i = 0; i < 300; i++) await createIntegration(t.db, await createOrganisation(t.db, `Clinic ${i}`));
      await createAppointment(t.db, org);
    });
    assert.equal(claimed, 1);
    const state = plans.find((p) => p.includes('lockable'));
    assert.ok(state, 'the state-reading statement was explained');
    // (The view's own scans of calendar_integrations can still read every row: db/migrations/0005.)
    const lines = state.split('\n');
    const byId = lines.flatMap((l, i) => (/Index Scan using \S+ on calendar_integrations i(_1)?\s/.test(l) ? [lines[i + 1] ?? ''] : []));
    assert.equal(byId.length, 2, `the target's and the link's integration are read:\n${state}`);
    for (const cond of byId) assert.match(cond, /Index Cond: \(id = /, `read by id:\n${state}`);
  });
});

describe('sync_outbox_overview', () => {
  test('shows depth, failures and oldest age per organisation', async () => {
    const org = await createOrganisation(t.db, 'Overview clinic');
    await bulk(org, 3);
    await t.db.query(sql.unsafe`update sync_outbox set failed_at = now(), last_error = 'Google 400' where id = (select min(id) from sync_outbox)`);
    const row = await t.db.one(
      sql.type(z.object({ organisation_name: z.string().nullable(), pending: z.number(), failed: z.number(), latest_error: z.string().nullable() }))`
        select organisation_name, pending::int, failed::int, latest_error from sync_outbox_overview where organisation_id = ${org}`,
    );
    assert.deepEqual(row, { organisation_name: 'Overview clinic', pending: 2, failed: 1, latest_error: 'Google 400' });
  });
});
