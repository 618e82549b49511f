// The whole product for the acceptance tests: the API server (listening on a real port), TWO
// relays as separate processes (`node --import tsx relay/main.ts`), and the Google emulator.
// Tests drive it through HTTP only: the API as the settings page and Cassius would, the
// emulator through its control surface (/__emulator/...) as a person at Google would.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { signSession, SESSION_COOKIE } from '../../src/shared/session';
import { freePort } from '../../src/shared/embeddedPostgres';
import { startServer, type RunningServer } from '../../src/server';
import { startEmulator, type RunningEmulator } from '../emulator/index';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { relayConfig, relayEnv, waitFor } from '../helpers/google';
import { APP_SECRET, serverConfig } from '../api/support';

export { waitFor };

const root = path.resolve(import.meta.dirname, '../..');

export type ApiReply = { status: number; body: any; text: string; location: string | null };

type Relay = { child: ChildProcess; exited: Promise<number | null>; stderr: () => string };

function spawnRelay(env: NodeJS.ProcessEnv, id: string): Relay {
  const child = spawn(process.execPath, ['--import', 'tsx', 'relay/main.ts'], {
    cwd: root,
    env: { ...env, RELAY_ID: id, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-20_000)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, stderr: () => stderr };
}

export type Stack = {
  t: TestDatabase;
  emu: RunningEmulator;
  server: RunningServer;
  relays: Relay[];
  /** Every API response body and redirect seen, for the token scan. */
  seen: string[];
  api(method: string, path: string, opts?: { session?: string; body?: unknown; cookie?: boolean }): Promise<ApiReply>;
  /** The browser's OAuth round trip: connect -> Google consent (automated) -> our callback. */
  connect(session: string, email: string, level?: 'org' | 'user'): Promise<string>;
  emulator(method: string, path: string, body?: unknown): Promise<any>;
  liveEvents(calendarId: string): Promise<any[]>;
  stop(): Promise<void>;
};

export async function startStack(): Promise<Stack> {
  const t = await createTestDatabase();
  const emu = await startEmulator();
  const port = await freePort();
  const config = serverConfig(t.url, emu.url, { PORT: port, PUBLIC_URL: `http://127.0.0.1:${port}` });
  const server = await startServer(config, { logger: false });
  const env = relayEnv(relayConfig(t.url, emu.url, { RELAY_POLL_MS: 200 }));
  const relays = [spawnRelay(env, 'relay-a'), spawnRelay(env, 'relay-b')];
  const seen: string[] = [];

  async function api(method: string, p: string, opts: { session?: string; body?: unknown; cookie?: boolean } = {}): Promise<ApiReply> {
    const headers: Record<string, string> = {};
    if (opts.session) {
      if (opts.cookie) headers.cookie = `${SESSION_COOKIE}=${opts.session}`;
      else headers.authorization = `Bearer ${opts.session}`;
    }
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${server.url}${p}`, {
      method,
      headers,
      redirect: 'manual',
      ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
    });
    const text = await res.text();
    const location = res.headers.get('location');
    seen.push(text, location ?? '');
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    return { status: res.status, body, text, location };
  }

  async function connect(session: string, email: string, level: 'org' | 'user' = 'org'): Promise<string> {
    const start = await api('GET', `/api/integrations/google/connect?level=${level}&login_hint=${encodeURIComponent(email)}`, { session, cookie: true });
    if (start.status !== 302 || !start.location) throw new Error(`connect: ${start.status} ${start.text}`);
    const consent = new URL(start.location);
    consent.searchParams.set('emulator_consent', 'allow');
    const google = await fetch(consent, { redirect: 'manual' });
    const back = google.headers.get('location');
    if (google.status !== 302 || !back) throw new Error(`consent: ${google.status} ${await google.text()}`);
    const callback = new URL(back);
    if (callback.origin !== server.url.replace('localhost', '127.0.0.1')) throw new Error(`callback to ${callback.origin}`);
    const done = await api('GET', `${callback.pathname}${callback.search}`, { session, cookie: true });
    return done.location ?? '';
  }

  async function emulator(method: string, p: string, body?: unknown) {
    const res = await fetch(`${emu.url}${p}`, {
      method,
      headers: body !== undefined ? { 'content-type': 'application/json' } : {},
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (res.status >= 400) throw new Error(`emulator ${method} ${p}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  return {
    t,
    emu,
    server,
    relays,
    seen,
    api,
    connect,
    emulator,
    async liveEvents(calendarId: string) {
      const events = (await emulator('GET', `/__emulator/calendars/${encodeURIComponent(calendarId)}/events`)) as { status?: string }[];
      return events.filter((e) => e.status !== 'cancelled');
    },
    async stop() {
      for (const r of relays) r.child.kill('SIGTERM');
      const codes = await Promise.all(relays.map((r) => r.exited));
      await server.close();
      await emu.close();
      await t.drop();
      if (codes.some((c) => c !== 0)) {
        throw new Error(`a relay exited ${codes.join(', ')}: ${relays.map((r) => r.stderr()).join('\n')}`);
      }
    },
  };
}

export const session = (userId: string, organisationId: string) => signSession({ sub: userId, org: organisationId }, APP_SECRET);

export const appointmentIdOf = (event: { extendedProperties?: { private?: Record<string, string> } }) =>
  event.extendedProperties?.private?.cassiusAppointmentId;

/** Relay logs, to explain a timeout. */
export function relayLogs(stack: Stack): string {
  return stack.relays.map((r, i) => `--- relay ${i}\n${r.stderr()}`).join('\n');
}
