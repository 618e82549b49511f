// `npm run relay` as the daemon it is: a separate process, drained by SIGTERM, observed through
// /metrics, refusing bad configuration with one line.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import { sql } from '../../src/shared/db';
import { freePort } from '../../src/shared/embeddedPostgres';
import { startEmulator, type RunningEmulator } from '../emulator/index';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { createAppointment, createOrganisation } from '../helpers/fixtures';
import { connectGoogle, drained, relayConfig, relayEnv, waitFor } from '../helpers/google';

let t: TestDatabase;
let emu: RunningEmulator;
before(async () => {
  t = await createTestDatabase();
  emu = await startEmulator();
});
after(async () => {
  await emu.close();
  await t.drop();
});

function spawnRelay(env: NodeJS.ProcessEnv): { child: ChildProcess; exit: Promise<{ code: number | null; stderr: string }> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'relay/main.ts'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exit = new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
  return { child, exit };
}

test('SIGTERM lets in-flight Google calls finish, records them, and exits 0', async () => {
  const org = await createOrganisation(t.db, 'Drain clinic');
  emu.control.addAccount({ email: 'drain@gmail.test' });
  await connectGoogle(t.db, emu.url, { organisationId: org, email: 'drain@gmail.test' });
  const metricsPort = await freePort();
  const { child, exit } = spawnRelay(relayEnv(relayConfig(t.url, emu.url, { RELAY_METRICS_PORT: metricsPort })));
  try {
    await drained(t.db, 30_000);
    emu.control.addFault({ pathPrefix: '/calendar/v3/calendars/drain%40gmail.test/events', latencyMs: 1_500, count: 3 });
    const ids = await Promise.all([1, 2, 3].map((i) => createAppointment(t.db, org, { title: `Slow ${i}` })));
    await waitFor(
      async () => (await t.db.oneFirst(sql.unsafe`select count(*)::int from sync_outbox where locked_by is not null`)) === 3,
      10_000,
      'three calls in flight',
    );

    // Leased is not yet calling: wait until the relay reports the three calls started.
    const metrics = await waitFor(async () => {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      return /cassius_relay_commit_to_call_seconds_count 3/.test(text) ? text : null;
    }, 10_000, 'three Google calls started');
    assert.match(metrics, /cassius_relay_in_flight_appointments 3/);
    assert.match(metrics, /cassius_outbox_rows\{state="pending"\}/);
    assert.match(metrics, /# TYPE cassius_relay_google_call_seconds histogram/);

    const started = Date.now();
    child.kill('SIGTERM');
    const { code } = await exit;
    assert.equal(code, 0);
    assert.ok(Date.now() - started < 10_500, 'drained within 10 s');
    for (const id of ids) {
      assert.equal(await t.db.oneFirst(sql.unsafe`select sync_status from appointments where id = ${id}`), 'synced');
    }
    assert.equal(await t.db.oneFirst(sql.unsafe`select count(*)::int from sync_outbox`), 0, 'nothing left leased or pending');
  } finally {
    child.kill('SIGKILL');
  }
});

test('the relay refuses a missing or bad variable with one line naming it', async () => {
  const env = relayEnv(relayConfig(t.url, emu.url));
  delete env.DATABASE_URL;
  let result = await spawnRelay(env).exit;
  assert.equal(result.code, 1);
  assert.equal(result.stderr.trim(), 'Configuration error: DATABASE_URL is required');

  result = await spawnRelay({ ...relayEnv(relayConfig(t.url, emu.url)), TOKEN_ENCRYPTION_KEY: 'c2hvcnQ=' }).exit;
  assert.equal(result.code, 1);
  assert.match(result.stderr.trim(), /^Configuration error: TOKEN_ENCRYPTION_KEY must be 32 bytes/);

  result = await spawnRelay({ ...relayEnv(relayConfig(t.url, emu.url)), RELAY_CONCURRENCY: 'lots' }).exit;
  assert.equal(result.code, 1);
  assert.match(result.stderr.trim(), /RELAY_CONCURRENCY must be a number/);
});
