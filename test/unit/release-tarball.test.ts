import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkSymlink, resolveLink, splitEntryName } from '../../src/archive/safe-path.js';
import { extractRelease, reginfoPaths, UnsafeArchiveError } from '../../src/install-nix/release-tarball.js';
import { chunked, craftTar, gnuTar, storeName, walkTree, writeTree, type CraftEntry } from './helpers/tar-fixtures.js';

const VER = '2.34.8';
const TOP = `nix-${VER}-x86_64-linux`;
const NIX = storeName(`nix-${VER}`);
const CACERT = storeName('nss-cacert-3.115');
const LIBC = storeName('glibc-2.40-66');
const SINGLE = storeName('single-file');
const LINKED = storeName('link-only');
const ALL = [NIX, CACERT, LIBC, SINGLE, LINKED].sort();
const SCRIPT = `#!/bin/sh\nset -eu\nnix="/nix/store/${NIX}"\ncacert="/nix/store/${CACERT}"\necho installing\n`;

function reginfo(paths: string[]): string {
  return paths.map((p) => `/nix/store/${p}\nsha256:${'0'.repeat(52)}\n1234\n\n1\n/nix/store/${p}\n`).join('');
}

let root: string;
let dir: string; // holds TOP/
let stage: string;
const longDoc = `share/doc/${'manual-page-'.repeat(14)}.html`; // > 100 bytes once prefixed with TOP/store/<hash>

beforeAll(() => {
  root = fs.mkdtempSync(join(tmpdir(), 'release-test-'));
  dir = join(root, 'src');
  const s = `${TOP}/store`;
  writeTree(dir, {
    [`${TOP}/install`]: { mode: 0o755, body: SCRIPT },
    [`${TOP}/install-multi-user`]: { mode: 0o755, body: '#!/bin/sh\n' },
    [`${TOP}/.reginfo`]: reginfo(ALL),
    [`${s}/${NIX}/bin/nix`]: { mode: 0o555, body: '#!/bin/sh\necho nix\n' },
    [`${s}/${NIX}/bin/nix-store`]: { link: 'nix' },
    [`${s}/${NIX}/lib/libnixstore.so`]: { mode: 0o444, body: randomBytes(200_000) },
    [`${s}/${NIX}/${longDoc}`]: { mode: 0o444, body: '<html/>' },
    [`${s}/${NIX}/lib/empty`]: { mode: 0o444, body: '' },
    [`${s}/${CACERT}/etc/ssl/certs/ca-bundle.crt`]: { mode: 0o444, body: 'CERT\n' },
    [`${s}/${CACERT}/etc/private`]: { mode: 0o750 },
    [`${s}/${LIBC}/lib/libc.so.6`]: { mode: 0o555, body: randomBytes(3 * 1024 * 1024 + 17) }, // streamed path
    [`${s}/${LIBC}/lib/ld-linux.so.2`]: { link: `/nix/store/${LIBC}/lib/libc.so.6` },
    [`${s}/${SINGLE}`]: { mode: 0o444, body: 'a store path that is a file\n' },
    [`${s}/${LINKED}`]: { link: `${NIX}/bin/nix` },
  });
  fs.linkSync(join(dir, s, NIX, 'lib/libnixstore.so'), join(dir, s, NIX, 'lib/libnixstore.so.1'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
beforeEach(() => {
  stage = fs.mkdtempSync(join(root, 'stage-'));
});

/** What extraction must reproduce: the source store, with modes passed through `mode`. */
function expectSameStore(mode = (m: number) => m, hardlinksKept = true): void {
  const want = walkTree(join(dir, TOP, 'store'));
  const got = walkTree(join(stage, 'store'));
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [rel, w] of want) {
    const g = got.get(rel);
    expect({ rel, type: g?.type, content: g?.content }).toEqual({ rel, type: w.type, content: w.content });
    if (w.type !== 'symlink') expect({ rel, mode: g?.mode }).toEqual({ rel, mode: mode(w.mode) });
  }
  const ino = (p: string) => got.get(`${NIX}/lib/${p}`)?.ino;
  expect(ino('libnixstore.so') === ino('libnixstore.so.1')).toBe(hardlinksKept);
}

function expectContents(c: Awaited<ReturnType<typeof extractRelease>>): void {
  expect(c).toEqual({
    top: TOP,
    version: VER,
    system: 'x86_64-linux',
    storePaths: ALL,
    reginfo: reginfo(ALL),
    installScript: SCRIPT,
    nixStorePath: `/nix/store/${NIX}`,
    cacertStorePath: `/nix/store/${CACERT}`,
  });
}

describe('extractRelease', () => {
  it('extracts `tar -C dir -cf - nix-<ver>-<system>` whole and in random chunks', async () => {
    const archive = gnuTar(['--sort=name', '-C', dir, '-cf', '-', TOP]);
    expectContents(await extractRelease([archive], stage));
    expectSameStore();
    for (const seed of [1, 2]) {
      stage = fs.mkdtempSync(join(root, 'stage-'));
      expectContents(await extractRelease(chunked(archive, seed, 3000), stage));
      expectSameStore();
    }
  });

  it('extracts a pax archive of `.` (./-prefixed names)', async () => {
    const archive = gnuTar(['--format=pax', '-C', dir, '-cf', '-', '.']);
    expectContents(await extractRelease(chunked(archive, 5, 70_000), stage));
    expectSameStore();
  });

  it('extracts an official-style tarball (no directory entries for top and store, dereferenced hard links) via xz', async () => {
    const members = [
      `${TOP}/install`,
      `${TOP}/install-multi-user`,
      `${TOP}/.reginfo`,
      ...ALL.map((p) => `${TOP}/store/${p}`),
    ];
    const args = ['--owner=0', '--group=0', '--mode=u+rw,uga+r', '--mtime=@1', '--hard-dereference', '--format=gnu'];
    const file = join(root, `${TOP}.tar.xz`);
    fs.writeFileSync(
      file,
      spawnSync('xz', ['-1', '-c'], { maxBuffer: 1 << 30, input: gnuTar([...args, '-C', dir, '-cf', '-', ...members]) })
        .stdout,
    );
    const xz = spawn('xz', ['-dc', file], { stdio: ['ignore', 'pipe', 'inherit'] });
    expectContents(await extractRelease(xz.stdout, stage));
    expectSameStore((m) => m | 0o644, false);
    for (const p of [`${NIX}/bin/nix`, `${NIX}/bin`, NIX])
      expect(fs.statSync(join(stage, 'store', p)).mtimeMs).toBe(1000);
    expect(fs.lstatSync(join(stage, 'store', LINKED)).mtimeMs).toBe(1000);
  });

  it('falls back to the nix-<version> and nss-cacert store paths when the script does not name them', async () => {
    const archive = craftTar([
      { name: `${TOP}/.reginfo`, body: reginfo([NIX]) }, // and no install script at all
      { name: `${TOP}/store/${NIX}/bin/nix`, body: 'x', mode: 0o555 },
      { name: `${TOP}/store/${CACERT}`, body: 'c' },
    ]);
    const c = await extractRelease([archive], stage);
    expect([c.nixStorePath, c.cacertStorePath, c.installScript]).toEqual([
      `/nix/store/${NIX}`,
      `/nix/store/${CACERT}`,
      '',
    ]);
    expect(fs.statSync(join(stage, 'store', NIX, 'bin/nix')).mode & 0o777).toBe(0o555);
  });

  it('checks .reginfo and the install script against the extracted paths', async () => {
    const base = (reg: string, script = '', extra: CraftEntry[] = []) =>
      craftTar([
        { name: `${TOP}/install`, body: script },
        { name: `${TOP}/.reginfo`, body: reg },
        { name: `${TOP}/store/${NIX}`, body: 'x' },
        ...extra,
      ]);
    const missing = storeName('not-shipped');
    await expect(extractRelease([base(reginfo([NIX, missing]))], stage)).rejects.toThrow(
      `registers /nix/store/${missing}, which`,
    );
    stage = fs.mkdtempSync(join(root, 'stage-'));
    await expect(extractRelease([base(reginfo([NIX]), `nix="/nix/store/${missing}"\n`)], stage)).rejects.toThrow(
      `names nix=/nix/store/${missing}`,
    );
    stage = fs.mkdtempSync(join(root, 'stage-'));
    await expect(extractRelease([base(`/nix/store/${NIX}\nsha256:x\n1\n\n3\n`)], stage)).rejects.toThrow(
      /Malformed .reginfo/,
    );
    stage = fs.mkdtempSync(join(root, 'stage-'));
    await expect(extractRelease([base('x'.repeat(100))], stage, { maxCaptureBytes: 99 })).rejects.toThrow(
      /limit is 99/,
    );
    stage = fs.mkdtempSync(join(root, 'stage-'));
    await expect(extractRelease([craftTar([{ name: `${TOP}/install`, body: '' }])], stage)).rejects.toThrow(
      /no .*\.reginfo/,
    );
    fs.mkdirSync(join(stage, 'store'));
    await expect(extractRelease([base('')], stage)).rejects.toThrow(/already exists; extract into a fresh/);
    expect(reginfoPaths(reginfo([NIX, CACERT]))).toEqual([`/nix/store/${NIX}`, `/nix/store/${CACERT}`]);
  });
});

/** Everything under root except the current stage, with contents: nothing may change outside the stage. */
function snapshot(): Map<string, unknown> {
  const all = walkTree(root);
  for (const k of all.keys())
    if (k === stage.slice(root.length + 1) || k.startsWith(`${stage.slice(root.length + 1)}/`)) all.delete(k);
  return all;
}

const H = storeName('x');
const prelude: CraftEntry[] = [
  { name: `${TOP}/`, type: '5', mode: 0o755 },
  { name: `${TOP}/install`, body: '' },
  { name: `${TOP}/.reginfo`, body: '' },
  { name: `${TOP}/store/`, type: '5' },
  { name: `${TOP}/store/${H}/bin/ok`, body: 'fine' },
];

async function expectRejected(archive: Buffer, entry: string, why: RegExp): Promise<void> {
  const before = snapshot();
  const err = await extractRelease(chunked(archive, 3, 200), stage).then(
    () => new Error('extraction succeeded'),
    (e: unknown) => e as Error,
  );
  expect(err).toBeInstanceOf(UnsafeArchiveError);
  expect((err as UnsafeArchiveError).entry).toBe(entry);
  expect(err.message).toContain(`'${entry}'`);
  expect(err.message).toMatch(why);
  expect(snapshot()).toEqual(before);
  expect(fs.readdirSync(stage)).toEqual([]); // the half-written store is removed
}

/** A tree under a fresh directory, archived by GNU tar in name order. */
function tarOf(spec: Parameters<typeof writeTree>[1], ...members: string[]): Buffer {
  const d = fs.mkdtempSync(join(root, 'evil-'));
  writeTree(d, { [`${TOP}/install`]: '', [`${TOP}/.reginfo`]: '', ...spec });
  return gnuTar(['--sort=name', '-C', d, '-cf', '-', ...(members.length ? members : [TOP])]);
}

describe('extractRelease refuses unsafe archives', () => {
  const S = `${TOP}/store/${H}`;
  const link = (name: string, linkname: string, type = '2'): CraftEntry => ({ name, type, linkname });
  // Crafted archives (GNU tar will not write most of these): the prelude, then the offending entries; the error must
  // name the last entry unless the case names another.
  const crafted: [string, CraftEntry[], RegExp, string?][] = [
    ['../evil', [{ name: '../evil', body: 'x' }], /'\.\.' component/],
    ['.. inside a store path', [{ name: `${S}/../../../evil`, body: 'x' }], /'\.\.'/],
    ['/etc/passwd', [{ name: '/etc/passwd', body: 'root::0:0::/:/bin/sh\n' }], /absolute/],
    ['hard link to /etc/passwd', [link(`${S}/pw`, '/etc/passwd', '1')], /hard link/],
    ['hard link outside store/', [link(`${S}/i`, `${TOP}/install`, '1')], /hard link/],
    ['hard link forward', [link(`${S}/a`, `${S}/b`, '1'), { name: `${S}/b` }], /extracted before/, `${S}/a`],
    ['bad base32', [{ name: `${TOP}/store/${'e'.repeat(32)}-x` }], /not a store path name/],
    ['top-level file', [{ name: 'README', body: 'x' }], /second top-level/],
    ['directory beside store/', [{ name: `${TOP}/docs/`, type: '5' }], /only regular files/, `${TOP}/docs`],
    ['install as a symlink', [link(`${TOP}/install`, '/bin/sh')], /only regular files/],
    ['fifo', [{ name: `${S}/fifo`, type: '6' }], /unsupported type '6'/],
    ['char device', [{ name: `${S}/null`, type: '3' }], /unsupported type '3'/],
    [
      'write through a symlink',
      [link(`${S}/l`, `/nix/store/${NIX}`), { name: `${S}/l/f` }],
      /parent .*\/l is a symlink/,
    ],
    ['file replaced by a symlink', [link(`${S}/bin/ok`, '/etc/shadow')], /same path/],
    ['duplicate file', [{ name: `${S}/bin/ok`, body: 'again' }], /same path/],
    // Each link looks inside when checked alone; only resolved through `up` does `esc` reach `/`.
    [
      'escape via a later symlink',
      [link(`${S}/a/b/esc`, 'up/../../../..'), link(`${S}/a/b/up`, '../../..')],
      /resolves to \/$/,
      `${S}/a/b/esc`,
    ],
  ];
  for (const [title, extra, why, entry] of crafted) {
    const name = entry ?? (extra[extra.length - 1] as CraftEntry).name;
    it(title, () => expectRejected(craftTar([...prelude, ...extra]), name, why));
  }

  // Archived from real trees by GNU tar.
  it('absolute symlink', () =>
    expectRejected(tarOf({ [`${S}/bin/sh`]: { link: '/etc/passwd' } }), `${S}/bin/sh`, /resolves to \/etc\/passwd/));
  it('relative symlink', () =>
    expectRejected(tarOf({ [`${S}/etc`]: { link: '../../../../etc' } }), `${S}/etc`, /resolves to \/etc/));
  it('not a store path', () =>
    expectRejected(
      tarOf({ [`${TOP}/store/not-a-store-path`]: 'x' }),
      `${TOP}/store/not-a-store-path`,
      /store path name/,
    ));
  it('two top directories', () => expectRejected(tarOf({ 'other/x': 'y' }, TOP, 'other'), 'other', /second top-level/));
  it('refuses a real fifo archived by GNU tar', async () => {
    const d = fs.mkdtempSync(join(root, 'fifo-'));
    fs.mkdirSync(join(d, TOP, 'store', H), { recursive: true });
    expect(spawnSync('mkfifo', [join(d, TOP, 'store', H, 'pipe')]).status).toBe(0);
    await expectRejected(gnuTar(['-C', d, '-cf', '-', TOP]), `${TOP}/store/${H}/pipe`, /unsupported type '6'/);
  });
});

describe('safe-path', () => {
  it('splits names and refuses unsafe ones', () => {
    expect(splitEntryName('./a//b/./c/')).toEqual({ ok: true, parts: ['a', 'b', 'c'] });
    expect(splitEntryName('./')).toEqual({ ok: true, parts: [] });
    for (const [name, reason] of [
      ['', 'empty'],
      ['/a', 'absolute'],
      ['a/../b', '..'],
      ['a\0b', 'NUL'],
    ]) {
      const r = splitEntryName(name as string);
      expect(r.ok ? '' : r.reason).toContain(reason);
    }
  });

  it('resolves link targets like the kernel, with known symlinks', () => {
    expect(resolveLink('/nix/store/h-x/bin/sh', '../lib/../bin/bash')).toBe('/nix/store/h-x/bin/bash');
    expect(resolveLink('/nix/store/h-x/a', '/nix/store/../../etc')).toBe('/etc');
    const links: Record<string, string> = { '/s/up': '/', '/s/loop': 'loop' };
    expect(resolveLink('/s/x', 'up/etc', (p) => links[p])).toBe('/etc');
    expect(resolveLink('/s/x', 'loop', (p) => links[p])).toBeUndefined();
    expect(checkSymlink('/nix/store/h-x/l', '../h-y/bin', ['/nix/store'])).toEqual({
      resolved: '/nix/store/h-y/bin',
      escapes: false,
    });
    expect(checkSymlink('/nix/store/h-x/l', '../../storefront', ['/nix/store']).escapes).toBe(true);
    expect(checkSymlink('/nix/store/h-x/l', '', ['/nix/store']).reason).toBe('empty target');
  });
});
