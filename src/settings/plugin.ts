// The settings page `/settings/integrations/google-calendar` (CONTRACT §7) and the header
// badge. The page is static HTML + a small script that uses only the JSON API (CONTRACT §5):
// no build step, no framework, no second source of truth. The badge fragment is rendered from
// the same status API, called in-process with the caller's own credentials.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type {} from '@fastify/swagger'; // `schema.hide`: these routes are not part of the API document
import { renderBadge, summariseBadge, type BadgeStatus } from './badge';

export const SETTINGS_PAGE_PATH = '/settings/integrations/google-calendar';

type Asset = { body: string; type: string; etag: string };

const etag = (body: string) => `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;

function asset(file: string, type: string): Asset {
  const body = readFileSync(path.join(import.meta.dirname, file), 'utf8');
  return { body, type, etag: etag(body) };
}

function sendAsset(request: FastifyRequest, reply: FastifyReply, a: Asset) {
  void reply.header('Cache-Control', 'no-cache').header('ETag', a.etag).type(a.type);
  if (request.headers['if-none-match'] === a.etag) return reply.code(304).send();
  return reply.send(a.body);
}

export const settingsPagePlugin: FastifyPluginAsync = async (app) => {
  const html = readFileSync(path.join(import.meta.dirname, 'page.html'), 'utf8');
  // The page tells its script which optional routes exist: the demo sign-in links (demo mode)
  // and GET /api/me (the caller's role, so a member sees the org connection read-only at once).
  const variants = new Map<string, Asset>();
  const page = (demo: boolean, me: boolean): Asset => {
    const k = `${demo}-${me}`;
    let a = variants.get(k);
    if (!a) {
      const body = html.replace('__DEMO__', demo ? '1' : '0').replace('__ME__', me ? '1' : '0');
      a = { body, type: 'text/html; charset=utf-8', etag: etag(body) };
      variants.set(k, a);
    }
    return a;
  };
  const script = asset('page.js', 'text/javascript; charset=utf-8');
  const style = asset('page.css', 'text/css; charset=utf-8');
  const badgeScript = asset('badge.js', 'text/javascript; charset=utf-8');
  const badgeStyle = asset('badge.css', 'text/css; charset=utf-8');

  app.get(SETTINGS_PAGE_PATH, { schema: { hide: true } }, async (request, reply) => {
    const demo = app.hasRoute({ method: 'GET', url: '/demo/login' });
    const me = app.hasRoute({ method: 'GET', url: '/api/me' });
    return sendAsset(request, reply, page(demo, me));
  });
  app.get(`${SETTINGS_PAGE_PATH}/page.js`, { schema: { hide: true } }, async (request, reply) => sendAsset(request, reply, script));
  app.get(`${SETTINGS_PAGE_PATH}/page.css`, { schema: { hide: true } }, async (request, reply) => sendAsset(request, reply, style));
  app.get(`${SETTINGS_PAGE_PATH}/badge.js`, { schema: { hide: true } }, async (request, reply) => sendAsset(request, reply, badgeScript));
  app.get(`${SETTINGS_PAGE_PATH}/badge.css`, { schema: { hide: true } }, async (request, reply) => sendAsset(request, reply, badgeStyle));

  // The badge as an HTML fragment, for the Cassius calendar header (or <cassius-gcal-badge>).
  app.get(`${SETTINGS_PAGE_PATH}/badge`, { schema: { hide: true } }, async (request, reply) => {
    const headers: Record<string, string> = {};
    if (request.headers.cookie) headers.cookie = request.headers.cookie;
    if (request.headers.authorization) headers.authorization = request.headers.authorization;
    const levels = ['org', 'user'] as const;
    const answers = await Promise.all(
      levels.map((level) => app.inject({ method: 'GET', url: `/api/integrations/google/status?level=${level}`, headers })),
    );
    const unauthorised = answers.find((a) => a.statusCode === 401);
    const statuses = answers.map((a) => (a.statusCode === 200 ? (a.json() as BadgeStatus) : null));
    void reply.header('Cache-Control', 'no-store').type('text/html; charset=utf-8');
    if (unauthorised) void reply.code(401);
    return renderBadge(summariseBadge(statuses), SETTINGS_PAGE_PATH);
  });
};
