// Every invariant of the schema is a database constraint: bad rows are refused by PostgreSQL
// itself, whoever writes them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from '../../src/shared/db';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { createAppointment, createIntegration, createOrganisation, createUser } from '../helpers/fixtures';

let t: TestDatabase;
before(async () => {
  t = await createTestDatabase();
});
after(() => t.drop());

/** Runs `fn`, expecting PostgreSQL to refuse it with the given constraint (or message). */
async function refused(fn: () => Promise<unknown>, expected: RegExp) {
  await assert.rejects(fn, (error: Error & { constraint?: string | null; cause?: Error }) => {
    const detail = `${error.message} ${error.constraint ?? ''} ${error.cause?.message ?? ''}`;
    assert.match(detail, expected);
    return true;
  });
}

describe('users', () => {
  test('role must be admin or member', async () => {
    const org = await createOrganisation(t.db);
    await refused(
      () => t.db.query(sql.unsafe`insert into users (organisation_id, email, name, role) values (${org}, 'a@b.c', 'A', 'owner')`),
      /users_role_check/,
    );
  });
});

describe('appointments', () => {
  test('ends_at must be after starts_at', async () => {
    const org = await createOrganisation(t.db);
    await refused(
      () => createAppointment(t.db, org, { startsAt: '2030-01-01T10:00:00Z', endsAt: '2030-01-01T09:00:00Z' }),
      /appointments_ends_after_start/,
    );
    await refused(
      () => createAppointment(t.db, org, { startsAt: '2030-01-01T10:00:00Z', endsAt: '2030-01-01T10:00:00Z' }),
      /appointments_ends_after_start/,
    );
  });

  test('time_zone must be an IANA zone name', async () => {
    const org = await createOrganisation(t.db);
    await refused(() => createAppointment(t.db, org, { timeZone: 'Mars/Olympus_Mons' }), /appointments_time_zone_fkey/);
    await refused(() => createAppointment(t.db, org, { timeZone: 'posix/Europe/Paris' }), /appointments_time_zone_fkey/);
    for (const zone of ['Europe/Paris', 'America/New_York', 'Asia/Kolkata', 'UTC', 'Australia/Lord_Howe']) {
      assert.ok(await createAppointment(t.db, org, { timeZone: zone }), zone);
    }
  });

  test('status and sync_status are checked', async () => {
    const org = await createOrganisation(t.db);
    const id = await createAppointment(t.db, org);
    await refused(() => t.db.query(sql.unsafe`update appointments set status = 'done' where id = ${id}`), /appointments_status_check/);
    await refused(
      () => t.db.query(sql.unsafe`update appointments set sync_status = 'lost' where id = ${id}`),
      /appointments_sync_status_check/,
    );
  });

  test('an assignee must belong to the same organisation', async () => {
    const orgA = await createOrganisation(t.db, 'A');
    const orgB = await createOrganisation(t.db, 'B');
    const userB = await createUser(t.db, orgB);
    await refused(() => createAppointment(t.db, orgA, { assignedUserId: userB }), /appointments_assignee_same_organisation/);
    const userA = await createUser(t.db, orgA);
    const id = await createAppointment(t.db, orgA, { assignedUserId: userA });
    await refused(
      () => t.db.query(sql.unsafe`update appointments set assigned_user_id = ${userB} where id = ${id}`),
      /appointments_assignee_same_organisation/,
    );
  });

  test('an appointment cannot move to another organisation', async () => {
    const orgA = await createOrganisation(t.db, 'A');
    const orgB = await createOrganisation(t.db, 'B');
    const id = await createAppointment(t.db, orgA);
    await refused(
      () => t.db.query(sql.unsafe`update appointments set organisation_id = ${orgB} where id = ${id}`),
      /cannot move to another organisation/,
    );
  });

  test('deleting a user unassigns their appointments', async () => {
    const org = await createOrganisation(t.db);
    const user = await createUser(t.db, org);
    const id = await createAppointment(t.db, org, { assignedUserId: user });
    await t.db.query(sql.unsafe`delete from users where id = ${user}`);
    const assigned = await t.db.oneFirst(sql.unsafe`select assigned_user_id from appointments where id = ${id}`);
    assert.equal(assigned, null);
  });
});

describe('calendar_integrations', () => {
  test('at most one org-level integration per organisation and provider', async () => {
    const org = await createOrganisation(t.db);
    await createIntegration(t.db, org);
    await refused(() => createIntegration(t.db, org), /calendar_integrations_one_per_owner/);
  });

  test('one user-level integration per user; other users and orgs are independent', async () => {
    const org = await createOrganisation(t.db);
    const u1 = await createUser(t.db, org);
    const u2 = await createUser(t.db, org);
    await createIntegration(t.db, org, { userId: u1 });
    await createIntegration(t.db, org, { userId: u2 });
    await createIntegration(t.db, org);
    await refused(() => createIntegration(t.db, org, { userId: u1 }), /calendar_integrations_one_per_owner/);
    const other = await createOrganisation(t.db);
    assert.ok(await createIntegration(t.db, other));
  });

  test("a user-level integration's user belongs to the same organisation", async () => {
    const orgA = await createOrganisation(t.db);
    const orgB = await createOrganisation(t.db);
    const userB = await createUser(t.db, orgB);
    await refused(() => createIntegration(t.db, orgA, { userId: userB }), /calendar_integrations_user_same_organisation/);
  });

  test('credentials and links stay within the integration organisation', async () => {
    const orgA = await createOrganisation(t.db);
    const orgB = await createOrganisation(t.db);
    const integrationA = await createIntegration(t.db, orgA);
    await refused(
      () =>
        t.db.query(sql.unsafe`
          insert into calendar_credentials (integration_id, organisation_id, key_id, refresh_token_ciphertext)
          values (${integrationA}, ${orgB}, 'k', '\\x00')`),
      /calendar_credentials_organisation_id_integration_id_fkey/,
    );
    await refused(
      () =>
        t.db.query(sql.unsafe`
          insert into appointment_external_links (organisation_id, appointment_id, integration_id, external_calendar_id, external_event_id)
          values (${orgB}, gen_random_uuid(), ${integrationA}, 'c', 'abcdef0123')`),
      /appointment_external_links_organisation_id_integration_id_fkey/,
    );
  });
});

describe('appointment_external_links', () => {
  test('one live link per appointment and provider; event ids are base32hex', async () => {
    const org = await createOrganisation(t.db);
    const integration = await createIntegration(t.db, org);
    const appointment = await createAppointment(t.db, org);
    const insert = (eventId: string) =>
      t.db.query(sql.unsafe`
        insert into appointment_external_links (organisation_id, appointment_id, integration_id, external_calendar_id, external_event_id)
        values (${org}, ${appointment}, ${integration}, 'primary', ${eventId})`);
    await refused(() => insert('Not-Base32Hex!'), /appointment_external_links_external_event_id_check/);
    await insert('0123456789abcdefghijklmnopqrstuv');
    await refused(() => insert('0123456789abcdefghijklmnopqrstuv1'), /appointment_external_links_one_per_provider/);
  });
});
