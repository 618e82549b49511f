// The OAuth `state` of connect -> callback: signed (HMAC-SHA256 with APP_SECRET), expiring
// (10 minutes), single use, bound to organisation, user, level and a nonce. The nonce is the
// id of an oauth_states row holding the PKCE verifier (encrypted); the callback consumes that
// row with one conditional UPDATE, so a state works once even under concurrent callbacks.
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { Keyring } from '../../shared/crypto';
import { sql, type Db } from '../../shared/db';
import type { Level } from '../../shared/validation';

export const STATE_TTL_MS = 10 * 60 * 1000;

export type StatePayload = { n: string; o: string; u: string; l: Level; e: number };

const Payload = z.object({
  n: z.string().uuid(),
  o: z.string().uuid(),
  u: z.string().uuid(),
  l: z.enum(['org', 'user']),
  e: z.number().int(),
});

function mac(secret: string, payload: string): Buffer {
  return createHmac('sha256', secret).update(`cassius-oauth-state:${payload}`).digest();
}

export function signState(payload: StatePayload, secret: string): string {
  const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
  return `${body}.${mac(secret, body).toString('base64url')}`;
}

export type StateCheck = { ok: true; payload: StatePayload } | { ok: false; reason: 'invalid_state' | 'state_expired' };

/** Signature and expiry only; binding to the caller and single use are checked by the caller. */
export function verifyState(state: string, secret: string, now = Date.now()): StateCheck {
  const [body, signature, extra] = state.split('.');
  if (!body || !signature || extra !== undefined || state.length > 2048) return { ok: false, reason: 'invalid_state' };
  const expected = mac(secret, body);
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'invalid_state' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'invalid_state' };
  }
  const payload = Payload.safeParse(parsed);
  if (!payload.success) return { ok: false, reason: 'invalid_state' };
  if (payload.data.e <= now) return { ok: false, reason: 'state_expired' };
  return { ok: true, payload: payload.data };
}

/** PKCE (RFC 7636): a 43-character verifier and its S256 challenge. */
export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

const aad = (nonce: string) => `oauth_states:${nonce}:code_verifier`;

/** A new state for this caller; the verifier is stored encrypted, server-side. */
export async function createState(
  db: Db,
  keyring: Keyring,
  secret: string,
  who: { organisationId: string; userId: string; level: Level },
): Promise<{ state: string; challenge: string }> {
  const nonce = randomUUID();
  const { verifier, challenge } = pkcePair();
  const expiresAt = Date.now() + STATE_TTL_MS;
  // Old rows are useless after expiry; clear them as we go (cheap, indexed).
  await db.query(sql.unsafe`delete from oauth_states where expires_at < now() - interval '1 day'`);
  await db.query(sql.unsafe`
    insert into oauth_states (id, organisation_id, user_id, level, key_id, code_verifier_ciphertext, expires_at)
    values (${nonce}, ${who.organisationId}, ${who.userId}, ${who.level}, ${keyring.currentKeyId},
            ${sql.binary(keyring.encrypt(verifier, aad(nonce)))}, ${new Date(expiresAt).toISOString()})`);
  const state = signState({ n: nonce, o: who.organisationId, u: who.userId, l: who.level, e: expiresAt }, secret);
  return { state, challenge };
}

const Consumed = z.object({ code_verifier_ciphertext: z.instanceof(Buffer) });

/** Marks the state used and returns its verifier; null if already used, expired or unknown. */
export async function consumeState(db: Db, keyring: Keyring, payload: StatePayload): Promise<string | null> {
  const row = await db.maybeOne(sql.type(Consumed)`
    update oauth_states set consumed_at = now()
    where id = ${payload.n} and organisation_id = ${payload.o} and user_id = ${payload.u} and level = ${payload.l}
      and consumed_at is null and expires_at > now()
    returning code_verifier_ciphertext`);
  return row ? keyring.decrypt(row.code_verifier_ciphertext, aad(payload.n)) : null;
}
