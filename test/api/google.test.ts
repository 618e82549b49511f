// The Google integration through HTTP against the emulator: the whole OAuth dance (state,
// PKCE, consent, code exchange, encrypted tokens), its refusals, reconnecting, the calendars,
// settings, disconnect and Sync now.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { after, before, describe, test } from 'node:test';
import { z } from 'zod';
import { bearer, createCalendarApi } from '../../src/integrations/google/calendarApi';
import { REQUIRED_SCOPES } from '../../src/integrations/google/scopes';
import { signState } from '../../src/integrations/google/state';
import { createTokenStore } from '../../src/integrations/google/tokenStore';
import { sql } from '../../src/shared/db';
import { createAppointment } from '../helpers/fixtures';
import { googleConfig, testKeyring } from '../helpers/google';
import { APP_SECRET, count, createOrg, errorCode, oauthDance, PUBLIC_URL, secretsInDatabase, startHarness, type Harness, type Org } from './support';

let h: Harness;
let emuUrl: string;
let n = 0;

before(async () => {
  h = await startHarness({ emulator: true });
  emuUrl = h.emu!.url;
});
after(async () => {
  await h.close();
});

/** A fresh organisation and a fresh Google account (with extra calendars) per test. */
async function setup(calendars: { summary: string; accessRole: 'owner' | 'writer' | 'reader' }[] = []) {
  n++;
  const org = await createOrg(h.db, `Org${n}`);
  const email = `clinic${n}.${Date.now()}@gmail.test`;
  const account = h.emu!.control.addAccount({ email, calendars });
  return { org, email, account };
}

const Integration = z.object({
  id: z.string(),
  user_id: z.string().nullable(),
  connection_status: z.string(),
  account_email: z.string().nullable(),
  account_subject: z.string().nullable(),
  calendar_id: z.string().nullable(),
  sync_enabled: z.boolean(),
  granted_scopes: z.array(z.string()),
  connected_at: z.string().nullable(),
  last_error: z.string().nullable(),
});
const integrations = (org: Org) =>
  h.db.any(sql.type(Integration)`
    select id, user_id, connection_status, account_email, account_subject, calendar_id, sync_enabled, granted_scopes, connected_at, last_error
    from calendar_integrations where organisation_id = ${org.id} order by created_at`);
const store = () => createTokenStore(h.db, testKeyring(), googleConfig(emuUrl));
const credentialsOf = async (integrationId: string, organisationId: string) => {
  const ref = { id: integrationId, organisationId };
  const refresh = await store().readRefreshToken(ref);
  const access = refresh ? await store().accessToken(ref) : null;
  return { refresh, access };
};

describe('connect', () => {
  test('302 to Google with offline access, consent, minimal scopes, a signed state and PKCE S256', async () => {
    const { org, email } = await setup();
    const r = await h.request('GET', `/api/integrations/google/connect?login_hint=${encodeURIComponent(email)}`, { token: org.adminToken });
    assert.equal(r.status, 302);
    const url = new URL(String(r.headers.location));
    assert.equal(`${url.origin}${url.pathname}`, `${emuUrl}/o/oauth2/v2/auth`);
    const q = url.searchParams;
    assert.equal(q.get('response_type'), 'code');
    assert.equal(q.get('access_type'), 'offline');
    assert.equal(q.get('prompt'), 'consent');
    assert.equal(q.get('include_granted_scopes'), 'true');
    assert.equal(q.get('redirect_uri'), `${PUBLIC_URL}/api/integrations/google/callback`);
    assert.equal(q.get('login_hint'), email);
    assert.deepEqual(q.get('scope')!.split(' ').sort(), [...REQUIRED_SCOPES].sort());
    assert.ok(!q.get('scope')!.split(' ').includes('https://www.googleapis.com/auth/calendar'), 'never the full calendar scope');
    assert.equal(q.get('code_challenge_method'), 'S256');
    const state = q.get('state')!;
    assert.match(state, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    assert.equal(r.headers['cache-control'], 'no-store');
    // The verifier stays server-side, encrypted; its S256 is the challenge that was sent.
    const nonce = JSON.parse(Buffer.from(state.split('.')[0]!, 'base64url').toString()).n as string;
    const row = await h.db.one(sql.type(z.object({ code_verifier_ciphertext: z.instanceof(Buffer), organisation_id: z.string(), user_id: z.string(), level: z.string() }))`
      select code_verifier_ciphertext, organisation_id, user_id, level from oauth_states where id = ${nonce}`);
    assert.deepEqual([row.organisation_id, row.user_id, row.level], [org.id, org.admin, 'org']);
    const verifier = testKeyring().decrypt(row.code_verifier_ciphertext, `oauth_states:${nonce}:code_verifier`);
    assert.equal(createHash('sha256').update(verifier).digest('base64url'), q.get('code_challenge'));
    assert.ok(!row.code_verifier_ciphertext.includes(verifier));
  });

  test('bad level, overlong login_hint: 400', async () => {
    const { org } = await setup();
    for (const url of ['/api/integrations/google/connect?level=team', '/api/integrations/google/connect?login_hint=' + 'x'.repeat(400)]) {
      const r = await h.request('GET', url, { token: org.adminToken });
      assert.equal(r.status, 400, r.text);
      assert.match(r.body.error.message, /querystring\.(level|login_hint)/);
    }
    const s = await h.request('GET', '/api/integrations/google/status?level=everyone', { token: org.adminToken });
    assert.equal(s.status, 400);
    assert.match(s.body.error.message, /level.*'org' or 'user'/);
  });
});

describe('callback', () => {
  test('the full dance stores the org integration and encrypted tokens; no token anywhere in clear', async () => {
    const { org, email, account } = await setup();
    const dance = await oauthDance(h, org.adminToken, email);
    assert.equal(dance.status, 302);
    assert.equal(dance.location, '/settings/integrations/google-calendar?connected=1&level=org');
    const [row, ...others] = await integrations(org);
    assert.equal(others.length, 0);
    assert.equal(row!.user_id, null);
    assert.equal(row!.connection_status, 'active');
    assert.equal(row!.account_email, email);
    assert.equal(row!.account_subject, account.sub);
    assert.equal(row!.calendar_id, email, 'defaults to the primary calendar');
    assert.equal(row!.sync_enabled, true);
    assert.ok(row!.connected_at);
    assert.ok(row!.granted_scopes.includes('https://www.googleapis.com/auth/calendar.events'));

    const { refresh, access } = await credentialsOf(row!.id, org.id);
    assert.ok(refresh && access);
    // The stored access token works at Google.
    const list = await createCalendarApi(`${emuUrl}/`).calendarList.list({}, bearer(access));
    assert.ok(list.data.items?.some((c) => c.id === email));

    const status = await h.request('GET', '/api/integrations/google/status', { cookie: org.memberToken });
    assert.equal(status.status, 200);
    assert.equal(status.body.connected, true);
    assert.equal(status.body.status, 'active');
    assert.equal(status.body.account_email, email);
    assert.equal(status.body.calendar_id, email);

    const secrets = [refresh, access, dance.callback!.searchParams.get('code')!];
    assert.deepEqual(await secretsInDatabase(h.db, [refresh, access]), [], 'a token is stored in clear text');
    for (const text of [...dance.responses, status.text]) {
      for (const s of secrets.slice(0, 2)) assert.ok(!text.includes(s), 'a token in a response or redirect');
    }
  });

  test('a state works once: replaying the callback is refused and changes nothing', async () => {
    const { org, email } = await setup();
    const dance = await oauthDance(h, org.adminToken, email);
    assert.match(dance.location, /connected=1/);
    const before = await integrations(org);
    const replay = await h.request('GET', `${dance.callback!.pathname}${dance.callback!.search}`, { cookie: org.adminToken });
    assert.equal(replay.status, 302);
    assert.equal(replay.headers.location, '/settings/integrations/google-calendar?error=invalid_state&level=org');
    assert.deepEqual(await integrations(org), before);
  });

  test("another user's state is refused (and another organisation's), nothing stored", async () => {
    const { org, email } = await setup();
    const other = await createOrg(h.db, 'Other');
    for (const session of [org.memberToken, other.adminToken]) {
      const dance = await oauthDance(h, org.adminToken, email, { callbackSession: session });
      assert.match(dance.location, /error=invalid_state/);
    }
    assert.equal((await integrations(org)).length, 0);
    assert.equal((await integrations(other)).length, 0);
    // Without any session, the callback stores nothing either.
    const dance = await oauthDance(h, org.adminToken, email, { callbackSession: 'not-a-jwt' });
    assert.match(dance.location, /error=unauthenticated/);
    assert.equal((await integrations(org)).length, 0);
  });

  test('an expired state is refused; a forged one too', async () => {
    const { org, email } = await setup();
    const connect = await h.request('GET', `/api/integrations/google/connect?login_hint=${email}`, { token: org.adminToken });
    const state = new URL(String(connect.headers.location)).searchParams.get('state')!;
    const payload = JSON.parse(Buffer.from(state.split('.')[0]!, 'base64url').toString());
    // Signed expiry in the past.
    const expired = signState({ ...payload, e: Date.now() - 1000 }, APP_SECRET);
    const r1 = await h.request('GET', `/api/integrations/google/callback?code=x&state=${expired}`, { cookie: org.adminToken });
    assert.match(String(r1.headers.location), /error=state_expired/);
    // Expired in the database (the row) although the signature still says valid.
    await h.db.query(sql.unsafe`update oauth_states set expires_at = now() - interval '1 second' where id = ${payload.n}`);
    const r2 = await h.request('GET', `/api/integrations/google/callback?code=x&state=${state}`, { cookie: org.adminToken });
    assert.match(String(r2.headers.location), /error=invalid_state/);
    // Forged: the payload changed (level user), signature kept.
    const forgedBody = Buffer.from(JSON.stringify({ ...payload, l: 'user' })).toString('base64url');
    const r3 = await h.request('GET', `/api/integrations/google/callback?code=x&state=${forgedBody}.${state.split('.')[1]}`, { cookie: org.adminToken });
    assert.match(String(r3.headers.location), /error=invalid_state/);
    assert.equal((await integrations(org)).length, 0);
  });

  test('denied consent: redirect with error=access_denied, nothing stored', async () => {
    const { org, email } = await setup();
    const dance = await oauthDance(h, org.adminToken, email, { consent: 'deny' });
    assert.equal(dance.callback!.searchParams.get('error'), 'access_denied');
    assert.equal(dance.location, '/settings/integrations/google-calendar?error=access_denied&level=org');
    assert.equal((await integrations(org)).length, 0);
  });

  test('partial consent (no events scope): error=missing_scope, nothing stored', async () => {
    const { org, email } = await setup();
    const credentialsBefore = await count(h.db, 'calendar_credentials');
    const dance = await oauthDance(h, org.adminToken, email, {
      scopes: ['openid', 'email', 'https://www.googleapis.com/auth/calendar.calendarlist.readonly'],
    });
    assert.equal(dance.location, '/settings/integrations/google-calendar?error=missing_scope&level=org');
    assert.equal((await integrations(org)).length, 0);
    assert.equal(await count(h.db, 'calendar_credentials'), credentialsBefore);
  });

  test('a code the emulator refuses (wrong verifier or reused): error=exchange_failed', async () => {
    const { org, email } = await setup();
    const dance = await oauthDance(h, org.adminToken, email);
    assert.match(dance.location, /connected=1/);
    // A fresh state with the already-used code: Google answers invalid_grant.
    const connect = await h.request('GET', `/api/integrations/google/connect?login_hint=${email}`, { token: org.adminToken });
    const state = new URL(String(connect.headers.location)).searchParams.get('state')!;
    const r = await h.request('GET', `/api/integrations/google/callback?code=${encodeURIComponent(dance.callback!.searchParams.get('code')!)}&state=${state}`, { cookie: org.adminToken });
    assert.equal(r.headers.location, '/settings/integrations/google-calendar?error=exchange_failed&level=org');
  });

  test('a member connects their own calendar at level=user; org-level callback needs an admin', async () => {
    const { org, email } = await setup();
    const dance = await oauthDance(h, org.memberToken, email, { level: 'user' });
    assert.equal(dance.location, '/settings/integrations/google-calendar?connected=1&level=user');
    const rows = await integrations(org);
    assert.deepEqual(rows.map((r) => r.user_id), [org.member]);
    const mine = await h.request('GET', '/api/integrations/google/status?level=user', { token: org.memberToken });
    assert.equal(mine.body.account_email, email);
    assert.equal(mine.body.level, 'user');
    const orgLevel = await h.request('GET', '/api/integrations/google/status?level=org', { token: org.memberToken });
    assert.equal(orgLevel.body.status, 'not_connected');
  });

  test('reconnecting the same account keeps the row, its calendar and links; another account takes over cleanly', async () => {
    const { org, email, account } = await setup([{ summary: 'Team', accessRole: 'writer' }]);
    await oauthDance(h, org.adminToken, email);
    const [first] = await integrations(org);
    const team = account.calendars.find((c) => c.summary === 'Team')!.id;
    await h.db.query(sql.unsafe`update calendar_integrations set calendar_id = ${team} where id = ${first!.id}`);
    const appointment = await createAppointment(h.db, org.id);
    await h.db.query(sql.unsafe`
      insert into appointment_external_links (organisation_id, appointment_id, integration_id, external_calendar_id, external_event_id, sync_status)
      values (${org.id}, ${appointment}, ${first!.id}, ${team}, 'abcdef0123456789', 'synced')`);
    await h.db.query(sql.unsafe`
      update calendar_integrations set connection_status = 'needs_reconnect', last_error = 'Google refused' where id = ${first!.id}`);

    const again = await oauthDance(h, org.adminToken, email);
    assert.match(again.location, /connected=1/);
    const [second, ...rest] = await integrations(org);
    assert.equal(rest.length, 0);
    assert.equal(second!.id, first!.id, 'same row');
    assert.equal(second!.calendar_id, team, 'calendar kept');
    assert.equal(second!.connection_status, 'active');
    assert.equal(second!.last_error, null);
    assert.ok(second!.connected_at! >= first!.connected_at!);
    const links = await h.db.oneFirst(sql.unsafe`select count(*)::int from appointment_external_links where integration_id = ${first!.id}`);
    assert.equal(links, 1, 'links kept: no duplicate events');
    const oldTokens = await credentialsOf(first!.id, org.id);

    // Another Google account: its primary calendar becomes the target, the old tokens are gone.
    const otherEmail = `other${n}.${Date.now()}@gmail.test`;
    const other = h.emu!.control.addAccount({ email: otherEmail });
    await oauthDance(h, org.adminToken, otherEmail);
    const [third] = await integrations(org);
    assert.equal(third!.id, first!.id);
    assert.equal(third!.account_subject, other.sub);
    assert.equal(third!.calendar_id, otherEmail);
    const newTokens = await credentialsOf(first!.id, org.id);
    assert.notEqual(newTokens.refresh, oldTokens.refresh);
  });
});

describe('calendars and settings', () => {
  test('calendars with writable flags from the access role', async () => {
    const { org, email } = await setup([
      { summary: 'Team', accessRole: 'writer' },
      { summary: 'Holidays', accessRole: 'reader' },
      { summary: 'Mine', accessRole: 'owner' },
    ]);
    await oauthDance(h, org.adminToken, email);
    const r = await h.request('GET', '/api/integrations/google/calendars', { token: org.memberToken });
    assert.equal(r.status, 200, r.text);
    const bySummary = Object.fromEntries(r.body.map((c: { summary: string }) => [c.summary, c]));
    assert.deepEqual(
      Object.keys(bySummary).sort(),
      [email, 'Holidays', 'Mine', 'Team'].sort().filter((s) => s in bySummary),
    );
    const primary = r.body.find((c: { primary: boolean }) => c.primary);
    assert.equal(primary.id, email);
    assert.equal(primary.writable, true);
    assert.equal(primary.access_role, 'owner');
    assert.equal(bySummary.Team.writable, true);
    assert.equal(bySummary.Team.access_role, 'writer');
    assert.equal(bySummary.Holidays.writable, false);
    assert.equal(bySummary.Mine.writable, true);
    for (const c of r.body) assert.deepEqual(Object.keys(c).sort(), ['access_role', 'id', 'primary', 'summary', 'time_zone', 'writable']);
  });

  test('an expired access token is refreshed once and the call succeeds', async () => {
    const { org, email } = await setup();
    await oauthDance(h, org.adminToken, email);
    h.emu!.control.expireAccessTokens(email);
    const r = await h.request('GET', '/api/integrations/google/calendars', { token: org.adminToken });
    assert.equal(r.status, 200, r.text);
    assert.equal((await integrations(org))[0]!.connection_status, 'active');
  });

  test('revoked at Google: 409 needs_reconnect, status says so; reconnecting makes it active again', async () => {
    const { org, email } = await setup();
    await oauthDance(h, org.adminToken, email);
    h.emu!.control.revoke(email);
    const r = await h.request('GET', '/api/integrations/google/calendars', { token: org.adminToken });
    assert.equal(r.status, 409);
    assert.equal(errorCode(r), 'needs_reconnect');
    const [row] = await integrations(org);
    assert.equal(row!.connection_status, 'needs_reconnect');
    assert.ok(row!.last_error);
    const status = await h.request('GET', '/api/integrations/google/status', { token: org.adminToken });
    assert.equal(status.body.status, 'needs_reconnect');
    assert.equal(status.body.connected, true);
    await oauthDance(h, org.adminToken, email);
    const after = await h.request('GET', '/api/integrations/google/status', { token: org.adminToken });
    assert.equal(after.body.status, 'active');
    assert.equal(after.body.last_error, null);
  });

  test('settings: a read-only calendar is refused naming it; a writable one is taken; sync toggles', async () => {
    const { org, email, account } = await setup([
      { summary: 'Team', accessRole: 'writer' },
      { summary: 'Holidays', accessRole: 'reader' },
    ]);
    await oauthDance(h, org.adminToken, email);
    const [row] = await integrations(org);
    await h.db.query(sql.unsafe`update sync_backlog set completed_at = now()`);
    const holidays = account.calendars.find((c) => c.summary === 'Holidays')!.id;
    const team = account.calendars.find((c) => c.summary === 'Team')!.id;

    const reader = await h.request('PATCH', '/api/integrations/google/settings', { token: org.adminToken, body: { calendar_id: holidays } });
    assert.equal(reader.status, 400);
    assert.equal(errorCode(reader), 'calendar_not_writable');
    assert.match(reader.body.error.message, /Holidays/);
    assert.match(reader.body.error.message, /read-only/);
    const unknown = await h.request('PATCH', '/api/integrations/google/settings', { token: org.adminToken, body: { calendar_id: 'nope@group.calendar.google.com' } });
    assert.equal(unknown.status, 400);
    assert.equal(errorCode(unknown), 'unknown_calendar');
    const extra = await h.request('PATCH', '/api/integrations/google/settings', { token: org.adminToken, body: { calendar_id: team, colour: 'blue' } });
    assert.equal(extra.status, 400);
    assert.match(extra.body.error.message, /colour/);
    const empty = await h.request('PATCH', '/api/integrations/google/settings', { token: org.adminToken, body: {} });
    assert.equal(empty.status, 400);
    const wrongType = await h.request('PATCH', '/api/integrations/google/settings', { token: org.adminToken, body: { sync_enabled: 'yes' } });
    assert.equal(wrongType.status, 400);
    assert.match(wrongType.body.error.message, /sync_enabled/);
    assert.equal((await integrations(org))[0]!.calendar_id, email, 'nothing changed');
    assert.equal(await h.db.oneFirst(sql.unsafe`select count(*)::int from sync_backlog where completed_at is null`), 0);

    const ok = await h.request('PATCH', '/api/integrations/google/settings', { token: org.adminToken, body: { calendar_id: team } });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.body.calendar_id, team);
    assert.equal((await integrations(org))[0]!.calendar_id, team);
    // The table's trigger started the relay's work of moving the events.
    const job = await h.db.one(sql.unsafe`select reason from sync_backlog where integration_id = ${row!.id} and completed_at is null`);
    assert.equal(job.reason, 'integration_changed');
    assert.equal(ok.body.backlog.running, true);

    const off = await h.request('PATCH', '/api/integrations/google/settings', { token: org.adminToken, body: { sync_enabled: false } });
    assert.equal(off.status, 200);
    assert.equal(off.body.status, 'paused');
    assert.equal(off.body.sync_enabled, false);
    const syncNow = await h.request('POST', '/api/integrations/google/sync-now', { token: org.adminToken });
    assert.equal(syncNow.status, 409);
    assert.equal(errorCode(syncNow), 'sync_disabled');
  });
});

describe('disconnect', () => {
  test('revokes at Google (the old refresh token then fails), deletes the tokens, status not_connected', async () => {
    const { org, email } = await setup();
    await oauthDance(h, org.adminToken, email);
    const [row] = await integrations(org);
    const { refresh } = await credentialsOf(row!.id, org.id);
    const r = await h.request('POST', '/api/integrations/google/disconnect', { token: org.adminToken, body: {} });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.revoked, true);
    assert.equal(r.body.status, 'not_connected');
    assert.equal(r.body.connected, false);
    assert.equal(await h.db.oneFirst(sql.unsafe`select count(*)::int from calendar_credentials where integration_id = ${row!.id}`), 0);
    assert.equal((await integrations(org))[0]!.connection_status, 'disconnected');
    // The revoked refresh token no longer works at the emulator.
    const refreshAttempt = await fetch(`${emuUrl}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refresh!, client_id: h.config.GOOGLE_CLIENT_ID, client_secret: h.config.GOOGLE_CLIENT_SECRET }),
    });
    assert.equal(refreshAttempt.status, 400);
    assert.equal((await refreshAttempt.json()).error, 'invalid_grant');
    // The calendars are no longer reachable; disconnecting again is harmless.
    const calendars = await h.request('GET', '/api/integrations/google/calendars', { token: org.adminToken });
    assert.equal(calendars.status, 409);
    assert.equal(errorCode(calendars), 'not_connected');
    const again = await h.request('POST', '/api/integrations/google/disconnect', { token: org.adminToken });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.body.status, 'not_connected');
  });

  test('Google down: tokens are deleted anyway (revoked: false)', async () => {
    const { org, email } = await setup();
    await oauthDance(h, org.adminToken, email);
    h.emu!.control.clearCalls();
    h.emu!.control.addFault({ pathPrefix: '/revoke', status: 503, forMs: 60_000 });
    const r = await h.request('POST', '/api/integrations/google/disconnect', { token: org.adminToken });
    h.emu!.control.clearFaults();
    assert.ok(h.emu!.control.calls({ pathPrefix: '/revoke' }).every((c) => c.status === 503), 'revoke was attempted');
    assert.equal(r.status, 200);
    assert.equal(r.body.revoked, false);
    assert.equal(r.body.status, 'not_connected');
    assert.equal((await integrations(org))[0]!.connection_status, 'disconnected');
  });

  test('with remove_events: 202, disconnecting, the tokens stay for the relay to delete the events', async () => {
    const { org, email } = await setup();
    await oauthDance(h, org.adminToken, email);
    const bad = await h.request('POST', '/api/integrations/google/disconnect', { token: org.adminToken, body: { remove_events: 'yes' } });
    assert.equal(bad.status, 400);
    const r = await h.request('POST', '/api/integrations/google/disconnect', { token: org.adminToken, body: { remove_events: true } });
    assert.equal(r.status, 202, r.text);
    assert.equal(r.body.disconnecting, true);
    const [row] = await integrations(org);
    assert.equal(row!.connection_status, 'disconnecting');
    assert.equal(await h.db.oneFirst(sql.unsafe`select count(*)::int from calendar_credentials where integration_id = ${row!.id}`), 1);
    const connect = await h.request('GET', '/api/integrations/google/connect', { token: org.adminToken });
    assert.equal(connect.status, 409);
    assert.equal(errorCode(connect), 'disconnect_in_progress');
  });
});

describe('sync now', () => {
  test('queues the backlog of changed / pending / failed appointments; a second press joins the running job', async () => {
    const { org, email } = await setup();
    await oauthDance(h, org.adminToken, email);
    const [row] = await integrations(org);
    const old = await createAppointment(h.db, org.id, { title: 'old, synced' });
    const pending = await createAppointment(h.db, org.id, { title: 'pending' });
    const failed = await createAppointment(h.db, org.id, { title: 'failed' });
    const changed = await createAppointment(h.db, org.id, { title: 'changed since' });
    await h.db.query(sql.unsafe`update appointments set sync_status = 'synced', updated_at = now() - interval '2 hours' where id in (${old}, ${changed})`);
    await h.db.query(sql.unsafe`update appointments set sync_status = 'error', updated_at = now() - interval '2 hours' where id = ${failed}`);
    await h.db.query(sql.unsafe`update appointments set updated_at = now() - interval '2 hours' where id = ${pending}`);
    await h.db.query(sql.unsafe`update appointments set updated_at = now() - interval '5 minutes' where id = ${changed}`);
    await h.db.query(sql.unsafe`update calendar_integrations set last_sync_at = now() - interval '1 hour' where id = ${row!.id}`);
    await h.db.query(sql.unsafe`update sync_backlog set completed_at = now() where integration_id = ${row!.id}`);

    const first = await h.request('POST', '/api/integrations/google/sync-now', { token: org.adminToken });
    assert.equal(first.status, 202, first.text);
    assert.equal(first.body.queued, 3);
    assert.equal(first.body.running, true);
    const second = await h.request('POST', '/api/integrations/google/sync-now', { token: org.adminToken, body: {} });
    assert.equal(second.status, 202);
    assert.equal(second.body.backlog_id, first.body.backlog_id);
    const jobs = await h.db.any(sql.unsafe`select reason, since from sync_backlog where integration_id = ${row!.id} and completed_at is null`);
    assert.equal(jobs.length, 1);
    assert.equal(jobs[0]!.reason, 'sync_now');
    assert.ok(jobs[0]!.since);
    const status = await h.request('GET', '/api/integrations/google/status', { token: org.memberToken });
    assert.equal(status.body.backlog.id, first.body.backlog_id);
    assert.equal(status.body.backlog.running, true);
    assert.equal(status.body.counts.pending, 1);
    assert.equal(status.body.counts.synced, 2);
    assert.equal(status.body.counts.error, 1);
  });

  test('queued answers quickly for 100,000 appointments', async () => {
    const { org, email } = await setup();
    await oauthDance(h, org.adminToken, email);
    await h.db.query(sql.unsafe`
      insert into appointments (organisation_id, title, starts_at, ends_at)
      select ${org.id}, 'bulk ' || g, now() + g * interval '1 minute', now() + g * interval '1 minute' + interval '30 minutes'
      from generate_series(1, 100000) g`);
    await h.db.query(sql.unsafe`update sync_backlog set completed_at = now()`);
    const started = performance.now();
    const r = await h.request('POST', '/api/integrations/google/sync-now', { token: org.adminToken });
    const ms = performance.now() - started;
    assert.equal(r.status, 202);
    assert.equal(r.body.queued, 100000);
    assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms`);
    await h.db.query(sql.unsafe`delete from appointments where organisation_id = ${org.id}`);
    await h.db.query(sql.unsafe`delete from sync_outbox where organisation_id = ${org.id}`);
  });

  test('not connected: 409 not_connected', async () => {
    const { org } = await setup();
    const r = await h.request('POST', '/api/integrations/google/sync-now', { token: org.adminToken });
    assert.equal(r.status, 409);
    assert.equal(errorCode(r), 'not_connected');
  });
});

describe('property: generated input to the integration routes of a connected account', () => {
  test('never a 500, always the error shape, the integration never corrupted', async () => {
    const { org, email, account } = await setup([{ summary: 'Team', accessRole: 'writer' }, { summary: 'Ro', accessRole: 'reader' }]);
    await oauthDance(h, org.adminToken, email);
    const ids = [email, ...account.calendars.map((c) => c.id)];
    const value = fc.oneof(fc.string(), fc.boolean(), fc.integer(), fc.constant(null), fc.constantFrom(...ids), fc.array(fc.string(), { maxLength: 2 }));
    const body = fc.oneof(
      fc.dictionary(fc.constantFrom('calendar_id', 'sync_enabled', 'remove_events', 'level', 'x'), value, { maxKeys: 3 }).map((b) => JSON.stringify(b)),
      fc.string(),
    );
    const route = fc.constantFrom(
      ['PATCH', '/api/integrations/google/settings'],
      ['GET', '/api/integrations/google/calendars'],
      ['GET', '/api/integrations/google/status'],
      ['POST', '/api/integrations/google/sync-now'],
      ['GET', '/api/integrations/google/connect'],
    );
    const level = fc.oneof(fc.constantFrom('org', 'user', ''), fc.string());
    await fc.assert(
      fc.asyncProperty(route, level, body, fc.boolean(), async ([method, url], lvl, payload, asMember) => {
        const r = await h.request(method as 'GET', `${url}?level=${encodeURIComponent(lvl)}`, {
          token: asMember ? org.memberToken : org.adminToken,
          ...(method === 'GET' ? {} : { payload, headers: { 'content-type': 'application/json' } }),
        });
        assert.ok(r.status < 500, `${method} ${url} ${lvl} ${payload} -> ${r.status} ${r.text}`);
        if (r.status >= 400) errorCode(r);
      }),
      { numRuns: 200 },
    );
    const [row] = await integrations(org);
    assert.equal(row!.connection_status, 'active');
    const writable = [email, ...account.calendars.filter((c) => c.accessRole !== 'reader').map((c) => c.id)];
    assert.ok(writable.includes(row!.calendar_id!), `target became ${row!.calendar_id}`);
  });
});
