// Identity (CONTRACT §4): an HS256 JWT signed with APP_SECRET (claims `sub` = user id, `org` =
// organisation id) from `Authorization: Bearer <jwt>` or the `cassius_session` cookie. The user
// is loaded and must belong to `org`; the role comes from the database, never from the token.
// No token, a bad one, or a user that is not (or no longer) in that organisation: 401.
//
// Cross-site protection for cookie-authenticated writes (a JSON API has no forms, so no
// per-form CSRF token is needed). Three layers:
//   1. the session cookie is SameSite=Lax (Cassius's login and the demo route set it so), so
//      browsers do not send it on cross-site POST/PATCH/DELETE at all;
//   2. a cookie-authenticated unsafe request (anything but GET/HEAD/OPTIONS) must come from our
//      own origin: `Sec-Fetch-Site` must be `same-origin` (or `none`, typed by the user) when
//      the browser sends it (every current browser does), otherwise `Origin`, when present, must
//      be PUBLIC_URL's origin or the request's own host; otherwise 403 `cross_site_request`.
//      Requests with neither header do not come from a browser page (curl, server code), and
//      cannot carry a victim's ambient cookie in a forged request;
//   3. only `application/json` bodies are parsed (anything else: 415), and a cross-site HTML
//      form cannot send that type without a CORS preflight, which this server never grants.
// Bearer-authenticated requests are not ambient credentials and skip layer 2.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { sql, type Db } from './db';
import { ErrorBody, HttpError } from './errors';
import { SESSION_COOKIE, verifySession } from './session';

export type Role = 'admin' | 'member';
export type Identity = {
  userId: string;
  organisationId: string;
  role: Role;
  email: string;
  name: string;
  via: 'bearer' | 'cookie';
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

const UserRow = z.object({ id: z.string(), organisation_id: z.string(), role: z.enum(['admin', 'member']), email: z.string(), name: z.string() });

const identities = new WeakMap<FastifyRequest, Identity>();

export type AuthOptions = { db: Db; appSecret: string; publicUrl: string };

export function unauthorized(message = 'a valid session token is required (Authorization: Bearer or the cassius_session cookie)') {
  return new HttpError(401, 'unauthorized', message);
}

export function createAuth({ db, appSecret, publicUrl }: AuthOptions) {
  const publicOrigin = new URL(publicUrl).origin;

  /** The caller's identity, or null when the request carries no valid session. */
  async function identify(request: FastifyRequest): Promise<Identity | null> {
    const known = identities.get(request);
    if (known) return known;
    const header = request.headers.authorization;
    let token: string | undefined;
    let via: Identity['via'];
    if (header !== undefined) {
      const match = /^Bearer ([A-Za-z0-9._~+/=-]+)$/i.exec(header.trim());
      if (!match) return null;
      token = match[1];
      via = 'bearer';
    } else {
      token = request.cookies?.[SESSION_COOKIE];
      via = 'cookie';
    }
    if (!token || token.length > 4096) return null;
    const claims = await verifySession(token, appSecret);
    if (!claims || !UUID.test(claims.sub) || !UUID.test(claims.org)) return null;
    const user = await db.maybeOne(sql.type(UserRow)`
      select id, organisation_id, role, email, name from users where id = ${claims.sub} and organisation_id = ${claims.org}`);
    if (!user) return null;
    const identity: Identity = { userId: user.id, organisationId: user.organisation_id, role: user.role, email: user.email, name: user.name, via };
    identities.set(request, identity);
    return identity;
  }

  function crossSiteRefusal(request: FastifyRequest): string | null {
    const site = request.headers['sec-fetch-site'];
    if (typeof site === 'string') {
      return site === 'same-origin' || site === 'none' ? null : `cross-site request refused (Sec-Fetch-Site: ${site.slice(0, 40)})`;
    }
    const origin = request.headers.origin;
    if (typeof origin === 'string') {
      const own = `${request.protocol}://${request.host}`;
      return origin === publicOrigin || origin === own ? null : 'cross-site request refused (Origin does not match this server)';
    }
    return null;
  }

  /** onRequest hook: 401 without a valid identity; 403 for a cross-site cookie-authenticated write. */
  async function requireIdentity(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const identity = await identify(request);
    if (!identity) {
      void reply.header('WWW-Authenticate', 'Bearer');
      throw unauthorized();
    }
    if (identity.via === 'cookie' && !SAFE_METHODS.has(request.method)) {
      const refusal = crossSiteRefusal(request);
      if (refusal) throw new HttpError(403, 'cross_site_request', refusal);
    }
  }

  return { identify, requireIdentity };
}

export type Auth = ReturnType<typeof createAuth>;

/** The identity established by requireIdentity (a programming error if it is missing). */
export function identityOf(request: FastifyRequest): Identity {
  const identity = identities.get(request);
  if (!identity) throw unauthorized();
  return identity;
}

const Me = z.object({
  user_id: z.string().uuid(),
  organisation_id: z.string().uuid(),
  email: z.string(),
  name: z.string(),
  role: z.enum(['admin', 'member']).describe('from the database: admins may change the organisation calendar'),
});

/** GET /api/me: who the session is, with the role from the database (the settings page uses it). */
export const mePlugin: FastifyPluginAsyncZod<{ auth: Auth }> = async (app, { auth }) => {
  app.addHook('onRequest', auth.requireIdentity);
  app.get(
    '/me',
    {
      schema: {
        tags: ['identity'],
        security: [{ bearer: [] }, { cookie: [] }],
        summary: 'The caller: user, organisation and role',
        response: { 200: Me, 401: ErrorBody },
      },
    },
    async (request) => {
      const me = identityOf(request);
      return { user_id: me.userId, organisation_id: me.organisationId, email: me.email, name: me.name, role: me.role };
    },
  );
};
