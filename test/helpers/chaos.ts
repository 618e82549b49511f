// Chaos-suite helpers: relays as separate processes (spawned, crashed, killed, restarted by a
// bounded supervisor), emulator latency jitter, waiting until the system is quiet, and THE
// invariant every chaos test ends with (issue 5 "Tests"):
//   exactly one live Google event per live appointment across all calendars (grouped by
//   extendedProperties.private.cassiusAppointmentId), with the database's final content, in
//   the target calendar; no live event for a cancelled or deleted appointment; the outbox
//   drained (parked rows only where the test expects them).
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { z } from 'zod';
import { sql, type Db } from '../../src/shared/db';
import type { RelayConfig } from '../../src/shared/config';
import type { EmulatorControl } from '../emulator/index';
import { relayConfig, relayEnv } from './google';

const root = path.resolve(import.meta.dirname, '../..');

// ---------------------------------------------------------------------------------- sizes

/** `CHAOS_SCALE=large` (npm run chaos) runs the same tests with bigger sizes. */
export const LARGE = process.env.CHAOS_SCALE === 'large';
export const size = <T>(ci: T, large: T): T => (LARGE ? large : ci);
/** Per-test time limit: the large sizes run well past the harness's default 5 minutes. */
export const TEST_TIMEOUT = LARGE ? 30 * 60_000 : 300_000;

/** One line of figures per test, printed as a TAP diagnostic (`# chaos-figures ...`). */
export function figures(name: string, data: Record<string, unknown>): void {
  console.log(`chaos-figures ${name} ${JSON.stringify({ scale: LARGE ? 'large' : 'ci', ...data })}`);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------- relay processes

export type CrashEnv = {
  RELAY_CRASH_AT?: string;
  RELAY_CRASH_RATE?: string;
  RELAY_CRASH_TITLE?: string;
};

export type Exit = { code: number | null; signal: NodeJS.Signals | null };

export type RelayProcess = {
  id: string;
  child: ChildProcess;
  /** Resolves when the relay logged 'relay started' (rejects if it exits first). */
  ready: Promise<void>;
  exited: Promise<Exit>;
  alive(): boolean;
  /** True once it logged 'relay started'. */
  started(): boolean;
  /** The last log lines (JSON), for diagnostics. */
  logs: string[];
  /** How many log lines since start had a `msg` matching the pattern. */
  logCount(pattern: RegExp): number;
  /** Every distinct log `msg` since start with its count. */
  messages: Map<string, number>;
  /** SIGTERM and wait (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<Exit>;
  /** kill -9 and wait. */
  kill(): Promise<Exit>;
  /** Set when the test itself killed it (as opposed to a crash point). */
  killedByTest: boolean;
};

const everyChild = new Set<ChildProcess>();
let cleanupInstalled = false;
function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  // Never leave a relay behind, whatever way this test process ends.
  const killAll = () => {
    for (const child of everyChild) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.on('exit', killAll);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      killAll();
      process.exit(1);
    });
  }
}

let relaySeq = 0;

export type SpawnOptions = {
  databaseUrl: string;
  emulatorUrl: string;
  config?: Partial<RelayConfig>;
  env?: CrashEnv & Record<string, string>;
  name?: string;
};

/** `node --import tsx relay/main.ts` with the given configuration and crash hooks. */
export function spawnRelay(opts: SpawnOptions): RelayProcess {
  installCleanup();
  relaySeq += 1;
  const id = `${opts.name ?? 'chaos'}-${process.pid}-${relaySeq}`;
  const config = relayConfig(opts.databaseUrl, opts.emulatorUrl, { LOG_LEVEL: 'info', RELAY_ID: id, ...opts.config });
  const env = relayEnv(config);
  for (const k of ['RELAY_CRASH_AT', 'RELAY_CRASH_RATE', 'RELAY_CRASH_TITLE']) delete env[k];
  Object.assign(env, opts.env ?? {});
  const child = spawn(process.execPath, ['--import', 'tsx', 'relay/main.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  everyChild.add(child);
  const logs: string[] = [];
  const messages = new Map<string, number>();
  let isStarted = false;
  let started!: () => void;
  let failed!: (e: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    started = resolve;
    failed = reject;
  });
  ready.catch(() => {});
  const onLine = (line: string) => {
    if (!line.trim()) return;
    logs.push(line);
    if (logs.length > 300) logs.shift();
    if (line.includes('"relay started"')) {
      isStarted = true;
      started();
    }
    const msg = /"msg":"((?:[^"\\]|\\.)*)"/.exec(line)?.[1] ?? line.slice(0, 80);
    messages.set(msg, (messages.get(msg) ?? 0) + 1);
  };
  let buffer = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const l of lines) onLine(l);
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    for (const l of chunk.split('\n')) if (l.trim() && !l.includes('npm warn')) onLine(`stderr: ${l}`);
  });
  const exited = new Promise<Exit>((resolve) =>
    child.on('exit', (code, signal) => {
      everyChild.delete(child);
      failed(new Error(`relay ${id} exited (${code ?? signal}) before it started:\n${logs.slice(-20).join('\n')}`));
      resolve({ code, signal });
    }),
  );
  const proc: RelayProcess = {
    id,
    child,
    ready,
    exited,
    logs,
    messages,
    killedByTest: false,
    alive: () => child.exitCode === null && child.signalCode === null,
    started: () => isStarted,
    logCount(pattern) {
      let n = 0;
      for (const [msg, count] of messages) if (pattern.test(msg)) n += count;
      return n;
    },
    async stop(graceMs = 15_000) {
      if (!proc.alive()) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const exit = await exited;
      clearTimeout(timer);
      return exit;
    },
    async kill() {
      proc.killedByTest = true;
      if (proc.alive()) child.kill('SIGKILL');
      return exited;
    },
  };
  return proc;
}

export type SupervisorOptions = SpawnOptions & {
  /** Environment of replacements started after a crash (default: the same as the first ones). */
  replacementEnv?: CrashEnv & Record<string, string>;
  /** Upper bound on restarts after crashes, so a crash loop cannot run forever. */
  maxRestarts?: number;
  /** Delay before a crashed relay is replaced. */
  restartDelayMs?: number;
};

/**
 * Keeps a fleet of relay processes running: a relay that dies by SIGKILL at a crash point is
 * replaced (at most `maxRestarts` times). A relay that exits any other way, unasked, is a bug
 * and is recorded in `unexpectedExits`.
 */
export class Supervisor {
  readonly relays: RelayProcess[] = [];
  crashes = 0;
  restarts = 0;
  readonly crashTimes: number[] = [];
  readonly unexpectedExits: string[] = [];
  private stopping = false;
  private readonly pendingRestarts = new Set<Promise<void>>();

  constructor(private readonly opts: SupervisorOptions) {}

  /** Starts `n` relays (with the first-generation env) and waits until they are up. */
  async start(n = 1, env = this.opts.env): Promise<RelayProcess[]> {
    const started = Array.from({ length: n }, () => this.launch(env));
    await Promise.all(started.map((r) => r.ready));
    return started;
  }

  alive(): RelayProcess[] {
    return this.relays.filter((r) => r.alive());
  }

  private launch(env: SupervisorOptions['env']): RelayProcess {
    const relay = spawnRelay({ ...this.opts, env });
    this.relays.push(relay);
    void relay.exited.then((exit) => {
      if (this.stopping) return;
      if (relay.killedByTest) return;
      if (exit.signal === 'SIGKILL') {
        this.crashes += 1;
        this.crashTimes.push(Date.now());
        if (this.restarts >= (this.opts.maxRestarts ?? 20)) return;
        this.restarts += 1;
        const p = sleep(this.opts.restartDelayMs ?? 0).then(() => {
          if (this.stopping) return;
          const next = this.launch(this.opts.replacementEnv ?? this.opts.env);
          return next.ready.catch(() => {});
        });
        this.pendingRestarts.add(p);
        void p.finally(() => this.pendingRestarts.delete(p));
        return;
      }
      this.unexpectedExits.push(`${relay.id}: ${exit.code ?? exit.signal}\n${relay.logs.slice(-15).join('\n')}`);
    });
    return relay;
  }

  /** kill -9 of one live, started relay (chosen by `pick`, default random); returns it. */
  async killOne(pick: (alive: RelayProcess[]) => RelayProcess | undefined = (a) => a[Math.floor(Math.random() * a.length)]): Promise<RelayProcess | null> {
    const victim = pick(this.alive().filter((r) => r.started()));
    if (!victim) return null;
    await victim.kill();
    return victim;
  }

  /** Starts one more relay (a replacement after killOne) and waits until it is up. */
  async add(env = this.opts.replacementEnv ?? this.opts.env): Promise<RelayProcess> {
    const relay = this.launch(env);
    await relay.ready;
    return relay;
  }

  /** SIGTERM to every relay; each must drain and exit 0. Returns the relays that did not. */
  async stop(): Promise<string[]> {
    this.stopping = true;
    await Promise.allSettled([...this.pendingRestarts]);
    const bad: string[] = [];
    await Promise.all(
      this.relays.map(async (r) => {
        if (!r.alive()) return;
        const exit = await r.stop();
        if (exit.code !== 0) bad.push(`${r.id}: ${exit.code ?? exit.signal}`);
      }),
    );
    return bad;
  }

  /** Log lines of every relay so far whose `msg` matches. */
  logCount(pattern: RegExp): number {
    return this.relays.reduce((sum, r) => sum + r.logCount(pattern), 0);
  }

  /** Log messages of every relay so far with their counts, most frequent first. */
  messageCounts(): [string, number][] {
    const all = new Map<string, number>();
    for (const r of this.relays) for (const [m, n] of r.messages) all.set(m, (all.get(m) ?? 0) + n);
    return [...all].sort((a, b) => b[1] - a[1]);
  }

  /** Last log lines of every relay, for a failure message. */
  dump(lines = 10): string {
    return this.relays.map((r) => `--- ${r.id} (${r.alive() ? 'alive' : 'dead'})\n${r.logs.slice(-lines).join('\n')}`).join('\n');
  }
}

// ---------------------------------------------------------------------------- emulator faults

/**
 * Random per-call latency between `minMs` and `maxMs` for every Google call: the emulator has
 * one latency per fault, so a latency fault is replaced by one with a new random value every
 * few milliseconds. Returns a function that stops the jitter.
 */
export function latencyJitter(control: EmulatorControl, minMs: number, maxMs: number, opts: { pathPrefix?: string } = {}): () => void {
  let current: string | null = null;
  const rotate = () => {
    const next = control.addFault({ latencyMs: minMs + Math.round(Math.random() * (maxMs - minMs)), forMs: 60_000, ...opts }).id;
    if (current) control.removeFault(current);
    current = next;
  };
  rotate();
  const timer = setInterval(rotate, 20);
  return () => {
    clearInterval(timer);
    if (current) control.removeFault(current);
    current = null;
  };
}

/** The emulator's Calendar API path of a calendar's events (for fault prefixes). */
export const eventsPath = (calendarId: string) => `/calendar/v3/calendars/${encodeURIComponent(calendarId)}/events`;

// --------------------------------------------------------------------------- half-open proxy

export type TcpProxy = {
  port: number;
  /** The database URL with its host and port replaced by the proxy's. */
  url(databaseUrl: string): string;
  /**
   * Silently stops forwarding, both ways, on the open connections whose PostgreSQL startup
   * packet contains `tag` (e.g. an application_name): a half-open connection, as after a NAT
   * or firewall dropped it. The sockets stay open; new connections are forwarded normally.
   * Returns how many connections were blackholed.
   */
  blackhole(tag: string): number;
  /** Open (not blackholed) connections whose startup packet contains `tag`. */
  open(tag: string): number;
  close(): Promise<void>;
};

/** A TCP proxy in front of PostgreSQL (pg-boss's halfOpenProxy idea). */
export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  type Conn = { client: net.Socket; upstream: net.Socket; startup: string; blackholed: boolean };
  const conns = new Set<Conn>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, targetHost);
    const conn: Conn = { client, upstream, startup: '', blackholed: false };
    conns.add(conn);
    client.on('data', (d: Buffer) => {
      if (conn.startup.length < 2048) conn.startup += d.toString('latin1');
      if (!conn.blackholed) upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (!conn.blackholed) client.write(d);
    });
    const end = () => {
      conns.delete(conn);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', () => !conn.blackholed && end()).on('error', () => !conn.blackholed && end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url(databaseUrl) {
      const u = new URL(databaseUrl);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    blackhole(tag) {
      let n = 0;
      for (const c of conns) {
        if (!c.blackholed && c.startup.includes(tag)) {
          c.blackholed = true;
          n += 1;
        }
      }
      return n;
    },
    open(tag) {
      return [...conns].filter((c) => !c.blackholed && c.startup.includes(tag)).length;
    },
    async close() {
      for (const c of conns) {
        c.client.destroy();
        c.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ------------------------------------------------------------------------------------ quiet

export type OutboxState = { pending: number; waiting: number; parked: number; backlog: number; leased: number };

export async function outboxState(db: Db): Promise<OutboxState> {
  return db.one(sql.type(z.object({ pending: z.number(), waiting: z.number(), parked: z.number(), backlog: z.number(), leased: z.number() }))`
    select
      count(*) filter (where failed_at is null and waiting_for_integration_id is null)::int as pending,
      count(*) filter (where waiting_for_integration_id is not null and failed_at is null)::int as waiting,
      count(*) filter (where failed_at is not null)::int as parked,
      (select count(*) from sync_backlog where completed_at is null)::int as backlog,
      count(*) filter (where locked_until > now())::int as leased
    from sync_outbox`);
}

/**
 * Waits until nothing is left to do: no outbox row that is pending or waiting (parked rows are
 * allowed; the invariant checks which), no running backlog job, and no lease held, for
 * `stableMs` in a row. Database errors (a restart) count as "not quiet yet".
 */
export async function waitQuiet(db: Db, opts: { timeoutMs?: number; stableMs?: number; what?: string } = {}): Promise<number> {
  const started = Date.now();
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const stableMs = opts.stableMs ?? 600;
  let quietSince: number | null = null;
  let last: OutboxState | string = 'never read';
  for (;;) {
    try {
      const s = await outboxState(db);
      last = s;
      const quiet = s.pending === 0 && s.waiting === 0 && s.backlog === 0 && s.leased === 0;
      if (process.env.CHAOS_DEBUG) console.log(`waitQuiet +${Date.now() - started}ms ${JSON.stringify(s)}`);
      if (quiet) {
        quietSince ??= Date.now();
        if (Date.now() - quietSince >= stableMs) return Date.now() - started;
      } else quietSince = null;
    } catch (error) {
      last = (error as Error).message;
      quietSince = null;
    }
    if (Date.now() - started > timeoutMs) {
      throw new Error(`not quiet after ${timeoutMs} ms${opts.what ? ` (${opts.what})` : ''}: ${JSON.stringify(last)}`);
    }
    await sleep(100);
  }
}

// -------------------------------------------------------------------------------- invariant

type GEvent = {
  id: string;
  status: string;
  summary?: string;
  description?: string;
  location?: string;
  start?: { dateTime?: string; timeZone?: string };
  end?: { dateTime?: string; timeZone?: string };
  extendedProperties?: { private?: Record<string, string> };
};

export type LiveEvent = GEvent & { calendarId: string };

/** Every calendar the emulator knows of (shared ones once). */
export function allCalendars(control: EmulatorControl): string[] {
  return [...new Set(control.accounts().flatMap((a) => a.calendars.map((c) => c.id)))];
}

/** Every event in every calendar, deleted ones included. */
export function allEvents(control: EmulatorControl): LiveEvent[] {
  return allCalendars(control).flatMap((calendarId) =>
    (control.events(calendarId) as unknown as GEvent[]).map((e) => ({ ...e, calendarId })),
  );
}

export const liveEvents = (control: EmulatorControl) => allEvents(control).filter((e) => e.status !== 'cancelled');

/** Live events grouped by appointment id (events without one under ''). */
export function liveByAppointment(control: EmulatorControl): Map<string, LiveEvent[]> {
  const groups = new Map<string, LiveEvent[]>();
  for (const e of liveEvents(control)) {
    const key = e.extendedProperties?.private?.cassiusAppointmentId ?? '';
    groups.set(key, [...(groups.get(key) ?? []), e]);
  }
  return groups;
}

/** Live events beyond the first, per appointment: the duplicates the relay must never make. */
export function duplicateCount(control: EmulatorControl): number {
  let n = 0;
  for (const [id, events] of liveByAppointment(control)) if (id && events.length > 1) n += events.length - 1;
  return n;
}

/** Event inserts Google performed (answer lost or not; a 409, lost or not, created nothing). */
export function insertsDone(control: EmulatorControl): number {
  return control.calls().filter((c) => c.method === 'POST' && /\/events$/.test(c.path) && c.status === 200).length;
}

const AppointmentRow = z.object({
  id: z.string(),
  organisation_id: z.string(),
  title: z.string(),
  description: z.string().nullable(),
  location: z.string().nullable(),
  starts_at: z.string(),
  ends_at: z.string(),
  time_zone: z.string(),
  status: z.string(),
  sync_status: z.string(),
  external_event_id: z.string().nullable(),
  integration_id: z.string().nullable(),
  calendar_id: z.string().nullable(),
  account_email: z.string().nullable(),
  sync_enabled: z.boolean().nullable(),
  connection_status: z.string().nullable(),
  link_integration_id: z.string().nullable(),
  link_calendar_id: z.string().nullable(),
  link_event_id: z.string().nullable(),
});

const ParkedRow = z.object({ appointment_id: z.string(), n: z.number() });

export type InvariantOptions = {
  /** Appointments whose rows may (and must) end parked; their events are not checked. */
  expectParked?: readonly string[];
};

export type InvariantReport = {
  problems: string[];
  liveAppointments: number;
  liveEvents: number;
  duplicates: number;
  parked: string[];
};

/**
 * Compares Google (the emulator) with the database's final state. Call it once the system is
 * quiet (`waitQuiet`). Returns every problem found, so one failure message shows them all.
 */
export async function checkInvariant(db: Db, control: EmulatorControl, opts: InvariantOptions = {}): Promise<InvariantReport> {
  const problems: string[] = [];
  const appointments = await db.any(sql.type(AppointmentRow)`
    select a.id, a.organisation_id, a.title, a.description, a.location, a.starts_at, a.ends_at, a.time_zone, a.status,
           a.sync_status, a.external_event_id,
           i.id as integration_id, i.calendar_id, i.account_email, i.sync_enabled, i.connection_status,
           l.integration_id as link_integration_id, l.external_calendar_id as link_calendar_id, l.external_event_id as link_event_id
    from appointments a
    left join appointment_sync_targets t on t.appointment_id = a.id
    left join calendar_integrations i on i.id = t.integration_id
    left join appointment_external_links l on l.appointment_id = a.id and l.provider = 'google'`);
  const byId = new Map(appointments.map((a) => [a.id, a]));
  const expectParked = new Set(opts.expectParked ?? []);
  const groups = liveByAppointment(control);

  // The outbox: nothing pending or waiting; parked rows exactly for the expected appointments.
  const state = await outboxState(db);
  if (state.pending > 0) problems.push(`outbox: ${state.pending} pending row(s) left`);
  if (state.waiting > 0) problems.push(`outbox: ${state.waiting} row(s) still waiting for a reconnection`);
  if (state.backlog > 0) problems.push(`sync_backlog: ${state.backlog} job(s) not completed`);
  const parkedRows = await db.any(sql.type(ParkedRow)`
    select appointment_id, count(*)::int as n from sync_outbox where failed_at is not null group by appointment_id`);
  const parked = parkedRows.map((r) => r.appointment_id);
  for (const r of parkedRows) {
    if (!expectParked.has(r.appointment_id)) problems.push(`outbox: ${r.n} parked row(s) of ${r.appointment_id}, not expected`);
  }
  for (const id of expectParked) if (!parked.includes(id)) problems.push(`outbox: ${id} was expected to end parked but is not`);

  let live = 0;
  for (const a of appointments) {
    if (expectParked.has(a.id)) continue;
    const events = groups.get(a.id) ?? [];
    const where = events.map((e) => `${e.calendarId}/${e.id}`).join(', ');
    const shouldExist = a.status === 'scheduled' && a.integration_id !== null && a.connection_status === 'active';
    if (a.integration_id !== null && a.sync_enabled === false) {
      problems.push(`${a.id}: its target integration has sync off; turn it on (and Sync now) before checking`);
      continue;
    }
    if (a.integration_id !== null && a.connection_status !== 'active') {
      problems.push(`${a.id}: its target integration is ${a.connection_status}`);
      continue;
    }
    if (!shouldExist) {
      if (events.length > 0) problems.push(`${a.id} (${a.status}${a.integration_id ? '' : ', no target'}): ${events.length} live event(s) left: ${where}`);
      if (a.link_event_id !== null) problems.push(`${a.id} (${a.status}): a link to ${a.link_calendar_id}/${a.link_event_id} is left`);
      if (a.external_event_id !== null) problems.push(`${a.id} (${a.status}): external_event_id ${a.external_event_id} is left`);
      continue;
    }
    live += 1;
    if (events.length !== 1) {
      problems.push(`${a.id} "${a.title}": ${events.length} live events (want 1)${where ? `: ${where}` : ''}`);
      if (events.length === 0) continue;
    }
    const e = events[0]!;
    const calendar = a.calendar_id === null || a.calendar_id === 'primary' ? a.account_email : a.calendar_id;
    const diffs: string[] = [];
    const same = (what: string, got: unknown, want: unknown) => {
      if (got !== want) diffs.push(`${what} ${JSON.stringify(got)} != ${JSON.stringify(want)}`);
    };
    same('calendar', e.calendarId, calendar);
    same('summary', e.summary ?? null, a.title);
    same('description', e.description ?? null, a.description);
    same('location', e.location ?? null, a.location);
    same('start', Date.parse(e.start?.dateTime ?? ''), Date.parse(a.starts_at));
    same('end', Date.parse(e.end?.dateTime ?? ''), Date.parse(a.ends_at));
    same('start.timeZone', e.start?.timeZone, a.time_zone);
    same('end.timeZone', e.end?.timeZone, a.time_zone);
    same('organisation', e.extendedProperties?.private?.cassiusOrganisationId, a.organisation_id);
    // What the database recorded must name that same event.
    same('appointments.sync_status', a.sync_status, 'synced');
    same('appointments.external_event_id', a.external_event_id, e.id);
    same('link event', a.link_event_id, e.id);
    same('link calendar', a.link_calendar_id, e.calendarId);
    same('link integration', a.link_integration_id, a.integration_id);
    if (diffs.length > 0) problems.push(`${a.id} "${a.title}": ${diffs.join('; ')}`);
  }

  // Events of appointments that no longer exist (hard-deleted), or that name no appointment.
  for (const [id, events] of groups) {
    if (byId.has(id)) continue;
    problems.push(`${id || '(no cassiusAppointmentId)'}: ${events.length} live event(s) for an appointment that does not exist: ${events.map((e) => `${e.calendarId}/${e.id}`).join(', ')}`);
  }
  const orphanLinks = await db.anyFirst(sql.type(z.object({ appointment_id: z.string() }))`
    select l.appointment_id from appointment_external_links l
    where not exists (select 1 from appointments a where a.id = l.appointment_id)`);
  for (const id of orphanLinks) if (!expectParked.has(id)) problems.push(`${id}: deleted, but its link is left`);

  return { problems, liveAppointments: live, liveEvents: liveEvents(control).length, duplicates: duplicateCount(control), parked };
}

/** Throws with every problem listed (and the relays' last logs when a supervisor is given). */
export async function assertInvariant(
  db: Db,
  control: EmulatorControl,
  opts: InvariantOptions & { supervisor?: Supervisor; label?: string } = {},
): Promise<InvariantReport> {
  const report = await checkInvariant(db, control, opts);
  if (report.problems.length > 0) {
    const shown = report.problems.slice(0, 40).join('\n  ');
    const more = report.problems.length > 40 ? `\n  ... and ${report.problems.length - 40} more` : '';
    throw new Error(
      `invariant broken${opts.label ? ` (${opts.label})` : ''}: ${report.problems.length} problem(s)\n  ${shown}${more}` +
        (opts.supervisor ? `\nrelay logs:\n${opts.supervisor.dump(8)}` : ''),
    );
  }
  return report;
}

/** Waits until quiet, then asserts the invariant; returns the report and the time it took. */
export async function convergeAndCheck(
  db: Db,
  control: EmulatorControl,
  opts: InvariantOptions & { supervisor?: Supervisor; label?: string; timeoutMs?: number } = {},
): Promise<InvariantReport & { convergeMs: number }> {
  let convergeMs: number;
  try {
    convergeMs = await waitQuiet(db, { timeoutMs: opts.timeoutMs, what: opts.label });
  } catch (error) {
    const report = await checkInvariant(db, control, opts).catch(() => null);
    throw new Error(
      `${(error as Error).message}\n  ${report?.problems.slice(0, 20).join('\n  ') ?? ''}` +
        (opts.supervisor ? `\nrelay logs:\n${opts.supervisor.dump(8)}` : ''),
    );
  }
  return { ...(await assertInvariant(db, control, opts)), convergeMs };
}

// ---------------------------------------------------------------------------------- writes

/** Inserts `n` appointments in one statement (capture is per statement: one NOTIFY). */
export async function bulkCreate(
  db: Db,
  organisationId: string,
  n: number,
  opts: { prefix?: string; assignedUserId?: string | null } = {},
): Promise<string[]> {
  const prefix = opts.prefix ?? 'Appt';
  const ids = await db.anyFirst(sql.type(z.object({ id: z.string() }))`
    insert into appointments (organisation_id, assigned_user_id, title, description, location, starts_at, ends_at, time_zone)
    select ${organisationId}, ${opts.assignedUserId ?? null}, ${prefix} || ' ' || g, 'Note ' || g, 'Room ' || (g % 7),
           timestamptz '2030-02-01 08:00Z' + g * interval '1 hour', timestamptz '2030-02-01 08:30Z' + g * interval '1 hour',
           (array['Europe/Paris', 'America/New_York', 'Asia/Tokyo', 'UTC'])[1 + g % 4]
    from generate_series(1, ${n}) g
    returning id`);
  return [...ids];
}
