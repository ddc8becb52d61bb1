import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseNumeric, readTar, type TarEntry, type TarSource } from '../../src/archive/tar.js';
import { chunked, craftTar, gnuTar, header, paxRecord, readAll, walkTree, writeTree } from './helpers/tar-fixtures.js';

interface Seen {
  path: string;
  type: TarEntry['type'];
  mode: number;
  size: number;
  linkname: string;
  body: Buffer;
}

async function entries(source: TarSource): Promise<Seen[]> {
  const out: Seen[] = [];
  for await (const e of readTar(source)) {
    out.push({
      path: e.path,
      type: e.type,
      mode: e.mode,
      size: e.size,
      linkname: e.linkname,
      body: await readAll(e.body),
    });
  }
  return out;
}

const strip = (p: string) => p.replace(/^\.\//, '');

let root: string;
let src: string;
const big = randomBytes(300_000);
const longDir = `${'d'.repeat(60)}/${'e'.repeat(60)}`;
const longName = `${longDir}/${'f'.repeat(90)}`; // > 100 bytes: ustar splits it, GNU uses 'L', pax uses 'x'

beforeAll(() => {
  root = fs.mkdtempSync(join(tmpdir(), 'tar-test-'));
  src = join(root, 'src');
  writeTree(src, {
    'a.txt': 'hello\n',
    empty: '',
    'bin/tool': { mode: 0o755, body: '#!/bin/sh\necho hi\n' },
    'data/big.bin': { mode: 0o644, body: big },
    'data/exact512': { mode: 0o600, body: Buffer.alloc(512, 7) },
    private: { mode: 0o750 },
    'ünïcode-名前.txt': 'utf8 name\n',
    [longName]: 'deep\n',
    'links/rel': { link: '../a.txt' },
    'links/abs': { link: '/nix/store/x' },
  });
  fs.linkSync(join(src, 'a.txt'), join(src, 'links/hard'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** Checks that the entries describe exactly the tree under `src`. */
function compareWithTree(seen: Seen[]): void {
  const tree = walkTree(src);
  const byPath = new Map(seen.map((s) => [strip(s.path), s]));
  byPath.delete('.');
  expect([...byPath.keys()].sort()).toEqual([...tree.keys()].sort());
  let hardlinks = 0;
  for (const [rel, node] of tree) {
    const e = byPath.get(rel) as Seen;
    if (e.type === 'hardlink') {
      hardlinks++;
      expect(['a.txt', 'links/hard']).toContain(rel);
      expect(['a.txt', 'links/hard']).toContain(strip(e.linkname));
      continue;
    }
    expect(e.type).toBe(node.type);
    if (node.type === 'symlink') expect(e.linkname).toBe(node.content);
    else expect(e.mode & 0o7777).toBe(node.mode);
    if (node.type === 'file') {
      expect(e.body.length).toBe(e.size);
      expect(createHash('sha256').update(e.body).digest('hex')).toBe(node.content);
    }
  }
  expect(hardlinks).toBe(1);
}

describe('readTar on archives written by GNU tar', () => {
  for (const format of ['gnu', 'pax', 'ustar', 'oldgnu']) {
    it(`reads --format=${format} whole and in random chunks`, async () => {
      const archive = gnuTar(['--sort=name', `--format=${format}`, '-C', src, '-cf', '-', '.']);
      compareWithTree(await entries([archive]));
      for (const seed of [1, 2, 3]) compareWithTree(await entries(chunked(archive, seed, 1500)));
    });
  }

  it('reads names and link targets longer than ustar allows (GNU L/K, pax path/linkpath)', async () => {
    const dir = join(root, 'long');
    const name = `${'n'.repeat(120)}/${'m'.repeat(120)}/${'o'.repeat(120)}`;
    const target = `../${'t'.repeat(200)}`;
    writeTree(dir, { [name]: 'x', l: { link: target } });
    for (const format of ['gnu', 'pax']) {
      const seen = await entries(
        chunked(gnuTar(['--sort=name', `--format=${format}`, '-C', dir, '-cf', '-', name, 'l']), 7, 300),
      );
      expect(seen.map((s) => [s.path, s.type, s.linkname])).toEqual([
        [name, 'file', ''],
        ['l', 'symlink', target],
      ]);
      expect(seen[0]?.body.toString()).toBe('x');
    }
  });

  it('survives one-byte chunks', async () => {
    const archive = gnuTar(['--sort=name', '--format=pax', '-C', src, '-cf', '-', 'a.txt', 'bin', longDir]);
    const seen = await entries(chunked(archive, 9, 1));
    expect(seen.map((s) => [s.path, s.type])).toEqual([
      ['a.txt', 'file'],
      ['bin', 'directory'],
      ['bin/tool', 'file'],
      [longDir, 'directory'],
      [longName, 'file'],
    ]);
    expect(seen[4]?.body.toString()).toBe('deep\n');
  });

  it('reads from a Node stream and accepts EOF without the end marker', async () => {
    const archive = gnuTar(['--sort=name', '-C', src, '-cf', '-', 'a.txt', 'data']);
    const file = join(root, 'a.tar');
    fs.writeFileSync(file, archive);
    const seen = await entries(fs.createReadStream(file, { highWaterMark: 777 }));
    expect(seen.map((s) => s.path)).toEqual(
      ['a.txt', 'data/', 'data/big.bin', 'data/exact512'].map((p) => p.replace(/\/$/, '')),
    );
    // Cut right after the last entry's padding: no zero blocks at all.
    let last = archive.length - 1;
    while (archive[last] === 0) last--;
    const end = Math.ceil((last + 1) / 512) * 512;
    const cut = await entries(chunked(archive.subarray(0, end), 4));
    expect(cut.map((s) => s.path)).toEqual(seen.map((s) => s.path));
    expect(cut[2]?.body.equals(big)).toBe(true);
  });

  it('skips bodies the consumer ignores or abandons half way', async () => {
    const archive = gnuTar(['--sort=name', '-C', src, '-cf', '-', 'data', 'a.txt']);
    const got: string[] = [];
    for await (const e of readTar(chunked(archive, 5, 4096))) {
      if (e.path === 'data/big.bin') {
        for await (const c of e.body) {
          expect(c.length).toBeGreaterThan(0);
          break; // abandon after the first chunk
        }
      } else if (e.path === 'a.txt') got.push((await readAll(e.body)).toString());
    }
    expect(got).toEqual(['hello\n']);
  });

  it('refuses to read a body after the reader moved on', async () => {
    const archive = gnuTar(['--sort=name', '-C', src, '-cf', '-', 'a.txt', 'empty']);
    const list: TarEntry[] = [];
    for await (const e of readTar([archive])) list.push(e);
    await expect(readAll((list[0] as TarEntry).body)).rejects.toThrow(/after moving to the next entry/);
    await expect(readAll((list[1] as TarEntry).body)).resolves.toHaveLength(0);
    // A body abandoned half way and resumed after the reader moved on must fail, not end early.
    const it = readTar(chunked(gnuTar(['-C', src, '-cf', '-', 'data/big.bin', 'a.txt']), 2, 4096));
    const first = ((await it.next()).value as TarEntry).body[Symbol.asyncIterator]();
    await first.next();
    expect(((await it.next()).value as TarEntry).path).toBe('a.txt');
    await expect(first.next()).rejects.toThrow(/after moving to the next entry/);
  });
});

describe('readTar on crafted archives', () => {
  it('names the offset of a header with a bad checksum', async () => {
    const bad = craftTar([
      { name: 'a', body: 'x'.repeat(600) },
      { name: 'b', body: 'y' },
    ]);
    bad.writeUInt8((bad[1539] ?? 0) ^ 0x20, 1539); // the second header follows 512 + 1024 bytes (600 bytes of body, padded)
    await expect(entries(chunked(bad, 1, 100))).rejects.toThrow(/corrupt header at offset 1536: checksum/);
  });

  it('reports a truncated body', async () => {
    const archive = craftTar([{ name: 'a', body: 'x'.repeat(2000) }]);
    await expect(entries([archive.subarray(0, 1500)])).rejects.toThrow(/ends inside the body of 'a'/);
    const consumer = async () => {
      for await (const _ of readTar([archive.subarray(0, 1500)]));
    };
    await expect(consumer()).rejects.toThrow(/ends inside the body of 'a'/);
  });

  it('parses GNU base-256 numeric fields', async () => {
    const five = Buffer.alloc(12);
    five[0] = 0x80;
    five[11] = 5;
    const body = Buffer.from('hello');
    const archive = Buffer.concat([
      header({ name: 'b256', sizeField: five }),
      body,
      Buffer.alloc(507),
      Buffer.alloc(1024),
    ]);
    const seen = await entries(chunked(archive, 3, 50));
    expect(seen.map((s) => [s.path, s.size, s.body.toString()])).toEqual([['b256', 5, 'hello']]);

    const huge = Buffer.alloc(12);
    huge.writeUInt32BE(0x80000000, 0); // marker byte, then big-endian 9 GiB in the low bytes
    huge.writeBigUInt64BE(9n * 2n ** 30n, 4);
    const it = readTar([header({ name: 'layer.tar', sizeField: huge })]);
    const first = await it.next();
    expect(first.value?.size).toBe(9 * 2 ** 30);
    await expect(it.next()).rejects.toThrow(/ends inside the body of 'layer.tar'/);

    const neg = Buffer.alloc(8, 0xff); // -1 in two's complement
    expect(parseNumeric(neg, 0, 8)).toBe(-1);
    expect(parseNumeric(Buffer.from('  0755 \0'), 0, 8)).toBe(0o755);
  });

  it('applies pax per-entry overrides and ignores global headers', async () => {
    const pax =
      paxRecord('path', 'very/long/päth') + paxRecord('size', '3') + paxRecord('linkpath', 'ignored-for-files');
    const archive = craftTar([
      { name: 'pax_global_header', type: 'g', body: paxRecord('path', 'global-should-not-apply') },
      { name: 'PaxHeaders/x', type: 'x', body: pax },
      { name: 'short', body: 'abc' },
      { name: 'next', body: 'z' },
    ]);
    const seen = await entries(chunked(archive, 11, 64));
    expect(seen.map((s) => [s.path, s.size, s.body.toString()])).toEqual([
      ['very/long/päth', 3, 'abc'],
      ['next', 1, 'z'],
    ]);
  });

  it('maps typeflags and v7 directories', async () => {
    const archive = craftTar([
      { name: 'dir/', type: '\0' },
      { name: 'fifo', type: '6' },
      { name: 'h', type: '1', linkname: 'dir/x' },
    ]);
    const seen = await entries([archive]);
    expect(seen.map((s) => [s.path, s.type, s.linkname])).toEqual([
      ['dir', 'directory', ''],
      ['fifo', 'other', ''],
      ['h', 'hardlink', 'dir/x'],
    ]);
  });

  it('rejects malformed pax records and oversized metadata', async () => {
    await expect(entries([craftTar([{ name: 'x', type: 'x', body: '99 path=a\n' }, { name: 'a' }])])).rejects.toThrow(
      /corrupt header at offset 0: malformed pax record/,
    );
    const hugeL = Buffer.alloc(12);
    hugeL[0] = 0x80;
    hugeL.writeUInt32BE(64 * 1024 * 1024, 8);
    await expect(entries([header({ name: '././@LongLink', type: 'L', sizeField: hugeL })])).rejects.toThrow(
      /too large/,
    );
  });
});
