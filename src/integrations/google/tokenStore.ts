// OAuth tokens, encrypted at rest (src/shared/crypto.ts) in calendar_credentials, decrypted
// only in memory, never logged or returned to a client. Shared by the server (callback,
// calendars, disconnect) and every relay.
//
// Refreshing is safe when several relays refresh at once: the refresh runs under a row lock
// (SELECT ... FOR UPDATE) and re-reads the row after taking it, so the first relay refreshes
// and the others use its token instead of each spending a refresh.
import { z } from 'zod';
import { sql, type Db } from '../../shared/db';
import type { Keyring } from '../../shared/crypto';
import { classifyGoogleError } from './errors';
import { createOAuthClient, type GoogleConfig } from './oauth';

/** Google refused the stored authorization: the user must reconnect (no retry helps). */
export class ReconnectRequired extends Error {
  /** True when the integration was merely seen in needs_reconnect (no refusal from Google now). */
  observed = false;
  constructor(message: string) {
    super(message);
    this.name = 'ReconnectRequired';
  }
}

/** There are no tokens for this integration (never connected, or disconnected). */
export class NoCredentials extends Error {
  constructor(integrationId: string) {
    super(`no Google credentials stored for integration ${integrationId}`);
    this.name = 'NoCredentials';
  }
}

export type IntegrationRef = { id: string; organisationId: string };

export type SaveTokensInput = IntegrationRef & {
  /** Google sends a refresh token only on first consent or with prompt=consent. */
  refreshToken?: string | null;
  accessToken: string;
  expiresAt: Date | null;
  scopes: readonly string[];
};

const Credentials = z.object({
  refresh_token_ciphertext: z.instanceof(Buffer),
  access_token_ciphertext: z.instanceof(Buffer).nullable(),
  valid_for_ms: z.number().nullable(),
});

// Refresh a little before expiry so a call never starts with a token about to lapse.
const EXPIRY_MARGIN_MS = 60_000;

export type TokenStore = ReturnType<typeof createTokenStore>;

export function createTokenStore(
  db: Db,
  keyring: Keyring,
  google: GoogleConfig,
  hooks: { onRefresh?: (outcome: 'ok' | 'reconnect' | 'error') => void } = {},
) {
  const aad = (integrationId: string, kind: 'refresh' | 'access') => `calendar_credentials:${integrationId}:${kind}`;
  // One refresh per integration per process at a time; the row lock covers other processes.
  const inFlight = new Map<string, Promise<string>>();

  async function save(input: SaveTokensInput, connection: Pick<Db, 'query'> = db): Promise<void> {
    const access = keyring.encrypt(input.accessToken, aad(input.id, 'access'));
    const refresh = input.refreshToken ? keyring.encrypt(input.refreshToken, aad(input.id, 'refresh')) : null;
    const expiresAt = input.expiresAt ? input.expiresAt.toISOString() : null;
    if (refresh) {
      await connection.query(sql.unsafe`
        insert into calendar_credentials (integration_id, organisation_id, key_id, refresh_token_ciphertext,
                                          access_token_ciphertext, access_token_expires_at, scopes, refreshed_at)
        values (${input.id}, ${input.organisationId}, ${keyring.currentKeyId}, ${sql.binary(refresh)}, ${sql.binary(access)},
                ${expiresAt}, ${sql.array([...input.scopes], 'text')}, now())
        on conflict (integration_id) do update set
          key_id = excluded.key_id, refresh_token_ciphertext = excluded.refresh_token_ciphertext,
          access_token_ciphertext = excluded.access_token_ciphertext, access_token_expires_at = excluded.access_token_expires_at,
          scopes = excluded.scopes, refreshed_at = now(), updated_at = now()`);
      return;
    }
    // No new refresh token: keep the stored one (google-api.md §9 "keep the old one").
    const result = await connection.query(sql.unsafe`
      update calendar_credentials set access_token_ciphertext = ${sql.binary(access)}, access_token_expires_at = ${expiresAt},
        scopes = ${sql.array([...input.scopes], 'text')}, refreshed_at = now(), updated_at = now()
      where integration_id = ${input.id} and organisation_id = ${input.organisationId}`);
    if (result.rowCount === 0) throw new ReconnectRequired('Google returned no refresh token and none is stored; reconnect with consent');
  }

  async function readRefreshToken(ref: IntegrationRef): Promise<string | null> {
    const row = await db.maybeOne(sql.type(Credentials)`
      select refresh_token_ciphertext, access_token_ciphertext, null::int as valid_for_ms
      from calendar_credentials where integration_id = ${ref.id} and organisation_id = ${ref.organisationId}`);
    return row ? keyring.decrypt(row.refresh_token_ciphertext, aad(ref.id, 'refresh')) : null;
  }

  async function remove(ref: IntegrationRef, connection: Pick<Db, 'query'> = db): Promise<void> {
    await connection.query(sql.unsafe`
      delete from calendar_credentials where integration_id = ${ref.id} and organisation_id = ${ref.organisationId}`);
  }

  async function refresh(ref: IntegrationRef, rejectedToken: string | null): Promise<string> {
    return db.transaction(async (tx) => {
      // The relay's sessions commit asynchronously (relay/relay.ts); a refresh token Google
      // rotated is the one write of theirs that cannot be replayed, so it waits for the disk.
      await tx.query(sql.unsafe`set local synchronous_commit = on`);
      const row = await tx.maybeOne(sql.type(Credentials)`
        select refresh_token_ciphertext, access_token_ciphertext,
               (extract(epoch from access_token_expires_at - now()) * 1000)::float8 as valid_for_ms
        from calendar_credentials where integration_id = ${ref.id} and organisation_id = ${ref.organisationId}
        for update`);
      if (!row) throw new NoCredentials(ref.id);
      // Someone refreshed while we waited for the lock: use their token.
      if (row.access_token_ciphertext && (row.valid_for_ms ?? 0) > EXPIRY_MARGIN_MS) {
        const current = keyring.decrypt(row.access_token_ciphertext, aad(ref.id, 'access'));
        if (current !== rejectedToken) return current;
      }
      const client = createOAuthClient(google);
      client.setCredentials({ refresh_token: keyring.decrypt(row.refresh_token_ciphertext, aad(ref.id, 'refresh')) });
      try {
        const { token } = await client.getAccessToken();
        if (!token) throw new Error('Google returned no access token');
        const credentials = client.credentials;
        await save(
          {
            ...ref,
            accessToken: token,
            // Google may rotate the refresh token; the library copies the old one back otherwise.
            refreshToken: credentials.refresh_token ?? null,
            expiresAt: credentials.expiry_date ? new Date(credentials.expiry_date) : null,
            scopes: credentials.scope ? credentials.scope.split(' ') : [],
          },
          tx,
        );
        hooks.onRefresh?.('ok');
        return token;
      } catch (error) {
        const failure = classifyGoogleError(error);
        if (failure.kind === 'reconnect' || failure.reason === 'invalid_client') {
          hooks.onRefresh?.('reconnect');
          throw new ReconnectRequired(
            failure.reason === 'invalid_client'
              ? `Google rejected the OAuth client (invalid_client): check GOOGLE_CLIENT_ID / GOOGLE_CLIENT_SECRET`
              : `Google refused the saved authorization (${failure.message}); reconnect the account`,
          );
        }
        hooks.onRefresh?.('error');
        throw error;
      }
    });
  }

  /**
   * A usable access token. `rejectedToken`: the token Google just answered 401 to; a fresh
   * one is fetched unless another relay already replaced it.
   */
  async function accessToken(ref: IntegrationRef, rejectedToken: string | null = null): Promise<string> {
    if (!rejectedToken) {
      const row = await db.maybeOne(sql.type(Credentials)`
        select refresh_token_ciphertext, access_token_ciphertext,
               (extract(epoch from access_token_expires_at - now()) * 1000)::float8 as valid_for_ms
        from calendar_credentials where integration_id = ${ref.id} and organisation_id = ${ref.organisationId}`);
      if (!row) throw new NoCredentials(ref.id);
      if (row.access_token_ciphertext && (row.valid_for_ms === null || row.valid_for_ms > EXPIRY_MARGIN_MS)) {
        return keyring.decrypt(row.access_token_ciphertext, aad(ref.id, 'access'));
      }
    }
    const pending = inFlight.get(ref.id);
    if (pending) return pending;
    const promise = refresh(ref, rejectedToken).finally(() => inFlight.delete(ref.id));
    inFlight.set(ref.id, promise);
    return promise;
  }

  return { save, accessToken, readRefreshToken, remove };
}
