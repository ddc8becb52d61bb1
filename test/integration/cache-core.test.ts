/**
 * The cache core against real Nix 2.8 (Debian) and the relocated Nix 2.34.8: store snapshots, selection, binary cache
 * export/import with and without signatures, corrupted NARs, and the store backend against nginx with WebDAV PUT.
 * Every store is a throwaway chroot store (`store = DIR` in a private nix.conf): the host /nix is never touched, and
 * no store is shared between Nix versions. Builds are offline (`substituters =`) with no sandbox.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { exportBinaryCache, importBinaryCache, ImportError, narinfoPaths } from '../../src/cache/binary-cache.js';
import { pruneBinaryCache } from '../../src/cache/prune.js';
import { selectForSave } from '../../src/cache/select.js';
import { newPaths, readSnapshot, snapshotStore, takeSnapshot } from '../../src/cache/snapshot.js';
import { restoreFromStore, saveToStore } from '../../src/cache/store-backend.js';
import { NixCommand } from '../../src/nix/command.js';
import { RecordingPlatform } from '../../src/platform/recording.js';
import { NIX234_BIN } from '../support/fixtures.js';
import { requireNginx, startNginxCache, type NginxCache } from '../support/nginx-cache.mjs';

const given = process.env.FLAKE_CI_NIX234 || NIX234_BIN;
const BINARIES = [
  { name: 'Debian Nix 2.8', bin: '/usr/bin' },
  { name: 'Nix 2.34', bin: fs.existsSync(given) && fs.statSync(given).isDirectory() ? given : path.dirname(given) },
];

/** A chain of derivations: fix-i references every fix-j with j < i, so order and closures matter. */
const FIXTURE = `{ salt, n ? 10 }:
let
  mk = i: deps: derivation {
    name = "fix-\${toString i}"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin";
    args = [ "-c" "mkdir $out; echo \${salt}-\${toString i} > $out/data; head -c 4096 /dev/urandom > $out/noise; for d in $deps; do echo $d >> $out/refs; done" ];
    inherit deps;
  };
  go = i: if i == 0 then [ ] else let prev = go (i - 1); in prev ++ [ (mk i prev) ];
in go n
`;

/** A Nix-format ed25519 key pair (secret = seed || public key). */
function nixKeyPair(name: string): { secret: string; pub: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d as string, 'base64url');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url');
  return {
    secret: `${name}:${Buffer.concat([seed, pub]).toString('base64')}`,
    pub: `${name}:${pub.toString('base64')}`,
  };
}

describe.each(BINARIES)('cache core with $name', ({ bin }) => {
  let tmp: string;
  let platform: RecordingPlatform;
  let a: NixCommand;
  let built: string[];
  let selected: string[];
  const keyA = nixKeyPair('test-a-1');
  const keyB = nixKeyPair('test-b-1');
  const upstreamKey = nixKeyPair('fake-upstream-1');
  const servers: NginxCache[] = [];

  /** A fresh store with its own nix.conf, HOME and caches. */
  async function store(name: string, extraConf = '', env: Record<string, string> = {}): Promise<NixCommand> {
    const root = path.join(tmp, name);
    for (const d of ['conf', 'home', 'cache']) fs.mkdirSync(path.join(root, d), { recursive: true });
    const conf = [
      `store = ${root}/store`,
      'substituters =',
      'sandbox = false',
      // A chroot store builds in a chroot even without the sandbox: the builder's /bin/sh must be mapped in.
      'sandbox-paths = /bin /usr /lib /lib64',
      'build-users-group =',
      extraConf,
    ].join('\n');
    fs.writeFileSync(path.join(root, 'conf', 'nix.conf'), `${conf}\n`);
    return NixCommand.detect(platform, bin, {
      NIX_CONF_DIR: path.join(root, 'conf'),
      HOME: path.join(root, 'home'),
      XDG_CONFIG_HOME: path.join(root, 'home'),
      XDG_CACHE_HOME: path.join(root, 'cache'),
      ...env,
    });
  }
  const build = async (nix: NixCommand, salt: string, extra: string[] = []) => {
    const args = [path.join(tmp, 'fixture.nix'), '--argstr', 'salt', salt, '--no-out-link', ...extra];
    return (await nix.runProgram('nix-build', args)).stdout.trim().split('\n');
  };
  /** Builds nothing: succeeds only when every output can be had from the store or a substituter. */
  const buildNothing = (nix: NixCommand, salt: string) => build(nix, salt, ['--option', 'max-jobs', '0']);
  const verifyStore = async (nix: NixCommand) => {
    const res = await nix.runStore(['--verify', '--check-contents'], { allowFailure: true });
    expect(res.exitCode).toBe(0);
    expect(res.stderr).not.toMatch(/modified|invalid|corrupt/i);
  };
  /** A fresh store whose NIX_CONFIG is what restoreFromStore exports (appended to one the job already had). */
  const pull = async (name: string, url: string, opts: { keys?: string[]; trust?: boolean }) => {
    const p = new RecordingPlatform({}, { NIX_CONFIG: 'max-jobs = 0' });
    restoreFromStore(p, { url, trustedPublicKeys: opts.keys ?? [], trustSource: opts.trust ?? false });
    return store(name, '', { NIX_CONFIG: p.exported.NIX_CONFIG as string });
  };
  const importFails = async (nix: NixCommand, dir: string, opts: Parameters<typeof importBinaryCache>[2]) => {
    const err = await importBinaryCache(nix, dir, opts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImportError);
    return err as ImportError;
  };
  const cacheCopy = (from: string, name: string) => {
    const to = path.join(tmp, name);
    fs.cpSync(from, to, { recursive: true });
    return to;
  };
  const narinfoFile = (dir: string, storePath: string) =>
    path.join(dir, `${path.basename(storePath).slice(0, 32)}.narinfo`);
  const narinfo = (dir: string, storePath: string) => fs.readFileSync(narinfoFile(dir, storePath), 'utf8');
  const narOf = (dir: string, storePath: string) =>
    path.join(dir, /^URL: (.*)$/m.exec(narinfo(dir, storePath))?.[1] ?? '');

  beforeAll(async () => {
    if (!fs.existsSync(path.join(bin, 'nix'))) {
      const fix = bin === '/usr/bin' ? 'apt-get install nix-bin' : `run 'bash test/setup/nix-fixtures.sh'`;
      throw new Error(`${bin}/nix is missing: ${fix}.`);
    }
    requireNginx();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-cache-core-'));
    fs.writeFileSync(path.join(tmp, 'fixture.nix'), FIXTURE);
    platform = new RecordingPlatform({}, {}, { temp: tmp });
    a = await store('a');
  });

  afterAll(async () => {
    for (const s of servers) await s.stop();
    if (!tmp) return;
    fs.chmodSync(tmp, 0o755);
    for (const p of fs.readdirSync(tmp, { recursive: true, withFileTypes: true }))
      if (!p.isSymbolicLink()) fs.chmodSync(path.join(p.parentPath, p.name), p.isDirectory() ? 0o755 : 0o644);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('snapshots the store before and after a build and selects the new outputs', async () => {
    const before = await takeSnapshot(a, tmp);
    built = await build(a, 'one');
    expect(built).toHaveLength(10);
    const diff = newPaths(await readSnapshot(before.file), await snapshotStore(a));
    // Ten outputs and their ten derivations.
    expect(diff.filter((p) => p.endsWith('.drv'))).toHaveLength(10);
    expect(diff.filter((p) => !p.endsWith('.drv')).sort()).toEqual([...built].sort());
    const selection = await selectForSave(a, { newPaths: diff });
    selected = selection.paths;
    expect(selected).toEqual([...built].sort());
    expect(selection.skipped.derivations).toBe(10);
    // `explicit` adds closures; patterns do not apply to them.
    const explicit = await selectForSave(a, { newPaths: [], explicit: [built[2] as string], exclude: ['*'] });
    expect(explicit.paths).toEqual(built.slice(0, 3).sort());
  });

  it('lists ~2000 valid paths quickly', async () => {
    const big = await store('big');
    // builtins.toFile writes each file to the store while evaluating: 2000 valid paths in a fraction of a second.
    const files = 'map (i: builtins.toFile "f${toString i}" (toString i)) (builtins.genList (x: x) 2000)';
    await big.run(['eval', '--impure', '--expr', `builtins.length (builtins.filter (f: f != "") (${files}))`]);
    const times: number[] = [];
    let count = 0;
    for (let i = 0; i < 5; i++) {
      const t0 = process.hrtime.bigint();
      count = (await snapshotStore(big)).size;
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const median = times.sort((x, y) => x - y)[2] as number;
    process.stdout.write(
      `snapshot of ${count} paths with ${big.version.major}.${big.version.minor}: ${median.toFixed(0)} ms\n`,
    );
    expect(count).toBeGreaterThanOrEqual(2000);
    expect(median).toBeLessThan(2000);
  });

  it('exports the selected paths as a zstd binary cache; a fresh store imports them and builds nothing', async () => {
    const dir = path.join(tmp, 'bc-plain');
    const res = await exportBinaryCache(a, dir, selected, { tempDir: tmp });
    expect(res.exported).toEqual(built); // dependency order: fix-1 first
    expect(res.added).toEqual(built);
    expect(res.bytes).toBeGreaterThan(10 * 4096 * 0.9);
    // Incremental: exporting again adds nothing.
    expect(await exportBinaryCache(a, dir, selected, { tempDir: tmp })).toMatchObject({ added: [], bytes: 0 });
    expect(await narinfoPaths(dir)).toEqual(selected);
    const nar = narOf(dir, built[9] as string);
    expect(nar).toMatch(/\.nar\.zst$/);
    expect(fs.readFileSync(nar).subarray(0, 4).toString('hex')).toBe('28b52ffd'); // the zstd frame magic
    const b = await store('b');
    await expect(buildNothing(b, 'one')).rejects.toThrow(/max-jobs|build/); // the check has teeth
    const imported = await importBinaryCache(b, dir, { trustSource: true });
    expect(imported).toMatchObject({ available: 10, alreadyValid: 0, skipped: [] });
    expect(imported.imported).toEqual(built);
    expect(await buildNothing(b, 'one')).toEqual(built);
    await verifyStore(b);
    // Importing again finds everything there.
    expect(await importBinaryCache(b, dir, { trustSource: true })).toMatchObject({ alreadyValid: 10, imported: [] });
  });

  it('refuses unsigned paths unless the source is trusted', async () => {
    const dir = path.join(tmp, 'bc-plain');
    for (const [name, opts] of [
      ['nix-defaults', {}],
      ['keys-given', { trustedPublicKeys: [keyA.pub], trustSource: true }],
    ] as const) {
      const s = await store(`unsigned-${name}`);
      const err = await importFails(s, dir, opts);
      expect(err.message).toMatch(/signature/);
      expect(err.result.imported).toEqual([]);
      expect((await snapshotStore(s)).size).toBe(0);
    }
  });

  it('signs through a private key file and imports only with the right key', async () => {
    const dir = path.join(tmp, 'bc-signed');
    await exportBinaryCache(a, dir, selected, { tempDir: tmp, signingKey: keyA.secret });
    for (const p of selected) expect(narinfo(dir, p)).toMatch(/^Sig: test-a-1:/m);
    expect(fs.readdirSync(tmp).filter((n) => n.startsWith('flake-ci-key-'))).toEqual([]);
    expect(platform.allText()).not.toContain(keyA.secret.split(':')[1]);
    expect(platform.logs.some((l) => /secret-key=\//.test(l.message))).toBe(true); // a path, not the key

    const good = await store('signed-good');
    expect((await importBinaryCache(good, dir, { trustedPublicKeys: [keyB.pub, keyA.pub] })).imported).toEqual(built);
    const wrong = await store('signed-wrong');
    await importFails(wrong, dir, { trustedPublicKeys: [keyB.pub] });
    expect((await snapshotStore(wrong)).size).toBe(0);

    // A signature by the right key over another path: refused; what Nix had already added stays, all verified.
    const forged = cacheCopy(dir, 'bc-forged');
    const last = built[9] as string;
    const sig = /^Sig: .*$/m.exec(narinfo(forged, built[8] as string))?.[0] ?? '';
    fs.writeFileSync(narinfoFile(forged, last), narinfo(forged, last).replace(/^Sig: .*$/m, sig));
    const f = await store('signed-forged');
    expect((await importFails(f, forged, { trustedPublicKeys: [keyA.pub] })).result.imported).toEqual(
      built.slice(0, 9),
    );
    await verifyStore(f);
  });

  it.each(['flip', 'truncate', 'modify'])('rejects a corrupted NAR (%s) and registers nothing corrupt', async (how) => {
    const dir = cacheCopy(path.join(tmp, 'bc-plain'), `bc-${how}`);
    const nar = narOf(dir, built[4] as string); // fix-5: fix-1..4 come before it, fix-6..10 need it
    const bytes = fs.readFileSync(nar);
    const mid = bytes.length >> 1;
    if (how === 'truncate') fs.truncateSync(nar, mid);
    else if (how === 'flip') fs.writeFileSync(nar, bytes.fill(bytes.readUInt8(mid) ^ 1, mid, mid + 1));
    else {
      // A well-formed zstd frame and NAR with one byte of file content changed: only the NAR hash can tell.
      const plain = zstdDecompressSync(bytes);
      const at = plain.indexOf('one-5\n');
      expect(at).toBeGreaterThan(0);
      fs.writeFileSync(nar, zstdCompressSync(plain.fill('X', at + 4, at + 5)));
    }
    const s = await store(`corrupt-${how}`);
    const err = await importFails(s, dir, { trustSource: true });
    expect(err.message).toMatch(/hash mismatch|decompression failed|truncated|archive/i);
    expect(err.result.imported).toEqual(built.slice(0, 4));
    await verifyStore(s);
    process.stdout.write(`${how}: ${err.message.split('\n')[0]}\n`);
  });

  it('saves derivations when asked, with --derivation so Nix 2.8 does not take them for their outputs', async () => {
    const diff = [...(await snapshotStore(a))].filter((p) => /-fix-\d+(\.drv)?$/.test(p));
    const sel = await selectForSave(a, { newPaths: diff, include: ['fix-*'] });
    expect(sel.paths).toEqual(selected);
    const withDrvs = await selectForSave(a, { newPaths: diff, include: ['fix-*', '*.drv'] });
    expect(withDrvs.paths).toHaveLength(20);
    const dir = path.join(tmp, 'bc-drv');
    await exportBinaryCache(a, dir, withDrvs.paths, { tempDir: tmp });
    expect(await narinfoPaths(dir)).toEqual(withDrvs.paths);
    const s = await store('drv');
    expect((await importBinaryCache(s, dir, { trustSource: true })).imported.sort()).toEqual(withDrvs.paths);
    expect([...(await snapshotStore(s))].sort()).toEqual(withDrvs.paths);
  });

  it('saves only what upstream lacks, and import fetches the rest from upstream', async () => {
    const u = await store('u');
    const outs = await build(u, 'two');
    // Pretend fix-1..3 were substituted from upstream: they carry its signature, and "upstream" serves them.
    const keyFile = path.join(tmp, 'upstream.sec');
    fs.writeFileSync(keyFile, upstreamKey.secret, { mode: 0o600 });
    await u.run(['store', 'sign', '--key-file', keyFile, ...outs.slice(0, 3)]);
    const upstream = path.join(tmp, 'upstream');
    await u.run(['copy', '--to', `file://${upstream}`, ...outs.slice(0, 3)]);
    const sel = await selectForSave(u, { newPaths: outs, upstreamKeys: ['fake-upstream-1'] });
    expect(sel.paths).toEqual(outs.slice(3).sort());
    expect(sel.skipped.upstream).toBe(3);

    const dir = path.join(tmp, 'bc-new-only');
    await exportBinaryCache(u, dir, sel.paths, { tempDir: tmp });
    expect(await narinfoPaths(dir)).toEqual(sel.paths);
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.narinfo'))).toHaveLength(7); // no placeholder left
    expect(narinfo(dir, outs[3] as string)).toContain(path.basename(outs[2] as string)); // references kept

    const v = await store('v', `extra-substituters = file://${upstream}\ntrusted-public-keys = ${upstreamKey.pub}`);
    const res = await importBinaryCache(v, dir, { trustSource: true });
    expect(res.imported).toEqual(outs.slice(3));
    expect(await buildNothing(v, 'two')).toEqual(outs);
    // Without upstream the paths cannot be registered: reported as skipped, not thrown.
    const w = await store('w');
    const res2 = await importBinaryCache(w, dir, { trustSource: true });
    expect(res2.imported).toEqual([]);
    expect(res2.skipped.map((x) => x.path).sort()).toEqual(sel.paths);
    expect(res2.skipped[0]?.reason).toMatch(/neither in the cache nor available/);
  });

  it('prunes a real cache by age, with dependents, and the rest still imports', async () => {
    const dir = cacheCopy(path.join(tmp, 'bc-plain'), 'bc-pruned');
    for (const [i, p] of built.entries()) {
      const t = Date.now() / 1000 - (i === 5 ? 1000 : 100 - i); // fix-6 oldest; fix-7..10 need it
      fs.utimesSync(narinfoFile(dir, p), t, t);
    }
    const size = (await pruneBinaryCache(dir, Number.MAX_SAFE_INTEGER)).bytesAfter;
    const res = await pruneBinaryCache(dir, size - 1);
    expect(res.removed).toEqual(built.slice(5).sort());
    const s = await store('pruned');
    expect((await importBinaryCache(s, dir, { trustSource: true })).imported).toEqual(built.slice(0, 5));
    expect((await pruneBinaryCache(dir, 0)).bytesAfter).toBe(0);
  });

  it('store backend: pushes to nginx with WebDAV PUT, later steps substitute from it with the right key', async () => {
    const signed = await startNginxCache();
    servers.push(signed);
    const push = await saveToStore(a, [built[9] as string], { url: signed.url, signingKey: keyA.secret, tempDir: tmp });
    expect(push.uploaded).toBe(10); // the closure: a binary cache refuses a path without its references
    expect(signed.count('PUT', /\.narinfo /)).toBe(10);
    expect(signed.count('PUT', /\/nar\//)).toBe(10);
    expect(fs.readdirSync(signed.root).filter((n) => n.endsWith('.narinfo'))).toHaveLength(10);
    expect((await saveToStore(a, selected, { url: signed.url, signingKey: keyA.secret, tempDir: tmp })).uploaded).toBe(
      0,
    );
    expect(platform.allText()).not.toContain(keyA.secret.split(':')[1]);

    expect(await buildNothing(await pull('http-good', signed.url, { keys: [keyA.pub] }), 'one')).toEqual(built);
    expect(signed.count('GET', /\/nar\//)).toBe(10);
    const wrong = await pull('http-wrong', signed.url, { keys: [keyB.pub] });
    await expect(buildNothing(wrong, 'one')).rejects.toThrow();
    expect([...(await snapshotStore(wrong))].filter((p) => built.includes(p))).toEqual([]);

    const unsigned = await startNginxCache();
    servers.push(unsigned);
    await saveToStore(a, selected, { url: unsigned.url, tempDir: tmp });
    await expect(
      buildNothing(await pull('http-unsigned', unsigned.url, { keys: [keyA.pub] }), 'one'),
    ).rejects.toThrow();
    expect(await buildNothing(await pull('http-trusted', unsigned.url, { trust: true }), 'one')).toEqual(built);
  });

  it('store backend: file:// works the same way', async () => {
    const url = `file://${path.join(tmp, 'store-file')}`;
    await saveToStore(a, selected, { url, signingKey: keyA.secret, tempDir: tmp });
    expect(await buildNothing(await pull('file-pull', url, { keys: [keyA.pub] }), 'one')).toEqual(built);
  });
});
