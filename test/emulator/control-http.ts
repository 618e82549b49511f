// HTTP control surface under /__emulator/ (CONTRACT §8 plus additions). Inputs are validated
// with zod; a bad input is 400 `{"error": "...", "field": "..."}` naming the field.

import { z } from 'zod';
import { ControlError } from './errors.js';
import { json, type EmuRequest, type Reply } from './http.js';
import { EmulatorControl } from './control.js';
import { REASONS } from './errors.js';
import type { JsonObject } from './events.js';
import { ACCESS_ROLES, type AccessRole, type EmulatorConfig, type EmulatorState } from './state.js';

const accessRole = z.enum(ACCESS_ROLES as [AccessRole, ...AccessRole[]]);

const accountBody = z
  .object({
    email: z.string().email(),
    name: z.string().min(1).optional(),
    time_zone: z.string().min(1).optional(),
    calendars: z
      .array(
        z
          .object({
            id: z.string().min(1).optional(),
            summary: z.string().min(1),
            access_role: accessRole,
            time_zone: z.string().min(1).optional(),
            description: z.string().optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict();

const faultBody = z
  .object({
    method: z
      .string()
      .regex(/^[A-Za-z]+$/)
      .optional(),
    path_prefix: z.string().startsWith('/').optional(),
    status: z.number().int().min(100).max(599).optional(),
    reason: z.string().min(1).optional(),
    count: z.number().int().min(1).optional(),
    for_ms: z.number().int().min(1).optional(),
    latency_ms: z.number().int().min(0).max(600_000).optional(),
    drop_after_commit: z.boolean().optional(),
    drop_before_commit: z.boolean().optional(),
    retry_after_s: z.number().int().min(0).optional(),
  })
  .strict()
  .superRefine((f, ctx) => {
    if (f.reason !== undefined && f.status === undefined && REASONS[f.reason] === undefined) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['reason'],
        message: `unknown reason ${f.reason}; known: ${Object.keys(REASONS).join(', ')} (or give status too)`,
      });
    }
    if (
      f.status === undefined &&
      f.reason === undefined &&
      f.latency_ms === undefined &&
      !f.drop_after_commit &&
      !f.drop_before_commit
    ) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['status'],
        message: 'a fault needs status, reason, latency_ms, drop_after_commit or drop_before_commit',
      });
    }
  });

const configBody = z
  .object({
    access_token_ttl_s: z.number().int().min(1),
    auth_code_ttl_s: z.number().int().min(1),
    user_rate_limit_per_minute: z.number().int().min(1),
    project_rate_limit_per_minute: z.number().int().min(1),
    rate_limit_status: z.union([z.literal(403), z.literal(429)]),
    retry_after_s: z.number().int().min(0).nullable(),
    patch_quota_cost: z.number().int().min(1),
    tombstone_writes: z.enum(['allow', 'forbidden']),
    empty_consent_outcome: z.enum(['code', 'access_denied']),
    publishing_status: z.enum(['production', 'testing']),
    refresh_token_idle_days: z.number().positive(),
    testing_refresh_token_days: z.number().positive(),
    refresh_token_cap: z.number().int().min(1),
    sync_tokens_expired: z.boolean(),
    short_pages: z.boolean(),
    redirect_uris: z.array(z.string().url()).nullable(),
    call_log_limit: z.number().int().min(1),
  })
  .partial()
  .strict();

const clockBody = z
  .object({ advance_ms: z.number().int().optional(), set: z.string().datetime({ offset: true }).optional() })
  .strict()
  .refine((b) => (b.advance_ms === undefined) !== (b.set === undefined), {
    message: 'give exactly one of advance_ms or set',
    path: ['advance_ms'],
  });

/** An Event resource (checked by the emulator like events.insert) plus who created it. */
const seedBody = z.object({ creator: z.string().email().optional() }).passthrough();

const usageLimitBody = z.object({ for_ms: z.number().int().min(0) }).strict();
const shareBody = z.object({ email: z.string().email(), access_role: accessRole }).strict();
const expireSyncBody = z.object({ calendar_id: z.string().min(1).optional() }).strict();
const expireTokensBody = z.object({ email: z.string().email().optional() }).strict();

function parse<T>(schema: z.ZodType<T>, req: EmuRequest): T {
  let raw: unknown = {};
  if (req.bodyText.trim() !== '') {
    try {
      raw = JSON.parse(req.bodyText);
    } catch {
      throw new ControlError(400, 'body is not valid JSON');
    }
  }
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (!issue) throw new ControlError(400, 'invalid body');
  let field = issue.path.join('.');
  if (issue.code === z.ZodIssueCode.unrecognized_keys) {
    field = [...issue.path, issue.keys[0] ?? ''].filter((x) => x !== '').join('.');
    throw new ControlError(400, `unknown field ${field}`, field);
  }
  throw new ControlError(400, `${field || 'body'}: ${issue.message}`, field || undefined);
}

const CONFIG_KEYS: Record<string, keyof EmulatorConfig> = {
  access_token_ttl_s: 'accessTokenTtlS',
  auth_code_ttl_s: 'authCodeTtlS',
  user_rate_limit_per_minute: 'userRateLimitPerMinute',
  project_rate_limit_per_minute: 'projectRateLimitPerMinute',
  rate_limit_status: 'rateLimitStatus',
  retry_after_s: 'retryAfterS',
  patch_quota_cost: 'patchQuotaCost',
  tombstone_writes: 'tombstoneWrites',
  empty_consent_outcome: 'emptyConsentOutcome',
  publishing_status: 'publishingStatus',
  refresh_token_idle_days: 'refreshTokenIdleDays',
  testing_refresh_token_days: 'testingRefreshTokenDays',
  refresh_token_cap: 'refreshTokenCap',
  sync_tokens_expired: 'syncTokensExpired',
  short_pages: 'shortPages',
  redirect_uris: 'redirectUris',
  call_log_limit: 'callLogLimit',
};

function configToSnake(cfg: EmulatorConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [snake, camel] of Object.entries(CONFIG_KEYS)) out[snake] = cfg[camel];
  return out;
}

function clockView(control: EmulatorControl, state: EmulatorState): Record<string, unknown> {
  return { now: control.now().toISOString(), offset_ms: state.clock.offset };
}

const ROUTES = [
  'GET  /__emulator                          this index',
  'POST /__emulator/accounts                 {email, name?, time_zone?, calendars?:[{id?, summary, access_role, time_zone?, description?}]}',
  'GET  /__emulator/accounts',
  'GET  /__emulator/accounts/:email',
  'POST /__emulator/accounts/:email/revoke',
  'POST /__emulator/accounts/:email/usage-limit {for_ms}',
  'POST /__emulator/calendars/:calendarId/share {email, access_role}',
  'GET  /__emulator/calendars/:calendarId/events',
  'POST /__emulator/calendars/:calendarId/events   {Event resource, creator?}: created as in Google\'s UI',
  'DELETE /__emulator/calendars/:calendarId/events/:eventId   deleted as in Google\'s UI (later update/patch: 403)',
  'GET  /__emulator/calls?path_prefix=&method=   DELETE /__emulator/calls',
  'POST /__emulator/faults                   {method?, path_prefix?, status?, reason?, count?, for_ms?, latency_ms?, drop_after_commit?, drop_before_commit?, retry_after_s?}',
  'GET  /__emulator/faults   DELETE /__emulator/faults   DELETE /__emulator/faults/:id',
  'GET  /__emulator/config   PATCH /__emulator/config {snake_case keys of the config}',
  'GET  /__emulator/clock    POST /__emulator/clock {advance_ms} | {set}',
  'POST /__emulator/sync-tokens/expire       {calendar_id?}',
  'POST /__emulator/access-tokens/expire     {email?}',
  'POST /__emulator/reset',
];

export async function handleControl(state: EmulatorState, req: EmuRequest): Promise<Reply> {
  const control = new EmulatorControl(state);
  const s = req.segments.slice(1); // after "__emulator"
  const m = req.method;
  // Route key with the variable segments replaced: accounts/:x, calendars/:x/events/:y, faults/:x.
  const route = `${m} ${s
    .map((x, i) => {
      if (i === 1 && (s[0] === 'accounts' || s[0] === 'calendars' || s[0] === 'faults')) return ':x';
      if (i === 3 && s[0] === 'calendars' && s[2] === 'events') return ':y';
      return x;
    })
    .join('/')}`;
  switch (route) {
    case 'GET ':
      return json(200, { client_id: state.client.clientId, routes: ROUTES });
    case 'POST accounts': {
      const b = parse(accountBody, req);
      const spec: Parameters<EmulatorControl['addAccount']>[0] = { email: b.email };
      if (b.name !== undefined) spec.name = b.name;
      if (b.time_zone !== undefined) spec.timeZone = b.time_zone;
      if (b.calendars !== undefined) {
        spec.calendars = b.calendars.map((c) => ({
          summary: c.summary,
          accessRole: c.access_role,
          ...(c.id !== undefined ? { id: c.id } : {}),
          ...(c.time_zone !== undefined ? { timeZone: c.time_zone } : {}),
          ...(c.description !== undefined ? { description: c.description } : {}),
        }));
      }
      return json(201, accountView(control.addAccount(spec)));
    }
    case 'GET accounts':
      return json(200, control.accounts().map(accountView));
    case 'GET accounts/:x':
      return json(200, accountView(control.account(s[1] ?? '')));
    case 'POST accounts/:x/revoke':
      control.revoke(s[1] ?? '');
      return json(200, { revoked: s[1] });
    case 'POST accounts/:x/usage-limit': {
      const b = parse(usageLimitBody, req);
      return json(200, accountView(control.setUsageLimit(s[1] ?? '', b.for_ms)));
    }
    case 'POST calendars/:x/share': {
      const b = parse(shareBody, req);
      control.shareCalendar(s[1] ?? '', b.email, b.access_role);
      return json(200, { calendar_id: s[1], email: b.email.toLowerCase(), access_role: b.access_role });
    }
    case 'GET calendars/:x/events':
      return json(200, control.events(s[1] ?? ''));
    case 'POST calendars/:x/events': {
      const b = parse(seedBody, req);
      const { creator, ...event } = b;
      return json(201, control.seedEvent(s[1] ?? '', event as JsonObject, creator));
    }
    case 'DELETE calendars/:x/events/:y':
      return json(200, control.deleteEventAsUser(s[1] ?? '', s[3] ?? ''));
    case 'GET calls': {
      const filter: { pathPrefix?: string; method?: string } = {};
      const pp = req.query.get('path_prefix');
      const mm = req.query.get('method');
      if (pp !== null) filter.pathPrefix = pp;
      if (mm !== null) filter.method = mm;
      return json(200, control.calls(filter));
    }
    case 'DELETE calls':
      control.clearCalls();
      return json(200, { cleared: true });
    case 'POST faults': {
      const b = parse(faultBody, req);
      const spec: Parameters<EmulatorControl['addFault']>[0] = {};
      if (b.method !== undefined) spec.method = b.method;
      if (b.path_prefix !== undefined) spec.pathPrefix = b.path_prefix;
      if (b.status !== undefined) spec.status = b.status;
      if (b.reason !== undefined) spec.reason = b.reason;
      if (b.count !== undefined) spec.count = b.count;
      if (b.for_ms !== undefined) spec.forMs = b.for_ms;
      if (b.latency_ms !== undefined) spec.latencyMs = b.latency_ms;
      if (b.drop_after_commit !== undefined) spec.dropAfterCommit = b.drop_after_commit;
      if (b.drop_before_commit !== undefined) spec.dropBeforeCommit = b.drop_before_commit;
      if (b.retry_after_s !== undefined) spec.retryAfterS = b.retry_after_s;
      return json(201, control.addFault(spec));
    }
    case 'GET faults':
      return json(200, control.faults());
    case 'DELETE faults':
      control.clearFaults();
      return json(200, { cleared: true });
    case 'DELETE faults/:x':
      if (!control.removeFault(s[1] ?? '')) throw new ControlError(404, `no fault ${s[1]}`, 'id');
      return json(200, { removed: s[1] });
    case 'GET config':
      return json(200, configToSnake(control.config()));
    case 'PATCH config':
    case 'POST config': {
      const b = parse(configBody, req);
      const patch: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(b)) {
        const camel = CONFIG_KEYS[k];
        if (camel !== undefined && v !== undefined) patch[camel] = v;
      }
      return json(200, configToSnake(control.setConfig(patch as Partial<EmulatorConfig>)));
    }
    case 'GET clock':
      return json(200, clockView(control, state));
    case 'POST clock': {
      const b = parse(clockBody, req);
      if (b.advance_ms !== undefined) control.advanceClock(b.advance_ms);
      else if (b.set !== undefined) control.setClock(new Date(b.set));
      return json(200, clockView(control, state));
    }
    case 'POST sync-tokens/expire': {
      const b = parse(expireSyncBody, req);
      control.expireSyncTokens(b.calendar_id);
      return json(200, { expired: b.calendar_id ?? 'all' });
    }
    case 'POST access-tokens/expire': {
      const b = parse(expireTokensBody, req);
      return json(200, { expired: control.expireAccessTokens(b.email) });
    }
    case 'POST reset':
      control.reset();
      return json(200, { reset: true });
  }
  throw new ControlError(404, `no control route ${m} ${req.rawPath}; GET /__emulator lists them`);
}

function accountView(a: ReturnType<EmulatorControl['account']>): Record<string, unknown> {
  return {
    email: a.email,
    sub: a.sub,
    name: a.name,
    time_zone: a.timeZone,
    read_only_until: a.readOnlyUntil,
    calendars: a.calendars.map((c) => ({
      id: c.id,
      summary: c.summary,
      access_role: c.accessRole,
      time_zone: c.timeZone,
      primary: c.primary,
    })),
  };
}
