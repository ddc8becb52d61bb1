/**
 * The GitLab cache backend alone against Nix 2.8 (Debian) and the relocated Nix 2.34, in throwaway chroot stores:
 * incremental saves into one directory (what was there stays as written), a fresh store that restores and then builds
 * nothing (`max-jobs 0`), and pruning to max-size. gitlab-templates/cache.yml end to end is cache-gitlab.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gitlabBackend, KEY_FILE } from '../../src/cache/gitlab-backend.js';
import { NixCommand } from '../../src/nix/command.js';
import { RecordingPlatform } from '../../src/platform/recording.js';
import { REPO_ROOT } from '../harness/github-runner.js';
import { NIX234_BIN, requireCommand } from '../support/fixtures.js';

const KEY = 'flake-ci-nix-linux-x64-0123456789abcdef';
const DRVS = path.join(REPO_ROOT, 'test/fixtures/cache-chain/drvs.nix');
let scratch: string;

beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-gitlab-backend-'));
});
afterAll(() => {
  if (!scratch) return;
  // Chmod back what Nix made read-only, so the scratch directory can be removed.
  fs.chmodSync(scratch, 0o755);
  for (const e of fs.readdirSync(scratch, { recursive: true, withFileTypes: true }))
    if (!e.isSymbolicLink()) fs.chmodSync(path.join(e.parentPath, e.name), e.isDirectory() ? 0o755 : 0o644);
  fs.rmSync(scratch, { recursive: true, force: true });
});

describe.each([
  { name: 'Debian Nix 2.8', bin: '/usr/bin' },
  { name: 'Nix 2.34', bin: process.env.FLAKE_CI_NIX234 || NIX234_BIN },
])('gitlabBackend with $name', ({ name, bin }) => {
  const root = () => path.join(scratch, name.replace(/\W/g, '-'));
  /** A fresh chroot store with its own nix.conf and HOME, offline and unsandboxed. */
  async function store(id: string): Promise<NixCommand> {
    const dir = path.join(root(), id);
    for (const d of ['conf', 'home']) fs.mkdirSync(path.join(dir, d), { recursive: true });
    const conf = [`store = ${dir}/store`, 'substituters =', 'sandbox = false', 'build-users-group =']
      // A chroot store builds in a chroot even without the sandbox: the builder's /bin/sh must be mapped in.
      .concat('sandbox-paths = /bin /usr /lib /lib64')
      .join('\n');
    fs.writeFileSync(path.join(dir, 'conf', 'nix.conf'), `${conf}\n`);
    const home = path.join(dir, 'home');
    return NixCommand.detect(undefined, bin, {
      NIX_CONF_DIR: path.join(dir, 'conf'),
      HOME: home,
      XDG_CACHE_HOME: home,
    });
  }
  const build = async (nix: NixCommand, attrs: string[], extra: string[] = []) => {
    const args = [DRVS, '--no-out-link', ...attrs.flatMap((a) => ['-A', a]), ...extra];
    return (await nix.runProgram('nix-build', args)).stdout.trim().split('\n');
  };

  it('saves incrementally, restores into a fresh store that builds nothing, and prunes to max-size', async () => {
    requireCommand(
      path.join(bin, 'nix'),
      bin === '/usr/bin' ? 'nix-bin' : "the fixtures ('test/setup/nix-fixtures.sh')",
    );
    const workspace = path.join(root(), 'project');
    const dir = path.join(workspace, '.flake-ci/nix-cache');
    const p = new RecordingPlatform({}, {}, { workspace, temp: root() });
    const save = { primaryKey: KEY, entrySuffix: '1-1', tempDir: root() };
    const one = await store('one');
    const chain = await build(one, ['a', 'b', 'c']);
    expect(await gitlabBackend.save(p, one, { ...save, paths: chain })).toMatchObject({ pathsSaved: 3, entries: 0 });
    const narinfos = () => fs.readdirSync(dir).filter((f) => f.endsWith('.narinfo'));
    const first = new Map(narinfos().map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')]));
    expect(first.size).toBe(3);
    expect(fs.readFileSync(path.join(dir, KEY_FILE), 'utf8')).toBe(`${KEY}\n`);

    // A second job with the restored chain builds `extra` only: that one path is added, the others stay as written.
    const [extra] = await build(one, ['extra']);
    const second = await gitlabBackend.save(p, one, { ...save, paths: [extra as string] });
    expect(second.pathsSaved).toBe(1);
    expect(second.bytesUp).toBeGreaterThan(4096 * 0.9);
    expect(narinfos()).toHaveLength(4);
    for (const [f, text] of first) expect(fs.readFileSync(path.join(dir, f), 'utf8')).toBe(text);

    const fresh = await store('fresh');
    const rebuildRefused = build(fresh, ['extra'], ['--option', 'max-jobs', '0']);
    await expect(rebuildRefused).rejects.toThrow(/max-jobs|build/); // the check below has teeth
    const restored = await gitlabBackend.restore(p, fresh, {
      primaryKey: KEY,
      restoreKeys: [],
      trustedPublicKeys: [],
      trustSource: true,
      tempDir: root(),
    });
    expect(restored).toMatchObject({ matchedKey: KEY, pathsRestored: 4 });
    expect(restored.bytesDown).toBeGreaterThan(4 * 4096 * 0.9);
    expect(await build(fresh, ['a', 'b', 'c', 'extra'], ['--option', 'max-jobs', '0'])).toEqual([...chain, extra]);

    // max-size smaller than the cache: the oldest go first, and what references them with them.
    const tiny = await gitlabBackend.save(p, one, { ...save, paths: [], maxBytes: 1 });
    expect(tiny.pathsSaved).toBe(0);
    expect(narinfos()).toEqual([]);
    expect(p.logs.map((l) => l.message).join('\n')).toMatch(/Pruned 4 older paths to stay under max-size/);
  });
});
