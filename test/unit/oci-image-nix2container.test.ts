/**
 * nix2container layers rebuilt from store paths: the digests of nix2container's own Go tests (nix/layers_test.go
 * TestNewLayers and TestPerms: "../data/layer1/file1", an empty file), agreement with the independent Perl
 * implementation the fixture flake uses, the header conventions, and the image.json reader.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readTar } from '../../src/archive/tar.js';
import { InputError } from '../../src/errors.js';
import { nix2containerLayerTar, type Nix2containerPath } from '../../src/oci/image/nix2container-tar.js';
import { openNix2container, verifyDiffId } from '../../src/oci/image/nix2container.js';
import type { SourceLayer } from '../../src/oci/types.js';
import { readAll, storeName, writeTree } from './helpers/tar-fixtures.js';

const PERL = resolve('test/fixtures/images/n2c-layer.pl');
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let scratch: string;
let root: string; // a copy of a store: <root>/nix/store/...
const app = `/nix/store/${storeName('app-1.0')}`;
const lib = `/nix/store/${storeName('lib')}`;

async function layer(paths: Nix2containerPath[], opts = { root }): Promise<Buffer> {
  return readAll(nix2containerLayerTar(paths, opts));
}

function perl(args: string[], cwd?: string): Buffer {
  const r = spawnSync('perl', [PERL, ...args], { cwd, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`n2c-layer.pl failed: ${r.stderr}`);
  return r.stdout;
}

beforeAll(() => {
  scratch = fs.mkdtempSync(join(tmpdir(), 'n2c-test-'));
  root = join(scratch, 'root');
  writeTree(join(root, app), {
    'bin/app': { mode: 0o555, body: '#!/bin/sh\necho app\n' },
    'share/doc/README': { mode: 0o444, body: 'read me\n' },
    [`share/${'long-directory-name-'.repeat(4)}/${'long-file-name-'.repeat(4)}`]: { mode: 0o444, body: 'split\n' },
    [`share/${'x'.repeat(120)}`]: { mode: 0o444, body: 'pax\n' },
    'lib/libfoo.so': { link: `${lib}/lib/libfoo.so` },
    'etc/app.conf': { mode: 0o444, body: 'conf=1\n' },
  });
  writeTree(join(root, lib), { 'lib/libfoo.so': { mode: 0o555, body: Buffer.alloc(3000, 7) } });
  spawnSync('chmod', ['-R', 'a-w', join(root, 'nix/store')]); // like the store: 0555 directories, 0444 files
  writeTree(join(scratch, 'go'), { 'nix/.keep': '', 'data/layer1/file1': { mode: 0o644, body: '' } });
});
afterAll(() => {
  spawnSync('chmod', ['-R', 'u+w', scratch]);
  fs.rmSync(scratch, { recursive: true, force: true });
});

describe('nix2container layer tar', () => {
  it("reproduces the digests of nix2container's own tests", async () => {
    const cwd = join(scratch, 'go/nix');
    const plain = await layer([{ path: '../data/layer1/file1' }], { cwd } as never);
    expect(plain.length).toBe(3072);
    expect(sha(plain)).toBe('sha256:cc45bd46eca903b0900ebb997dffd5778904dca9ec02e7375dd1e653dfb61e2e');
    const perms = await layer(
      [{ path: '../data/layer1/file1', options: { perms: [{ regex: '.*file1', mode: '0641' }] } }],
      {
        cwd,
      } as never,
    );
    expect(sha(perms)).toBe('sha256:adf74a52f9e1bcd7dab77193455fa06743b979cf5955148010e5becedba4f72d');
    // The Perl implementation used by the fixture flake agrees with Go too.
    expect(sha(perl(['../data/layer1/file1'], cwd))).toBe(sha(plain));
    expect(sha(perl(['--perm', '.*file1', '0641', '0', '0', '', '', '../data/layer1/file1'], cwd))).toBe(sha(perms));
  });

  it('agrees with the Perl implementation on store paths, perms and rewrites', async () => {
    const strip = ['--rewrite', `^${esc(root)}`, ''];
    const real = (p: string) => join(root, p);
    expect(sha(await layer([{ path: app }, { path: lib }]))).toBe(sha(perl([...strip, real(app), real(lib)])));
    const perm = { regex: 'bin/app$', mode: '0750', uid: 1000, gid: 100, uname: 'app', gname: 'users' };
    expect(sha(await layer([{ path: app, options: { perms: [perm] } }]))).toBe(
      sha(perl([...strip, '--perm', 'bin/app$', '0750', '1000', '100', 'app', 'users', real(app)])),
    );
    const toRoot = { rewrite: { regex: `^${esc(app)}`, repl: '' } };
    expect(sha(await layer([{ path: app, options: toRoot }]))).toBe(
      sha(perl(['--rewrite', `^${esc(real(app))}`, '', real(app)])),
    );
  });

  it('writes absolute names from /, root-owned, mtime 1, 0755 parents, 0777 symlinks, sorted', async () => {
    const seen = [];
    for await (const e of readTar([await layer([{ path: app }])]))
      seen.push({ path: e.path, mode: e.mode, uid: e.uid, mtime: e.mtime, type: e.type });
    expect(seen.slice(0, 4).map((e) => [e.path, e.mode])).toEqual([
      ['/', 0o755],
      ['/nix', 0o755],
      ['/nix/store', 0o755],
      [app, 0o555],
    ]);
    expect(seen.every((e) => e.uid === 0 && e.mtime === 1)).toBe(true);
    expect(seen.find((e) => e.path === `${app}/lib/libfoo.so`)).toMatchObject({ type: 'symlink', mode: 0o777 });
    expect(seen.find((e) => e.path === `${app}/bin/app`)).toMatchObject({ mode: 0o555 });
    const names = seen.map((e) => e.path);
    expect(names.indexOf(`${app}/bin`)).toBeLessThan(names.indexOf(`${app}/etc`));
    expect(names).toContain(`${app}/share/${'x'.repeat(120)}`);
  });

  it('applies rewrite, orMode, ignoreDestination and the case hack', async () => {
    const options = {
      rewrite: { regex: `^${esc(app)}`, repl: '/opt' },
      perms: [{ regex: 'README$', orMode: '0200' }],
      ignoreDestination: '^/opt/share/x+$',
    };
    const names = new Map<string, number>();
    for await (const e of readTar([await layer([{ path: app, options }])])) names.set(e.path, e.mode);
    expect(names.get('/opt')).toBe(0o555);
    expect(names.get('/opt/share/doc/README')).toBe(0o644);
    expect([...names.keys()].some((n) => n.includes('xxxx'))).toBe(false);
    const hacked = join(scratch, 'hack');
    writeTree(hacked, { 'a~nix~case~hack~1': 'x', b: 'y' });
    const hn = [];
    for await (const e of readTar([await layer([{ path: hacked }], {} as never)])) hn.push(e.path);
    expect(hn.slice(-2)).toEqual([`${hacked}/a`, `${hacked}/b`]);
  });

  it('refuses what it cannot reproduce, naming it', async () => {
    await expect(layer([{ path: app, options: { capabilities: [] } as never }])).rejects.toThrow(
      /option 'capabilities' is not supported/,
    );
    await expect(layer([{ path: app, tar: '/x.tar' }])).rejects.toThrow(/tar sources/);
    await expect(layer([{ path: '/nix/store/missing' }])).rejects.toThrow(InputError);
    await expect(layer([{ path: app, options: { perms: [{ regex: '(' }] } }])).rejects.toThrow(/invalid regular/);
  });
});

describe('image.json', () => {
  async function image(json: unknown): Promise<string> {
    const file = join(scratch, `image-${Math.random()}.json`);
    fs.writeFileSync(file, JSON.stringify(json));
    return file;
  }

  it('yields raw layers from store paths, layer-path blobs, and a config in layer order', async () => {
    const tar = await layer([{ path: app }]);
    // layer-path is a store path too, so it is looked up under `root` like the paths.
    const blobFile = `/nix/store/${storeName('layer.tar.gz')}`;
    fs.chmodSync(join(root, 'nix/store'), 0o755);
    fs.writeFileSync(join(root, blobFile), 'not really gzip');
    const file = await image({
      version: 1,
      'image-config': { Entrypoint: [`${app}/bin/app`] },
      arch: 'arm64',
      layers: [
        {
          digest: sha(tar),
          diff_ids: sha(tar),
          size: tar.length,
          paths: [{ path: app }],
          mediatype: 'application/vnd.oci.image.layer.v1.tar',
        },
        {
          digest: `sha256:${'1'.repeat(64)}`,
          diff_ids: `sha256:${'2'.repeat(64)}`,
          size: 15,
          'layer-path': blobFile,
          mediatype: 'application/vnd.oci.image.layer.v1.tar+gzip',
        },
      ],
    });
    const src = await openNix2container(file, { root });
    const got: SourceLayer[] = [];
    for await (const l of src.layers()) got.push(l);
    expect(got[0]).toMatchObject({ index: 0, diffId: sha(tar), name: `layer 0 (${app})` });
    expect(sha(await readAll(got[0]!.raw!))).toBe(got[0]!.diffId);
    expect(got[1]!.blob?.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    expect((await readAll(got[1]!.blob!.open())).toString()).toBe('not really gzip');
    const { config, order } = await src.finish();
    expect(order).toEqual([0, 1]);
    expect(config).toMatchObject({
      architecture: 'arm64',
      os: 'linux',
      diffIds: [sha(tar), `sha256:${'2'.repeat(64)}`],
    });
    expect(JSON.parse(config.raw.toString())).toMatchObject({
      config: { Entrypoint: [`${app}/bin/app`] },
      rootfs: { type: 'layers' },
    });
  });

  it('verifyDiffId names the layer, its store paths and both digests', () => {
    const l = { index: 1, name: `layer 1 (${app}, ${lib})`, diffId: `sha256:${'a'.repeat(64)}` };
    expect(() => verifyDiffId(l, `sha256:${'a'.repeat(64)}`)).not.toThrow();
    let err: unknown;
    try {
      verifyDiffId(l, `sha256:${'b'.repeat(64)}`);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    expect(String(err)).toContain(`layer 1 (${app}, ${lib})`);
    expect(String(err)).toContain('a'.repeat(64));
    expect(String(err)).toContain('b'.repeat(64));
  });

  it('refuses a malformed image.json with the layer named', async () => {
    const bad = await image({
      version: 1,
      'image-config': {},
      layers: [{ digest: 'sha256:zz', diff_ids: 'x', paths: [] }],
    });
    await expect(openNix2container(bad)).rejects.toThrow(/layer 0 has no valid 'digest'/);
    const gone = await image({
      'image-config': {},
      layers: [
        {
          digest: sha(Buffer.from('')),
          diff_ids: sha(Buffer.from('')),
          size: 0,
          'layer-path': '/nope.tar',
          mediatype: 'x',
        },
      ],
    });
    await expect(openNix2container(gone)).rejects.toThrow(/layer-path that does not exist/);
  });
});
