// The relay's group commit (relay/batch.ts): what arrives together goes out as one statement,
// one item's failure stays its own, and one appointment never appears twice in a statement.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createBatcher } from '../../relay/batch';

function recording(fail: (item: string) => boolean = () => false) {
  const batches: string[][] = [];
  const batcher = createBatcher<string, string>({
    maxBatch: 3,
    key: (item) => item.split(':')[0]!,
    run: async (items) => {
      batches.push(items);
      await new Promise((r) => setTimeout(r, 5));
      if (items.some(fail)) throw new Error(`statement failed on ${items.find(fail)}`);
      return items.map((i) => `done ${i}`);
    },
  });
  return { batches, batcher };
}

test('calls of one tick share a statement; calls made while it runs share the next', async () => {
  const { batches, batcher } = recording();
  const first = ['a', 'b'].map((i) => batcher.add(i));
  await new Promise((r) => setTimeout(r, 1)); // the first statement is running
  const second = ['c', 'd'].map((i) => batcher.add(i));
  assert.deepEqual(await Promise.all([...first, ...second]), ['done a', 'done b', 'done c', 'done d']);
  assert.deepEqual(batches, [['a', 'b'], ['c', 'd']]);
});

test('at most maxBatch items per statement', async () => {
  const { batches, batcher } = recording();
  await Promise.all(['a', 'b', 'c', 'd', 'e'].map((i) => batcher.add(i)));
  assert.deepEqual(batches, [['a', 'b', 'c'], ['d', 'e']]);
});

test('one key twice never shares a statement', async () => {
  const { batches, batcher } = recording();
  await Promise.all(['a:1', 'b', 'a:2', 'c'].map((i) => batcher.add(i)));
  assert.deepEqual(batches, [['a:1', 'b'], ['a:2', 'c']]);
});

test("one item's failure is its own: its batch-mates are recorded alone", async () => {
  const { batches, batcher } = recording((i) => i === 'bad');
  const results = await Promise.allSettled(['a', 'bad', 'b'].map((i) => batcher.add(i)));
  assert.deepEqual(
    results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)),
    ['done a', 'statement failed on bad', 'done b'],
  );
  assert.deepEqual(batches, [['a', 'bad', 'b'], ['a'], ['bad'], ['b']]);
});
