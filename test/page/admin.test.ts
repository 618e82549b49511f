// An administrator clicks through the settings page in Chromium: signed-out view, Connect
// refused (Deny, then missing permissions), Connect through the emulator's consent page, the
// calendar picker (read-only calendars disabled, with why), the sync toggle, Sync now with
// its progress and no double submission, and Disconnect with its confirmation.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { z } from 'zod';
import { DEMO_TEAM_CALENDAR, DEMO_HOLIDAYS_CALENDAR } from '../../src/demo/seed';
import { sql } from '../../src/shared/db';
import { consent, eventually, liveEvents, SETTINGS_PATH, startWorld, textOf, waitText, type Problems, type World } from './harness';

const ADMIN = 'admin@demo.clinic';
let world: World;
let page: Page;
let problems: Problems;

const Integration = z.object({ connection_status: z.string(), calendar_id: z.string().nullable(), sync_enabled: z.boolean() });
const orgIntegration = () =>
  world.db.maybeOne(sql.type(Integration)`select connection_status, calendar_id, sync_enabled from calendar_integrations where user_id is null`);

before(async () => {
  world = await startWorld('admin');
});
after(async () => {
  await world?.close();
});

test('signed out: the page says so and offers the demo sign-in links', async () => {
  const { page: anonymous, context } = await world.newPage();
  await anonymous.goto(`${world.base}${SETTINGS_PATH}`);
  await anonymous.waitForSelector('body[data-ready="signed-out"]');
  assert.equal(await anonymous.getByRole('heading', { name: 'You are not signed in' }).isVisible(), true);
  await anonymous.locator('#demo-users a').first().waitFor();
  const links = await anonymous.locator('#demo-users a').allTextContents();
  assert.deepEqual(links.sort(), ['admin@demo.clinic', 'alice@demo.clinic', 'bob@demo.clinic']);
  await world.shot(anonymous, '00-signed-out');
  // The sign-in link works from there.
  await anonymous.getByRole('link', { name: ADMIN }).click();
  await anonymous.waitForSelector('body[data-ready="true"]');
  assert.equal(await anonymous.locator('#connection-org').isVisible(), true);
  await context.close();
});

test('admin signs in: both connections are shown, not connected, with their badges', async () => {
  ({ page, problems } = await world.newPage());
  await world.login(page, ADMIN);
  assert.equal(await textOf(page, '#org-level'), 'Organisation');
  assert.equal(await textOf(page, '#user-level'), 'Personal');
  assert.equal(await textOf(page, '#org-status'), 'Not connected');
  assert.equal(await textOf(page, '#user-status'), 'Not connected');
  assert.equal(await page.locator('#org-connect').getAttribute('href'), '/api/integrations/google/connect?level=org');
  assert.equal(await page.locator('#user-connect').getAttribute('href'), '/api/integrations/google/connect?level=user');
  // The header badge, fed by the status API.
  await page.locator('cassius-gcal-badge[state="not_connected"]').waitFor();
  await world.shot(page, '01-not-connected');
});

test('Connect, then Deny on Google: a readable message, nothing stored', async () => {
  await page.click('#org-connect');
  const landed = await consent(page, world, { account: ADMIN, decision: 'deny', screenshot: '02-consent-page' });
  assert.equal(landed.searchParams.get('error'), 'access_denied');
  const flash = await textOf(page, '#flash-text');
  assert.match(flash, /not connected: access was declined on Google’s consent screen/);
  assert.equal(await page.locator('#flash').getAttribute('role'), 'alert');
  // The address bar no longer carries the error (a reload does not show it again).
  assert.equal(new URL(page.url()).search, '');
  assert.equal(await textOf(page, '#org-status'), 'Not connected');
  assert.equal(await orgIntegration(), null);
  await world.shot(page, '03-access-denied');
});

test('Connect, then Allow without ticking the permissions: missing_scope explained', async () => {
  await page.click('#flash-close');
  await page.click('#org-connect');
  const landed = await consent(page, world, { account: ADMIN, decision: 'allow', scopes: 'none' });
  assert.equal(landed.searchParams.get('error'), 'missing_scope');
  assert.match(await textOf(page, '#flash-text'), /needs permission to see your list of calendars and to edit their events.*tick every box/);
  assert.equal(await orgIntegration(), null);
  await world.shot(page, '03b-missing-scope');
});

test('Connect through the consent page: active, and the clinic’s appointments reach Google', async () => {
  await page.click('#flash-close');
  await page.click('#org-connect');
  const landed = await consent(page, world, { account: ADMIN, decision: 'allow' });
  assert.equal(landed.searchParams.get('connected'), '1');
  assert.match(await textOf(page, '#flash-text'), /Connected to Google as admin@demo\.clinic/);
  assert.equal(await textOf(page, '#org-status'), 'Active');
  assert.match(await textOf(page, '#org-account'), /admin@demo\.clinic/);
  // Twelve seeded appointments, none with a personal calendar: all go to the clinic calendar.
  await waitText(page, '#org-count-synced', /^12$/, 20_000);
  assert.equal(await textOf(page, '#org-count-pending'), '0');
  assert.equal(await textOf(page, '#org-count-error'), '0');
  await waitText(page, '#org-last-sync', /Last sync: (just now|.*ago)/);
  assert.equal(liveEvents(world, ADMIN).length, 12);
  await page.locator('cassius-gcal-badge[state="synced"]').waitFor();
  await world.shot(page, '04-connected');
});

test('calendar picker: writable calendars only; read-only ones disabled with why; choosing moves the events', async () => {
  const picker = page.locator('#org-calendar');
  await eventually(async () => (await picker.locator('option').count()) >= 4, 10_000, 'calendar options');
  const options = await picker.locator('option').evaluateAll((els) =>
    els.map((o) => ({ value: (o as HTMLOptionElement).value, text: o.textContent, disabled: (o as HTMLOptionElement).disabled })),
  );
  const byValue = new Map(options.map((o) => [o.value, o]));
  assert.equal(byValue.get(ADMIN)?.disabled, false);
  assert.match(byValue.get(ADMIN)?.text ?? '', /\(primary\)/);
  assert.equal(byValue.get(DEMO_TEAM_CALENDAR)?.disabled, false);
  assert.equal(byValue.get(DEMO_HOLIDAYS_CALENDAR)?.disabled, true);
  assert.match(byValue.get(DEMO_HOLIDAYS_CALENDAR)?.text ?? '', /read-only/);
  assert.equal(options.filter((o) => o.disabled).length, 2);
  assert.equal(await picker.inputValue(), ADMIN);
  const why = await textOf(page, '#org-readonly-calendars');
  assert.match(why, /UK public holidays: cannot be chosen, this Google account can only view it, not add events/);
  // The select has a visible label.
  assert.equal(await page.getByLabel('Target calendar').first().getAttribute('id'), 'org-calendar');

  const patches: string[] = [];
  const onRequest = (r: import('playwright-core').Request) => {
    if (r.method() === 'PATCH') patches.push(`${r.url()} ${r.postData()}`);
  };
  page.on('request', onRequest);
  await picker.selectOption(DEMO_TEAM_CALENDAR);
  await waitText(page, '#org-message', /Saved: appointments now go to “Demo Clinic team”/);
  page.off('request', onRequest);
  assert.deepEqual(patches, [`${world.base}/api/integrations/google/settings?level=org {"calendar_id":"${DEMO_TEAM_CALENDAR}"}`]);
  assert.equal((await orgIntegration())?.calendar_id, DEMO_TEAM_CALENDAR);
  await eventually(() => liveEvents(world, DEMO_TEAM_CALENDAR).length === 12 && liveEvents(world, ADMIN).length === 0, 20_000, 'events moved');
  assert.equal(await picker.inputValue(), DEMO_TEAM_CALENDAR);
  await world.shot(page, '05-calendar-chosen');
});

test('sync toggle: off pauses (Sync now disabled), on resumes', async () => {
  const toggle = page.getByRole('switch', { name: 'Sync appointments to Google' }).first();
  assert.equal(await toggle.isChecked(), true);
  await toggle.uncheck();
  await waitText(page, '#org-status', /^Paused$/);
  await waitText(page, '#org-message', /Sync is off/);
  assert.equal((await orgIntegration())?.sync_enabled, false);
  assert.equal(await page.locator('#org-sync-now').isDisabled(), true);
  await page.locator('cassius-gcal-badge[state="paused"]').waitFor({ timeout: 10_000 });
  await world.shot(page, '06-paused');

  await toggle.check();
  await waitText(page, '#org-status', /^Active$/);
  assert.equal((await orgIntegration())?.sync_enabled, true);
  await eventually(async () => !(await page.locator('#org-sync-now').isDisabled()), 10_000, 'Sync now enabled again');
});

test('Sync now: visible progress from queued to done, and a second press is not a second submission', async () => {
  // The relay is stopped so the queued state can be seen; five new appointments wait. First
  // the relay finishes the work of the toggle (a running job would be joined by Sync now).
  await eventually(
    async () => (await world.db.oneFirst(sql.type(z.object({ n: z.number() }))`
      select (select count(*) from sync_backlog where completed_at is null) + (select count(*) from sync_outbox where failed_at is null) as n`)) === 0,
    15_000,
    'relay idle',
  );
  await world.stopRelay();
  const starts = Date.now() + 7 * 86_400_000;
  for (let i = 0; i < 5; i++) {
    const s = new Date(starts + i * 3_600_000).toISOString();
    const e = new Date(starts + i * 3_600_000 + 1_800_000).toISOString();
    await world.db.query(sql.unsafe`
      insert into appointments (organisation_id, title, starts_at, ends_at, time_zone)
      values (${world.organisationId}, ${`Sync-now check ${i + 1}`}, ${s}, ${e}, 'Europe/London')`);
  }
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await waitText(page, '#org-count-pending', /^5$/);

  const posts: string[] = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().includes('/api/integrations/google/sync-now')) posts.push(r.url());
  });
  const button = page.locator('#org-sync-now');
  await button.click();
  await waitText(page, '#org-progress-text', /^Queued 5 appointments: 0 of 5 done…$/);
  assert.equal(await button.isDisabled(), true);
  assert.equal(await button.getAttribute('aria-busy'), 'true');
  assert.equal(await textOf(page, '#org-sync-now'), 'Syncing…');
  // Pressing again (a real click event on the disabled button, and Enter) sends nothing.
  await button.dispatchEvent('click');
  await button.press('Enter').catch(() => {});
  await page.waitForTimeout(500);
  assert.equal(posts.length, 1);
  await world.shot(page, '07-sync-now-queued');

  await world.startRelay();
  await waitText(page, '#org-progress-text', /^Done: 5 appointments synced to Google\.$/, 20_000);
  assert.equal(await page.locator('#org-progress').getAttribute('data-phase'), 'done');
  assert.equal(await button.isDisabled(), false);
  assert.equal(posts.length, 1);
  await waitText(page, '#org-count-synced', /^17$/);
  assert.equal(liveEvents(world, DEMO_TEAM_CALENDAR).filter((e) => /Sync-now check/.test(e.summary ?? '')).length, 5);
  await world.shot(page, '08-sync-now-done');
});

test('Disconnect asks first; Cancel keeps the connection, confirming revokes and stops sync', async () => {
  await page.click('#org-disconnect');
  const dialog = page.getByRole('dialog', { name: 'Disconnect Google Calendar?' });
  await dialog.waitFor();
  assert.match(await textOf(page, '#confirm-text'), /stops copying the clinic’s appointments to admin@demo\.clinic/);
  await world.shot(page, '09-disconnect-confirm');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'org-disconnect');
  assert.equal((await orgIntegration())?.connection_status, 'active');

  world.emu.control.clearCalls();
  await page.click('#org-disconnect');
  await dialog.getByRole('button', { name: 'Disconnect' }).click();
  await waitText(page, '#org-status', /^Not connected$/);
  assert.match(await textOf(page, '#org-message'), /Disconnected from admin@demo\.clinic/);
  assert.equal((await orgIntegration())?.connection_status, 'disconnected');
  assert.equal(world.emu.control.calls({ pathPrefix: '/revoke' }).length, 1);
  // Focus lands on the Connect button, so a keyboard user can go on.
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'org-connect');
  await world.shot(page, '10-disconnected');
});

test('no console errors, failed requests or page errors on the product’s pages', () => {
  assert.deepEqual(problems.check(), []);
});
