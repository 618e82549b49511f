// Chaos: PostgreSQL restarted mid-burst while the relays keep running (they are NOT
// restarted). The test owns an embedded cluster of its own, so it can stop and start it on the
// same port without disturbing the other test files. With a 30 s poll, a change made after the
// restart that syncs within seconds proves each relay's LISTEN came back.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createDb, sql, type Db } from '../../src/shared/db';
import { migrate } from '../../src/shared/migrate';
import { startEmbeddedPostgres, type EmbeddedCluster } from '../../src/shared/embeddedPostgres';
import { startEmulator, type RunningEmulator } from '../emulator/index';
import { createAppointment, createOrganisation } from '../helpers/fixtures';
import { connectGoogle, waitFor } from '../helpers/google';
import {
  bulkCreate,
  convergeAndCheck,
  figures,
  insertsDone,
  latencyJitter,
  liveByAppointment,
  size,
  sleep,
  Supervisor,
  TEST_TIMEOUT,
} from '../helpers/chaos';

let dir: string;
let cluster: EmbeddedCluster | undefined;
let db: Db | undefined;
let emu: RunningEmulator;
let s: Supervisor | undefined;
let stopJitter: () => void = () => {};

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cassius-chaos-pg-'));
  fs.chmodSync(dir, 0o777);
  cluster = await startEmbeddedPostgres({
    dataDir: path.join(dir, 'data'),
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: 100 },
  });
  await migrate(cluster.url);
  db = await createDb(cluster.url, { maximumPoolSize: 5 });
  emu = await startEmulator();
  emu.control.setConfig({ userRateLimitPerMinute: 1_000_000, projectRateLimitPerMinute: 1_000_000 });
});
after(async () => {
  stopJitter();
  await s?.stop();
  await emu?.close();
  await db?.end().catch(() => {});
  await cluster?.stop().catch(() => {});
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Our own writes ride out the restart too: retry a statement a few times. */
async function retrying<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (attempt >= 20) throw error;
      await sleep(250);
    }
  }
}

describe('PostgreSQL restarted mid-burst', () => {
  test('relays that are not restarted reconnect (pool and LISTEN) and converge', { timeout: TEST_TIMEOUT }, async () => {
    const database = db!;
    const email = `restart-${Date.now()}@gmail.test`;
    emu.control.addAccount({ email });
    const org = await createOrganisation(database, 'Restart clinic');
    await connectGoogle(database, emu.url, { organisationId: org, email });
    // A 30 s poll: after the restart, quick syncs can only come from a working LISTEN.
    s = new Supervisor({ databaseUrl: cluster!.url, emulatorUrl: emu.url, config: { RELAY_LEASE_MS: 2_000, RELAY_POLL_MS: 30_000 }, maxRestarts: 0 });
    const relays = await s.start(2);
    stopJitter = latencyJitter(emu.control, 50, 200);

    const creates = size(200, 1500);
    const chunk = 20;
    const ids: string[] = [];
    const started = Date.now();
    let restartMs = 0;
    for (let c = 0; c < creates / chunk; c++) {
      ids.push(...(await retrying(() => bulkCreate(database, org, chunk, { prefix: `Restart ${c}` }))));
      if (c === Math.floor(creates / chunk / 2)) {
        const down = Date.now();
        await cluster!.stop();
        await sleep(size(1_500, 5_000));
        await cluster!.start();
        restartMs = Date.now() - down;
      }
      if (c > creates / chunk / 2) {
        // Updates after the restart, some of appointments created before it.
        await retrying(() =>
          database.query(sql.unsafe`update appointments set title = title || ' *' where id = any(${sql.array(ids.slice(-30, -25), 'uuid')})`),
        );
      }
      await sleep(100);
    }
    const report = await retrying(() => convergeAndCheck(database, emu.control, { supervisor: s, label: 'after the restart', timeoutMs: 120_000 }));
    stopJitter();
    assert.equal(report.duplicates, 0);
    assert.equal(s.crashes, 0);
    assert.deepEqual(s.unexpectedExits, []);
    for (const r of relays) assert.ok(r.alive(), `relay ${r.id} still runs (it was not restarted)`);

    // The listener came back: new changes reach Google in seconds, far below the 30 s poll.
    const latencies: number[] = [];
    for (let i = 0; i < 3; i++) {
      await sleep(1_500);
      const at = Date.now();
      const id = await retrying(() => createAppointment(database, org, { title: `After restart ${i}` }));
      await waitFor(async () => liveByAppointment(emu.control).get(id)?.length === 1, 10_000, 'a change after the restart to sync through LISTEN');
      latencies.push(Date.now() - at);
    }
    assert.ok(Math.max(...latencies) < 10_000);
    const listeners = await database.oneFirst(sql.unsafe`
      select count(*)::int from pg_stat_activity where application_name like 'cassius-relay-listen%'`);
    assert.equal(listeners, 2, 'each relay listens again');
    figures('postgres-restart', {
      creates,
      eventsCreated: insertsDone(emu.control),
      duplicates: report.duplicates,
      downMs: restartMs,
      convergeMs: report.convergeMs,
      totalMs: Date.now() - started,
      listenLatencyAfterRestartMs: latencies,
      reconnectWarnings: s.logCount(/reconnect|resubscrib|subscribing again|claim failed/),
    });
  });
});
