// Tenant isolation end to end (CONTRACT §4): two organisations, each with an admin, a member
// and a connected calendar; every route answered 401 / 403 / 404 as the contract says, nothing
// of the other tenant ever revealed or touched, and no event of one tenant in the other's calendar.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createOrganisation, createUser } from '../helpers/fixtures';
import { signSession } from '../../src/shared/session';
import { appointmentIdOf, session, startStack, waitFor, type Stack } from './stack';

let s: Stack;
before(async () => {
  s = await startStack();
});
after(async () => {
  await s.stop();
});

type Tenant = { org: string; admin: string; member: string; memberId: string; email: string; appointment: string };

async function tenant(name: string): Promise<Tenant> {
  const org = await createOrganisation(s.t.db, name);
  const adminId = await createUser(s.t.db, org, { role: 'admin' });
  const memberId = await createUser(s.t.db, org, { role: 'member' });
  const admin = await session(adminId, org);
  const member = await session(memberId, org);
  const email = `desk@${name.toLowerCase()}.test`;
  await s.emulator('POST', '/__emulator/accounts', { email });
  assert.match(await s.connect(admin, email), /connected=1/);
  await s.emulator('POST', '/__emulator/accounts', { email: `own@${name.toLowerCase()}.test` });
  assert.match(await s.connect(member, `own@${name.toLowerCase()}.test`, 'user'), /connected=1&level=user/);
  const created = await s.api('POST', '/api/appointments', {
    session: member,
    body: { title: `${name} private appointment`, starts_at: '2031-06-01T10:00:00Z', ends_at: '2031-06-01T11:00:00Z' },
  });
  assert.equal(created.status, 201);
  return { org, admin, member, memberId, email, appointment: created.body.id };
}

test('401 / 403 / 404 across two organisations, through HTTP', async () => {
  const a = await tenant('Alpha');
  const b = await tenant('Beta');
  await waitFor(async () => (await s.liveEvents(a.email)).length === 1 && (await s.liveEvents(b.email)).length === 1, 30_000, 'both to sync');

  const writes = (id: string): [string, string, unknown?][] => [
    ['GET', `/api/appointments/${id}`],
    ['PATCH', `/api/appointments/${id}`, { title: 'hijacked' }],
    ['POST', `/api/appointments/${id}/cancel`],
    ['POST', `/api/appointments/${id}/sync`],
    ['DELETE', `/api/appointments/${id}`],
  ];
  const missing = '00000000-0000-4000-8000-000000000000';

  // 404: B's admin on A's appointment, exactly as for one that does not exist.
  for (const [method, url, body] of writes(a.appointment)) {
    const foreign = await s.api(method, url, { session: b.admin, body });
    const none = await s.api(method, url.replace(a.appointment, missing), { session: b.admin, body });
    assert.equal(foreign.status, 404, `${method} ${url}`);
    assert.deepEqual(foreign.body, none.body);
    assert.ok(!foreign.text.includes('Alpha'));
  }
  const list = await s.api('GET', '/api/appointments', { session: b.admin });
  assert.deepEqual(list.body.map((x: { id: string }) => x.id), [b.appointment]);

  // 401: no token, a forged one, a token whose org claim is the other tenant.
  const forged = await signSession({ sub: a.memberId, org: a.org }, 'not-the-app-secret-not-the-app-secret!!');
  const crossClaim = await signSession({ sub: a.memberId, org: b.org }, (await import('../api/support')).APP_SECRET);
  for (const token of [undefined, forged, crossClaim]) {
    for (const [method, url, body] of [...writes(a.appointment), ['GET', '/api/integrations/google/status'], ['POST', '/api/integrations/google/sync-now']] as [string, string, unknown?][]) {
      const r = await s.api(method, url, { session: token, body });
      assert.equal(r.status, 401, `${method} ${url} with ${token ? 'bad token' : 'no token'}`);
      assert.equal(r.body.error.code, 'unauthorized');
    }
  }

  // 403: a member on the organisation calendar's writes; their own calendar is theirs.
  for (const [method, url, body] of [
    ['PATCH', '/api/integrations/google/settings', { sync_enabled: false }],
    ['POST', '/api/integrations/google/disconnect', {}],
    ['POST', '/api/integrations/google/sync-now'],
    ['GET', '/api/integrations/google/connect'],
  ] as [string, string, unknown?][]) {
    const r = await s.api(method, url, { session: a.member, body });
    assert.equal(r.status, 403, `${method} ${url}`);
    assert.equal(r.body.error.code, 'forbidden');
  }
  const own = await s.api('PATCH', '/api/integrations/google/settings?level=user', { session: a.member, body: { sync_enabled: true } });
  assert.equal(own.status, 200);
  assert.equal(own.body.account_email, 'own@alpha.test');
  // Another user's user-level integration is unreachable: level=user is always the caller's.
  const adminsOwn = await s.api('GET', '/api/integrations/google/status?level=user', { session: a.admin });
  assert.equal(adminsOwn.body.status, 'not_connected');
  assert.ok(!adminsOwn.text.includes('own@alpha.test'));
  const otherOrg = await s.api('GET', '/api/integrations/google/status', { session: b.member });
  assert.equal(otherOrg.body.account_email, b.email);

  // Nothing was changed by the refused requests: A's event is intact and still A's only.
  const aEvents = await s.liveEvents(a.email);
  assert.deepEqual(aEvents.map(appointmentIdOf), [a.appointment]);
  assert.equal(aEvents[0].summary, 'Alpha private appointment');
  assert.deepEqual((await s.liveEvents(b.email)).map(appointmentIdOf), [b.appointment]);
  const stillThere = await s.api('GET', `/api/appointments/${a.appointment}`, { session: a.admin });
  assert.equal(stillThere.body.status, 'scheduled');
  assert.equal(stillThere.body.title, 'Alpha private appointment');
});
