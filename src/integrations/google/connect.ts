// connect -> Google consent -> callback. The callback is a browser navigation coming back from
// Google, so every outcome is a 302 to the settings page: `?connected=1` on success, or
// `?error=<code>` with nothing stored. No token ever appears in a redirect, a response or a log.
import type { FastifyBaseLogger } from 'fastify';
import { z } from 'zod';
import type { Identity } from '../../shared/auth';
import type { Keyring } from '../../shared/crypto';
import { sql, type Db } from '../../shared/db';
import type { Level } from '../../shared/validation';
import { classifyGoogleError } from './errors';
import { findIntegration, type Owner } from './integration';
import { createOAuthClient, idTokenClaims, type GoogleConfig } from './oauth';
import { missingScopes, REQUIRED_SCOPES } from './scopes';
import { consumeState, createState, verifyState } from './state';
import { ReconnectRequired, type TokenStore } from './tokenStore';

export const SETTINGS_PAGE = '/settings/integrations/google-calendar';
export const CALLBACK_PATH = '/api/integrations/google/callback';

export type ConnectDeps = {
  db: Db;
  keyring: Keyring;
  tokenStore: TokenStore;
  google: GoogleConfig;
  appSecret: string;
  publicUrl: string;
};

export function redirectUri(publicUrl: string): string {
  return `${publicUrl}${CALLBACK_PATH}`;
}

export function settingsUrl(params: Record<string, string>): string {
  return `${SETTINGS_PAGE}?${new URLSearchParams(params).toString()}`;
}

/** The Google authorization URL for this caller, with a fresh state and PKCE challenge. */
export async function authorizationUrl(deps: ConnectDeps, who: Identity, level: Level, loginHint?: string): Promise<string> {
  const { state, challenge } = await createState(deps.db, deps.keyring, deps.appSecret, {
    organisationId: who.organisationId,
    userId: who.userId,
    level,
  });
  const client = createOAuthClient(deps.google, redirectUri(deps.publicUrl));
  return client.generateAuthUrl({
    access_type: 'offline',
    prompt: 'consent',
    include_granted_scopes: true,
    scope: [...REQUIRED_SCOPES],
    state,
    code_challenge: challenge,
    // google-auth-library's enum type; the value on the wire is the string S256.
    code_challenge_method: 'S256' as never,
    ...(loginHint ? { login_hint: loginHint } : {}),
  });
}

export const CallbackQuery = z
  .object({
    code: z.string().max(4096).optional(),
    state: z.string().max(4096).optional(),
    error: z.string().max(256).optional(),
    scope: z.string().max(4096).optional(),
  })
  // Google adds parameters of its own (authuser, prompt, hd, ...): ignore them.
  .passthrough();
export type CallbackQuery = z.infer<typeof CallbackQuery>;

class CallbackFailure extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

const Id = z.object({ id: z.string() });

type Exchanged = { accessToken: string; refreshToken: string | null; expiresAt: Date | null; scopes: string[]; sub: string; email: string };

/** Creates or reconnects the integration row and stores the tokens, in one transaction. */
async function storeConnection(deps: ConnectDeps, owner: Owner, x: Exchanged): Promise<void> {
  await deps.db.transaction(async (tx) => {
    let row = await findIntegration(tx, owner, { lock: true });
    if (!row) {
      const inserted = await tx.maybeOne(sql.type(Id)`
        insert into calendar_integrations (organisation_id, user_id, provider, connection_status, account_email, account_subject,
                                           calendar_id, sync_enabled, granted_scopes, connected_at, last_error)
        values (${owner.organisationId}, ${owner.level === 'user' ? owner.userId : null}, 'google', 'active', ${x.email}, ${x.sub},
                ${x.email}, true, ${sql.array(x.scopes, 'text')}, now(), null)
        on conflict do nothing
        returning id`);
      if (inserted) {
        await deps.tokenStore.save({ id: inserted.id, organisationId: owner.organisationId, ...tokensOf(x) }, tx);
        return;
      }
      // Another callback created it meanwhile: reconnect that row instead.
      row = await findIntegration(tx, owner, { lock: true });
      if (!row) throw new CallbackFailure('server_error');
    }
    if (row.connection_status === 'disconnecting') throw new CallbackFailure('disconnect_in_progress');
    const sameAccount = row.account_subject === x.sub;
    const ref = { id: row.id, organisationId: row.organisation_id };
    if (!sameAccount) {
      // Another Google account: the old account's tokens must never be used for it, and its
      // primary calendar becomes the target (the relay moves the events: the capture trigger
      // starts that work on account_subject / calendar_id changes).
      await deps.tokenStore.remove(ref, tx);
    }
    await tx.query(sql.unsafe`
      update calendar_integrations set
        connection_status = 'active', account_email = ${x.email}, account_subject = ${x.sub},
        calendar_id = ${sameAccount ? sql.fragment`coalesce(calendar_id, ${x.email})` : sql.fragment`${x.email}`},
        granted_scopes = ${sql.array(x.scopes, 'text')}, connected_at = now(), last_error = null
      where id = ${row.id} and organisation_id = ${row.organisation_id}`);
    await deps.tokenStore.save({ ...ref, ...tokensOf(x) }, tx);
  });
}

function tokensOf(x: Exchanged) {
  return { accessToken: x.accessToken, refreshToken: x.refreshToken, expiresAt: x.expiresAt, scopes: x.scopes };
}

/** Handles Google's redirect back; returns where to send the browser. */
export async function handleCallback(
  deps: ConnectDeps,
  who: Identity | null,
  query: CallbackQuery,
  log: FastifyBaseLogger,
): Promise<string> {
  let level: Level | undefined;
  try {
    if (!who) throw new CallbackFailure('unauthenticated');
    if (!query.state) throw new CallbackFailure('invalid_state');
    const check = verifyState(query.state, deps.appSecret);
    if (!check.ok) throw new CallbackFailure(check.reason);
    const p = check.payload;
    // Bound to the caller: a state started by another user (or organisation) is refused.
    if (p.o !== who.organisationId || p.u !== who.userId) throw new CallbackFailure('invalid_state');
    level = p.l;
    const verifier = await consumeState(deps.db, deps.keyring, p);
    if (!verifier) throw new CallbackFailure('invalid_state');
    if (query.error) throw new CallbackFailure(/^[a-z_]{1,64}$/.test(query.error) ? query.error : 'oauth_error');
    if (level === 'org' && who.role !== 'admin') throw new CallbackFailure('forbidden');
    if (!query.code) throw new CallbackFailure('invalid_request');

    const client = createOAuthClient(deps.google, redirectUri(deps.publicUrl));
    let tokens;
    try {
      tokens = (await client.getToken({ code: query.code, codeVerifier: verifier })).tokens;
    } catch (error) {
      const f = classifyGoogleError(error);
      log.warn({ google_status: f.status, google_reason: f.reason }, 'OAuth code exchange failed');
      throw new CallbackFailure('exchange_failed');
    }
    const scopes = (tokens.scope ?? query.scope ?? '').split(/\s+/).filter(Boolean);
    const missing = missingScopes(scopes);
    if (missing.length > 0) {
      log.info({ missing }, 'OAuth consent without every required scope; nothing stored');
      throw new CallbackFailure('missing_scope');
    }
    if (!tokens.access_token || !tokens.id_token) throw new CallbackFailure('exchange_failed');
    let claims;
    try {
      claims = idTokenClaims(tokens.id_token);
    } catch {
      throw new CallbackFailure('exchange_failed');
    }
    if (!claims.email) throw new CallbackFailure('missing_scope');
    const owner: Owner = { organisationId: who.organisationId, userId: who.userId, level };
    try {
      await storeConnection(deps, owner, {
        accessToken: tokens.access_token,
        refreshToken: tokens.refresh_token ?? null,
        expiresAt: tokens.expiry_date ? new Date(tokens.expiry_date) : null,
        scopes,
        sub: claims.sub,
        email: claims.email,
      });
    } catch (error) {
      if (error instanceof ReconnectRequired) throw new CallbackFailure('no_refresh_token');
      throw error;
    }
    log.info({ level, organisation_id: who.organisationId }, 'Google account connected');
    return settingsUrl({ connected: '1', level });
  } catch (error) {
    if (!(error instanceof CallbackFailure)) {
      log.error({ err: error }, 'OAuth callback failed');
      return settingsUrl({ error: 'server_error', ...(level ? { level } : {}) });
    }
    return settingsUrl({ error: error.code, ...(level ? { level } : {}) });
  }
}
