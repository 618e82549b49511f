// The benchmark's machinery at toy sizes (BENCH_MODE=tiny) on the test cluster: every figure
// of issue 8 is written with the results-file shape of CONTRACT section 9. No figure is
// asserted: performance is measured by `npm run bench`, never by a timed test.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ISSUE_KEYS, runBench } from '../../bench/bench';

test('npm run bench logic writes every issue 8 key as {value, unit, peer?, ratio?, conditions}', async () => {
  const adminUrl = process.env.TEST_ADMIN_DATABASE_URL;
  assert.ok(adminUrl, 'run through npm test');
  process.env.BENCH_DATABASE_URL = adminUrl;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cassius-bench-smoke-'));
  const file = path.join(dir, 'results.json');
  try {
    const results = await runBench({ mode: 'tiny', resultsFile: file, quiet: true });
    const written = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, Record<string, unknown>>;
    assert.deepEqual(written, JSON.parse(JSON.stringify(results)));
    for (const key of ISSUE_KEYS) {
      const figure = written[key];
      assert.ok(figure, `${key} is missing`);
      assert.ok(figure.value === null || typeof figure.value === 'number', `${key}.value is a number or null`);
      assert.equal(typeof figure.unit, 'string', `${key}.unit`);
      assert.ok((figure.unit as string).length > 0, `${key}.unit is empty`);
      assert.equal(typeof figure.conditions, 'string', `${key}.conditions`);
      assert.ok((figure.conditions as string).length > 20, `${key}.conditions says how it was measured`);
      for (const optional of ['peer', 'ratio']) {
        if (optional in figure) assert.ok(figure[optional] === null || typeof figure[optional] === 'number', `${key}.${optional}`);
      }
      const extra = Object.keys(figure).filter((k) => !['value', 'unit', 'peer', 'ratio', 'conditions'].includes(k));
      assert.deepEqual(extra, [], `${key} has only the contract's fields`);
    }
    // Figures that have a peer carry it.
    for (const key of ['relay_throughput', 'commit_to_call_p50_ms', 'commit_to_call_p99_ms']) assert.ok('peer' in written[key]!, `${key}.peer`);
  } finally {
    delete process.env.BENCH_DATABASE_URL;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
