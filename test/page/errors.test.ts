// When Google refuses: an appointment in error shows Google's reason in plain words and Retry
// fixes it; a revoked authorization shows "Reconnect needed" with a one-line reason, and the
// Reconnect button goes through Google's consent again, after which the waiting change lands.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { z } from 'zod';
import { sql } from '../../src/shared/db';
import { consent, eventually, liveEvents, startWorld, textOf, waitText, type Problems, type World } from './harness';

const ADMIN = 'admin@demo.clinic';
let world: World;
let page: Page;
let problems: Problems;

const Appointment = z.object({ id: z.string(), title: z.string(), sync_status: z.string(), last_error: z.string().nullable() });
const appointment = (title: string) =>
  world.db.one(sql.type(Appointment)`select id, title, sync_status, last_error from appointments where title = ${title}`);
const eventTitled = (title: string) => liveEvents(world, ADMIN).find((e) => e.summary === title);

before(async () => {
  world = await startWorld('errors');
  ({ page, problems } = await world.newPage());
  await world.login(page, ADMIN);
  await page.click('#org-connect');
  await consent(page, world, { account: ADMIN, decision: 'allow' });
  await waitText(page, '#org-count-synced', /^12$/, 20_000);
});
after(async () => {
  await world?.close();
});

test('an appointment Google refuses is listed with the reason in plain words and a Retry button', async () => {
  // The next Calendar call answers 403 requiredAccessLevel, as for a calendar the account can only read.
  world.emu.control.addFault({ pathPrefix: '/calendar/v3/calendars/', status: 403, reason: 'requiredAccessLevel', count: 1 });
  await world.db.query(sql.unsafe`update appointments set title = 'Check-up: Mrs Patel (moved to Room 3)' where title = 'Check-up: Mrs Patel'`);

  const item = page.locator('#errors-list li');
  await item.first().waitFor({ timeout: 20_000 });
  assert.equal(await item.count(), 1);
  assert.match(await textOf(page, '#errors-list li .err-title'), /^Check-up: Mrs Patel \(moved to Room 3\)$/);
  const reason = await textOf(page, '#errors-list li .err-reason');
  assert.match(reason, /This Google account can only view the chosen calendar, so Cassius cannot add events to it/);
  assert.match(await textOf(page, '#errors-list li .err-detail'), /Google said: 403 requiredAccessLevel/);
  assert.equal(await page.getByRole('heading', { name: 'Appointments that could not be synced' }).isVisible(), true);
  // The connection tells it too, in one line, and the counts and the badge follow.
  await waitText(page, '#org-status', /^Error$/);
  assert.match(await textOf(page, '#org-problem-text'), /^The last sync failed\. This Google account can only view the chosen calendar, so Cassius cannot add events to it\.$/);
  await waitText(page, '#org-count-error', /^1$/);
  await page.locator('cassius-gcal-badge[state="error"]').waitFor({ timeout: 10_000 });
  assert.match((await page.locator('cassius-gcal-badge').evaluate((el) => el.shadowRoot?.textContent ?? '')).trim(), /Google Calendar: 1 error$/);
  assert.equal((await appointment('Check-up: Mrs Patel (moved to Room 3)')).sync_status, 'error');
  assert.equal(eventTitled('Check-up: Mrs Patel (moved to Room 3)'), undefined);
  await world.shot(page, '11-appointment-in-error');
});

test('Retry queues it again once, and the error goes away when Google accepts it', async () => {
  const retries: string[] = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && /\/api\/appointments\/[^/]+\/sync$/.test(r.url())) retries.push(r.url());
  });
  const retry = page.getByRole('button', { name: 'Retry “Check-up: Mrs Patel (moved to Room 3)”' });
  await retry.click();
  await retry.dispatchEvent('click'); // a second press while it runs sends nothing more
  await page.locator('#errors').waitFor({ state: 'hidden', timeout: 20_000 });
  assert.equal(retries.length, 1);
  const a = await appointment('Check-up: Mrs Patel (moved to Room 3)');
  assert.equal(a.sync_status, 'synced');
  assert.equal(a.last_error, null);
  assert.ok(eventTitled('Check-up: Mrs Patel (moved to Room 3)'), 'the corrected event is in Google');
  await waitText(page, '#org-status', /^Active$/);
  await waitText(page, '#org-count-error', /^0$/);
  assert.equal(await page.locator('#org-problem').isHidden(), true);
  await world.shot(page, '12-retried');
});

test('revoked at Google: Reconnect needed with a one-line reason; Reconnect brings it back and nothing is lost', async () => {
  world.emu.control.revoke(ADMIN);
  await world.db.query(sql.unsafe`update appointments set title = 'Team meeting (agenda sent)' where title = 'Team meeting'`);

  await waitText(page, '#org-status', /^Reconnect needed$/, 20_000);
  const reason = await textOf(page, '#org-problem-text');
  assert.match(reason, /^Google no longer accepts this connection \(access was removed or has expired\)\. Nothing is lost/);
  const reconnect = page.getByRole('link', { name: 'Reconnect (clinic calendar)', exact: true });
  assert.equal(await reconnect.isVisible(), true);
  assert.equal(await reconnect.getAttribute('href'), '/api/integrations/google/connect?level=org');
  await page.locator('cassius-gcal-badge[state="reconnect"]').waitFor({ timeout: 10_000 });
  assert.equal(eventTitled('Team meeting (agenda sent)'), undefined);
  await world.shot(page, '13-needs-reconnect');

  await reconnect.click();
  const landed = await consent(page, world, { account: ADMIN, decision: 'allow' });
  assert.equal(landed.searchParams.get('connected'), '1');
  await waitText(page, '#org-status', /^Active$/);
  // The change made while disconnected waited, and now reaches Google.
  await eventually(() => eventTitled('Team meeting (agenda sent)'), 20_000, 'the waiting change in Google');
  // The relay records the result just after Google's answer.
  await eventually(async () => (await appointment('Team meeting (agenda sent)')).sync_status === 'synced', 10_000, 'recorded as synced');
  await waitText(page, '#org-count-synced', /^12$/);
  await page.locator('cassius-gcal-badge[state="synced"]').waitFor({ timeout: 10_000 });
  await world.shot(page, '14-reconnected');
});

test('no console errors, failed requests or page errors on the product’s pages', () => {
  assert.deepEqual(problems.check(), []);
});
