// A member: sees the clinic's connection read-only (no control to change it), connects her
// own calendar (her appointments move there), and the page works at 375 px wide and with the
// keyboard alone. The header badge reads the same status.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { BrowserContext, Page, Request } from 'playwright-core';
import { z } from 'zod';
import { DEMO_HOLIDAYS_CALENDAR, DEMO_TEAM_CALENDAR } from '../../src/demo/seed';
import { sql } from '../../src/shared/db';
import { consent, eventually, liveEvents, SETTINGS_PATH, startWorld, textOf, waitText, type Problems, type World } from './harness';

const ADMIN = 'admin@demo.clinic';
const ALICE = 'alice@demo.clinic';
let world: World;
let context: BrowserContext;
let page: Page;
let problems: Problems;
const requests: Request[] = [];

const aliceAppointments = () =>
  world.db.oneFirst(sql.type(z.object({ n: z.number() }))`
    select count(*)::int as n from appointments a join users u on u.id = a.assigned_user_id where u.email = ${ALICE}`);

before(async () => {
  world = await startWorld('member');
  // The administrator connects the clinic calendar first.
  const admin = await world.newPage();
  await world.login(admin.page, ADMIN);
  await admin.page.click('#org-connect');
  await consent(admin.page, world, { account: ADMIN, decision: 'allow' });
  await waitText(admin.page, '#org-count-synced', /^12$/, 20_000);
  await admin.context.close();
});
after(async () => {
  await world?.close();
});

test('a member sees the organisation connection read-only, with no control to change it', async () => {
  ({ context, page, problems } = await world.newPage());
  page.on('request', (r) => requests.push(r));
  await world.login(page, ALICE);
  assert.match(await textOf(page, '#whoami'), /alice@demo\.clinic \(member\)/);
  // Everything about the clinic calendar is visible...
  assert.equal(await textOf(page, '#org-status'), 'Active');
  assert.match(await textOf(page, '#org-account'), /admin@demo\.clinic/);
  assert.equal(await textOf(page, '#org-calendar-readonly'), ADMIN);
  await waitText(page, '#org-count-synced', /^12$/);
  assert.match(await textOf(page, '#org-readonly'), /Only an administrator can change the clinic’s Google Calendar connection/);
  // ...and nothing can change it.
  assert.equal(await page.locator('#org-calendar').isVisible(), false);
  assert.equal(await page.locator('#org-sync-enabled').isDisabled(), true);
  assert.equal(await page.locator('#org-sync-enabled').isChecked(), true);
  for (const control of ['#org-sync-now', '#org-disconnect', '#org-connect', '#org-reconnect']) {
    assert.equal(await page.locator(control).isVisible(), false, `${control} hidden`);
  }
  await page.locator('#org-sync-enabled').click({ force: true }); // a click on the disabled switch does nothing
  assert.equal(requests.filter((r) => r.method() !== 'GET').length, 0);
  // The page never asked for the organisation's calendar list (a member cannot choose one).
  assert.equal(requests.some((r) => r.url().includes('/calendars?level=org')), false);
  // The server refuses anyway (the page is not the only guard).
  const refused = await context.request.patch(`${world.base}/api/integrations/google/settings?level=org`, {
    data: { sync_enabled: false },
    headers: { origin: world.base },
  });
  assert.equal(refused.status(), 403);
  await world.shot(page, '20-member-org-read-only');
});

test('the member connects her own calendar: her appointments move there', async () => {
  assert.equal(await textOf(page, '#user-status'), 'Not connected');
  await page.click('#user-connect');
  const landed = await consent(page, world, { account: ALICE, decision: 'allow' });
  assert.equal(landed.searchParams.get('connected'), '1');
  assert.equal(landed.searchParams.get('level'), 'user');
  assert.match(await textOf(page, '#flash-text'), /Connected to Google as alice@demo\.clinic/);
  assert.equal(await textOf(page, '#user-status'), 'Active');
  const mine = await aliceAppointments();
  assert.equal(mine, 4);
  await waitText(page, '#user-count-synced', new RegExp(`^${mine}$`), 20_000);
  await waitText(page, '#org-count-synced', new RegExp(`^${12 - mine}$`), 20_000);
  await eventually(() => liveEvents(world, ALICE).length === mine && liveEvents(world, ADMIN).length === 12 - mine, 20_000, 'events moved');
  // Her picker: her calendars, the shared read-only one disabled.
  const picker = page.locator('#user-calendar');
  await eventually(async () => (await picker.locator('option').count()) === 3, 10_000, 'her calendars');
  assert.equal(await picker.locator(`option[value="${DEMO_HOLIDAYS_CALENDAR}"]`).isDisabled(), true);
  assert.equal(await picker.locator(`option[value="${DEMO_TEAM_CALENDAR}"]`).isDisabled(), false);
  await world.shot(page, '21-member-personal-connected');
});

test('usable at 375 px wide: nothing overflows sideways, every control reachable', async () => {
  await page.setViewportSize({ width: 375, height: 800 });
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  const overflow = await page.evaluate(() => ({
    page: document.documentElement.scrollWidth,
    wide: Array.from(document.querySelectorAll('main *'))
      .filter((el) => {
        const r = el.getBoundingClientRect();
        return r.width > 0 && (r.right > window.innerWidth + 0.5 || r.left < -0.5);
      })
      .map((el) => `${el.tagName}#${el.id}.${el.className}`),
  }));
  assert.ok(overflow.page <= 375, `page is ${overflow.page}px wide`);
  assert.deepEqual(overflow.wide, []);
  for (const control of ['#user-calendar', '#user-sync-enabled', '#user-sync-now', '#user-disconnect']) {
    const box = await page.locator(control).boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 375, `${control} within the screen`);
    if (control !== '#user-sync-enabled') assert.ok(box.height >= 44, `${control} is a 44px touch target (${box.height})`);
  }
  await world.shot(page, '22-mobile-375');
});

test('keyboard only: focus is visible, the switch toggles with Space, every control has a label', async () => {
  // Tab from the top until the personal sync switch has the focus.
  await page.locator('body').focus();
  let reached = false;
  for (let i = 0; i < 30 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement?.id === 'user-sync-enabled');
  }
  assert.ok(reached, 'the switch is reachable with Tab');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement as Element).outlineStyle);
  assert.notEqual(outline, 'none');
  await page.keyboard.press('Space');
  await waitText(page, '#user-status', /^Paused$/);
  await waitText(page, '#user-message', /Sync is off/);
  await page.keyboard.press('Space');
  await waitText(page, '#user-status', /^Active$/);
  // Every form control has a label, and every button or link a name.
  const unlabelled = await page.evaluate(() => [
    ...Array.from(document.querySelectorAll('input, select'))
      .filter((el) => (el as HTMLInputElement).labels?.length === 0 && !el.getAttribute('aria-label'))
      .map((el) => el.id),
    ...Array.from(document.querySelectorAll('button, a')).filter((el) => !(el.getAttribute('aria-label') || el.textContent?.trim())).map((el) => el.outerHTML),
  ]);
  assert.deepEqual(unlabelled, []);
  await world.shot(page, '23-keyboard');
});

test('the header badge: an embeddable fragment and web component fed by the status API', async () => {
  const fragment = await context.request.get(`${world.base}${SETTINGS_PATH}/badge`);
  assert.equal(fragment.status(), 200);
  const html = await fragment.text();
  assert.match(html, /^<a class="cassius-gcal-badge" data-state="synced" href="\/settings\/integrations\/google-calendar"/);
  assert.match(html, />Google Calendar: synced</);
  // Pending work shows as "N pending" (the relay stopped so it stays pending).
  await world.stopRelay();
  try {
    await world.db.query(sql.unsafe`update appointments set title = title || ' (updated)'
      where assigned_user_id = (select id from users where email = ${ALICE})`);
    await eventually(async () => /Google Calendar: 4 pending/.test(await (await context.request.get(`${world.base}${SETTINGS_PATH}/badge`)).text()), 10_000, 'badge pending');
    // The page sees it at its next poll and has the header badge reload.
    await waitText(page, '#user-count-pending', /^4$/, 20_000);
    await page.locator('cassius-gcal-badge[state="pending"]').waitFor({ timeout: 10_000 });
    const link = page.locator('cassius-gcal-badge a');
    assert.equal(await link.getAttribute('href'), SETTINGS_PATH);
  } finally {
    await world.startRelay();
  }
  await page.locator('cassius-gcal-badge[state="synced"]').waitFor({ timeout: 30_000 });
  // Signed out: the fragment says so, with 401.
  const anonymous = await world.browser.newContext();
  const signedOut = await anonymous.request.get(`${world.base}${SETTINGS_PATH}/badge`);
  assert.equal(signedOut.status(), 401);
  assert.match(await signedOut.text(), /status unavailable/);
  await anonymous.close();
});

test('disconnecting her calendar with "also delete the events": they leave her calendar and return to the clinic’s', async () => {
  await page.setViewportSize({ width: 1024, height: 900 });
  await page.click('#user-disconnect');
  const dialog = page.getByRole('dialog', { name: 'Disconnect Google Calendar?' });
  await dialog.waitFor();
  assert.match(await textOf(page, '#confirm-text'), /stops copying your appointments to alice@demo\.clinic.*go to the clinic calendar/);
  await dialog.getByLabel('Also delete the events Cassius added to this Google calendar').check();
  await dialog.getByRole('button', { name: 'Disconnect' }).click();
  await waitText(page, '#user-status', /^Not connected$/, 20_000);
  await eventually(() => liveEvents(world, ALICE).length === 0 && liveEvents(world, ADMIN).length === 12, 20_000, 'events back in the clinic calendar');
  await waitText(page, '#org-count-synced', /^12$/, 20_000);
  assert.equal(await page.locator('#user-connect').isVisible(), true);
  await world.shot(page, '24-member-disconnected-events-removed');
});

test('demo mode: Switch user signs out and lists who to sign in as', async () => {
  // Signed out, the page's own first call answers 401: expected here, nowhere else.
  problems.allow(/status of 401 \(Unauthorized\) \(http:\/\/[^)]+\/api\/me\)$/);
  await page.getByRole('link', { name: 'Switch user' }).click();
  await page.waitForSelector('body[data-ready="signed-out"]');
  await page.getByRole('link', { name: 'bob@demo.clinic' }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'alice@demo.clinic' }).isVisible(), true);
});

test('no console errors, failed requests or page errors on the product’s pages', () => {
  assert.deepEqual(problems.check(), []);
});
