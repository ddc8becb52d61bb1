/**
 * The streaming restore's parts without Nix or a service: NAR parsing into a directory with Nix's metadata, the pump
 * fed in any chunking, refusal of hostile archives, Nix's base-32, the bundle format, the tar reader on a real
 * `tar --posix` archive, narinfo signatures, and the entry version @actions/cache computes.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BUNDLE_FILE, readBundle, readTar, writeBundle, type BundleHeader } from '../../src/cache/bundle.js';
import { cacheVersion } from '../../src/cache/entry-stream.js';
import { localStoreFor, reginfoRecord, StoreSink } from '../../src/cache/local-store.js';
import { fromNix32, NarError, parseSha256, Pump, readNar, toNix32 } from '../../src/cache/nar.js';
import type { Narinfo } from '../../src/cache/narinfo.js';
import { fingerprint, publicKeyObjects, signedByAny } from '../../src/cache/signing.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cache-stream-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A NAR serialiser for tests: nodes as plain objects. */
type Node = { file: string | Buffer; exec?: boolean } | { link: string } | { dir: Record<string, Node> };
function nar(node: Node): Buffer {
  const parts: Buffer[] = [];
  const str = (s: string | Buffer) => {
    const b = Buffer.from(s);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(b.length));
    parts.push(len, b, Buffer.alloc((8 - (b.length % 8)) % 8));
  };
  const walk = (n: Node) => {
    str('(');
    str('type');
    if ('file' in n) {
      str('regular');
      if (n.exec) for (const t of ['executable', '']) str(t);
      str('contents');
      str(n.file);
    } else if ('link' in n) {
      for (const t of ['symlink', 'target', n.link]) str(t);
    } else {
      str('directory');
      for (const name of Object.keys(n.dir).sort()) {
        str('entry');
        str('(');
        str('name');
        str(name);
        str('node');
        walk(n.dir[name] as Node);
        str(')');
      }
    }
    str(')');
  };
  str('nix-archive-1');
  walk(node);
  return Buffer.concat(parts);
}

/** Feeds `data` to a parser in chunks of `size` bytes. */
function feed<T>(gen: Generator<unknown, T, Buffer>, data: Buffer, size: number): Pump {
  const pump = new Pump(gen as never);
  for (let i = 0; i < data.length; i += size) pump.push(data.subarray(i, i + size));
  return pump;
}

const TREE: Node = {
  dir: {
    bin: { dir: { hello: { file: '#!/bin/sh\necho hi\n', exec: true } } },
    'data.txt': { file: Buffer.alloc(100_000, 7) },
    link: { link: 'bin/hello' },
  },
};

describe('NAR restore', () => {
  it.each([1, 7, 4096, 1 << 20])('writes files with Nix metadata and hashes every byte (chunks of %i)', (size) => {
    const data = nar(TREE);
    const target = path.join(tmp, `out-${size}`);
    const hash = createHash('sha256');
    let bytes = -1;
    const pump = feed(
      (function* () {
        bytes = yield* readNar(new StoreSink(target), hash);
      })(),
      data,
      size,
    );
    expect(pump.done).toBe(true);
    expect(bytes).toBe(data.length);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    expect(fs.readFileSync(path.join(target, 'bin/hello'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
    expect(fs.statSync(path.join(target, 'bin/hello')).mode & 0o777).toBe(0o555);
    expect(fs.statSync(path.join(target, 'data.txt')).mode & 0o777).toBe(0o444);
    expect(fs.statSync(target).mode & 0o777).toBe(0o555);
    expect(fs.readlinkSync(path.join(target, 'link'))).toBe('bin/hello');
    for (const p of ['', 'bin', 'data.txt', 'link']) expect(fs.lstatSync(path.join(target, p)).mtimeMs).toBe(1000);
  });

  it('refuses names that would leave the path, unsorted entries and garbage', () => {
    const parse = (data: Buffer) => () => feed(readNar(undefined, createHash('sha256')), data, 64);
    expect(parse(nar({ dir: { '..': { file: 'x' } } }))).toThrow(NarError);
    expect(parse(nar({ dir: { 'a/b': { file: 'x' } } }))).toThrow(NarError);
    const unsorted = nar({ dir: { b: { file: 'x' }, a: { file: 'y' } } });
    // The serialiser sorts; swap the two names to make them unsorted.
    const swapped = Buffer.from(unsorted.toString('latin1').replace(/a(\0+)/, 'c$1'), 'latin1');
    expect(parse(swapped)).toThrow(/sorted/);
    expect(parse(Buffer.from('not a nar at all, really'))).toThrow(NarError);
  });

  it("speaks Nix's base-32 and its hash notations", () => {
    const empty = createHash('sha256').update('').digest();
    expect(toNix32(empty)).toBe('0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73');
    const hello = createHash('sha256').update('hello').digest();
    expect(toNix32(hello)).toBe('094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic');
    expect(fromNix32(toNix32(hello), 32)).toEqual(hello);
    expect(parseSha256(`sha256:${toNix32(hello)}`)).toEqual(hello);
    expect(parseSha256(`sha256:${hello.toString('hex')}`)).toEqual(hello);
    expect(parseSha256(`sha256-${hello.toString('base64')}`)).toEqual(hello);
    expect(parseSha256('md5:abc')).toBeUndefined();
  });
});

describe('bundles', () => {
  const sp = (c: string, name: string) => `/nix/store/${c.repeat(32)}-${name}`;
  const cache = path.join(tmp, 'binary-cache');
  const entries = [
    { path: sp('b', 'lib'), data: nar({ file: 'lib' }), refs: [] as string[] },
    { path: sp('a', 'app'), data: nar(TREE), refs: [sp('b', 'lib')] },
  ];
  fs.mkdirSync(path.join(cache, 'nar'), { recursive: true });
  for (const e of entries) {
    const hash = toNix32(createHash('sha256').update(e.data).digest());
    fs.writeFileSync(path.join(cache, 'nar', `${hash}.nar`), e.data);
    fs.writeFileSync(
      path.join(cache, `${e.path.slice(11, 43)}.narinfo`),
      `StorePath: ${e.path}\nURL: nar/${hash}.nar\nCompression: none\nNarHash: sha256:${hash}\n` +
        `NarSize: ${e.data.length}\nReferences: ${e.refs.map((r) => r.slice(11)).join(' ')}\n`,
    );
  }

  it('holds the narinfos first, then the NARs in dependency order, and reads back in any chunking', async () => {
    const file = path.join(tmp, BUNDLE_FILE);
    expect(await writeBundle(file, cache, { key: 'k-2', parents: ['k-1'] })).toBe(2);
    const data = fs.readFileSync(file);
    for (const size of [3, 65536]) {
      let header: BundleHeader | undefined;
      const seen: Array<[string, string, number]> = [];
      let infos: Narinfo[] = [];
      const pump = feed(
        readBundle({
          header: (h, parsed) => ((header = h), (infos = parsed)),
          begin: () => ({}),
          end: (i, sha, n) => void seen.push([(infos[i] as Narinfo).storePath, toNix32(sha), n]),
        }),
        data,
        size,
      );
      expect(pump.done && pump.leftover === 0).toBe(true);
      expect(header).toMatchObject({ key: 'k-2', parents: ['k-1'] });
      expect(seen.map((s) => s[0])).toEqual([sp('b', 'lib'), sp('a', 'app')]);
      for (const [i, [, hash, n]] of seen.entries()) {
        expect(`sha256:${hash}`).toBe((infos[i] as Narinfo).narHash);
        expect(n).toBe((infos[i] as Narinfo).narSize);
      }
    }
  });

  it('finds the bundle in a GNU tar --posix archive, as @actions/cache writes it', () => {
    const dir = path.join(tmp, 'tar');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, BUNDLE_FILE), Buffer.alloc(5000, 1));
    const archive = execFileSync('tar', ['--posix', '-cf', '-', '-C', dir, BUNDLE_FILE]);
    const got: Buffer[] = [];
    feed(
      readTar(
        (name) => (name === BUNDLE_FILE ? (b: Buffer) => void got.push(Buffer.from(b)) : undefined),
        () => undefined,
      ),
      archive,
      1000,
    );
    expect(Buffer.concat(got)).toEqual(Buffer.alloc(5000, 1));
  });
});

describe('trust and registration', () => {
  it('checks narinfo signatures against the fingerprint Nix signs', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url').toString('base64');
    const keys = publicKeyObjects([`k-1:${pub}`]);
    const info = { storePath: '/nix/store/x-a', narSize: 8, references: ['/nix/store/z-c', '/nix/store/y-b'] };
    const fp = fingerprint(info, 'h'.repeat(52));
    expect(fp).toBe(`1;/nix/store/x-a;sha256:${'h'.repeat(52)};8;/nix/store/y-b,/nix/store/z-c`);
    const sig = `k-1:${sign(null, Buffer.from(fp), privateKey).toString('base64')}`;
    expect(signedByAny(fp, [sig], keys)).toBe(true);
    expect(signedByAny(`${fp}x`, [sig], keys)).toBe(false);
    expect(signedByAny(fp, [sig.replace('k-1', 'k-2')], keys)).toBe(false);
  });

  it('writes registrations as --load-db reads them', () => {
    const rec = reginfoRecord({ path: '/nix/store/x-a', narHashHex: 'ab', narSize: 8, references: ['/nix/store/y'] });
    expect(rec).toBe('/nix/store/x-a\nab\n8\n\n1\n/nix/store/y\n');
  });

  it('writes into local stores only: not through a daemon, nor into a relocated store', () => {
    const none = () => undefined;
    expect(localStoreFor('auto', none, 0)).toEqual({ realStoreDir: '/nix/store' });
    expect(localStoreFor('/tmp/chroot', none, 0)).toEqual({ realStoreDir: '/tmp/chroot/nix/store' });
    expect(localStoreFor('local?root=/r', none, 0)).toEqual({ realStoreDir: '/r/nix/store' });
    expect(localStoreFor('daemon', none, 0)).toBeUndefined();
    expect(localStoreFor('ssh-ng://host', none, 0)).toBeUndefined();
    expect(localStoreFor('auto', (k) => (k === 'NIX_STORE_DIR' ? '/x' : undefined), 0)).toBeUndefined();
    // Not root: only a store we can write (checked on disk; this one does not exist).
    expect(localStoreFor(path.join(tmp, 'no-such-root'), none, 12345)).toBeUndefined();
  });

  it('computes the entry version exactly as @actions/cache does', async () => {
    const lib = '../../node_modules/@actions/cache/lib/internal/cacheUtils.js';
    const utils = (await import(lib)) as { getCacheVersion: (p: string[], c: string) => string };
    for (const c of ['zstd-without-long', 'gzip'] as const)
      expect(cacheVersion([BUNDLE_FILE], c)).toBe(utils.getCacheVersion([BUNDLE_FILE], c));
  });
});
