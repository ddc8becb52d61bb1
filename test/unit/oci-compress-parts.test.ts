// A block's parts that deflate cannot shrink are stored as members of their own (src/oci/compress-entropy.ts,
// compress-deflaters.ts), raw block buffers are pooled, and the pipeline says when its CPU work for a layer is done
// (compress.ts `compressed`, which layer-slots.ts schedules by). Helpers: helpers/compress-fixtures.ts.
import { describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import * as zlib from 'node:zlib';
import { BufferPool, CompressionPool, compressLayer } from '../../src/oci/compress.js';
import { storedMember } from '../../src/oci/compress-deflaters.js';
import { entropyRuns, PART } from '../../src/oci/compress-entropy.js';
import { collect, KiB, members, MiB, once, sample, sha, small, tool } from './helpers/compress-fixtures.js';
import { chunked, rng } from './helpers/tar-fixtures.js';

describe('incompressible runs', () => {
  const text = (n: number, seed: number) => sample(n, seed).map((b, i) => (i % 7 === 0 ? 0x20 : b & 0x7f));
  const noise = (n: number, seed: number) => {
    const next = rng(seed);
    return Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256)));
  };

  it('splits a block into runs of like 64 KiB parts that cover it exactly', () => {
    const block = Buffer.concat([text(3 * PART, 1), noise(2 * PART, 2), text(PART + 100, 3)]);
    expect(entropyRuns(block)).toEqual([
      { start: 0, end: 3 * PART, stored: false },
      { start: 3 * PART, end: 5 * PART, stored: true },
      { start: 5 * PART, end: block.length, stored: false },
    ]);
    expect(entropyRuns(Buffer.alloc(0))).toEqual([{ start: 0, end: 0, stored: false }]);
    // Too short to sample: compressed.
    expect(entropyRuns(noise(1000, 4))).toEqual([{ start: 0, end: 1000, stored: false }]);
  });

  it('judges a block the same wherever it lies in memory (samples are read by word when aligned)', () => {
    // Parts of every kind, including ones near the threshold (mostly noise with a little text mixed in).
    const mixed = (seed: number) => noise(PART, seed).map((b, i) => (i % 97 === 0 ? 0x20 : b));
    const block = Buffer.concat([text(PART, 1), noise(PART, 2), mixed(3), text(PART / 2, 4), mixed(5), noise(PART, 6)]);
    const runs = entropyRuns(block);
    expect(runs.length).toBeGreaterThan(2);
    for (const shift of [1, 2, 3, 4]) {
      const moved = Buffer.alloc(block.length + shift).fill(0xee);
      block.copy(moved, shift);
      expect(entropyRuns(moved.subarray(shift))).toEqual(runs);
    }
  });

  it('stores them as members of their own inside a block; gzip reads the whole and digests stay stable', async () => {
    const raw = Buffer.concat([text(4 * PART, 5), noise(4 * PART, 6), text(8 * PART, 7), noise(PART, 8)]);
    const a = await collect(once(raw), { compression: 'gzip', chunkSize: MiB, parallelism: 2 });
    // One 1 MiB block, four runs: four members, two of them stored (bigger than their input, by the framing).
    const all = members(a.out);
    expect(all.length).toBe(4);
    for (const m of all) expect([...m.subarray(0, 3)]).toEqual([0x1f, 0x8b, 8]);
    expect(all[1]!.length).toBeGreaterThan(4 * PART);
    expect(all[0]!.length).toBeLessThan(2 * PART);
    expect(tool('gzip', ['-dc'], a.out).equals(raw)).toBe(true);
    const b = await collect(chunked(raw, 11, 40_000), { compression: 'gzip', chunkSize: MiB, parallelism: 3 });
    expect(b.result.digest).toBe(a.result.digest);
    expect(a.result.digest).toBe(sha(a.out));
  });

  it("writes stored members byte for byte as zlib's level 0 does with room enough", () => {
    for (const n of [0, 1, 65535, 65536, 200_000]) {
      const part = noise(n, n + 1);
      const zl = zlib.gzipSync(part, { level: 0, chunkSize: n + 4096 });
      zl[9] = 3;
      expect(storedMember(part).equals(zl)).toBe(true);
    }
  });

  it('reuses pooled block buffers once their compression is done', async () => {
    const pool = new CompressionPool(2);
    const raw = sample(6 * 64 * KiB + 5, 9);
    const first = await collect(chunked(raw, 12, 30_000), { compression: 'gzip', ...small, pool });
    // Every block buffer came back; at most parallelism + 1 were ever out for one layer.
    const kept = pool.buffers.idle(64 * KiB);
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual((small.parallelism as number) + 1);
    const again = await collect(chunked(raw, 13, 30_000), { compression: 'gzip', ...small, pool });
    expect(again.result.digest).toBe(first.result.digest);
    expect(pool.buffers.idle(64 * KiB)).toBe(kept); // the second layer allocated none
    const own = new BufferPool(1);
    const b = own.take(1024);
    own.give(b);
    expect(own.take(1024)).toBe(b);
    own.give(b);
    own.give(Buffer.alloc(1024)); // beyond what it keeps: dropped
    expect(own.idle(1024)).toBe(1);
  });
});

describe('compressLayer scheduling', () => {
  it('says when its CPU work is done, before the consumer has taken the last chunks', async () => {
    const layer = compressLayer(once(sample(2 * 64 * KiB, 21)), { compression: 'gzip', ...small });
    let done = false;
    void layer.compressed.then(() => (done = true));
    const it = layer.chunks[Symbol.asyncIterator]();
    await it.next(); // the consumer took one chunk and then stalls
    for (let i = 0; i < 100 && !done; i++) await sleep(5);
    expect(done).toBe(true);
    while (!(await it.next()).done);
    expect((await layer.result).rawSize).toBe(2 * 64 * KiB);
  });
});
