/**
 * The tar writer: round trips through our reader and through GNU tar, Go's format choices (ustar, prefix split,
 * PAX), determinism, and refusing a body whose length differs from its header.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readTar } from '../../src/archive/tar.js';
import {
  cleanPath,
  joinPath,
  paxRecord,
  tarHeader,
  writeTar,
  type TarWriteEntry,
} from '../../src/archive/tar-writer.js';
import { readAll } from './helpers/tar-fixtures.js';

const big = randomBytes(70_000);
const splittable = `${'d'.repeat(80)}/${'e'.repeat(60)}/${'f'.repeat(90)}`; // 232 bytes: prefix + name
const unsplittable = `top/${'g'.repeat(120)}`; // a component > 100 bytes: PAX only
const entries = (): TarWriteEntry[] => [
  { header: { name: 'dir', type: 'directory', mode: 0o755, mtime: 1, uname: 'root', gname: 'root' } },
  { header: { name: 'dir/small', type: 'file', mode: 0o644, size: 6, mtime: 1 }, body: [Buffer.from('hello\n')] },
  { header: { name: 'dir/big.bin', type: 'file', mode: 0o755, size: big.length, uid: 1000, gid: 100 }, body: [big] },
  { header: { name: 'dir/empty', type: 'file', mode: 0o600, size: 0 } },
  { header: { name: 'dir/link', type: 'symlink', mode: 0o777, linkname: 'small' } },
  { header: { name: splittable, type: 'file', mode: 0o444, size: 3 }, body: [Buffer.from('abc')] },
  { header: { name: unsplittable, type: 'file', mode: 0o444, size: 2 }, body: [Buffer.from('xy')] },
  { header: { name: 'dir/longlink', type: 'symlink', mode: 0o777, linkname: `/nix/store/${'h'.repeat(120)}` } },
  { header: { name: 'dir/ünï名', type: 'file', mode: 0o644, size: 1 }, body: [Buffer.from('u')] },
  { header: { name: 'dir/bigid', type: 'file', mode: 0o644, size: 0, uid: 3_000_000, gid: 5 } },
  { header: { name: 'dir/hard', type: 'hardlink', mode: 0o644, linkname: 'dir/small' } },
];

async function archive(list = entries()): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of writeTar(list)) parts.push(c);
  return Buffer.concat(parts);
}

let scratch: string;
beforeAll(() => {
  scratch = fs.mkdtempSync(join(tmpdir(), 'tar-writer-'));
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

describe('tar writer', () => {
  it('round-trips through our reader', async () => {
    const seen = [];
    for await (const e of readTar([await archive()]))
      seen.push({
        path: e.path,
        type: e.type,
        mode: e.mode,
        size: e.size,
        uid: e.uid,
        link: e.linkname,
        body: await readAll(e.body),
      });
    const want = entries();
    expect(seen.map((s) => s.path)).toEqual(want.map((e) => e.header.name));
    for (const [i, s] of seen.entries()) {
      const h = want[i]!.header;
      expect(s).toMatchObject({ type: h.type, mode: h.mode, uid: h.uid ?? 0, link: h.linkname ?? '' });
      const body = want[i]!.body;
      if (body) expect(Buffer.compare(s.body, Buffer.concat([...(body as Buffer[])]))).toBe(0);
    }
  });

  it('is read by GNU tar, names, sizes and owners included', async () => {
    const file = join(scratch, 'a.tar');
    fs.writeFileSync(file, await archive());
    const r = spawnSync('tar', ['-tvf', file, '--numeric-owner'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(entries().length);
    expect(lines[2]).toMatch(/^-rwxr-xr-x 1000\/100 +70000 1970-01-01 00:00 dir\/big\.bin$/);
    expect(lines[4]).toMatch(/dir\/link -> small$/);
    expect(lines[5]).toContain(splittable);
    expect(lines[6]).toContain(unsplittable);
    expect(lines[7]).toContain(`-> /nix/store/${'h'.repeat(120)}`);
    expect(lines[8]).toContain('dir/ünï名');
    expect(lines[9]).toMatch(/3000000\/5/);
    expect(lines[10]).toMatch(/dir\/hard link to dir\/small$/);
    const out = join(scratch, 'x');
    fs.mkdirSync(out);
    expect(spawnSync('tar', ['-xf', file, '-C', out]).status).toBe(0);
    expect(fs.readFileSync(join(out, 'dir/big.bin')).equals(big)).toBe(true);
    expect(fs.readFileSync(join(out, splittable), 'utf8')).toBe('abc');
    expect(fs.readFileSync(join(out, unsplittable), 'utf8')).toBe('xy');
  });

  it('chooses formats as Go archive/tar does', () => {
    const ustar = tarHeader({ name: splittable, type: 'file', mode: 0o644, size: 0 });
    expect(ustar).toHaveLength(512); // split into prefix + name, no PAX
    expect(ustar.toString('latin1', 345, 345 + 141)).toBe(`${'d'.repeat(80)}/${'e'.repeat(60)}`);
    expect(ustar.toString('latin1', 257, 265)).toBe('ustar\x0000');
    expect(ustar.toString('latin1', 148, 156)).toMatch(/^[0-7]{6}\0 $/);
    expect(ustar.toString('latin1', 329, 345)).toBe('0000000\0'.repeat(2));
    const pax = tarHeader({ name: unsplittable, type: 'file', mode: 0o644, size: 0 });
    expect(pax).toHaveLength(3 * 512); // 'x' header, its records, the entry header
    expect(pax.toString('latin1', 0, 100).replace(/\0+$/, '')).toBe(
      `top/PaxHeaders.0/${'g'.repeat(120)}`.slice(0, 100),
    );
    expect(pax[156]).toBe(0x78);
    expect(pax.toString('latin1', 329, 345)).toBe('\0'.repeat(16)); // Go leaves the 'x' header's dev fields empty
    const rec = paxRecord('path', unsplittable);
    expect(pax.toString('utf8', 512, 512 + rec.length)).toBe(rec);
    expect(pax.toString('latin1', 1024, 1124)).toBe(unsplittable.slice(0, 100));
    expect(paxRecord('path', 'x'.repeat(93))).toHaveLength(103); // the length counts its own digits
  });

  it('writes the same bytes every time and ends with two zero blocks, no record padding', async () => {
    const a = await archive();
    expect(a.equals(await archive())).toBe(true);
    expect(a.length % 512).toBe(0);
    expect(a.subarray(-1024).every((b) => b === 0)).toBe(true);
    expect(a.subarray(-1536, -1024).every((b) => b === 0)).toBe(false);
  });

  it('refuses a body whose length differs from its header', async () => {
    const short: TarWriteEntry = {
      header: { name: 'f', type: 'file', mode: 0o644, size: 5 },
      body: [Buffer.from('abc')],
    };
    await expect(archive([short])).rejects.toThrow(/'f' has fewer bytes than its size 5/);
    const long: TarWriteEntry = {
      header: { name: 'f', type: 'file', mode: 0o644, size: 1 },
      body: [Buffer.from('abc')],
    };
    await expect(archive([long])).rejects.toThrow(/more bytes/);
    expect(() => tarHeader({ name: 'a\0b', type: 'file', mode: 0o644 })).toThrow(/NUL/);
  });

  it('cleans and joins paths like Go', () => {
    expect(cleanPath('/nix//store/./x/../y/')).toBe('/nix/store/y');
    expect(cleanPath('../a/../../b')).toBe('../../b');
    expect(cleanPath('/..')).toBe('/');
    expect(cleanPath('')).toBe('.');
    expect(joinPath('', '..')).toBe('..');
    expect(joinPath('/', 'nix')).toBe('/nix');
    expect(joinPath('', '')).toBe('');
  });
});
