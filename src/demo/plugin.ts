// Demo-mode routes (registered by src/app.ts only when DEMO_MODE is on; outside demo mode they
// do not exist: 404, CONTRACT §4).
//   GET /demo/login?as=<email>  signs in as that seeded user: sets the `cassius_session` cookie
//                               (HS256 JWT, httpOnly, SameSite=Lax, path /) and 302s to the
//                               settings page (or to `next`, a local path). Unknown email: 404.
//   GET /demo/logout            clears the cookie and 302s to the settings page.
//   GET /demo/users             the users one can sign in as, for the page's signed-out view.
import type { FastifyPluginAsync } from 'fastify';
import type {} from '@fastify/cookie'; // reply.setCookie
import type { Db } from '../shared/db';
import { errorBody } from '../shared/errors';
import { SESSION_COOKIE, signSession } from '../shared/session';
import { findUserByEmail, listUsers } from './seed';

export type DemoPluginOptions = {
  appSecret: string;
  /** The app's pool. */
  db: Db;
};

const SETTINGS_PAGE = '/settings/integrations/google-calendar';
const SESSION_TTL_S = 8 * 3600;

export const demoPlugin: FastifyPluginAsync<DemoPluginOptions> = async (app, opts) => {
  const pool = opts.db;

  app.get<{ Querystring: { as?: string; next?: string } }>('/demo/login', { schema: { hide: true } }, async (request, reply) => {
    const email = typeof request.query.as === 'string' ? request.query.as.trim() : '';
    if (!email || email.length > 320) {
      return reply.code(400).send(errorBody('invalid_request', 'query.as: give the email of a demo user, e.g. /demo/login?as=admin@demo.clinic'));
    }
    const user = await findUserByEmail(pool, email);
    if (!user) return reply.code(404).send(errorBody('not_found', `no user with the email ${email}; GET /demo/users lists them`));
    const token = await signSession({ sub: user.id, org: user.organisation_id }, opts.appSecret, SESSION_TTL_S);
    const next = typeof request.query.next === 'string' && /^\/(?!\/)[^\\]*$/.test(request.query.next) ? request.query.next : SETTINGS_PAGE;
    request.log.info({ user_id: user.id, role: user.role }, 'demo sign-in');
    return reply
      .setCookie(SESSION_COOKIE, token, {
        httpOnly: true,
        sameSite: 'lax',
        path: '/',
        secure: request.protocol === 'https',
        maxAge: SESSION_TTL_S,
      })
      .header('Cache-Control', 'no-store')
      .redirect(next, 302);
  });

  app.get('/demo/logout', { schema: { hide: true } }, async (_request, reply) => {
    return reply.clearCookie(SESSION_COOKIE, { path: '/' }).header('Cache-Control', 'no-store').redirect(SETTINGS_PAGE, 302);
  });

  app.get('/demo/users', { schema: { hide: true } }, async (_request, reply) => {
    const users = await listUsers(pool);
    void reply.header('Cache-Control', 'no-store');
    return users.map((u) => ({ email: u.email, name: u.name, role: u.role, login: `/demo/login?as=${encodeURIComponent(u.email)}` }));
  });
};
