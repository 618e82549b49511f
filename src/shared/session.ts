// Cassius identity: an HS256 JWT signed with APP_SECRET, claims `sub` (user id) and `org`
// (organisation id), from `Authorization: Bearer` or the `cassius_session` cookie (CONTRACT §4).
import { jwtVerify, SignJWT } from 'jose';

export const SESSION_COOKIE = 'cassius_session';

export type SessionClaims = { sub: string; org: string };

const key = (secret: string) => new TextEncoder().encode(secret);

export async function signSession(claims: SessionClaims, secret: string, ttlSeconds = 8 * 3600): Promise<string> {
  return new SignJWT({ org: claims.org })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(key(secret));
}

/** Verifies signature (HS256 only: the algorithm is pinned) and `exp` when present. */
export async function verifySession(token: string, secret: string): Promise<SessionClaims | null> {
  try {
    const { payload } = await jwtVerify(token, key(secret), { algorithms: ['HS256'] });
    if (typeof payload.sub !== 'string' || typeof payload.org !== 'string') return null;
    return { sub: payload.sub, org: payload.org };
  } catch {
    return null;
  }
}
