// The API server as a Fastify instance: identity, appointments, Google integration, health,
// OpenAPI (`/docs`), security headers, one error shape. Built without listening, so tests can
// drive it with inject() and startServer() can listen.
import { randomUUID } from 'node:crypto';
import fastifyCookie from '@fastify/cookie';
import fastifyHelmet from '@fastify/helmet';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { appointmentsPlugin } from './appointments/routes';
import { demoPlugin } from './demo/plugin';
import { createCalendarApi, type CalendarApi } from './integrations/google/calendarApi';
import { googleRoutesPlugin } from './integrations/google/routes';
import { createTokenStore, type TokenStore } from './integrations/google/tokenStore';
import { settingsPagePlugin } from './settings/plugin';
import { createAuth, mePlugin } from './shared/auth';
import type { ServerConfig } from './shared/config';
import { createKeyring, type Keyring } from './shared/crypto';
import { sql, type Db } from './shared/db';
import { errorBody, registerErrorHandling } from './shared/errors';
import { pendingMigrations } from './shared/migrate';
import { REDACT_PATHS } from './shared/logger';

export type AppDeps = {
  config: ServerConfig;
  db: Db;
  keyring?: Keyring;
  tokenStore?: TokenStore;
  calendarApi?: CalendarApi;
  /** Fastify logger options; `false` for silence (tests). Default: pino at LOG_LEVEL. */
  logger?: FastifyServerOptions['logger'];
};

export const BODY_LIMIT_BYTES = 100 * 1024;

// Query parameters that carry secrets (OAuth code and state, tokens): never in a log line.
const SECRET_QUERY = /([?&](?:code|state|token|access_token|refresh_token|id_token)=)[^&]*/gi;
export function redactUrl(url: string): string {
  return url.replace(SECRET_QUERY, '$1[REDACTED]');
}

/** Errors are logged by type, message, code and stack only: a Google client error carries its
 * request (client secret, tokens) in `config`, which must never reach a log. */
function safeError(err: unknown): { type: string; message: string; stack: string; [key: string]: unknown } {
  if (!(err instanceof Error)) return { type: typeof err, message: String(err), stack: '' };
  const e = err as Error & { code?: unknown; statusCode?: unknown };
  return { type: e.name, message: e.message, code: e.code, statusCode: e.statusCode, stack: e.stack ?? '' };
}

export function loggerOptions(level: string): FastifyServerOptions['logger'] {
  return {
    level,
    // One list for every process (src/shared/logger.ts).
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    serializers: {
      req: (req: { method: string; url: string; id: string; ip?: string }) => ({ method: req.method, url: redactUrl(req.url), ip: req.ip }),
      err: safeError,
    },
  };
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config, db } = deps;
  const keyring =
    deps.keyring ??
    createKeyring(
      config.TOKEN_ENCRYPTION_KEY,
      (config.TOKEN_ENCRYPTION_OLD_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean),
    );
  const tokenStore = deps.tokenStore ?? createTokenStore(db, keyring, config);
  const calendarApi = deps.calendarApi ?? createCalendarApi(config.GOOGLE_API_URL);
  const https = config.PUBLIC_URL.startsWith('https:');

  const app = Fastify({
    logger: deps.logger === undefined ? loggerOptions(config.LOG_LEVEL) : deps.logger,
    bodyLimit: BODY_LIMIT_BYTES,
    requestIdHeader: 'x-request-id',
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
    trustProxy: false,
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandling(app);

  // JSON only (see src/shared/auth.ts on cross-site requests). An empty body with a JSON
  // Content-Type is "no body" (e.g. fetch('/x', {method:'POST', headers:{'content-type':
  // 'application/json'}})), so body-less actions work however the page sends them.
  app.removeContentTypeParser('text/plain');
  const jsonParser = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    jsonParser(request, text, done);
  });

  app.addHook('onRequest', async (request, reply) => {
    void reply.header('x-request-id', request.id);
  });
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.url.startsWith('/api/')) void reply.header('cache-control', 'no-store');
    return payload;
  });

  const googleAuthOrigin = new URL(config.GOOGLE_AUTH_URL).origin;
  await app.register(fastifyHelmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        baseUri: ["'self'"],
        scriptSrc: ["'self'"],
        scriptSrcAttr: ["'none'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        objectSrc: ["'none'"],
        frameAncestors: ["'none'"],
        // Connect is a navigation that ends at Google's consent page.
        formAction: ["'self'", googleAuthOrigin],
        ...(https ? { upgradeInsecureRequests: [] } : {}),
      },
    },
    strictTransportSecurity: https ? { maxAge: 15552000, includeSubDomains: true } : false,
    crossOriginEmbedderPolicy: false,
  });
  await app.register(fastifyCookie);

  await app.register(fastifySwagger, {
    openapi: {
      info: {
        title: 'Cassius calendar sync API',
        version: '1.0.0',
        description:
          'Appointments and their one-way sync to Google Calendar. Identity: an HS256 JWT (claims sub, org) as `Authorization: Bearer` or the `cassius_session` cookie. Errors: `{"error":{"code","message"}}`.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          cookie: { type: 'apiKey', in: 'cookie', name: 'cassius_session' },
        },
      },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(fastifySwaggerUi, {
    routePrefix: '/docs',
    staticCSP: true,
    transformStaticCSP: (header) => (https ? header : header.replace(/\s*upgrade-insecure-requests;?/g, '')),
  });

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  // Migration files only change with a new deployment (a new process): once every one is
  // applied, later probes only check that the database answers.
  let migrationsCurrent = false;
  app.get('/readyz', { schema: { hide: true } }, async (request, reply) => {
    try {
      await db.oneFirst(sql.type(z.object({ ok: z.number() }))`select 1 as ok`);
      const pending = migrationsCurrent ? [] : await pendingMigrations(config.DATABASE_URL);
      migrationsCurrent = pending.length === 0;
      if (pending.length > 0) {
        return reply.code(503).send(errorBody('migrations_pending', `database migrations not applied: ${pending.join(', ')} (run npm run migrate)`));
      }
      return { status: 'ready' };
    } catch (error) {
      request.log.warn({ err: error }, 'readiness check failed');
      return reply.code(503).send(errorBody('database_unavailable', 'the database is not reachable'));
    }
  });

  const auth = createAuth({ db, appSecret: config.APP_SECRET, publicUrl: config.PUBLIC_URL });
  await app.register(mePlugin, { prefix: '/api', auth });
  await app.register(appointmentsPlugin, { prefix: '/api', db, auth });
  await app.register(googleRoutesPlugin, {
    prefix: '/api',
    db,
    auth,
    keyring,
    tokenStore,
    calendarApi,
    google: config,
    appSecret: config.APP_SECRET,
    publicUrl: config.PUBLIC_URL,
  });

  await app.register(settingsPagePlugin);
  if (config.DEMO_MODE) await app.register(demoPlugin, { appSecret: config.APP_SECRET, db });

  await app.ready();
  return app;
}
