// The whole product for the browser tests: a test database seeded with the demo clinic, the
// Google emulator (in process, with the demo Google accounts), the API server listening on a
// free port in demo mode, one relay in process, and Debian's Chromium driven by playwright-core.
// Screenshots go to test/artifacts/ (gitignored) for a person to look at.
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { z } from 'zod';
import { startRelay, type Relay } from '../../relay/relay';
import { ensureDemoGoogleAccounts, seedDemoData, DEMO_USERS } from '../../src/demo/seed';
import { startServer, type RunningServer } from '../../src/server';
import type { ServerConfig } from '../../src/shared/config';
import { sql, type Db } from '../../src/shared/db';
import { freePort } from '../../src/shared/embeddedPostgres';
import { createLogger } from '../../src/shared/logger';
import { startEmulator, type RunningEmulator } from '../emulator/index';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { googleConfig, relayConfig, TEST_TOKEN_KEY } from '../helpers/google';

export const ARTIFACTS = path.resolve(import.meta.dirname, '..', 'artifacts');
export const SETTINGS_PATH = '/settings/integrations/google-calendar';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: CHROMIUM_ARGS });
}

/** Console errors, page errors and failed requests of one page, on the product's own origin. */
export type Problems = { list: string[]; allow(pattern: RegExp): void; check(): string[] };

export function watchProblems(page: Page, origin: string): Problems {
  const list: string[] = [];
  const allowed: RegExp[] = [];
  const ours = (url: string) => url === '' || url.startsWith(origin);
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const where = m.location().url ?? '';
    // The emulator's own pages (consent screen) are Google's, not ours.
    if (ours(where) && ours(page.url())) list.push(`console: ${m.text()} (${where})`);
  });
  page.on('pageerror', (e) => {
    if (ours(page.url())) list.push(`pageerror: ${e.message}`);
  });
  page.on('requestfailed', (r) => {
    // A navigation away cancels in-flight polls (net::ERR_ABORTED): not a failure of the page.
    if (ours(r.url()) && r.failure()?.errorText !== 'net::ERR_ABORTED') list.push(`requestfailed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`);
  });
  return {
    list,
    allow(pattern) {
      allowed.push(pattern);
    },
    check() {
      return list.filter((p) => !allowed.some((a) => a.test(p)));
    },
  };
}

export type World = {
  t: TestDatabase;
  db: Db;
  emu: RunningEmulator;
  server: RunningServer;
  base: string;
  config: ServerConfig;
  browser: Browser;
  users: Map<string, string>; // email -> user id
  organisationId: string;
  relay(): Relay | null;
  startRelay(overrides?: Parameters<typeof relayConfig>[2]): Promise<void>;
  stopRelay(): Promise<void>;
  newPage(opts?: { width?: number; height?: number }): Promise<{ context: BrowserContext; page: Page; problems: Problems }>;
  login(page: Page, email: string): Promise<void>;
  shot(page: Page, name: string): Promise<string>;
  close(): Promise<void>;
};

const UserRow = z.object({ id: z.string(), email: z.string(), organisation_id: z.string() });

export async function startWorld(name: string): Promise<World> {
  const t = await createTestDatabase();
  const emu = await startEmulator();
  await seedDemoData(t.db);
  await ensureDemoGoogleAccounts(emu.url);
  const rows = await t.db.any(sql.type(UserRow)`select id, email, organisation_id from users`);
  const users = new Map(rows.map((r) => [r.email, r.id]));
  if (users.size !== DEMO_USERS.length) throw new Error('demo seed did not create the demo users');

  // The OAuth redirect URI is built from PUBLIC_URL, so the port is chosen before listening.
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const config: ServerConfig = {
    ...googleConfig(emu.url),
    DATABASE_URL: t.url,
    TOKEN_ENCRYPTION_KEY: TEST_TOKEN_KEY,
    TOKEN_ENCRYPTION_OLD_KEYS: undefined,
    LOG_LEVEL: 'silent',
    DEMO_MODE: true,
    PORT: port,
    HOST: '127.0.0.1',
    PUBLIC_URL: base,
    APP_SECRET: `browser-test-secret-${name}-0123456789abcdef`,
  };
  // src/demo/plugin.ts reads the database through DATABASE_URL when app.ts passes no pool.
  process.env.DATABASE_URL = t.url;
  const server = await startServer(config, { logger: false });
  const browser = await launchChromium();
  fs.mkdirSync(ARTIFACTS, { recursive: true });

  let relay: Relay | null = null;
  const world: World = {
    t,
    db: t.db,
    emu,
    server,
    base,
    config,
    browser,
    users,
    organisationId: rows[0]!.organisation_id,
    relay: () => relay,
    async startRelay(overrides = {}) {
      if (relay) return;
      relay = await startRelay(relayConfig(t.url, emu.url, { RELAY_POLL_MS: 200, RELAY_MAX_ATTEMPTS: 3, ...overrides }), {
        log: createLogger('relay', process.env.TEST_LOG_LEVEL ?? 'silent'),
      });
    },
    async stopRelay() {
      const r = relay;
      relay = null;
      await r?.stop(5_000);
    },
    async newPage(opts = {}) {
      const context = await browser.newContext({ viewport: { width: opts.width ?? 1024, height: opts.height ?? 900 } });
      const page = await context.newPage();
      page.setDefaultTimeout(15_000);
      return { context, page, problems: watchProblems(page, base) };
    },
    async login(page, email) {
      await page.goto(`${base}/demo/login?as=${encodeURIComponent(email)}`);
      await page.waitForURL(`${base}${SETTINGS_PATH}`);
      await page.waitForSelector('body[data-ready="true"]');
    },
    async shot(page, shotName) {
      const file = path.join(ARTIFACTS, `${name}-${shotName}.png`);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
    async close() {
      await browser.close().catch(() => {});
      await world.stopRelay().catch(() => {});
      await server.close().catch(() => {});
      await emu.close().catch(() => {});
      await t.drop().catch(() => {});
    },
  };
  await world.startRelay();
  return world;
}

/**
 * Goes through the emulator's consent page like a person: picks the account, ticks the
 * permissions (all, or none), and presses Allow or Deny. Ends back on the settings page.
 */
export async function consent(
  page: Page,
  world: World,
  o: { account: string; decision: 'allow' | 'deny'; scopes?: 'all' | 'none'; screenshot?: string },
): Promise<URL> {
  // The page removes the callback's query from the address bar at once: keep the URL Google
  // redirected to from the navigation itself.
  const settings = `${world.base}${SETTINGS_PATH}`;
  const back = page.waitForRequest((r) => r.isNavigationRequest() && r.url().startsWith(settings), { timeout: 15_000 });
  await page.waitForURL((u) => u.href.startsWith(`${world.emu.url}/o/oauth2/v2/auth`));
  await page.getByRole('radio', { name: new RegExp(`<${o.account.replace(/[.]/g, '\\.')}>`) }).check();
  if ((o.scopes ?? 'all') === 'all') {
    for (const box of await page.locator('input[type=checkbox][name=scope]').all()) await box.check();
  }
  if (o.screenshot) await world.shot(page, o.screenshot);
  await page.getByRole('button', { name: o.decision === 'allow' ? 'Allow' : 'Deny' }).click();
  const landed = new URL((await back).url());
  await page.waitForURL((u) => u.href.startsWith(settings));
  await page.waitForSelector('body[data-ready="true"]');
  return landed;
}

/** Polls `fn` until it returns a truthy value (or throws the last error after `ms`). */
export async function eventually<T>(fn: () => Promise<T> | T, ms = 15_000, what: string | (() => string) = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value as NonNullable<T>;
      last = new Error(`${typeof what === 'function' ? what() : what}: got ${JSON.stringify(value)}`);
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw last instanceof Error ? last : new Error(String(last));
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** Text of an element, whitespace collapsed. */
export async function textOf(page: Page, selector: string): Promise<string> {
  return ((await page.locator(selector).textContent()) ?? '').replace(/\s+/g, ' ').trim();
}

/** Waits until the element's text matches. */
export async function waitText(page: Page, selector: string, pattern: RegExp, ms = 15_000): Promise<string> {
  let last = '';
  return eventually(
    async () => {
      last = await textOf(page, selector);
      return pattern.test(last) ? last : null;
    },
    ms,
    () => `${selector} text to match ${pattern} (last: ${JSON.stringify(last)})`,
  );
}

export type Counts = { pending: number; synced: number; error: number };

/** Confirmed events of a calendar in the emulator (deleted ones are tombstones: excluded). */
export function liveEvents(world: World, calendarId: string) {
  return world.emu.control.events(calendarId).filter((e) => (e as { status?: string }).status !== 'cancelled') as {
    id: string;
    summary?: string;
    extendedProperties?: { private?: Record<string, string> };
  }[];
}
