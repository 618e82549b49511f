// Connecting a Google account for tests: the real OAuth dance against the emulator (automated
// consent), then the integration row and its encrypted tokens, as the server's callback does.
import { z } from 'zod';
import { createKeyring } from '../../src/shared/crypto';
import { sql, type Db } from '../../src/shared/db';
import type { RelayConfig } from '../../src/shared/config';
import { createOAuthClient, idTokenClaims, type GoogleConfig } from '../../src/integrations/google/oauth';
import { REQUIRED_SCOPES } from '../../src/integrations/google/scopes';
import { createTokenStore } from '../../src/integrations/google/tokenStore';
import { DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET } from '../emulator/index';

/** A fixed key for tests (never used outside them). */
export const TEST_TOKEN_KEY = Buffer.alloc(32, 7).toString('base64');
export const testKeyring = () => createKeyring(TEST_TOKEN_KEY);

export function googleConfig(emulatorUrl: string): GoogleConfig {
  return {
    GOOGLE_CLIENT_ID: DEFAULT_CLIENT_ID,
    GOOGLE_CLIENT_SECRET: DEFAULT_CLIENT_SECRET,
    GOOGLE_AUTH_URL: `${emulatorUrl}/o/oauth2/v2/auth`,
    GOOGLE_TOKEN_URL: `${emulatorUrl}/token`,
    GOOGLE_REVOKE_URL: `${emulatorUrl}/revoke`,
    GOOGLE_API_URL: `${emulatorUrl}/`,
  };
}

export function relayConfig(databaseUrl: string, emulatorUrl: string, overrides: Partial<RelayConfig> = {}): RelayConfig {
  return {
    ...googleConfig(emulatorUrl),
    DATABASE_URL: databaseUrl,
    TOKEN_ENCRYPTION_KEY: TEST_TOKEN_KEY,
    TOKEN_ENCRYPTION_OLD_KEYS: undefined,
    LOG_LEVEL: (process.env.TEST_LOG_LEVEL as RelayConfig['LOG_LEVEL']) ?? 'silent',
    DEMO_MODE: false,
    RELAY_ID: undefined,
    RELAY_METRICS_PORT: undefined,
    RELAY_METRICS_HOST: '127.0.0.1',
    RELAY_CONCURRENCY: 8,
    RELAY_BATCH_SIZE: 32,
    RELAY_MAX_ATTEMPTS: 8,
    RELAY_LEASE_MS: 30_000,
    RELAY_POLL_MS: 200,
    GOOGLE_RATE_LIMIT_PER_ACCOUNT_PER_MIN: 100_000,
    GOOGLE_RATE_LIMIT_PER_PROJECT_PER_MIN: 1_000_000,
    GOOGLE_TIMEOUT_MS: 5_000,
    ...overrides,
  };
}

/** Environment for a relay started as a separate process (`node --import tsx relay/main.ts`). */
export function relayEnv(config: RelayConfig): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(config)) if (v !== undefined) env[k] = String(v);
  return env;
}

/** Runs the emulator's automated consent and exchanges the code: real OAuth, no shortcuts. */
export async function authorize(emulatorUrl: string, email: string) {
  const google = googleConfig(emulatorUrl);
  const redirectUri = 'http://localhost:3000/api/integrations/google/callback';
  const client = createOAuthClient(google, redirectUri);
  const { codeVerifier, codeChallenge } = await client.generateCodeVerifierAsync();
  const url = new URL(
    client.generateAuthUrl({
      access_type: 'offline',
      prompt: 'consent',
      scope: [...REQUIRED_SCOPES],
      state: 'test',
      code_challenge: codeChallenge,
      code_challenge_method: 'S256' as never,
      login_hint: email,
    }),
  );
  url.searchParams.set('emulator_consent', 'allow');
  const consent = await fetch(url, { redirect: 'manual' });
  const location = consent.headers.get('location');
  const code = location ? new URL(location).searchParams.get('code') : null;
  if (!code) throw new Error(`consent failed: ${consent.status} ${location ?? (await consent.text())}`);
  const { tokens } = await client.getToken({ code, codeVerifier });
  const claims = idTokenClaims(tokens.id_token!);
  return { tokens, sub: claims.sub, email: claims.email ?? email };
}

const Id = z.object({ id: z.string() });

/** Connects `email` as the org-level (no userId) or a user-level integration; returns its id. */
export async function connectGoogle(
  db: Db,
  emulatorUrl: string,
  opts: { organisationId: string; userId?: string | null; email: string; calendarId?: string; syncEnabled?: boolean },
): Promise<string> {
  const { tokens, sub, email } = await authorize(emulatorUrl, opts.email);
  const store = createTokenStore(db, testKeyring(), googleConfig(emulatorUrl));
  return db.transaction(async (tx) => {
    const { id } = await tx.one(sql.type(Id)`
      insert into calendar_integrations (organisation_id, user_id, connection_status, account_email, account_subject,
                                         calendar_id, sync_enabled, granted_scopes, connected_at)
      values (${opts.organisationId}, ${opts.userId ?? null}, 'active', ${email}, ${sub}, ${opts.calendarId ?? email},
              ${opts.syncEnabled ?? true}, ${sql.array((tokens.scope ?? '').split(' '), 'text')}, now())
      on conflict on constraint calendar_integrations_one_per_owner do update set
        connection_status = 'active', account_email = excluded.account_email, account_subject = excluded.account_subject,
        granted_scopes = excluded.granted_scopes, connected_at = now(), last_error = null
      returning id`);
    await store.save(
      {
        id,
        organisationId: opts.organisationId,
        accessToken: tokens.access_token!,
        refreshToken: tokens.refresh_token ?? null,
        expiresAt: tokens.expiry_date ? new Date(tokens.expiry_date) : null,
        scopes: (tokens.scope ?? '').split(' '),
      },
      tx,
    );
    return id;
  });
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(check: () => Promise<T | null | undefined | false>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until the outbox holds no row that is still to be processed. */
export async function drained(db: Db, timeoutMs = 15_000): Promise<void> {
  await waitFor(
    async () =>
      (await db.oneFirst(sql.type(z.object({ n: z.number() }))`
        select count(*)::int as n from sync_outbox where failed_at is null and waiting_for_integration_id is null`)) === 0 &&
      (await db.oneFirst(sql.type(z.object({ n: z.number() }))`select count(*)::int as n from sync_backlog where completed_at is null`)) === 0,
    timeoutMs,
    'the outbox to drain',
  );
}
