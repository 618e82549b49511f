// The consent page a person clicks (google-api.md §2.3): checkboxes for granular consent,
// account chooser, Allow / Deny; posting the form answers Google's redirect.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CodeChallengeMethod } from 'google-auth-library';
import { startEmulator, type RunningEmulator } from './index.js';
import { SCOPE } from './scopes.js';
import { PRODUCT_SCOPES, freshEmail, oauthClient } from './helpers.js';

let emu: RunningEmulator;
before(async () => {
  emu = await startEmulator();
});
after(async () => {
  await emu.close();
});

function field(html: string, name: string): string {
  const m = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
  assert.ok(m?.[1], `no ${name} in page`);
  return m[1];
}

async function consentPage(email: string, scopes = PRODUCT_SCOPES): Promise<{ html: string; verifier: string; client: ReturnType<typeof oauthClient> }> {
  const client = oauthClient(emu);
  const { codeVerifier, codeChallenge } = await client.generateCodeVerifierAsync();
  const url = client.generateAuthUrl({
    access_type: 'offline',
    prompt: 'consent',
    scope: scopes,
    state: 'page-state',
    login_hint: email,
    code_challenge: codeChallenge,
    code_challenge_method: CodeChallengeMethod.S256,
  });
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
  return { html: await res.text(), verifier: codeVerifier, client };
}

async function submit(form: URLSearchParams): Promise<URL> {
  const res = await fetch(`${emu.url}/signin/oauth/consent`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form,
    redirect: 'manual',
  });
  assert.equal(res.status, 302, await res.text());
  return new URL(res.headers.get('location') ?? '');
}

test('consent page: accessible account chooser, one checkbox per Calendar scope, Allow and Deny buttons', async () => {
  const email = freshEmail('page');
  const other = freshEmail('other');
  emu.control.addAccount({ email });
  emu.control.addAccount({ email: other });
  const { html } = await consentPage(email);
  assert.match(html, /<html lang="en">/);
  assert.match(html, /<form method="post" action="\/signin\/oauth\/consent">/);
  // Account chooser: the login_hint account is preselected.
  assert.match(html, new RegExp(`<input type="radio" id="account-\\d+" name="account" value="${email.replace('.', '\\.')}" checked>`));
  assert.match(html, new RegExp(`name="account" value="${other.replace('.', '\\.')}">`));
  // Granular consent: checkboxes with labels for the two Calendar scopes, none for sign-in scopes.
  for (const scope of [SCOPE.calendarListReadonly, SCOPE.events]) {
    const m = new RegExp(`<label for="(scope-\\d+)"><input type="checkbox" id="\\1" name="scope" value="${scope.replace(/\./g, '\\.')}">`).exec(html);
    assert.ok(m, `checkbox with label for ${scope}`);
  }
  assert.equal((html.match(/type="checkbox"/g) ?? []).length, 2);
  assert.match(html, /<button type="submit" name="decision" value="allow">Allow<\/button>/);
  assert.match(html, /<button type="submit" name="decision" value="deny">Deny<\/button>/);
  assert.match(html, /<legend>/);
});

test('posting the consent form: ticked boxes become the granted scope; the code exchanges with PKCE', async () => {
  const email = freshEmail('post');
  emu.control.addAccount({ email });
  const { html, verifier, client } = await consentPage(email);
  const form = new URLSearchParams({ request_id: field(html, 'request_id'), account: email, decision: 'allow' });
  form.append('scope', SCOPE.events); // calendarlist.readonly left unticked
  const cb = await submit(form);
  assert.equal(cb.searchParams.get('state'), 'page-state');
  const granted = cb.searchParams.get('scope')?.split(' ') ?? [];
  assert.ok(granted.includes(SCOPE.events) && granted.includes('openid'));
  assert.ok(!granted.includes(SCOPE.calendarListReadonly));
  const { tokens } = await client.getToken({ code: cb.searchParams.get('code') ?? '', codeVerifier: verifier });
  assert.equal(tokens.scope, granted.join(' '));
  assert.ok(tokens.refresh_token);
  // The request id is single use.
  const replay = await fetch(`${emu.url}/signin/oauth/consent`, { method: 'POST', body: form, redirect: 'manual' });
  assert.equal(replay.status, 400);
});

test('posting Deny answers access_denied; "use another account" signs in as a new account', async () => {
  const email = freshEmail('denypage');
  emu.control.addAccount({ email });
  const first = await consentPage(email);
  const denied = await submit(new URLSearchParams({ request_id: field(first.html, 'request_id'), account: email, decision: 'deny' }));
  assert.equal(denied.searchParams.get('error'), 'access_denied');
  assert.equal(denied.searchParams.get('state'), 'page-state');

  const newcomer = freshEmail('newcomer');
  const second = await consentPage(email, ['openid', 'email', SCOPE.events]);
  // A single non-sign-in scope is not optional: a hidden input, no checkbox.
  assert.equal((second.html.match(/type="checkbox"/g) ?? []).length, 0);
  const form = new URLSearchParams({ request_id: field(second.html, 'request_id'), account: '__new__', new_email: newcomer, decision: 'allow' });
  form.append('scope', SCOPE.events);
  const cb = await submit(form);
  const { tokens } = await second.client.getToken({ code: cb.searchParams.get('code') ?? '', codeVerifier: second.verifier });
  const ticket = await second.client.verifyIdToken({ idToken: tokens.id_token ?? '', audience: emu.control.clientId });
  assert.equal(ticket.getPayload()?.email, newcomer);
  assert.equal(emu.control.account(newcomer).calendars[0]?.id, newcomer);
});
