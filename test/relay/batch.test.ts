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

// The timeouts make a window waited out fail the test (node:test has none by default).
test('with a window, items that trickle in while nothing runs share one statement; a full batch goes at once', { timeout: 20_000 }, async () => {
  const batches: string[][] = [];
  const windowed = (delayMs: number) =>
    createBatcher<string, string>({
      maxBatch: 4,
      key: (item) => item,
      delayMs,
      run: async (items) => {
        batches.push(items);
        return items.map((i) => `done ${i}`);
      },
    });
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const batcher = windowed(1_500);
  const trickle: Promise<string>[] = [];
  for (const item of ['a', 'b', 'c']) {
    trickle.push(batcher.add(item));
    await sleep(5); // each arrives alone, in its own tick
  }
  assert.deepEqual(batches, [], 'nothing is sent before the window ends');
  assert.deepEqual(await Promise.all(trickle), ['done a', 'done b', 'done c']);
  assert.deepEqual(batches, [['a', 'b', 'c']]);

  // A full batch does not wait for its window (a minute here: the test would time out).
  const full = windowed(60_000);
  assert.deepEqual(await Promise.all(['d', 'e', 'f', 'g'].map((i) => full.add(i))), ['done d', 'done e', 'done f', 'done g']);
  assert.deepEqual(batches.at(-1), ['d', 'e', 'f', 'g']);
});

test('with a window, an item goes at once when no other can come; while others may, it waits for them', { timeout: 20_000 }, async () => {
  const batches: string[][] = [];
  let othersComing = false;
  const batcher = createBatcher<string, string>({
    maxBatch: 4,
    key: (item) => item,
    delayMs: 60_000, // waited out, the test would time out
    othersComing: () => othersComing,
    run: async (items) => {
      batches.push(items);
      return items.map((i) => `done ${i}`);
    },
  });
  assert.equal(await batcher.add('lone'), 'done lone');
  assert.deepEqual(batches, [['lone']]);

  // Others may come: the first waits in its window; the last one, with nothing after it, takes
  // everything waiting with it.
  othersComing = true;
  await new Promise((r) => setTimeout(r, 1)); // (an item that arrives while a statement ends goes right after it)
  const first = batcher.add('a');
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(batches, [['lone']], 'a waits for the others');
  othersComing = false;
  assert.deepEqual(await Promise.all([first, batcher.add('b')]), ['done a', 'done b']);
  assert.deepEqual(batches, [['lone'], ['a', 'b']]);
});
