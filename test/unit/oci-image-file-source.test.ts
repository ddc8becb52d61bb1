/**
 * An uncompressed archive file read in order by the tar reader while plain entries are lent out and read by position
 * (src/oci/image/file-source.ts): the tar reader must still see every header, metadata records must never be lent,
 * and a docker-archive's layers must hash the same whether read by position, as a stream, or skipped.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readTar } from '../../src/archive/tar.js';
import { compressLayer } from '../../src/oci/compress.js';
import { openImage } from '../../src/oci/image/detect.js';
import { ArchiveFile } from '../../src/oci/image/file-source.js';
import { gnuTar, readAll, writeTree } from './helpers/tar-fixtures.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const MiB = 1 << 20;
let dir: string;
const big = randomBytes(3 * MiB + 777);
const longName = `${'d'.repeat(60)}/${'f'.repeat(70)}.bin`;

beforeAll(() => {
  dir = fs.mkdtempSync(join(tmpdir(), 'file-source-'));
  writeTree(join(dir, 'tree'), {
    'a-small.txt': 'small\n',
    'b-big.bin': { mode: 0o644, body: big },
    [longName]: 'behind a long-name record\n',
    'c-empty': '',
  });
  // pax without atime/ctime records: only the long name needs an 'x' record.
  for (const [name, flags] of [
    ['gnu', ['--format=gnu']],
    ['pax', ['--format=pax', '--pax-option=delete=atime,delete=ctime']],
    ['pax-all', ['--format=pax']],
  ] as const)
    fs.writeFileSync(
      join(dir, `${name}.tar`),
      gnuTar(['-C', join(dir, 'tree'), '-cf', '-', ...flags, '--sort=name', '--mtime=@1', '.']),
    );
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('ArchiveFile', () => {
  it.each(['gnu', 'pax', 'pax-all'])('lends plain entries, never one behind a metadata record (%s)', async (format) => {
    const file = await ArchiveFile.open(join(dir, `${format}.tar`));
    try {
      const seen: Record<string, { lent: boolean; bytes: Buffer }> = {};
      for await (const e of readTar(file)) {
        if (e.type !== 'file') continue;
        const range = await file.lend(e);
        let bytes: Buffer;
        if (range) {
          bytes = Buffer.alloc(range.size);
          expect(await range.read(bytes, 0, range.size, 0)).toBe(range.size);
          await expect(async () => range.read(Buffer.alloc(2), 0, 2, range.size - 1)).rejects.toThrow(/outside/);
        } else bytes = await readAll(e.body);
        seen[e.path.replace(/^\.\//, '')] = { lent: !!range, bytes };
      }
      expect(Object.keys(seen).sort()).toEqual(['a-small.txt', 'b-big.bin', 'c-empty', longName].sort());
      // Default pax writes an 'x' record (atime, ctime) before every entry: then nothing is lent.
      const plain = format !== 'pax-all';
      expect(seen['b-big.bin']?.lent).toBe(plain);
      expect(seen['b-big.bin']?.bytes.equals(big)).toBe(true);
      expect(seen['a-small.txt']?.lent).toBe(plain);
      expect(seen['a-small.txt']?.bytes.toString()).toBe('small\n');
      // GNU writes an 'L' record, pax an 'x' record before this one: read in order, as before.
      expect(seen[longName]?.lent).toBe(false);
      expect(seen[longName]?.bytes.toString()).toBe('behind a long-name record\n');
    } finally {
      await file.close();
    }
  });
});

describe('docker-archive layers read by position', () => {
  let archive: string;
  const layers = [randomBytes(2 * MiB + 5), Buffer.alloc(0), Buffer.from('x'.repeat(5000))];
  beforeAll(() => {
    const root = join(dir, 'image');
    const hexOf = (b: Buffer) => sha(b).slice(7);
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map(sha) } }),
    );
    const files: Record<string, string | { mode: number; body: Buffer }> = {
      [`${hexOf(config)}.json`]: config.toString(),
    };
    for (const l of layers) files[`${hexOf(l)}/layer.tar`] = { mode: 0o644, body: l };
    files['manifest.json'] = JSON.stringify([
      { Config: `${hexOf(config)}.json`, Layers: layers.map((l) => `${hexOf(l)}/layer.tar`) },
    ]);
    writeTree(root, files);
    archive = join(dir, 'image.tar');
    fs.writeFileSync(archive, gnuTar(['-C', root, '-cf', '-', '--sort=name', '--mtime=@1', '.']));
  });

  it('gives each layer as a range that compresses to its diff_id, also when others are skipped', async () => {
    const src = await openImage(archive);
    try {
      const got: string[] = [];
      let skipped: string | undefined;
      let i = 0;
      for await (const l of src.layers()) {
        expect(l.range).toBeDefined();
        // Skip the second one without reading it; the tar reader must still reach the entries after it.
        if (i++ === 1) {
          skipped = l.diffId;
          await l.skip();
          continue;
        }
        const layer = compressLayer(l.range!, { compression: 'gzip' });
        for await (const _ of layer.chunks) void _;
        const { diffId } = await layer.result;
        expect(diffId).toBe(l.diffId); // the name in the archive: the bytes are the layer's
        got.push(diffId);
        // The same bytes as a stream, for consumers that keep their buffers.
        expect(sha(await readAll(l.raw!))).toBe(diffId);
      }
      const { config } = await src.finish();
      expect(got.length).toBe(2);
      expect([...got, skipped].sort()).toEqual([...config.diffIds].sort());
    } finally {
      await src.close();
    }
  });
});
