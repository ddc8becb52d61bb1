// The layer pipeline (src/oci/compress.ts): the output must be what real decompressors read (system gzip, zstd,
// Python's gzip), the digests must be what sha256sum says, the same input must give the same digest however it is
// chunked, memory must stay bounded with a slow consumer, and failures must reach both the iterator and `result`.
import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InputError } from '../../src/errors.js';
import { CompressionPool, compressLayer, mediaTypeFor } from '../../src/oci/compress.js';
import { MEDIA } from '../../src/oci/types.js';
import { collect, KiB, members, MiB, once, sample, sha, small, tool } from './helpers/compress-fixtures.js';
import { chunked, gnuTar } from './helpers/tar-fixtures.js';

describe('compressLayer output is read by real decompressors', () => {
  const raw = sample(3 * MiB + 12_345, 1);

  it('gzip: concatenated members, read by gzip -t/-dc and Python', async () => {
    const { out, result } = await collect(chunked(raw, 7, 50_000), { compression: 'gzip', ...small });
    const all = members(out);
    expect(all.length).toBe(Math.ceil(raw.length / (64 * KiB)));
    for (const m of all) expect([...m.subarray(0, 4)]).toEqual([0x1f, 0x8b, 8, 0]);
    // The OS byte is pinned, so a layer's digest does not depend on the runner's OS.
    for (const m of all) expect(m[9]).toBe(3);
    // Each member holds its own block: what zlib reads from it alone, with the CRC-32 and size zlib checks.
    all.forEach((m, i) => {
      expect(zlib.gunzipSync(m).equals(raw.subarray(i * 64 * KiB, (i + 1) * 64 * KiB))).toBe(true);
    });
    tool('gzip', ['-t'], out);
    expect(tool('gzip', ['-dc'], out).equals(raw)).toBe(true);
    const py = tool(
      'python3',
      ['-c', 'import gzip,sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))'],
      out,
    );
    expect(py.equals(raw)).toBe(true);
    expect(result.rawSize).toBe(raw.length);
    expect(result.size).toBe(out.length);
  });

  it('zstd: concatenated frames, read by zstd -t/-dc', async () => {
    const { out, parts, result } = await collect(chunked(raw, 8, 50_000), { compression: 'zstd', ...small });
    for (const p of parts) expect(p.readUInt32LE(0)).toBe(0xfd2fb528);
    tool('zstd', ['-q', '-t'], out);
    expect(tool('zstd', ['-q', '-dc'], out).equals(raw)).toBe(true);
    expect(result.size).toBe(out.length);
  });

  it('a real tar survives the round trip at every level setting', async () => {
    const tar = gnuTar(['-cf', '-', '--sort=name', '-C', join(process.cwd(), 'src'), '.']);
    for (const opts of [
      { compression: 'gzip', level: 9 },
      { compression: 'gzip', level: 0 },
      { compression: 'zstd', level: 19 },
    ] as const) {
      const { out, result } = await collect(once(tar), { ...opts, ...small });
      const back = opts.compression === 'gzip' ? tool('gzip', ['-dc'], out) : tool('zstd', ['-q', '-dc'], out);
      expect(back.equals(tar)).toBe(true);
      expect(result.diffId).toBe(sha(tar));
    }
  });

  it('none passes the raw bytes through: digest = diff_id', async () => {
    const { out, result } = await collect(chunked(raw, 9, 100_000), { compression: 'none' });
    expect(out.equals(raw)).toBe(true);
    expect(result.digest).toBe(result.diffId);
    expect(result.size).toBe(raw.length);
  });
});

describe('compressLayer digests', () => {
  it('match sha256sum of the raw and of the compressed bytes', async () => {
    const raw = sample(2 * MiB + 1, 2);
    const { out, result } = await collect(chunked(raw, 3, 70_000), { compression: 'gzip', ...small });
    const dir = fs.mkdtempSync(join(tmpdir(), 'oci-compress-'));
    try {
      fs.writeFileSync(join(dir, 'raw'), raw);
      fs.writeFileSync(join(dir, 'blob'), out);
      const sums = spawnSync('sha256sum', ['raw', 'blob'], { cwd: dir }).stdout.toString().trim().split('\n');
      const [rawSum, blobSum] = sums.map((l) => `sha256:${l.split(/\s+/)[0]}`);
      expect(result.diffId).toBe(rawSum);
      expect(result.digest).toBe(blobSum);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('are the same for the same input however it is chunked and however many workers run', async () => {
    const raw = sample(MiB + 4321, 3);
    for (const compression of ['gzip', 'zstd'] as const) {
      const runs = await Promise.all([
        collect(once(raw), { compression, chunkSize: 64 * KiB, parallelism: 1 }),
        collect(chunked(raw, 1, 999), { compression, chunkSize: 64 * KiB, parallelism: 4 }),
        collect(chunked(raw, 2, 200_000), { compression, chunkSize: 64 * KiB, parallelism: 9 }),
      ]);
      const digests = new Set(runs.map((r) => r.result.digest));
      expect(digests.size).toBe(1);
      expect(runs[0]?.result.digest).toBe(sha(runs[0]?.out as Buffer));
    }
  });

  it('are the same when layers share a compression pool, which caps compressions across layers', async () => {
    const a = sample(MiB, 11);
    const b = sample(MiB, 12);
    const alone = await Promise.all([a, b].map((x) => collect(once(x), { compression: 'gzip', ...small })));
    const pool = new CompressionPool(2);
    const shared = await Promise.all([a, b].map((x) => collect(once(x), { compression: 'gzip', ...small, pool })));
    expect(shared.map((r) => r.result.digest)).toEqual(alone.map((r) => r.result.digest));
    expect(pool.peakHeld).toBe(2);
  });

  it('an empty layer is one valid empty member or frame', async () => {
    const empty = Buffer.alloc(0);
    const gz = await collect(once(empty), { compression: 'gzip' });
    tool('gzip', ['-t'], gz.out);
    expect(tool('gzip', ['-dc'], gz.out).length).toBe(0);
    expect(gz.result).toMatchObject({ diffId: sha(empty), digest: sha(gz.out), rawSize: 0, size: gz.out.length });
    const zs = await collect((async function* () {})(), { compression: 'zstd' });
    expect(tool('zstd', ['-q', '-dc'], zs.out).length).toBe(0);
    const none = await collect(once(empty), { compression: 'none' });
    expect(none.result).toEqual({ diffId: sha(empty), digest: sha(empty), size: 0, rawSize: 0 });
  });
});

describe('compressLayer backpressure', () => {
  it('holds at most about (parallelism + 1) x chunkSize for a 200 MB layer and a slow consumer', async () => {
    const chunkSize = MiB;
    const parallelism = 2;
    const sourceChunk = 64 * KiB;
    const base = sample(4 * MiB, 4);
    let read = 0;
    async function* source(): AsyncGenerator<Buffer> {
      for (let off = 0; off < 200 * MiB; off += sourceChunk) {
        const at = off % base.length;
        const chunk = Buffer.from(base.subarray(at, at + sourceChunk));
        chunk.writeUInt32LE(off / sourceChunk, 0); // no two chunks alike
        read += chunk.length;
        yield chunk;
      }
    }
    const layer = compressLayer(source(), { compression: 'gzip', chunkSize, parallelism });
    let consumed = 0;
    let aheadMax = 0;
    for await (const _ of layer.chunks) {
      consumed++;
      // Independent of the pipeline's own counter: the source may not run ahead of the consumer by more than the
      // blocks the pipeline may hold.
      aheadMax = Math.max(aheadMax, read - consumed * chunkSize);
      if (consumed % 10 === 0)
        await sleep(40); // a stalled upload: the pipeline must stop reading
      else await sleep(1);
    }
    const result = await layer.result;
    expect(result.rawSize).toBe(200 * MiB);
    expect(layer.stats.bound).toBe((parallelism + 1) * chunkSize);
    // Slack: the tail of one source read, and gzip's few bytes of framing per block.
    expect(layer.stats.peakBuffered).toBeLessThanOrEqual(layer.stats.bound + sourceChunk + 4 * KiB);
    expect(layer.stats.peakBuffered).toBeGreaterThan(chunkSize); // it did measure something
    expect(aheadMax).toBeLessThanOrEqual((parallelism + 1) * chunkSize + sourceChunk);
    expect(layer.stats.buffered).toBe(0);
  });
});

describe('compressLayer errors', () => {
  it('a failing source rejects the chunk iterator and result', async () => {
    const head = sample(3 * MiB, 5);
    async function* failing(): AsyncGenerator<Buffer> {
      yield head;
      throw new Error('disk on fire');
    }
    for (const compression of ['gzip', 'zstd', 'none'] as const) {
      const layer = compressLayer(failing(), { compression, ...small });
      const drain = async () => {
        for await (const _ of layer.chunks) void _;
      };
      await expect(drain()).rejects.toThrow('disk on fire');
      await expect(layer.result).rejects.toThrow('disk on fire');
    }
  });

  it('a consumer that stops early closes the source and rejects result', async () => {
    for (const compression of ['gzip', 'none'] as const) {
      let closed = false;
      async function* endless(): AsyncGenerator<Buffer> {
        try {
          for (let i = 0; ; i++) yield sample(256 * KiB, i);
        } finally {
          closed = true;
        }
      }
      const pool = new CompressionPool(2);
      const layer = compressLayer(endless(), { compression, ...small, pool });
      for await (const _ of layer.chunks) break;
      await expect(layer.result).rejects.toThrow(/stopped before the end/);
      for (let i = 0; i < 100 && !(closed && pool.inUse === 0); i++) await sleep(5);
      expect(closed).toBe(true);
      expect(pool.inUse).toBe(0); // a shared pool gets every permit back
    }
  });

  it('can be iterated only once, and nothing is read before it is', async () => {
    let started = false;
    async function* src(): AsyncGenerator<Buffer> {
      started = true;
      yield Buffer.from('x');
    }
    const layer = compressLayer(src(), { compression: 'gzip' });
    await sleep(5);
    expect(started).toBe(false);
    for await (const _ of layer.chunks) void _;
    expect(() => layer.chunks[Symbol.asyncIterator]()).toThrow(/only once/);
  });

  it('rejects bad options with InputError before reading', () => {
    const src = once(Buffer.alloc(1));
    expect(() => compressLayer(src, { compression: 'gzip', level: 10 })).toThrow(InputError);
    expect(() => compressLayer(src, { compression: 'zstd', level: 0 })).toThrow(/from 1 to 19/);
    expect(() => compressLayer(src, { compression: 'gzip', chunkSize: 100 })).toThrow(/chunkSize/);
    expect(() => compressLayer(src, { compression: 'gzip', parallelism: 0 })).toThrow(/parallelism/);
    expect(() => compressLayer(src, { compression: 'brotli' as 'gzip' })).toThrow(/gzip, zstd or none/);
  });
});

describe('mediaTypeFor', () => {
  it('maps compression and manifest format to the layer media type', () => {
    expect(mediaTypeFor('gzip', 'oci')).toBe(MEDIA.ociLayerGzip);
    expect(mediaTypeFor('zstd', 'oci')).toBe(MEDIA.ociLayerZstd);
    expect(mediaTypeFor('none', 'oci')).toBe(MEDIA.ociLayerTar);
    expect(mediaTypeFor('gzip', 'docker')).toBe(MEDIA.dockerLayerGzip);
  });

  it('refuses non-gzip layers in Docker manifests, naming both fixes', () => {
    for (const c of ['zstd', 'none'] as const) {
      expect(() => mediaTypeFor(c, 'docker')).toThrow(InputError);
      expect(() => mediaTypeFor(c, 'docker')).toThrow(/compression: gzip.*manifest-format: oci/);
    }
  });
});
