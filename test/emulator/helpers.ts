// Shared test plumbing: Google's own clients pointed at an in-process emulator.

import assert from 'node:assert/strict';
import { OAuth2Client, CodeChallengeMethod, type Credentials, ClientAuthentication } from 'google-auth-library';
import { calendar, type calendar_v3 } from '@googleapis/calendar';
import type { RunningEmulator } from './index.js';
import { SCOPE } from './scopes.js';

export const REDIRECT_URI = 'http://localhost:3000/api/integrations/google/callback';

/** The product's minimal set (google-api.md §2.2). */
export const PRODUCT_SCOPES = ['openid', 'email', SCOPE.calendarListReadonly, SCOPE.events];

export interface ClientOptions {
  clientId?: string;
  clientSecret?: string;
  redirectUri?: string;
  clientAuthentication?: ClientAuthentication;
  forceRefreshOnFailure?: boolean;
  eagerRefreshThresholdMillis?: number;
}

/** OAuth2Client with every endpoint on the emulator (google-api.md §8.2). */
export function oauthClient(emu: RunningEmulator, opts: ClientOptions = {}): OAuth2Client {
  return new OAuth2Client({
    clientId: opts.clientId ?? emu.control.clientId,
    clientSecret: opts.clientSecret ?? emu.control.clientSecret,
    redirectUri: opts.redirectUri ?? REDIRECT_URI,
    ...(opts.clientAuthentication !== undefined ? { clientAuthentication: opts.clientAuthentication } : {}),
    ...(opts.forceRefreshOnFailure !== undefined ? { forceRefreshOnFailure: opts.forceRefreshOnFailure } : {}),
    ...(opts.eagerRefreshThresholdMillis !== undefined
      ? { eagerRefreshThresholdMillis: opts.eagerRefreshThresholdMillis }
      : {}),
    endpoints: {
      oauth2AuthBaseUrl: `${emu.url}/o/oauth2/v2/auth`,
      oauth2TokenUrl: `${emu.url}/token`,
      oauth2RevokeUrl: `${emu.url}/revoke`,
      tokenInfoUrl: `${emu.url}/tokeninfo`,
      oauth2FederatedSignonPemCertsUrl: `${emu.url}/oauth2/v1/certs`,
      oauth2FederatedSignonJwkCertsUrl: `${emu.url}/oauth2/v3/certs`,
    },
  });
}

export interface AuthorizeOptions {
  email: string;
  scopes?: string[];
  prompt?: string;
  accessType?: 'online' | 'offline';
  state?: string;
  codeChallenge?: string;
  codeChallengeMethod?: CodeChallengeMethod;
  includeGrantedScopes?: boolean;
  /** Extra emulator query parameters, e.g. {emulator_consent: 'allow', emulator_scopes: '...'}. */
  extra?: Record<string, string>;
}

/** Builds the auth URL with the library, lets the emulator consent, returns the 302 Location. */
export async function authorize(emu: RunningEmulator, client: OAuth2Client, o: AuthorizeOptions): Promise<URL> {
  const url = client.generateAuthUrl({
    access_type: o.accessType ?? 'offline',
    scope: o.scopes ?? PRODUCT_SCOPES,
    state: o.state ?? 'st-123',
    login_hint: o.email,
    ...(o.prompt !== undefined ? { prompt: o.prompt } : {}),
    ...(o.codeChallenge !== undefined ? { code_challenge: o.codeChallenge } : {}),
    ...(o.codeChallengeMethod !== undefined ? { code_challenge_method: o.codeChallengeMethod } : {}),
    ...(o.includeGrantedScopes !== undefined ? { include_granted_scopes: o.includeGrantedScopes } : {}),
  });
  const extra = new URLSearchParams({ emulator_consent: 'allow', ...o.extra });
  const res = await fetch(`${url}&${extra.toString()}`, { redirect: 'manual' });
  assert.equal(res.status, 302, `authorization endpoint answered ${res.status}: ${await res.text()}`);
  const location = res.headers.get('location');
  assert.ok(location, 'no Location header');
  return new URL(location);
}

export interface Connection {
  client: OAuth2Client;
  tokens: Credentials;
  callback: URL;
}

/** The whole connect flow the product does: PKCE S256, offline, consent, code exchange. */
export async function connect(
  emu: RunningEmulator,
  email: string,
  opts: { scopes?: string[]; client?: ClientOptions; extra?: Record<string, string> } = {},
): Promise<Connection> {
  const client = oauthClient(emu, opts.client);
  const { codeVerifier, codeChallenge } = await client.generateCodeVerifierAsync();
  const callback = await authorize(emu, client, {
    email,
    prompt: 'consent',
    codeChallenge,
    codeChallengeMethod: CodeChallengeMethod.S256,
    ...(opts.scopes !== undefined ? { scopes: opts.scopes } : {}),
    ...(opts.extra !== undefined ? { extra: opts.extra } : {}),
  });
  const code = callback.searchParams.get('code');
  assert.ok(code, `no code in ${callback.href}`);
  const { tokens } = await client.getToken({ code, codeVerifier });
  client.setCredentials(tokens);
  return { client, tokens, callback };
}

/** Calendar client with rootUrl at the emulator's origin (google-api.md §8.1). */
export function calendarApi(
  emu: RunningEmulator,
  auth: OAuth2Client,
  extra: Partial<calendar_v3.Options> = {},
): calendar_v3.Calendar {
  // Two copies of google-auth-library are installed (googleapis-common pins its own); the
  // runtime object is the same shape, the nominal types differ.
  return calendar({ version: 'v3', auth: auth as unknown as calendar_v3.Options['auth'], rootUrl: `${emu.url}/`, ...extra });
}

/** A fast-retry config, for tests that are not about the library's default delays. */
export const FAST_RETRY = { retryConfig: { retryDelay: 1, retryDelayMultiplier: 1 } } as const;

export interface CaughtGoogleError {
  message: string;
  status: number | undefined;
  code: unknown;
  data: any;
  headers: Headers | undefined;
}

/** Awaits a rejection from a Google client and returns its observable parts (GaxiosError, §8.3). */
export async function rejection(p: Promise<unknown>): Promise<CaughtGoogleError> {
  try {
    await p;
  } catch (err) {
    const e = err as { message: string; status?: number; code?: unknown; response?: { status: number; data: unknown; headers: Headers } };
    return {
      message: e.message,
      status: e.response?.status ?? e.status,
      code: e.code,
      data: e.response?.data,
      headers: e.response?.headers,
    };
  }
  assert.fail('expected the call to fail, it succeeded');
}

/** `errors[0].reason` of a Calendar error body. */
export function reasonOf(e: CaughtGoogleError): string | undefined {
  return e.data?.error?.errors?.[0]?.reason;
}

let counter = 0;
/** A fresh email per test, so tests sharing an emulator do not collide. */
export function freshEmail(label = 'user'): string {
  counter++;
  return `${label}${counter}-${Date.now().toString(36)}@example.com`;
}

/** Base32hex event id from a label (google-api.md §4). */
export function eventId(label: string): string {
  const hex = Buffer.from(`${label}-${counter++}-${Math.random()}`).toString('hex');
  return hex.replace(/[^0-9a-v]/g, '').slice(0, 40).padEnd(10, '0');
}

export function timed(startIso: string, endIso: string, timeZone?: string): Pick<calendar_v3.Schema$Event, 'start' | 'end'> {
  return {
    start: { dateTime: startIso, ...(timeZone ? { timeZone } : {}) },
    end: { dateTime: endIso, ...(timeZone ? { timeZone } : {}) },
  };
}
