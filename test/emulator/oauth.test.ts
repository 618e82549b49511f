// OAuth 2.0 conformance (google-api.md §1, §8.2), driven through google-auth-library.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CodeChallengeMethod, ClientAuthentication, type Credentials } from 'google-auth-library';
import { startEmulator, type RunningEmulator } from './index.js';
import { SCOPE } from './scopes.js';
import {
  PRODUCT_SCOPES,
  REDIRECT_URI,
  authorize,
  calendarApi,
  connect,
  freshEmail,
  oauthClient,
  rejection,
} from './helpers.js';

let emu: RunningEmulator;
before(async () => {
  emu = await startEmulator();
});
after(async () => {
  await emu.close();
});

function account(label: string): string {
  const email = freshEmail(label);
  emu.control.addAccount({ email });
  return email;
}

async function rawAuth(params: Record<string, string>): Promise<Response> {
  return fetch(`${emu.url}/o/oauth2/v2/auth?${new URLSearchParams(params).toString()}`, { redirect: 'manual' });
}

const baseAuthParams = (email: string): Record<string, string> => ({
  client_id: emu.control.clientId,
  redirect_uri: REDIRECT_URI,
  response_type: 'code',
  scope: PRODUCT_SCOPES.join(' '),
  state: 's1',
  login_hint: email,
  emulator_consent: 'allow',
});

test('auth URL: unknown client and unregistered redirect_uri get a 400 page, never a redirect (§1.1)', async () => {
  const email = account('authurl');
  const cases: [Record<string, string>, string][] = [
    [{ client_id: 'someone-else.apps.googleusercontent.com' }, 'invalid_client'],
    [{ redirect_uri: `${REDIRECT_URI}/` }, 'redirect_uri_mismatch'], // trailing slash
    [{ redirect_uri: 'HTTP://localhost:3000/api/integrations/google/callback' }, 'redirect_uri_mismatch'], // case
    [{ redirect_uri: 'http://evil.example/api/integrations/google/callback' }, 'redirect_uri_mismatch'],
    [{ response_type: 'token' }, 'unsupported_response_type'],
    [{ scope: 'https://www.googleapis.com/auth/not-a-scope' }, 'invalid_scope'],
    [{ code_challenge_method: 'S512', code_challenge: 'a'.repeat(43) }, 'invalid_request'],
  ];
  for (const [override, error] of cases) {
    const res = await rawAuth({ ...baseAuthParams(email), ...override });
    assert.equal(res.status, 400, JSON.stringify(override));
    assert.equal(res.headers.get('location'), null);
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await res.text(), new RegExp(error));
  }
});

test('auth URL: success redirects with code, echoed state, granted scope, authuser, prompt (§1.1)', async () => {
  const email = account('ok');
  const client = oauthClient(emu);
  const cb = await authorize(emu, client, { email, state: 'opaque state/with spaces', prompt: 'consent' });
  assert.equal(`${cb.origin}${cb.pathname}`, REDIRECT_URI);
  assert.equal(cb.searchParams.get('state'), 'opaque state/with spaces');
  assert.match(cb.searchParams.get('code') ?? '', /^4\//);
  assert.deepEqual(cb.searchParams.get('scope')?.split(' ').sort(), [
    'https://www.googleapis.com/auth/calendar.calendarlist.readonly',
    'https://www.googleapis.com/auth/calendar.events',
    'https://www.googleapis.com/auth/userinfo.email',
    'openid',
  ]);
  assert.equal(cb.searchParams.get('authuser'), '0');
  assert.equal(cb.searchParams.get('prompt'), 'consent');
});

test('user denies: error=access_denied with the state (§1.1, §9 "user denies")', async () => {
  const email = account('deny');
  const cb = await authorize(emu, oauthClient(emu), { email, state: 'keep-me', extra: { emulator_consent: 'deny' } });
  assert.equal(cb.searchParams.get('error'), 'access_denied');
  assert.equal(cb.searchParams.get('state'), 'keep-me');
  assert.equal(cb.searchParams.get('code'), null);
});

test('code exchange with PKCE S256: access, refresh and id tokens; id_token verifies against the emulator certs (§1.2, §1.5)', async () => {
  const email = account('pkce');
  const { client, tokens } = await connect(emu, email);
  assert.match(tokens.access_token ?? '', /^ya29\./);
  assert.match(tokens.refresh_token ?? '', /^1\/\//);
  assert.equal(tokens.token_type, 'Bearer');
  assert.ok(typeof tokens.expiry_date === 'number' && tokens.expiry_date > Date.now() + 3500_000);
  assert.ok(tokens.scope?.includes(SCOPE.events));
  assert.ok(tokens.id_token);
  const ticket = await client.verifyIdToken({ idToken: tokens.id_token, audience: emu.control.clientId });
  const payload = ticket.getPayload();
  assert.ok(payload);
  assert.equal(payload.email, email);
  assert.equal(payload.email_verified, true);
  assert.equal(payload.aud, emu.control.clientId);
  assert.equal(payload.iss, 'https://accounts.google.com');
  assert.equal(payload.sub, emu.control.account(email).sub);
  // The token endpoint got the verifier and the secret in the body (ClientSecretPost).
  const tokenCall = emu.control.calls({ pathPrefix: '/token' }).at(-1);
  assert.equal((tokenCall?.body as Record<string, string>)['grant_type'], 'authorization_code');
  assert.ok((tokenCall?.body as Record<string, string>)['code_verifier']);
});

test('id_token only when openid was requested (§1.2)', async () => {
  const email = account('noopenid');
  const { tokens } = await connect(emu, email, { scopes: [SCOPE.events] });
  assert.equal(tokens.id_token, undefined);
  assert.equal(tokens.scope, SCOPE.events);
});

test('refresh_token only on first consent or with prompt=consent (§1.2)', async () => {
  const email = account('firstconsent');
  const client = oauthClient(emu);
  const first = await authorize(emu, client, { email });
  const t1 = (await client.getToken(first.searchParams.get('code') ?? '')).tokens;
  assert.ok(t1.refresh_token, 'first consent issues a refresh token');

  const second = await authorize(emu, client, { email });
  assert.equal(second.searchParams.get('prompt'), 'none', 'consent screen skipped');
  const t2 = (await client.getToken(second.searchParams.get('code') ?? '')).tokens;
  assert.equal(t2.refresh_token, undefined, 'no refresh token without prompt=consent');
  assert.ok(t2.access_token);

  const third = await authorize(emu, client, { email, prompt: 'consent' });
  const t3 = (await client.getToken(third.searchParams.get('code') ?? '')).tokens;
  assert.ok(t3.refresh_token, 'prompt=consent issues one again');
  assert.notEqual(t3.refresh_token, t1.refresh_token);

  const online = await authorize(emu, client, { email, prompt: 'consent', accessType: 'online' });
  const t4 = (await client.getToken(online.searchParams.get('code') ?? '')).tokens;
  assert.equal(t4.refresh_token, undefined, 'access_type=online never gets one');
});

test('code reused, garbled, expired: 400 invalid_grant with Google descriptions (§1.2)', async () => {
  const email = account('reuse');
  const client = oauthClient(emu);
  const cb = await authorize(emu, client, { email });
  const code = cb.searchParams.get('code') ?? '';
  await client.getToken(code);
  const reused = await rejection(client.getToken(code));
  assert.equal(reused.status, 400);
  assert.equal(reused.message, 'invalid_grant');
  assert.deepEqual(reused.data, { error: 'invalid_grant', error_description: 'Bad Request' });

  const garbled = await rejection(client.getToken('4/not-a-real-code'));
  assert.deepEqual(garbled.data, { error: 'invalid_grant', error_description: 'Malformed auth code.' });

  const cb2 = await authorize(emu, client, { email });
  emu.control.advanceClock(11 * 60_000);
  try {
    const expired = await rejection(client.getToken(cb2.searchParams.get('code') ?? ''));
    assert.deepEqual(expired.data, { error: 'invalid_grant', error_description: 'Bad Request' });
  } finally {
    emu.control.advanceClock(-11 * 60_000);
  }
});

test('PKCE verifier missing or wrong: 400 invalid_grant; plain method works (§1.2)', async () => {
  const email = account('verifier');
  const client = oauthClient(emu);
  const { codeVerifier, codeChallenge } = await client.generateCodeVerifierAsync();
  const s256 = { email, codeChallenge, codeChallengeMethod: CodeChallengeMethod.S256 };

  const missing = await rejection(client.getToken((await authorize(emu, client, s256)).searchParams.get('code') ?? ''));
  assert.equal(missing.status, 400);
  assert.deepEqual(missing.data, { error: 'invalid_grant', error_description: 'Missing code verifier.' });

  const other = await client.generateCodeVerifierAsync();
  const wrong = await rejection(
    client.getToken({ code: (await authorize(emu, client, s256)).searchParams.get('code') ?? '', codeVerifier: other.codeVerifier }),
  );
  assert.deepEqual(wrong.data, { error: 'invalid_grant', error_description: 'Invalid code verifier.' });

  const ok = await client.getToken({ code: (await authorize(emu, client, s256)).searchParams.get('code') ?? '', codeVerifier });
  assert.ok(ok.tokens.access_token);

  // plain: the challenge is the verifier itself.
  const plain = await authorize(emu, client, { email, codeChallenge: codeVerifier, codeChallengeMethod: CodeChallengeMethod.Plain });
  const okPlain = await client.getToken({ code: plain.searchParams.get('code') ?? '', codeVerifier });
  assert.ok(okPlain.tokens.access_token);
});

test('redirect_uri must match the auth request at exchange (§1.2)', async () => {
  const email = account('redir');
  const client = oauthClient(emu);
  const cb = await authorize(emu, client, { email });
  const e = await rejection(
    client.getToken({ code: cb.searchParams.get('code') ?? '', redirect_uri: 'http://127.0.0.1:3000/api/integrations/google/callback' }),
  );
  assert.equal(e.status, 400);
  assert.equal(e.data.error, 'redirect_uri_mismatch');
});

test('bad client: 401 invalid_client for an unknown client or a wrong secret; HTTP Basic works (§1.2)', async () => {
  const email = account('client');
  const good = oauthClient(emu);
  const wrongSecret = oauthClient(emu, { clientSecret: 'not-the-secret' });
  const cb = await authorize(emu, good, { email });
  const e1 = await rejection(wrongSecret.getToken(cb.searchParams.get('code') ?? ''));
  assert.equal(e1.status, 401);
  assert.deepEqual(e1.data, { error: 'invalid_client', error_description: 'Unauthorized' });

  const unknown = oauthClient(emu, { clientId: 'ghost.apps.googleusercontent.com' });
  const e2 = await rejection(unknown.getToken('4/whatever'));
  assert.equal(e2.status, 401);
  assert.deepEqual(e2.data, { error: 'invalid_client', error_description: 'The OAuth client was not found.' });

  const basic = oauthClient(emu, { clientAuthentication: ClientAuthentication.ClientSecretBasic });
  const cb2 = await authorize(emu, basic, { email });
  const { tokens } = await basic.getToken(cb2.searchParams.get('code') ?? '');
  assert.ok(tokens.access_token);
  const call = emu.control.calls({ pathPrefix: '/token' }).at(-1);
  assert.equal((call?.body as Record<string, string>)['client_secret'], undefined, 'secret went in the Basic header');
});

test('unknown grant_type: 400 unsupported_grant_type (§1.2)', async () => {
  const res = await fetch(`${emu.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', client_id: emu.control.clientId, client_secret: emu.control.clientSecret }),
  });
  assert.equal(res.status, 400);
  assert.equal(((await res.json()) as { error: string }).error, 'unsupported_grant_type');
});

test('partial consent: a configurable subset is granted; token and callback scope show it (§2.3)', async () => {
  const email = account('partial');
  const client = oauthClient(emu);
  const cb = await authorize(emu, client, { email, extra: { emulator_scopes: SCOPE.calendarListReadonly } });
  const callbackScopes = cb.searchParams.get('scope')?.split(' ') ?? [];
  assert.ok(callbackScopes.includes(SCOPE.calendarListReadonly));
  assert.ok(!callbackScopes.includes(SCOPE.events));
  const { tokens } = await client.getToken(cb.searchParams.get('code') ?? '');
  const granted = tokens.scope?.split(' ') ?? [];
  assert.ok(granted.includes('openid') && granted.includes(SCOPE.email), 'sign-in scopes are not optional');
  assert.ok(!granted.includes(SCOPE.events));

  // Re-prompt with include_granted_scopes: the new token covers the union.
  const again = await authorize(emu, client, { email, prompt: 'consent', includeGrantedScopes: true, extra: { emulator_scopes: SCOPE.events } });
  const union = (await client.getToken(again.searchParams.get('code') ?? '')).tokens.scope?.split(' ') ?? [];
  assert.ok(union.includes(SCOPE.events) && union.includes(SCOPE.calendarListReadonly));
});

test('unticking every Calendar box: code with sign-in scopes only, or access_denied (§2.3 UNCONFIRMED, both)', async () => {
  const email = account('empty');
  const client = oauthClient(emu);
  const asCode = await authorize(emu, client, { email, extra: { emulator_scopes: '' } });
  assert.deepEqual(asCode.searchParams.get('scope')?.split(' ').sort(), [SCOPE.email, 'openid']);
  assert.ok(asCode.searchParams.get('code'));

  const perRequest = await authorize(emu, client, { email, extra: { emulator_scopes: '', emulator_empty_consent: 'access_denied' } });
  assert.equal(perRequest.searchParams.get('error'), 'access_denied');

  emu.control.setConfig({ emptyConsentOutcome: 'access_denied' });
  try {
    const denied = await authorize(emu, client, { email, extra: { emulator_scopes: '' } });
    assert.equal(denied.searchParams.get('error'), 'access_denied');
  } finally {
    emu.control.setConfig({ emptyConsentOutcome: 'code' });
  }
});

test('refresh OK: new access token, no refresh_token in the answer, tokens event fires (§1.2, §8.2)', async () => {
  const email = account('refresh');
  const { client, tokens } = await connect(emu, email);
  const events: Credentials[] = [];
  // Copy: the library later writes the old refresh token into the same object.
  client.on('tokens', (t) => events.push({ ...t }));
  const { credentials } = await client.refreshAccessToken();
  assert.notEqual(credentials.access_token, tokens.access_token);
  assert.equal(credentials.refresh_token, tokens.refresh_token, 'library keeps the old refresh token');
  assert.equal(events.length, 1);
  assert.equal(events[0]?.refresh_token, undefined, 'server sent none');
  assert.ok(events[0]?.id_token, 'openid grant: id_token on refresh too');
  assert.equal(credentials.scope, tokens.scope);
});

test('revoke through the library (token in the query): 200, then refresh is invalid_grant; revoke again is 400 (§1.4)', async () => {
  const email = account('revoke');
  const { client, tokens } = await connect(emu, email);
  const res = await client.revokeToken(tokens.access_token ?? '');
  assert.equal(res.status, 200);
  const revokeCall = emu.control.calls({ pathPrefix: '/revoke' }).at(-1);
  assert.ok(revokeCall?.query['token'], 'GAL sends ?token=');
  const e = await rejection(client.refreshAccessToken());
  assert.equal(e.status, 400);
  assert.equal(e.message, 'invalid_grant');
  assert.deepEqual(e.data, { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' });
  const again = await rejection(client.revokeToken(tokens.access_token ?? ''));
  assert.equal(again.status, 400);
  assert.equal(again.data.error, 'invalid_token');
  // The access token died with the grant.
  const api = calendarApi(emu, client);
  client.setCredentials({ access_token: tokens.access_token ?? '' });
  const dead = await rejection(api.calendarList.list());
  assert.equal(dead.status, 401);
});

test('revoke with the refresh token in a form body (§1.4)', async () => {
  const email = account('revokeform');
  const { client, tokens } = await connect(emu, email);
  const res = await fetch(`${emu.url}/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: tokens.refresh_token ?? '' }),
  });
  assert.equal(res.status, 200);
  assert.equal((await rejection(client.refreshAccessToken())).message, 'invalid_grant');
});

test('refresh-token death switches: control revoke, 6 months unused, Testing mode 7 days (§1.3)', async () => {
  // Control route (CONTRACT §8), over HTTP.
  const a = account('deathrevoke');
  const ca = await connect(emu, a);
  const r = await fetch(`${emu.url}/__emulator/accounts/${encodeURIComponent(a)}/revoke`, { method: 'POST' });
  assert.equal(r.status, 200);
  assert.deepEqual((await rejection(ca.client.refreshAccessToken())).data, {
    error: 'invalid_grant',
    error_description: 'Token has been expired or revoked.',
  });

  // Unused for 6 months; a use in between keeps it alive.
  const b = account('deathidle');
  const cb = await connect(emu, b);
  const c = account('deathidle2');
  const cc = await connect(emu, c);
  try {
    emu.control.advanceClock(100 * 86_400_000);
    await cc.client.refreshAccessToken();
    emu.control.advanceClock(100 * 86_400_000);
    await cc.client.refreshAccessToken(); // used 100 days ago: alive
    const idle = await rejection(cb.client.refreshAccessToken()); // unused 200 days
    assert.equal(idle.data.error_description, 'Token has been expired or revoked.');
  } finally {
    emu.control.advanceClock(-200 * 86_400_000);
  }

  // External + Testing: refresh tokens die after 7 days unless only sign-in scopes.
  emu.control.setConfig({ publishingStatus: 'testing' });
  try {
    const d = account('deathtesting');
    const cd = await connect(emu, d);
    const signInOnly = await connect(emu, d, { scopes: ['openid', 'email'] });
    emu.control.advanceClock(6 * 86_400_000);
    await cd.client.refreshAccessToken();
    emu.control.advanceClock(2 * 86_400_000);
    assert.equal((await rejection(cd.client.refreshAccessToken())).message, 'invalid_grant');
    const alive = await signInOnly.client.refreshAccessToken();
    assert.ok(alive.credentials.access_token);
  } finally {
    emu.control.advanceClock(-8 * 86_400_000);
    emu.control.setConfig({ publishingStatus: 'production' });
  }
});

test('101st refresh token for one account+client silently invalidates the oldest (§1.3)', async () => {
  const email = account('cap');
  const client = oauthClient(emu);
  const refreshTokens: string[] = [];
  for (let i = 0; i < 101; i++) {
    const cb = await authorize(emu, client, { email, prompt: 'consent', scopes: [SCOPE.events] });
    const { tokens } = await client.getToken(cb.searchParams.get('code') ?? '');
    assert.ok(tokens.refresh_token);
    refreshTokens.push(tokens.refresh_token);
  }
  const oldest = oauthClient(emu);
  oldest.setCredentials({ refresh_token: refreshTokens[0] ?? '' });
  assert.equal((await rejection(oldest.refreshAccessToken())).data.error_description, 'Token has been expired or revoked.');
  const second = oauthClient(emu);
  second.setCredentials({ refresh_token: refreshTokens[1] ?? '' });
  assert.ok((await second.refreshAccessToken()).credentials.access_token);
});

test('account email: id_token claims and both userinfo endpoints; tokeninfo (§1.5)', async () => {
  const email = account('userinfo');
  const { client } = await connect(emu, email);
  const sub = emu.control.account(email).sub;
  const oidc = await client.request<{ sub: string; email: string; email_verified: boolean }>({ url: `${emu.url}/v1/userinfo` });
  assert.deepEqual({ sub: oidc.data.sub, email: oidc.data.email, v: oidc.data.email_verified }, { sub, email, v: true });
  const v2 = await client.request<{ id: string; email: string; verified_email: boolean }>({ url: `${emu.url}/oauth2/v2/userinfo` });
  assert.deepEqual({ id: v2.data.id, email: v2.data.email, v: v2.data.verified_email }, { id: sub, email, v: true });
  const info = await client.getTokenInfo(client.credentials.access_token ?? '');
  assert.equal(info.email, email);
  assert.equal(info.sub, sub);
  assert.ok(info.scopes.includes(SCOPE.events));
  assert.ok(info.expiry_date > Date.now());
});

test('expired access token: 401 authError UNAUTHENTICATED; the library refreshes once and replays (§5, §8.2)', async () => {
  const email = account('expired');
  const { client, tokens } = await connect(emu, email);
  const api = calendarApi(emu, client);

  // With an expiry_date the library trusts it and surfaces the 401 as is.
  emu.control.expireAccessTokens(email);
  const e = await rejection(api.calendarList.list());
  assert.equal(e.status, 401);
  assert.equal(e.data.error.status, 'UNAUTHENTICATED');
  assert.equal(e.data.error.errors[0].reason, 'authError');
  assert.equal(e.data.error.errors[0].message, 'Invalid Credentials');
  assert.match(e.data.error.message, /^Request had invalid authentication credentials\. Expected OAuth 2 access token/);
  assert.equal(e.headers?.get('www-authenticate'), 'Bearer realm="https://accounts.google.com/", error=invalid_token');
  assert.equal(e.headers?.get('content-type'), 'application/json; charset=UTF-8');

  // Without expiry_date (as stored by many apps) a 401 triggers one refresh and a replay.
  client.setCredentials({ access_token: tokens.access_token ?? '', refresh_token: tokens.refresh_token ?? '' });
  const seen: Credentials[] = [];
  client.on('tokens', (t) => seen.push(t));
  emu.control.clearCalls();
  const list = await api.calendarList.list();
  assert.equal(list.status, 200);
  assert.equal(seen.length, 1, 'tokens event on the refresh');
  assert.deepEqual(
    emu.control.calls().map((c) => `${c.method} ${c.path} ${c.status}`),
    ['GET /calendar/v3/users/me/calendarList 401', 'POST /token 200', 'GET /calendar/v3/users/me/calendarList 200'],
  );
});

test('access tokens really expire after the configured TTL; the library refreshes eagerly (EMULATOR_ACCESS_TOKEN_TTL_S)', async () => {
  const short = await startEmulator({ accessTokenTtlS: 2 });
  try {
    const email = freshEmail('ttl');
    short.control.addAccount({ email });
    const { client, tokens } = await connect(short, email);
    assert.ok((tokens.expiry_date ?? 0) - Date.now() <= 2000);
    // Raw call with the old token after the clock passes the TTL: 401.
    short.control.advanceClock(2_500);
    const raw = await fetch(`${short.url}/calendar/v3/users/me/calendarList`, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    assert.equal(raw.status, 401);
    // The library sees expiry_date within its 5-minute threshold and refreshes first.
    const api = calendarApi(short, client);
    const res = await api.calendarList.list();
    assert.equal(res.status, 200);
    assert.ok(short.control.calls({ pathPrefix: '/token' }).length >= 2);
  } finally {
    await short.close();
  }
});

test('prompt=none: a code without UI when everything was granted before, else consent_required (§1.1)', async () => {
  const email = account('promptnone');
  const client = oauthClient(emu);
  const params = (scope: string): Record<string, string> => ({
    client_id: emu.control.clientId,
    redirect_uri: REDIRECT_URI,
    response_type: 'code',
    scope,
    state: 'pn',
    login_hint: email,
    prompt: 'none',
  });
  const before = new URL((await rawAuth(params(SCOPE.events))).headers.get('location') ?? '');
  assert.equal(before.searchParams.get('error'), 'consent_required');
  await connect(emu, email, { scopes: [SCOPE.events] });
  const res = await rawAuth(params(SCOPE.events));
  const after = new URL(res.headers.get('location') ?? '');
  assert.equal(after.searchParams.get('prompt'), 'none');
  assert.ok((await client.getToken(after.searchParams.get('code') ?? '')).tokens.access_token);
});

test('OpenID discovery and JWKS name the emulator endpoints and the id_token key (§1.5)', async () => {
  const email = account('discovery');
  const { tokens } = await connect(emu, email);
  const conf = (await (await fetch(`${emu.url}/.well-known/openid-configuration`)).json()) as Record<string, string>;
  assert.equal(conf['issuer'], 'https://accounts.google.com');
  assert.equal(conf['token_endpoint'], `${emu.url}/token`);
  assert.equal(conf['userinfo_endpoint'], `${emu.url}/v1/userinfo`);
  const jwks = (await (await fetch(conf['jwks_uri'] ?? '')).json()) as { keys: { kid: string; alg: string; kty: string }[] };
  const header = JSON.parse(Buffer.from((tokens.id_token ?? '').split('.')[0] ?? '', 'base64url').toString()) as { kid: string; alg: string };
  assert.equal(header.alg, 'RS256');
  assert.deepEqual(jwks.keys.map((k) => [k.kid, k.alg, k.kty]), [[header.kid, 'RS256', 'RSA']]);
});
