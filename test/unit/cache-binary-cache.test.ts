/** The file-level parts of the binary cache: narinfo parsing, placeholders, topological order, pruning. */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { narinfoPaths } from '../../src/cache/binary-cache.js';
import {
  isSafeNarUrl,
  parseNarinfo,
  PLACEHOLDER_URL,
  readNarinfos,
  writePlaceholders,
} from '../../src/cache/narinfo.js';
import { copyOrder, pathArgRuns } from '../../src/cache/path-args.js';
import { pruneBinaryCache } from '../../src/cache/prune.js';

const hash = (c: string) => c.repeat(32);
const sp = (c: string, name: string) => `/nix/store/${hash(c)}-${name}`;

// As written by `nix copy --to file://...?compression=zstd&secret-key=...` (Nix 2.8 and 2.34 alike).
const SAMPLE = `StorePath: /nix/store/1f06gi47wwfy50l7xsc7kqn2l3j7mckz-fix-10
URL: nar/177cbx87dq8lh0icklva1a2fclj6jm68m3f8l4c56w4145ivrlp4.nar.zst
Compression: zstd
FileHash: sha256:177cbx87dq8lh0icklva1a2fclj6jm68m3f8l4c56w4145ivrlp4
FileSize: 421
NarHash: sha256:19h5lphr4g7y46qnnxlhycjhw05gspc1nwvdkhkc8qjfh043gcfb
NarSize: 928
References: 1n5835hsgqlyl5yj8qi2lkpipd1nnjh3-fix-3 76dc9l5439224gyb5mn65xkvc199gi3q-fix-9
Deriver: sgis9pmvpn01rj4x0habsjkq0z7y0xcp-fix-10.drv
Sig: testA-1:qxY0RPkHez0uQvOHreEq5F17tHC/3q5ivsFyNjp7dVx5r76ZFmRlV9RfQbzBamPUtkyvy4FLT6mMFUM9zB23CQ==
`;

describe('narinfo', () => {
  it('parses what Nix writes, references as full paths', () => {
    const n = parseNarinfo(SAMPLE, 'x.narinfo');
    expect(n).toMatchObject({
      storePath: '/nix/store/1f06gi47wwfy50l7xsc7kqn2l3j7mckz-fix-10',
      url: 'nar/177cbx87dq8lh0icklva1a2fclj6jm68m3f8l4c56w4145ivrlp4.nar.zst',
      compression: 'zstd',
      fileSize: 421,
      narSize: 928,
      deriver: '/nix/store/sgis9pmvpn01rj4x0habsjkq0z7y0xcp-fix-10.drv',
      references: [
        '/nix/store/1n5835hsgqlyl5yj8qi2lkpipd1nnjh3-fix-3',
        '/nix/store/76dc9l5439224gyb5mn65xkvc199gi3q-fix-9',
      ],
    });
    expect(n.sigs).toHaveLength(1);
    expect(() => parseNarinfo('StorePath: /nix/store/x\n', 'bad.narinfo')).toThrow(/bad\.narinfo/);
  });

  it('accepts only NAR URLs inside the cache', () => {
    expect(isSafeNarUrl('nar/abc.nar.zst')).toBe(true);
    expect(isSafeNarUrl('../etc/passwd')).toBe(false);
    expect(isSafeNarUrl('nar/../../x')).toBe(false);
    expect(isSafeNarUrl('/etc/passwd')).toBe(false);
    expect(isSafeNarUrl('nar//x')).toBe(false);
  });

  it('orders paths after their references, whatever the input order', () => {
    const refs: Record<string, string[]> = { d: ['c', 'x'], c: ['b', 'c'], b: ['a'], a: [] };
    const order = copyOrder(['d', 'a', 'c', 'b'], (p) => refs[p] ?? []);
    expect(order).toEqual(['a', 'b', 'c', 'd']);
    const long = Array.from({ length: 20000 }, (_, i) => `p${i}`);
    const chain = copyOrder([...long].reverse(), (p) => (p === 'p0' ? [] : [`p${Number(p.slice(1)) - 1}`]));
    expect(chain[0]).toBe('p0');
    expect(chain[19999]).toBe('p19999');
  });

  it('keeps derivations and other paths in few runs, each with the flag it needs', () => {
    // Outputs o1 <- o2, derivations d1 <- d2; interleaved by name, grouped by kind in the order.
    const refs: Record<string, string[]> = { '/s/2-o2': ['/s/1-o1'], '/s/4-d2.drv': ['/s/3-d1.drv'] };
    const order = copyOrder(['/s/4-d2.drv', '/s/2-o2', '/s/3-d1.drv', '/s/1-o1'], (p) => refs[p] ?? []);
    expect(order).toEqual(['/s/1-o1', '/s/2-o2', '/s/3-d1.drv', '/s/4-d2.drv']);
    expect(pathArgRuns(order)).toEqual([
      ['--', '/s/1-o1', '/s/2-o2'],
      ['--derivation', '--', '/s/3-d1.drv', '/s/4-d2.drv'],
    ]);
    expect(pathArgRuns(['/a', '/b', '/c'], 2)).toEqual([
      ['--', '/a', '/b'],
      ['--', '/c'],
    ]);
    expect(copyOrder(['x', 'y'], (p) => (p === 'x' ? ['y'] : ['x']))).toEqual(['x', 'y']);
  });
});

describe('binary cache directory', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-bc-'));
    fs.mkdirSync(path.join(dir, 'nar'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** An entry with a NAR of `size` bytes, modified `age` seconds ago. */
  function add(
    storePath: string,
    size: number,
    age: number,
    refs: string[] = [],
    nar = `${hash(storePath[11] ?? 'z')}`,
  ) {
    const url = `nar/${nar}.nar.zst`;
    fs.writeFileSync(path.join(dir, url), Buffer.alloc(size));
    const file = path.join(dir, `${storePath.slice(11, 43)}.narinfo`);
    const references = refs.map((r) => path.basename(r)).join(' ');
    fs.writeFileSync(
      file,
      `StorePath: ${storePath}\nURL: ${url}\nCompression: zstd\nFileSize: ${size}\n` +
        `NarHash: sha256:${'1'.repeat(52)}\nNarSize: ${size}\nReferences: ${references}\n`,
    );
    const t = Date.now() / 1000 - age;
    fs.utimesSync(file, t, t);
  }

  it('writes placeholders only where no narinfo exists, and hides them from narinfoPaths', async () => {
    const real = sp('a', 'real');
    add(real, 10, 0);
    const written = await writePlaceholders(dir, [real, sp('b', 'upstream')]);
    expect(written).toEqual([path.join(dir, `${hash('b')}.narinfo`)]);
    expect((await readNarinfos(dir)).map((n) => n.info.url)).toContain(PLACEHOLDER_URL);
    expect(await narinfoPaths(dir)).toEqual([real]);
  });

  it('prunes oldest first, with everything that references a pruned path', async () => {
    const a = sp('a', 'old');
    const b = sp('b', 'uses-old');
    const c = sp('c', 'newer');
    const d = sp('d', 'newest');
    add(a, 1000, 400);
    add(b, 1000, 10, [a]);
    add(c, 1000, 300);
    add(d, 1000, 5);
    const res = await pruneBinaryCache(dir, 2500);
    expect(res.removed).toEqual([a, b]);
    expect(res.bytesAfter).toBeLessThanOrEqual(2500);
    expect(res.bytesBefore).toBeGreaterThan(4000);
    expect(await narinfoPaths(dir)).toEqual([c, d].sort());
    expect(fs.readdirSync(path.join(dir, 'nar')).sort()).toEqual([`${hash('c')}.nar.zst`, `${hash('d')}.nar.zst`]);
  });

  it('cleans leftovers whatever the size: dangling narinfos, placeholders, orphan NARs', async () => {
    const ok = sp('a', 'ok');
    const dangling = sp('b', 'dangling');
    const dependent = sp('c', 'dependent');
    add(ok, 10, 0);
    add(dangling, 10, 0);
    add(dependent, 10, 0, [dangling, sp('u', 'upstream')]);
    fs.rmSync(path.join(dir, `nar/${hash('b')}.nar.zst`));
    fs.writeFileSync(path.join(dir, 'nar/orphan.nar.zst'), 'x');
    await writePlaceholders(dir, [sp('u', 'upstream')]);
    const res = await pruneBinaryCache(dir, 1e9);
    expect(res.removed).toEqual([dangling, dependent].sort());
    expect(await narinfoPaths(dir)).toEqual([ok]);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.narinfo'))).toEqual([`${hash('a')}.narinfo`]);
    expect(fs.readdirSync(path.join(dir, 'nar'))).toEqual([`${hash('a')}.nar.zst`]);
  });

  it('keeps a NAR shared by two narinfos until both are gone', async () => {
    const a = sp('a', 'same-content-1');
    const b = sp('b', 'same-content-2');
    add(a, 1000, 100, [], 'shared');
    add(b, 1000, 0, [], 'shared');
    const res = await pruneBinaryCache(dir, 1000 + 400);
    expect(res.removed).toEqual([a]);
    expect(fs.existsSync(path.join(dir, 'nar/shared.nar.zst'))).toBe(true);
    await pruneBinaryCache(dir, 0);
    expect(fs.existsSync(path.join(dir, 'nar/shared.nar.zst'))).toBe(false);
    expect(await narinfoPaths(dir)).toEqual([]);
  });

  it('never unlinks outside the cache, whatever a narinfo says', async () => {
    const outside = path.join(os.tmpdir(), `flake-ci-outside-${process.pid}`);
    fs.writeFileSync(outside, 'keep me');
    try {
      fs.writeFileSync(
        path.join(dir, `${hash('e')}.narinfo`),
        `StorePath: ${sp('e', 'evil')}\nURL: ../../${path.basename(outside)}\nNarHash: sha256:${'1'.repeat(52)}\nNarSize: 1\n`,
      );
      await pruneBinaryCache(dir, 0);
      expect(fs.existsSync(outside)).toBe(true);
    } finally {
      fs.rmSync(outside, { force: true });
    }
  });
});
