// gzip members compressed by libdeflate in WebAssembly on worker threads (src/oci/deflate-workers.ts): what real
// decompressors read, the same bytes however many workers run and whether the input is shared memory or a copy, the
// member written where the caller asks, and a worker's failure reported to its jobs without stopping the others.
// The WebAssembly module itself must be what scripts/build-wasm.mjs builds from the vendored sources.
import { afterAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import * as zlib from 'node:zlib';
import { DeflateWorkers, memberRoom } from '../../src/oci/deflate-workers.js';
import { KiB, MiB, sample, tool } from './helpers/compress-fixtures.js';

const shared = (b: Buffer): Buffer => {
  const s = Buffer.from(new SharedArrayBuffer(b.length + 100), 50, b.length);
  b.copy(s);
  return s;
};

describe('DeflateWorkers', () => {
  const pools: DeflateWorkers[] = [];
  const pool = (n: number) => {
    const p = new DeflateWorkers(n);
    pools.push(p);
    return p;
  };
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close()));
  });

  it('writes complete gzip members that gzip, zlib and Python read, at every level', async () => {
    const workers = pool(2);
    const parts = [Buffer.alloc(0), Buffer.from('a'), sample(64 * KiB, 1), sample(MiB + 17, 2), sample(3 * MiB, 3)];
    for (const level of [1, 2, 6, 9]) {
      const members = await Promise.all(parts.map((p) => workers.member(p, level)));
      members.forEach((m, i) => {
        const part = parts[i] as Buffer;
        // The header zlib writes: deflate, no name or time, XFL by level, OS 3 (Unix) wherever it runs.
        expect([...m.subarray(0, 10)]).toEqual([
          0x1f,
          0x8b,
          8,
          0,
          0,
          0,
          0,
          0,
          level === 1 ? 4 : level === 9 ? 2 : 0,
          3,
        ]);
        expect(m.readUInt32LE(m.length - 8)).toBe(zlib.crc32(part));
        expect(m.readUInt32LE(m.length - 4)).toBe(part.length);
        expect(m.length).toBeLessThanOrEqual(memberRoom(part.length));
        expect(zlib.gunzipSync(m).equals(part)).toBe(true);
      });
      const all = Buffer.concat(members);
      tool('gzip', ['-t'], all);
      expect(tool('gzip', ['-dc'], all).equals(Buffer.concat(parts))).toBe(true);
    }
    const py = tool(
      'python3',
      ['-c', 'import gzip,sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))'],
      await workers.member(parts[3] as Buffer, 1),
    );
    expect(py.equals(parts[3] as Buffer)).toBe(true);
  });

  it('compresses text well and gives the same bytes with one worker or three, shared input or copied', async () => {
    const text = Buffer.from('/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1/bin/hello\n'.repeat(20_000));
    const parts = [text, sample(MiB, 4), sample(2 * MiB + 5, 5)];
    const one = await Promise.all(parts.map((p) => pool(1).member(p, 1)));
    const three = pool(3);
    const again = await Promise.all([...parts, ...parts].map((p, i) => three.member(i < 3 ? shared(p) : p, 1)));
    expect(three.running).toBe(3);
    one.forEach((m, i) => {
      expect(again[i]?.equals(m)).toBe(true);
      expect(again[i + 3]?.equals(m)).toBe(true);
    });
    expect((one[0] as Buffer).length).toBeLessThan(text.length / 50);
  });

  it('writes the member into the buffer the caller gives for its size', async () => {
    const part = sample(200 * KiB, 6);
    const room = Buffer.alloc(MiB);
    let asked = 0;
    const m = await pool(1).member(part, 1, (n) => {
      asked = n;
      return room.subarray(1000, 1000 + n);
    });
    expect(m.buffer).toBe(room.buffer);
    expect(m.byteOffset).toBe(1000);
    expect(m.length).toBe(asked);
    expect(zlib.gunzipSync(m).equals(part)).toBe(true);
  });

  it('fails the jobs of a worker that stops, with a clear error, and goes on with a new one', async () => {
    const workers = pool(1);
    const part = sample(8 * MiB, 7);
    const jobs = [workers.member(part, 9), workers.member(part, 9)];
    await workers.close();
    for (const j of jobs) await expect(j).rejects.toThrow(/gzip compression worker stopped/);
    expect(workers.running).toBe(0);
    const m = await workers.member(part.subarray(0, MiB), 1);
    expect(zlib.gunzipSync(m).equals(part.subarray(0, MiB))).toBe(true);
  });

  it('refuses a level libdeflate does not have, naming it, and keeps working', async () => {
    const workers = pool(1);
    await expect(workers.member(Buffer.from('x'), 13)).rejects.toThrow(/no compressor for level 13/);
    expect(zlib.gunzipSync(await workers.member(Buffer.from('x'), 1)).toString()).toBe('x');
  });
});

describe('the WebAssembly module', () => {
  it('is what scripts/build-wasm.mjs builds from wasm/deflate.c and vendor/libdeflate', () => {
    const r = spawnSync(process.execPath, ['scripts/build-wasm.mjs', '--check'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
