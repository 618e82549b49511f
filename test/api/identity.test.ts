// CONTRACT §4 through HTTP: 401 without a valid identity, 404 for another organisation's
// resources (exactly as for a resource that does not exist), 403 for a member writing the
// organisation calendar, the role taken from the database, and cross-site protection of
// cookie-authenticated writes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import { sql } from '../../src/shared/db';
import { createAppointment, createUser } from '../helpers/fixtures';
import { APP_SECRET, count, createOrg, errorCode, PUBLIC_URL, startHarness, token, validAppointment, type Harness, type Org } from './support';

let h: Harness;
let a: Org;
let b: Org;
let appointmentA: string;

before(async () => {
  h = await startHarness();
  a = await createOrg(h.db, 'Alpha');
  b = await createOrg(h.db, 'Beta');
  appointmentA = await createAppointment(h.db, a.id, { title: 'Alpha secret' });
});
after(async () => {
  await h.close();
});

const MISSING = '00000000-0000-4000-8000-000000000000';

// Every protected route, with a body that would be valid.
const routes = (id: string): [string, string, unknown?][] => [
  ['POST', '/api/appointments', validAppointment()],
  ['GET', '/api/appointments'],
  ['GET', `/api/appointments/${id}`],
  ['PATCH', `/api/appointments/${id}`, { title: 'x' }],
  ['POST', `/api/appointments/${id}/cancel`],
  ['DELETE', `/api/appointments/${id}`],
  ['POST', `/api/appointments/${id}/sync`],
  ['GET', '/api/integrations/google/connect'],
  ['GET', '/api/integrations/google/status'],
  ['GET', '/api/integrations/google/calendars'],
  ['PATCH', '/api/integrations/google/settings', { sync_enabled: false }],
  ['POST', '/api/integrations/google/disconnect', {}],
  ['POST', '/api/integrations/google/sync-now'],
  ['GET', '/api/me'],
];

describe('401 without a valid identity', () => {
  const bad: [string, () => Promise<Record<string, string>>][] = [
    ['no token', async () => ({})],
    ['garbage bearer', async () => ({ authorization: 'Bearer not.a.jwt' })],
    ['not a bearer scheme', async () => ({ authorization: `Basic ${Buffer.from('a:b').toString('base64')}` })],
    ['wrong secret', async () => ({ authorization: `Bearer ${await token(a.admin, a.id, 'another-secret-another-secret-12345')}` })],
    ['expired', async () => ({ authorization: `Bearer ${await token(a.admin, a.id, APP_SECRET, -60)}` })],
    ['user of another organisation', async () => ({ authorization: `Bearer ${await token(a.admin, b.id)}` })],
    ['unknown user', async () => ({ authorization: `Bearer ${await token(MISSING, a.id)}` })],
    ['sub not a uuid', async () => ({ authorization: `Bearer ${await token('root', a.id)}` })],
    [
      'alg none',
      async () => {
        const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
        return { authorization: `Bearer ${enc({ alg: 'none', typ: 'JWT' })}.${enc({ sub: a.admin, org: a.id })}.` };
      },
    ],
    [
      'HS512 with the right secret (algorithm pinned)',
      async () => {
        const jwt = await new SignJWT({ org: a.id }).setProtectedHeader({ alg: 'HS512' }).setSubject(a.admin).sign(new TextEncoder().encode(APP_SECRET));
        return { authorization: `Bearer ${jwt}` };
      },
    ],
    ['bad cookie', async () => ({ cookie: 'cassius_session=abc' })],
  ];
  for (const [name, headers] of bad) {
    test(name, async () => {
      const before = await count(h.db, 'appointments');
      for (const [method, url, body] of routes(appointmentA)) {
        const r = await h.request(method as 'GET', url, { headers: await headers(), body });
        assert.equal(r.status, 401, `${method} ${url}: ${r.text}`);
        assert.equal(errorCode(r), 'unauthorized');
        assert.equal(r.headers['www-authenticate'], 'Bearer');
      }
      assert.equal(await count(h.db, 'appointments'), before);
    });
  }

  test('a deleted user is refused at once, even with an unexpired token', async () => {
    const gone = await createUser(h.db, a.id, { role: 'admin' });
    const jwt = await token(gone, a.id);
    assert.equal((await h.request('GET', '/api/appointments', { token: jwt })).status, 200);
    await h.db.query(sql.unsafe`delete from users where id = ${gone}`);
    assert.equal((await h.request('GET', '/api/appointments', { token: jwt })).status, 401);
  });
});

describe('another organisation: 404, exactly as for a missing resource', () => {
  test('every appointment route answers 404 not_found and changes nothing', async () => {
    const snapshot = async () =>
      h.db.one(sql.unsafe`select title, status, sync_status, updated_at from appointments where id = ${appointmentA}`);
    const before = await snapshot();
    const outboxBefore = await count(h.db, 'sync_outbox');
    for (const [method, url, body] of routes(appointmentA).filter(([, u]) => u.includes(appointmentA))) {
      const foreign = await h.request(method as 'GET', url, { token: b.adminToken, body });
      const missing = await h.request(method as 'GET', url.replace(appointmentA, MISSING), { token: b.adminToken, body });
      assert.equal(foreign.status, 404, `${method} ${url}`);
      assert.equal(errorCode(foreign), 'not_found');
      assert.deepEqual(foreign.body, missing.body, 'a foreign resource must look exactly like a missing one');
      assert.ok(!foreign.text.includes('Alpha'));
    }
    assert.deepEqual(await snapshot(), before);
    assert.equal(await count(h.db, 'sync_outbox'), outboxBefore);
  });

  test('lists show only the caller organisation', async () => {
    const r = await h.request('GET', '/api/appointments', { token: b.memberToken });
    assert.equal(r.status, 200);
    assert.ok(Array.isArray(r.body));
    assert.ok(r.body.every((x: { organisation_id: string }) => x.organisation_id === b.id));
    assert.ok(!r.body.some((x: { id: string }) => x.id === appointmentA));
  });

  test('assigning a user of another organisation reads as an unknown user (400), nothing written', async () => {
    const before = await count(h.db, 'appointments');
    const foreign = await h.request('POST', '/api/appointments', { token: b.adminToken, body: validAppointment({ assigned_user_id: a.member }) });
    const missing = await h.request('POST', '/api/appointments', { token: b.adminToken, body: validAppointment({ assigned_user_id: MISSING }) });
    assert.equal(foreign.status, 400);
    assert.deepEqual(foreign.body, missing.body);
    assert.match(foreign.body.error.message, /assigned_user_id/);
    assert.equal(await count(h.db, 'appointments'), before);
  });

  test("the organisation integration of another tenant is not reachable: each sees its own", async () => {
    await h.db.query(sql.unsafe`
      insert into calendar_integrations (organisation_id, account_email, account_subject, calendar_id)
      values (${a.id}, 'alpha-cal@gmail.test', 'sub-alpha', 'alpha-cal@gmail.test')`);
    const mine = await h.request('GET', '/api/integrations/google/status', { token: a.memberToken });
    const theirs = await h.request('GET', '/api/integrations/google/status', { token: b.adminToken });
    assert.equal(mine.body.account_email, 'alpha-cal@gmail.test');
    assert.equal(theirs.body.status, 'not_connected');
    assert.ok(!theirs.text.includes('alpha-cal'));
    // Another user's user-level integration cannot be addressed at all: level=user is the caller's.
    await h.db.query(sql.unsafe`
      insert into calendar_integrations (organisation_id, user_id, account_email, account_subject, calendar_id)
      values (${a.id}, ${a.admin}, 'alpha-admin@gmail.test', 'sub-alpha-admin', 'alpha-admin@gmail.test')`);
    const memberOwn = await h.request('GET', '/api/integrations/google/status?level=user', { token: a.memberToken });
    assert.equal(memberOwn.body.status, 'not_connected');
    assert.ok(!memberOwn.text.includes('alpha-admin'));
    const adminOwn = await h.request('GET', '/api/integrations/google/status?level=user', { token: a.adminToken });
    assert.equal(adminOwn.body.account_email, 'alpha-admin@gmail.test');
    const memberOff = await h.request('PATCH', '/api/integrations/google/settings?level=user', { token: a.memberToken, body: { sync_enabled: false } });
    assert.equal(memberOff.status, 409);
    assert.equal(errorCode(memberOff), 'not_connected');
    const row = await h.db.oneFirst(sql.unsafe`select sync_enabled from calendar_integrations where user_id = ${a.admin}`);
    assert.equal(row, true);
  });
});

describe('403: members cannot change the organisation calendar; the role comes from the database', () => {
  test('member writes at level=org are 403, reads are allowed, nothing changes', async () => {
    const org = await createOrg(h.db, 'Gamma');
    await h.db.query(sql.unsafe`
      insert into calendar_integrations (organisation_id, account_email, account_subject, calendar_id)
      values (${org.id}, 'gamma@gmail.test', 'sub-gamma', 'gamma@gmail.test')`);
    const writes: [string, string, unknown?][] = [
      ['GET', '/api/integrations/google/connect'],
      ['GET', '/api/integrations/google/connect?level=org'],
      ['PATCH', '/api/integrations/google/settings', { sync_enabled: false }],
      ['POST', '/api/integrations/google/disconnect', {}],
      ['POST', '/api/integrations/google/sync-now'],
    ];
    for (const [method, url, body] of writes) {
      const r = await h.request(method as 'GET', url, { token: org.memberToken, body });
      assert.equal(r.status, 403, `${method} ${url}: ${r.text}`);
      assert.equal(errorCode(r), 'forbidden');
    }
    const status = await h.request('GET', '/api/integrations/google/status', { token: org.memberToken });
    assert.equal(status.status, 200);
    assert.equal(status.body.status, 'active');
    const integration = await h.db.one(sql.unsafe`select sync_enabled, connection_status from calendar_integrations where organisation_id = ${org.id}`);
    assert.deepEqual(integration, { sync_enabled: true, connection_status: 'active' });
    assert.equal(await h.db.oneFirst(sql.unsafe`select count(*)::int from sync_backlog where organisation_id = ${org.id} and reason = 'sync_now'`), 0);
    assert.equal(await h.db.oneFirst(sql.unsafe`select count(*)::int from oauth_states where organisation_id = ${org.id}`), 0);

    // A member may connect their own calendar.
    const own = await h.request('GET', '/api/integrations/google/connect?level=user', { token: org.memberToken });
    assert.equal(own.status, 302);

    const before = await h.request('GET', '/api/me', { token: org.memberToken });
    assert.equal(before.status, 200);
    assert.equal(before.body.role, 'member');
    assert.equal(before.body.user_id, org.member);
    assert.equal(before.body.organisation_id, org.id);

    // Promoted in the database: the same token now acts as an admin.
    await h.db.query(sql.unsafe`update users set role = 'admin' where id = ${org.member}`);
    assert.equal((await h.request('GET', '/api/me', { token: org.memberToken })).body.role, 'admin');
    const now = await h.request('PATCH', '/api/integrations/google/settings', { token: org.memberToken, body: { sync_enabled: false } });
    assert.equal(now.status, 200, now.text);
    assert.equal(now.body.status, 'paused');
  });
});

describe('cookie sessions and cross-site writes', () => {
  test('a cookie authenticates reads and same-origin writes', async () => {
    const read = await h.request('GET', '/api/appointments', { cookie: a.adminToken });
    assert.equal(read.status, 200);
    const fetchSameOrigin = await h.request('POST', '/api/appointments', {
      cookie: a.adminToken,
      body: validAppointment({ title: 'same origin' }),
      headers: { 'sec-fetch-site': 'same-origin', origin: PUBLIC_URL },
    });
    assert.equal(fetchSameOrigin.status, 201, fetchSameOrigin.text);
    const originOnly = await h.request('POST', '/api/appointments', {
      cookie: a.adminToken,
      body: validAppointment({ title: 'origin only' }),
      headers: { origin: PUBLIC_URL },
    });
    assert.equal(originOnly.status, 201, originOnly.text);
  });

  test('cross-site cookie writes are refused with 403 and write nothing', async () => {
    const before = await count(h.db, 'appointments');
    const outboxBefore = await count(h.db, 'sync_outbox');
    const attempts: Record<string, string>[] = [
      { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' },
      { 'sec-fetch-site': 'same-site', origin: 'https://sub.localhost' },
      { origin: 'https://evil.example' },
      { origin: 'null' },
    ];
    for (const headers of attempts) {
      for (const [method, url, body] of [
        ['POST', '/api/appointments', validAppointment()],
        ['DELETE', `/api/appointments/${appointmentA}`],
        ['POST', `/api/appointments/${appointmentA}/sync`],
        ['PATCH', `/api/appointments/${appointmentA}`, { title: 'pwned' }],
      ] as [string, string, unknown?][]) {
        const r = await h.request(method as 'GET', url, { cookie: a.adminToken, body, headers });
        assert.equal(r.status, 403, `${method} ${url} ${JSON.stringify(headers)}: ${r.text}`);
        assert.equal(errorCode(r), 'cross_site_request');
      }
    }
    assert.equal(await count(h.db, 'appointments'), before);
    assert.equal(await count(h.db, 'sync_outbox'), outboxBefore);
    assert.equal(await h.db.oneFirst(sql.unsafe`select title from appointments where id = ${appointmentA}`), 'Alpha secret');
  });

  test('a form post (what a cross-site page can send without preflight) is 415', async () => {
    const r = await h.request('POST', '/api/appointments', {
      cookie: a.adminToken,
      payload: 'title=x&starts_at=2030-01-01T00:00:00Z',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
    });
    assert.equal(r.status, 415);
    assert.equal(errorCode(r), 'unsupported_media_type');
    const plain = await h.request('POST', '/api/appointments', {
      cookie: a.adminToken,
      payload: '{"title":"x"}',
      headers: { 'content-type': 'text/plain', 'sec-fetch-site': 'same-origin' },
    });
    assert.equal(plain.status, 415);
  });

  test('bearer requests are not ambient credentials: no origin check', async () => {
    const r = await h.request('POST', '/api/appointments', {
      token: a.adminToken,
      body: validAppointment({ title: 'bearer' }),
      headers: { 'sec-fetch-site': 'cross-site', origin: 'https://partner.example' },
    });
    assert.equal(r.status, 201);
  });

  test('the Authorization header wins over the cookie', async () => {
    const r = await h.request('GET', '/api/appointments', { token: b.memberToken, cookie: a.adminToken });
    assert.equal(r.status, 200);
    assert.ok(r.body.every((x: { organisation_id: string }) => x.organisation_id === b.id));
  });
});
