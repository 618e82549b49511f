// OAuth 2.0 for web-server apps (google-api.md §1): the authorization endpoint with its consent
// page, the token endpoint (codes, PKCE, refresh, refresh-token death), revocation, userinfo,
// tokeninfo and the id_token certificates.

import { createHash, timingSafeEqual } from 'node:crypto';
import { AuthPageError, OAuthError, apiError, invalidCredentials, loginRequired, insufficientScopes } from './errors.js';
import { html, json, redirect, type EmuRequest, type Reply } from './http.js';
import { CONSENT_PATH, renderConsentPage } from './consent-page.js';
import { isKnownScope, isSignInScope, parseScopeParam, SCOPE } from './scopes.js';
import { atHash } from './jwt.js';
import {
  randomToken,
  type AccessTokenRecord,
  type Account,
  type EmulatorState,
  type PendingConsent,
  type RefreshTokenRecord,
} from './state.js';

const DAY_MS = 86_400_000;
const ISSUER = 'https://accounts.google.com';

export async function handleOAuth(state: EmulatorState, req: EmuRequest): Promise<Reply | null> {
  const p = req.rawPath;
  if (p === '/o/oauth2/v2/auth' || p === '/o/oauth2/auth') {
    if (req.method !== 'GET') return html(405, 'Method not allowed');
    return authorize(state, req);
  }
  if (p === CONSENT_PATH) {
    if (req.method !== 'POST') return html(405, 'Method not allowed');
    return submitConsent(state, req);
  }
  if (p === '/token' || p === '/o/oauth2/token') return token(state, req);
  if (p === '/revoke' || p === '/o/oauth2/revoke') return revoke(state, req);
  if (p === '/v1/userinfo' || p === '/oauth2/v3/userinfo') return userinfo(state, req, 'oidc');
  if (p === '/oauth2/v2/userinfo' || p === '/oauth2/v1/userinfo') return userinfo(state, req, 'v2');
  if (p === '/tokeninfo' || p === '/oauth2/v3/tokeninfo') return tokeninfo(state, req);
  if (p === '/oauth2/v1/certs') {
    return json(200, state.signingKey.pemCerts(), { 'Cache-Control': 'public, max-age=3600' });
  }
  if (p === '/oauth2/v3/certs') {
    return json(200, state.signingKey.jwks(), { 'Cache-Control': 'public, max-age=3600' });
  }
  if (p === '/.well-known/openid-configuration') return json(200, openidConfiguration(req.origin));
  return null;
}

// ---------------------------------------------------------------- authorization endpoint (§1.1)

const DEFAULT_REDIRECT = /^http:\/\/(localhost|127\.0\.0\.1)(:\d{1,5})?\/api\/integrations\/google\/callback$/;

/** Exact match: scheme, case, trailing slash; no wildcard (§1.1). */
export function isAllowedRedirect(state: EmulatorState, uri: string): boolean {
  const list = state.config.redirectUris;
  if (list === null) return DEFAULT_REDIRECT.test(uri);
  return list.includes(uri);
}

const CHALLENGE = /^[A-Za-z0-9\-._~]{43,128}$/;

function validateAuthRequest(state: EmulatorState, q: URLSearchParams): PendingConsent {
  const clientId = q.get('client_id');
  if (!clientId) throw new AuthPageError('invalid_request', 'Missing required parameter: client_id');
  if (clientId !== state.client.clientId) throw new AuthPageError('invalid_client', 'The OAuth client was not found.');
  const redirectUri = q.get('redirect_uri');
  if (!redirectUri) throw new AuthPageError('invalid_request', 'Missing required parameter: redirect_uri');
  if (!isAllowedRedirect(state, redirectUri)) {
    throw new AuthPageError(
      'redirect_uri_mismatch',
      `You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy. If you're the app developer, register the redirect URI in the Google Cloud Console. Request details: redirect_uri=${redirectUri}`,
    );
  }
  // From here on the request came from a known client to a registered URI; Google still shows
  // its page for request errors rather than redirecting (§1.1, invalid_request).
  const responseType = q.get('response_type');
  if (!responseType) throw new AuthPageError('invalid_request', 'Missing required parameter: response_type');
  if (responseType !== 'code') {
    throw new AuthPageError('unsupported_response_type', `Invalid response_type: ${responseType}`);
  }
  const scopeParam = q.get('scope');
  if (!scopeParam || scopeParam.trim() === '') throw new AuthPageError('invalid_request', 'Missing required parameter: scope');
  const scopes = parseScopeParam(scopeParam);
  const unknown = scopes.filter((s) => !isKnownScope(s));
  if (unknown.length > 0) {
    throw new AuthPageError('invalid_scope', `Some requested scopes were invalid. {invalid=[${unknown.join(', ')}]}`);
  }
  const accessType = q.get('access_type') ?? 'online';
  if (accessType !== 'online' && accessType !== 'offline') {
    throw new AuthPageError('invalid_request', `Invalid access_type: ${accessType}`);
  }
  const prompt = (q.get('prompt') ?? '').split(' ').filter((s) => s !== '');
  for (const v of prompt) {
    if (v !== 'none' && v !== 'consent' && v !== 'select_account') {
      throw new AuthPageError('invalid_request', `Invalid prompt: ${v}`);
    }
  }
  if (prompt.includes('none') && prompt.length > 1) {
    throw new AuthPageError('invalid_request', 'prompt=none must not be combined with other values');
  }
  const challenge = q.get('code_challenge');
  const method = q.get('code_challenge_method');
  const pending: PendingConsent = {
    id: randomToken(18),
    createdAt: state.now(),
    clientId,
    redirectUri,
    state: q.get('state'),
    scopes,
    accessType,
    prompt,
    includeGrantedScopes: q.get('include_granted_scopes') === 'true',
    loginHint: q.get('login_hint'),
  };
  if (method !== null && method !== 'S256' && method !== 'plain') {
    throw new AuthPageError('invalid_request', `Invalid code_challenge_method: ${method}`);
  }
  if (challenge !== null) {
    if (!CHALLENGE.test(challenge)) throw new AuthPageError('invalid_request', 'Invalid code_challenge.');
    pending.codeChallenge = challenge;
    // `plain` is the default method when only a challenge is sent (§1.1).
    pending.codeChallengeMethod = method === 'S256' ? 'S256' : 'plain';
  } else if (method !== null) {
    throw new AuthPageError('invalid_request', 'Missing required parameter: code_challenge');
  }
  const nonce = q.get('nonce');
  if (nonce !== null) pending.nonce = nonce;
  return pending;
}

/** The account the request is about: login_hint (email or sub), or the only account there is. */
function hintedAccount(state: EmulatorState, loginHint: string | null): Account | undefined {
  if (loginHint) return state.getAccount(loginHint);
  if (state.accounts.size === 1) return state.accounts.values().next().value;
  return undefined;
}

function callbackUrl(redirectUri: string, params: [string, string | null][]): string {
  const parts = params
    .filter((kv): kv is [string, string] => kv[1] !== null)
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`);
  return redirectUri + (redirectUri.includes('?') ? '&' : '?') + parts.join('&');
}

function denied(pending: PendingConsent, error = 'access_denied'): Reply {
  return redirect(callbackUrl(pending.redirectUri, [['error', error], ['state', pending.state]]));
}

function authorize(state: EmulatorState, req: EmuRequest): Reply {
  const q = req.query;
  const pending = validateAuthRequest(state, q);
  const auto = q.get('emulator_consent');
  if (auto !== null) {
    if (auto !== 'allow' && auto !== 'deny') {
      throw new AuthPageError('invalid_request', `emulator_consent must be allow or deny, got ${auto}`);
    }
    const account = hintedAccount(state, pending.loginHint);
    if (!account) {
      throw new AuthPageError(
        'invalid_request',
        pending.loginHint
          ? `emulator: login_hint ${pending.loginHint} is not an emulator account (POST /__emulator/accounts first)`
          : 'emulator: emulator_consent needs login_hint=<email> when there is not exactly one account',
      );
    }
    req.log.account = account.email;
    if (auto === 'deny') return denied(pending);
    const optional = pending.scopes.filter((s) => !isSignInScope(s));
    let granted = optional;
    const subset = q.get('emulator_scopes');
    if (subset !== null) {
      const wanted = parseScopeParam(subset);
      const notRequested = wanted.filter((s) => !pending.scopes.includes(s));
      if (notRequested.length > 0) {
        throw new AuthPageError('invalid_request', `emulator_scopes names scopes that were not requested: ${notRequested.join(' ')}`);
      }
      granted = optional.filter((s) => wanted.includes(s));
    }
    const empty = q.get('emulator_empty_consent');
    if (empty !== null && empty !== 'code' && empty !== 'access_denied') {
      throw new AuthPageError('invalid_request', `emulator_empty_consent must be code or access_denied, got ${empty}`);
    }
    return finishConsent(state, pending, account, granted, empty ?? undefined);
  }

  if (pending.prompt.includes('none')) {
    // No UI allowed: succeed only if the account already granted everything requested.
    const account = hintedAccount(state, pending.loginHint);
    if (!account) return denied(pending, 'login_required');
    const prior = state.grants.get(state.grantKey(pending.clientId, account.email));
    if (!prior || pending.scopes.some((s) => !prior.scopes.has(s))) return denied(pending, 'consent_required');
    return finishConsent(state, pending, account, pending.scopes.filter((s) => !isSignInScope(s)));
  }

  state.pendingConsents.set(pending.id, pending);
  return html(
    200,
    renderConsentPage({ pending, accounts: [...state.accounts.values()], appName: 'Cassius (emulated client)' }),
  );
}

function submitConsent(state: EmulatorState, req: EmuRequest): Reply {
  const form = new URLSearchParams(req.bodyText);
  const id = form.get('request_id') ?? '';
  const pending = state.pendingConsents.get(id);
  if (!pending || state.now() - pending.createdAt > 3_600_000) {
    throw new AuthPageError('invalid_request', 'This sign-in request has expired or is unknown; start again.');
  }
  state.pendingConsents.delete(id);
  if (form.get('decision') !== 'allow') return denied(pending);
  let email = form.get('account') ?? '';
  if (email === '__new__' || email === '') {
    email = (form.get('new_email') ?? '').trim().toLowerCase();
    if (!/^[^@\s]+@[^@\s]+$/.test(email)) {
      throw new AuthPageError('invalid_request', 'Choose an account or type the email of another account.');
    }
    // A person trying the demo may sign in as anyone: the account is created on the spot.
    if (!state.getAccount(email)) state.addAccount({ email });
  }
  const account = state.getAccount(email);
  if (!account) throw new AuthPageError('invalid_request', `Unknown account ${email}`);
  req.log.account = account.email;
  const ticked = form.getAll('scope');
  const granted = pending.scopes.filter((s) => !isSignInScope(s) && ticked.includes(s));
  return finishConsent(state, pending, account, granted);
}

/** Issues the code for the granted scopes and answers Google's 302 to the redirect URI. */
function finishConsent(
  state: EmulatorState,
  pending: PendingConsent,
  account: Account,
  grantedOptional: string[],
  emptyOutcome?: 'code' | 'access_denied',
): Reply {
  const requestedOptional = pending.scopes.filter((s) => !isSignInScope(s));
  if (requestedOptional.length > 0 && grantedOptional.length === 0) {
    // §2.3 UNCONFIRMED: unticking every Calendar box; both outcomes are modelled.
    if ((emptyOutcome ?? state.config.emptyConsentOutcome) === 'access_denied') return denied(pending);
  }
  const granted = pending.scopes.filter((s) => isSignInScope(s) || grantedOptional.includes(s));
  const key = state.grantKey(pending.clientId, account.email);
  const prior = state.grants.get(key);
  // Google shows the consent screen (and then issues a refresh token) the first time, for new
  // scopes, or with prompt=consent (§1.1, §1.2).
  const consentShown = pending.prompt.includes('consent') || !prior || pending.scopes.some((s) => !prior.scopes.has(s));
  const grantScopes = new Set([...(prior?.scopes ?? []), ...granted]);
  state.grants.set(key, { clientId: pending.clientId, account: account.email, scopes: grantScopes });
  const tokenScopes = pending.includeGrantedScopes ? [...grantScopes] : granted;

  const code = `4/0A${randomToken(48)}`;
  state.codes.set(code, {
    code,
    clientId: pending.clientId,
    account: account.email,
    redirectUri: pending.redirectUri,
    scopes: tokenScopes,
    issuedAt: state.now(),
    used: false,
    issueRefreshToken: pending.accessType === 'offline' && consentShown,
    ...(pending.codeChallenge !== undefined ? { codeChallenge: pending.codeChallenge } : {}),
    ...(pending.codeChallengeMethod !== undefined ? { codeChallengeMethod: pending.codeChallengeMethod } : {}),
    ...(pending.nonce !== undefined ? { nonce: pending.nonce } : {}),
  });
  // Real callbacks carry authuser and prompt too (§1.1); clients must ignore unknown parameters.
  return redirect(
    callbackUrl(pending.redirectUri, [
      ['state', pending.state],
      ['code', code],
      ['scope', tokenScopes.join(' ')],
      ['authuser', '0'],
      ['prompt', consentShown ? 'consent' : 'none'],
    ]),
  );
}

// ---------------------------------------------------------------- token endpoint (§1.2)

function parseForm(req: EmuRequest): URLSearchParams {
  const ct = String(req.headers['content-type'] ?? '');
  if (ct.includes('application/json')) {
    try {
      const obj: unknown = JSON.parse(req.bodyText);
      const out = new URLSearchParams();
      if (obj && typeof obj === 'object') {
        for (const [k, v] of Object.entries(obj)) if (typeof v === 'string') out.set(k, v);
      }
      return out;
    } catch {
      throw new OAuthError(400, 'invalid_request', 'Invalid JSON payload received.');
    }
  }
  return new URLSearchParams(req.bodyText);
}

/** Client credentials from HTTP Basic or the body (GAL ClientSecretBasic / ClientSecretPost, §1.2). */
function authenticateClient(state: EmulatorState, req: EmuRequest, form: URLSearchParams): string {
  let clientId = form.get('client_id');
  let secret = form.get('client_secret');
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && auth.toLowerCase().startsWith('basic ')) {
    const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon !== -1) {
      clientId = decodeURIComponent(decoded.slice(0, colon));
      secret = decodeURIComponent(decoded.slice(colon + 1));
    }
  }
  if (!clientId) throw new OAuthError(400, 'invalid_request', 'Could not determine client ID from request.');
  if (clientId !== state.client.clientId) throw new OAuthError(401, 'invalid_client', 'The OAuth client was not found.');
  if (!secret) throw new OAuthError(400, 'invalid_request', 'client_secret is missing.');
  if (!safeEqual(secret, state.client.clientSecret)) throw new OAuthError(401, 'invalid_client', 'Unauthorized');
  return clientId;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function s256(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

const tokenHeaders = { 'Cache-Control': 'no-cache, no-store, max-age=0, must-revalidate', Pragma: 'no-cache' };

function token(state: EmulatorState, req: EmuRequest): Reply {
  if (req.method !== 'POST') throw new OAuthError(405, 'invalid_request', 'Only POST is supported.');
  const form = parseForm(req);
  const logged: Record<string, string> = {};
  for (const [k, v] of form) logged[k] = k === 'client_secret' ? '<redacted>' : v;
  req.log.body = logged;
  const clientId = authenticateClient(state, req, form);
  const grantType = form.get('grant_type');
  if (!grantType) throw new OAuthError(400, 'invalid_request', 'Missing required parameter: grant_type');
  if (grantType === 'authorization_code') return exchangeCode(state, req, form, clientId);
  if (grantType === 'refresh_token') return refresh(state, req, form, clientId);
  throw new OAuthError(400, 'unsupported_grant_type', `Invalid grant_type: ${grantType}`);
}

function exchangeCode(state: EmulatorState, req: EmuRequest, form: URLSearchParams, clientId: string): Reply {
  const code = form.get('code');
  if (!code) throw new OAuthError(400, 'invalid_request', 'Missing required parameter: code');
  const rec = state.codes.get(code);
  // Never issued (garbled): "Malformed auth code."; reused or expired: "Bad Request" (§1.2).
  if (!rec) throw new OAuthError(400, 'invalid_grant', 'Malformed auth code.');
  if (rec.used || rec.clientId !== clientId || state.now() - rec.issuedAt > state.config.authCodeTtlS * 1000) {
    throw new OAuthError(400, 'invalid_grant', 'Bad Request');
  }
  // Single use: any exchange attempt burns the code, a failed one included (defensive).
  rec.used = true;
  req.log.account = rec.account;
  const redirectUri = form.get('redirect_uri');
  if (!redirectUri) throw new OAuthError(400, 'invalid_request', 'Missing required parameter: redirect_uri');
  if (redirectUri !== rec.redirectUri) throw new OAuthError(400, 'redirect_uri_mismatch', 'Bad Request');
  if (rec.codeChallenge !== undefined) {
    const verifier = form.get('code_verifier');
    if (!verifier) throw new OAuthError(400, 'invalid_grant', 'Missing code verifier.');
    const derived = rec.codeChallengeMethod === 'S256' ? s256(verifier) : verifier;
    if (!safeEqual(derived, rec.codeChallenge)) throw new OAuthError(400, 'invalid_grant', 'Invalid code verifier.');
  }
  const account = state.getAccount(rec.account);
  if (!account) throw new OAuthError(400, 'invalid_grant', 'Bad Request');
  const refreshToken = rec.issueRefreshToken ? issueRefreshToken(state, clientId, account, rec.scopes) : undefined;
  return json(200, tokenResponse(state, clientId, account, rec.scopes, refreshToken, rec.nonce), tokenHeaders);
}

function refreshTokenDead(state: EmulatorState, rt: RefreshTokenRecord): boolean {
  if (rt.dead) return true;
  const now = state.now();
  if (now - rt.lastUsedAt > state.config.refreshTokenIdleDays * DAY_MS) return true; // §1.3 unused 6 months
  if (
    state.config.publishingStatus === 'testing' &&
    rt.scopes.some((s) => !isSignInScope(s)) &&
    now - rt.issuedAt > state.config.testingRefreshTokenDays * DAY_MS
  ) {
    return true; // §1.3 External + Testing: 7 days
  }
  return false;
}

function refresh(state: EmulatorState, req: EmuRequest, form: URLSearchParams, clientId: string): Reply {
  const value = form.get('refresh_token');
  if (!value) throw new OAuthError(400, 'invalid_request', 'Missing required parameter: refresh_token');
  const rt = state.refreshTokens.get(value);
  if (!rt) throw new OAuthError(400, 'invalid_grant', 'Bad Request');
  req.log.account = rt.account;
  if (rt.clientId !== clientId) throw new OAuthError(401, 'unauthorized_client', 'Unauthorized');
  const account = state.getAccount(rt.account);
  if (refreshTokenDead(state, rt) || !account) {
    if (!rt.dead) rt.dead = 'revoked';
    // Every death surfaces the same way (§1.3).
    throw new OAuthError(400, 'invalid_grant', 'Token has been expired or revoked.');
  }
  rt.lastUsedAt = state.now();
  let scopes = rt.scopes;
  const narrowed = form.get('scope');
  if (narrowed) {
    const wanted = parseScopeParam(narrowed);
    if (wanted.some((s) => !rt.scopes.includes(s))) {
      throw new OAuthError(400, 'invalid_scope', 'Some requested scopes were invalid.');
    }
    scopes = wanted;
  }
  // Refresh responses carry no refresh_token (§1.2, WS sample).
  return json(200, tokenResponse(state, clientId, account, scopes, undefined, undefined, rt.token), tokenHeaders);
}

function issueRefreshToken(state: EmulatorState, clientId: string, account: Account, scopes: string[]): string {
  const value = `1//0${randomToken(60)}`;
  const now = state.now();
  state.refreshTokens.set(value, { token: value, clientId, account: account.email, scopes, issuedAt: now, lastUsedAt: now });
  // §1.3: at most N live refresh tokens per account per client; the oldest dies silently.
  const live = [...state.refreshTokens.values()]
    .filter((r) => r.clientId === clientId && r.account === account.email && !refreshTokenDead(state, r))
    .sort((a, b) => a.issuedAt - b.issuedAt);
  for (let i = 0; i < live.length - state.config.refreshTokenCap; i++) {
    const victim = live[i];
    if (victim) victim.dead = 'evicted';
  }
  return value;
}

function tokenResponse(
  state: EmulatorState,
  clientId: string,
  account: Account,
  scopes: string[],
  refreshToken: string | undefined,
  nonce: string | undefined,
  viaRefreshToken?: string,
): Record<string, unknown> {
  const now = state.now();
  const ttl = state.config.accessTokenTtlS;
  const access = `ya29.a0${randomToken(90)}`;
  const rec: AccessTokenRecord = {
    token: access,
    clientId,
    account: account.email,
    scopes,
    issuedAt: now,
    expiresAt: now + ttl * 1000,
    revoked: false,
  };
  const linked = refreshToken ?? viaRefreshToken;
  if (linked !== undefined) rec.refreshToken = linked;
  state.accessTokens.set(access, rec);
  const body: Record<string, unknown> = { access_token: access, expires_in: ttl };
  if (refreshToken !== undefined) body['refresh_token'] = refreshToken;
  body['scope'] = scopes.join(' ');
  body['token_type'] = 'Bearer';
  // id_token only when openid was requested (§1.2, OIDC).
  if (scopes.includes(SCOPE.openid)) {
    const iat = Math.floor(now / 1000);
    const claims: Record<string, unknown> = {
      iss: ISSUER,
      azp: clientId,
      aud: clientId,
      sub: account.sub,
    };
    if (scopes.includes(SCOPE.email)) {
      claims['email'] = account.email;
      claims['email_verified'] = true;
    }
    claims['at_hash'] = atHash(access);
    if (scopes.includes(SCOPE.profile)) claims['name'] = account.name;
    if (nonce !== undefined) claims['nonce'] = nonce;
    claims['iat'] = iat;
    claims['exp'] = iat + 3600;
    body['id_token'] = state.signingKey.sign(claims);
  }
  return body;
}

// ---------------------------------------------------------------- revoke (§1.4)

function revoke(state: EmulatorState, req: EmuRequest): Reply {
  // OAuth2Client.revokeToken sends ?token= with an empty body; accept a form body too (§1.4).
  const form = req.method === 'POST' ? parseForm(req) : new URLSearchParams();
  const value = req.query.get('token') ?? form.get('token');
  if (!value) throw new OAuthError(400, 'invalid_request', 'Missing required parameter: token');
  const now = state.now();
  const at = state.accessTokens.get(value);
  if (at && !at.revoked && at.expiresAt > now) {
    req.log.account = at.account;
    state.revokeGrant(at.clientId, at.account);
    return json(200, {});
  }
  const rt = state.refreshTokens.get(value);
  if (rt && !refreshTokenDead(state, rt)) {
    req.log.account = rt.account;
    state.revokeGrant(rt.clientId, rt.account);
    return json(200, {});
  }
  throw new OAuthError(400, 'invalid_token', 'Token expired or revoked');
}

// ---------------------------------------------------------------- bearer tokens for the APIs

/** The live access token of a request, or Google's 401 (§5 authError). */
export function authenticate(state: EmulatorState, req: EmuRequest): AccessTokenRecord {
  const auth = req.headers.authorization;
  let value: string | null = null;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (!m || !m[1]) throw invalidCredentials();
    value = m[1];
  } else {
    value = req.query.get('access_token');
  }
  if (!value) throw loginRequired();
  const rec = state.accessTokens.get(value);
  if (!rec || rec.revoked || rec.expiresAt <= state.now() || !state.getAccount(rec.account)) {
    throw invalidCredentials();
  }
  req.log.account = rec.account;
  return rec;
}

function userinfo(state: EmulatorState, req: EmuRequest, flavour: 'oidc' | 'v2'): Reply {
  const tok = authenticate(state, req);
  const account = state.getAccount(tok.account);
  if (!account) throw invalidCredentials();
  if (!tok.scopes.some((s) => isSignInScope(s))) {
    throw insufficientScopes('oauth2.v2.Userinfo.Get', [SCOPE.openid, SCOPE.email, SCOPE.profile]);
  }
  const hasEmail = tok.scopes.includes(SCOPE.email);
  const hasProfile = tok.scopes.includes(SCOPE.profile);
  if (flavour === 'oidc') {
    const body: Record<string, unknown> = { sub: account.sub };
    if (hasProfile) body['name'] = account.name;
    if (hasEmail) {
      body['email'] = account.email;
      body['email_verified'] = true;
    }
    return json(200, body);
  }
  const body: Record<string, unknown> = { id: account.sub };
  if (hasEmail) {
    body['email'] = account.email;
    body['verified_email'] = true;
  }
  if (hasProfile) body['name'] = account.name;
  return json(200, body);
}

function tokeninfo(state: EmulatorState, req: EmuRequest): Reply {
  const form = req.method === 'POST' ? parseForm(req) : new URLSearchParams();
  // OAuth2Client.getTokenInfo POSTs with the token as a Bearer header; curl users pass ?access_token=.
  const bearer = /^Bearer\s+(\S+)/i.exec(String(req.headers.authorization ?? ''))?.[1];
  const value = req.query.get('access_token') ?? form.get('access_token') ?? bearer;
  const rec = value ? state.accessTokens.get(value) : undefined;
  const now = state.now();
  if (!rec || rec.revoked || rec.expiresAt <= now) {
    throw new OAuthError(400, 'invalid_token', 'Invalid Value');
  }
  const account = state.getAccount(rec.account);
  if (!account) throw apiError('notFound');
  const body: Record<string, unknown> = {
    azp: rec.clientId,
    aud: rec.clientId,
    sub: account.sub,
    scope: rec.scopes.join(' '),
    exp: String(Math.floor(rec.expiresAt / 1000)),
    expires_in: String(Math.max(0, Math.floor((rec.expiresAt - now) / 1000))),
  };
  if (rec.scopes.includes(SCOPE.email)) {
    body['email'] = account.email;
    body['email_verified'] = 'true';
  }
  body['access_type'] = rec.refreshToken !== undefined ? 'offline' : 'online';
  return json(200, body);
}

function openidConfiguration(origin: string): Record<string, unknown> {
  return {
    issuer: ISSUER,
    authorization_endpoint: `${origin}/o/oauth2/v2/auth`,
    token_endpoint: `${origin}/token`,
    userinfo_endpoint: `${origin}/v1/userinfo`,
    revocation_endpoint: `${origin}/revoke`,
    jwks_uri: `${origin}/oauth2/v3/certs`,
    response_types_supported: ['code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
    scopes_supported: ['openid', 'email', 'profile'],
    token_endpoint_auth_methods_supported: ['client_secret_post', 'client_secret_basic'],
    claims_supported: ['aud', 'email', 'email_verified', 'exp', 'iat', 'iss', 'name', 'sub'],
    code_challenge_methods_supported: ['plain', 'S256'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
  };
}
