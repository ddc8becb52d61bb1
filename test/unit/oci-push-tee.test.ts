// tee (src/oci-push/tee.ts): one compressed stream fed to several registry uploads. Every branch gets every chunk in
// order; a slow branch holds the source back (bounded buffering) instead of making it buffer the whole layer; a branch
// that stops does not hold the others; a source error reaches every branch. Branches must be consumed concurrently.
import { describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { tee } from '../../src/oci-push/tee.js';

function source(n: number, pulled: { count: number }, failAt?: number): AsyncIterable<Buffer> {
  return {
    async *[Symbol.asyncIterator]() {
      for (let i = 0; i < n; i++) {
        if (i === failAt) throw new Error('source broke');
        pulled.count++;
        yield Buffer.from([i]);
      }
    },
  };
}

async function drain(it: AsyncIterable<Buffer>, delayMs = 0, stopAfter = Infinity): Promise<number[]> {
  const seen: number[] = [];
  for await (const c of it) {
    seen.push(c[0] as number);
    if (seen.length >= stopAfter) break;
    if (delayMs) await sleep(delayMs);
  }
  return seen;
}

describe('tee', () => {
  it('gives every branch every chunk, in order', async () => {
    const pulled = { count: 0 };
    const [a, b, c] = tee(source(50, pulled), 3);
    const all = await Promise.all([drain(a!), drain(b!, 1), drain(c!)]);
    const want = Array.from({ length: 50 }, (_, i) => i);
    expect(all).toEqual([want, want, want]);
    expect(pulled.count).toBe(50);
  });

  it('lets the fast branch run at most maxAhead chunks ahead of the slow one', async () => {
    const pulled = { count: 0 };
    const [fast, slow] = tee(source(40, pulled), 2, 3);
    let maxLead = 0;
    let slowSeen = 0;
    const slowDone = (async () => {
      for await (const _ of slow!) {
        slowSeen++;
        await sleep(2);
      }
    })();
    for await (const _ of fast!) maxLead = Math.max(maxLead, pulled.count - slowSeen);
    await slowDone;
    expect(maxLead).toBeLessThanOrEqual(3 + 1);
    expect(slowSeen).toBe(40);
  });

  it('a branch that stops early no longer holds the others back', async () => {
    const pulled = { count: 0 };
    const [quitter, stayer] = tee(source(30, pulled), 2, 2);
    const [q, s] = await Promise.all([drain(quitter!, 0, 3), drain(stayer!, 1)]);
    expect(q).toEqual([0, 1, 2]);
    expect(s).toHaveLength(30);
  });

  it('a source error reaches every branch', async () => {
    // Branches are consumed together (as the uploads are): a bounded tee cannot feed one branch to its end alone.
    const [a, b] = tee(source(10, { count: 0 }, 5), 2);
    const results = await Promise.allSettled([drain(a!), drain(b!, 1)]);
    expect(results.map((r) => r.status === 'rejected' && (r.reason as Error).message)).toEqual([
      'source broke',
      'source broke',
    ]);
  });

  it('one branch reads the source directly', async () => {
    const pulled = { count: 0 };
    expect(await drain(tee(source(7, pulled), 1)[0]!)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(pulled.count).toBe(7);
  });

  it('a branch cancelled before it read anything (its upload never started) does not block the others', async () => {
    const pulled = { count: 0 };
    const [never, reader] = tee(source(20, pulled), 2, 2);
    const reading = drain(reader!);
    await sleep(5);
    never!.cancel();
    expect(await reading).toHaveLength(20);
  });
});
