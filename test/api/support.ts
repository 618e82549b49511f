// The API server for tests: built on a database of its own (cloned from the migrated template),
// driven through HTTP with fastify's inject() (same routing, hooks, parsers and serializers as
// a listening server), optionally pointed at a Google emulator.
import type { FastifyInstance, InjectOptions } from 'fastify';
import { z } from 'zod';
import { buildApp } from '../../src/app';
import type { ServerConfig } from '../../src/shared/config';
import { sql, type Db } from '../../src/shared/db';
import { signSession, SESSION_COOKIE } from '../../src/shared/session';
import { startEmulator, type RunningEmulator } from '../emulator/index';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { createOrganisation, createUser } from '../helpers/fixtures';
import { googleConfig, TEST_TOKEN_KEY } from '../helpers/google';

export const APP_SECRET = 'test-app-secret-0123456789abcdef0123456789';
// Only used to build the redirect URI; the emulator accepts any localhost port by default.
export const PUBLIC_URL = 'http://localhost:3999';

export function serverConfig(databaseUrl: string, emulatorUrl: string, overrides: Partial<ServerConfig> = {}): ServerConfig {
  return {
    ...googleConfig(emulatorUrl),
    DATABASE_URL: databaseUrl,
    TOKEN_ENCRYPTION_KEY: TEST_TOKEN_KEY,
    TOKEN_ENCRYPTION_OLD_KEYS: undefined,
    LOG_LEVEL: 'silent',
    DEMO_MODE: false,
    PORT: 0,
    HOST: '127.0.0.1',
    PUBLIC_URL,
    APP_SECRET,
    ...overrides,
  };
}

export type Reply = { status: number; body: any; text: string; headers: Record<string, string | string[] | number | undefined> };

export type Caller = { token?: string; cookie?: string; headers?: Record<string, string> };

export type Harness = {
  t: TestDatabase;
  db: Db;
  app: FastifyInstance;
  emu: RunningEmulator | null;
  config: ServerConfig;
  request(method: InjectOptions['method'], url: string, opts?: Caller & { body?: unknown; payload?: string | Buffer }): Promise<Reply>;
  close(): Promise<void>;
};

export async function startHarness(opts: { emulator?: boolean; logger?: boolean } = {}): Promise<Harness> {
  const t = await createTestDatabase();
  const emu = opts.emulator ? await startEmulator() : null;
  const config = serverConfig(t.url, emu?.url ?? 'http://127.0.0.1:9');
  const app = await buildApp({ config, db: t.db, logger: opts.logger ?? false });
  return {
    t,
    db: t.db,
    app,
    emu,
    config,
    async request(method, url, o = {}) {
      const headers: Record<string, string> = { ...o.headers };
      if (o.token) headers.authorization = `Bearer ${o.token}`;
      if (o.cookie) headers.cookie = `${SESSION_COOKIE}=${o.cookie}`;
      let payload: string | Buffer | undefined = o.payload;
      if (o.body !== undefined) {
        payload = JSON.stringify(o.body);
        headers['content-type'] ??= 'application/json';
      }
      const res = await app.inject({ method, url, headers, ...(payload !== undefined ? { payload } : {}) });
      let body: unknown = null;
      try {
        body = res.body ? JSON.parse(res.body) : null;
      } catch {
        body = null;
      }
      return { status: res.statusCode, body, text: res.body, headers: res.headers };
    },
    async close() {
      await app.close();
      await emu?.close();
      await t.drop();
    },
  };
}

export type Org = { id: string; admin: string; member: string; adminToken: string; memberToken: string };

export async function createOrg(db: Db, name: string): Promise<Org> {
  const id = await createOrganisation(db, name);
  const admin = await createUser(db, id, { role: 'admin', email: `admin-${Math.random().toString(36).slice(2)}@${name.toLowerCase()}.test` });
  const member = await createUser(db, id, { role: 'member', email: `member-${Math.random().toString(36).slice(2)}@${name.toLowerCase()}.test` });
  return {
    id,
    admin,
    member,
    adminToken: await signSession({ sub: admin, org: id }, APP_SECRET),
    memberToken: await signSession({ sub: member, org: id }, APP_SECRET),
  };
}

export const token = (sub: string, org: string, secret = APP_SECRET, ttl?: number) => signSession({ sub, org }, secret, ttl);

/** Asserts the one error shape and returns the code. */
export function errorCode(reply: Reply): string {
  const b = reply.body as { error?: { code?: unknown; message?: unknown } } | null;
  if (!b || typeof b.error?.code !== 'string' || typeof b.error?.message !== 'string' || Object.keys(b).length !== 1) {
    throw new Error(`not the error shape (${reply.status}): ${reply.text.slice(0, 300)}`);
  }
  return b.error.code;
}

const N = z.object({ n: z.number() });
export async function count(db: Db, table: 'appointments' | 'sync_outbox' | 'calendar_integrations' | 'calendar_credentials' | 'sync_backlog' | 'oauth_states'): Promise<number> {
  return db.oneFirst(sql.type(N)`select count(*)::int as n from ${sql.identifier([table])}`);
}

export const validAppointment = (over: Record<string, unknown> = {}) => ({
  title: 'Check-up',
  starts_at: '2030-01-15T09:00:00+01:00',
  ends_at: '2030-01-15T09:30:00+01:00',
  time_zone: 'Europe/Paris',
  ...over,
});

// ---- Google: the OAuth dance through the API and the emulator's automated consent

export type Dance = {
  /** The 302 of connect: Google's authorization URL. */
  authUrl: URL;
  /** The URL the emulator sent the browser back to (our callback, with code and state). */
  callback: URL | null;
  /** Our callback's answer. */
  status: number;
  location: string;
  responses: string[];
};

export async function oauthDance(
  h: Harness,
  session: string,
  email: string,
  opts: { level?: 'org' | 'user'; consent?: 'allow' | 'deny'; scopes?: string[]; callbackSession?: string } = {},
): Promise<Dance> {
  const connect = await h.request('GET', `/api/integrations/google/connect?level=${opts.level ?? 'org'}&login_hint=${encodeURIComponent(email)}`, { cookie: session });
  if (connect.status !== 302) throw new Error(`connect answered ${connect.status}: ${connect.text}`);
  const authUrl = new URL(String(connect.headers.location));
  const consentUrl = new URL(authUrl);
  consentUrl.searchParams.set('emulator_consent', opts.consent ?? 'allow');
  if (opts.scopes) consentUrl.searchParams.set('emulator_scopes', opts.scopes.join(' '));
  const consent = await fetch(consentUrl, { redirect: 'manual' });
  const back = consent.headers.get('location');
  if (consent.status !== 302 || !back) throw new Error(`emulator consent answered ${consent.status}: ${await consent.text()}`);
  const callback = new URL(back);
  const r = await h.request('GET', `${callback.pathname}${callback.search}`, { cookie: opts.callbackSession ?? session });
  return { authUrl, callback, status: r.status, location: String(r.headers.location ?? ''), responses: [connect.text, String(connect.headers.location), r.text, String(r.headers.location ?? '')] };
}

/** Every place (table.column) in the database where one of the secrets appears in clear text. */
export async function secretsInDatabase(db: Db, secrets: string[]): Promise<string[]> {
  const Col = z.object({ table_name: z.string(), column_name: z.string(), data_type: z.string() });
  const columns = await db.any(sql.type(Col)`
    select c.table_name, c.column_name, c.data_type
    from information_schema.columns c join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name
    where c.table_schema = 'public' and t.table_type = 'BASE TABLE'`);
  const found: string[] = [];
  for (const c of columns) {
    const rows = await db.any(sql.unsafe`
      select ${c.data_type === 'bytea' ? sql.identifier([c.column_name]) : sql.fragment`${sql.identifier([c.column_name])}::text`} as v
      from ${sql.identifier([c.table_name])} where ${sql.identifier([c.column_name])} is not null`);
    for (const row of rows) {
      const v = (row as { v: unknown }).v;
      const haystack = Buffer.isBuffer(v) ? v : Buffer.from(String(v));
      for (const s of secrets) if (s && haystack.includes(s)) found.push(`${c.table_name}.${c.column_name}`);
    }
  }
  return found;
}
