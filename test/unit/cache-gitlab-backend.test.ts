/**
 * The GitLab backend's own decisions, without Nix: where the directory is, what restore reports for an empty, keyless
 * or keyed cache, the recorded key, and that save keeps what today's paths use while pruning to max-size. Export and
 * import through real Nix are covered by test/integration/cache-gitlab.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RestoreRequest, SaveRequest } from '../../src/cache/backend.js';
import {
  GITLAB_CACHE_DIR,
  gitlabBackend,
  gitlabCacheDir,
  KEY_FILE,
  readRecordedKey,
  touchInUse,
  UNRECORDED_KEY,
  writeRecordedKey,
} from '../../src/cache/gitlab-backend.js';
import { hitKind } from '../../src/cache/key.js';
import type { NixCommand } from '../../src/nix/command.js';
import { RecordingPlatform } from '../../src/platform/recording.js';

const sp = (c: string, name: string) => `/nix/store/${c.repeat(32)}-${name}`;
const KEY = 'flake-ci-nix-linux-x64-0123456789abcdef';

/** A NixCommand for which every path is already valid: import has nothing to copy. Records every call. */
function fakeNix(valid: string[] = []): NixCommand & { calls: string[][] } {
  const calls: string[][] = [];
  const run = async (args: readonly string[]) => {
    calls.push([...args]);
    if (args[0] === 'path-info' && args[1] === '--all') return { exitCode: 0, stdout: valid.join('\n'), stderr: '' };
    throw new Error(`unexpected nix ${args.join(' ')}`);
  };
  return { calls, run, runStore: run } as unknown as NixCommand & { calls: string[][] };
}

describe('gitlab backend', () => {
  let workspace: string;
  let dir: string;
  let p: RecordingPlatform;
  const restoreReq = (): RestoreRequest => ({
    primaryKey: KEY,
    restoreKeys: [],
    trustedPublicKeys: [],
    trustSource: true,
    tempDir: workspace,
  });
  const saveReq = (extra: Partial<SaveRequest> = {}): SaveRequest => ({
    primaryKey: KEY,
    entrySuffix: '1-1',
    paths: [],
    tempDir: workspace,
    ...extra,
  });

  beforeEach(() => {
    workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-glb-'));
    dir = path.join(workspace, GITLAB_CACHE_DIR);
    p = new RecordingPlatform({}, {}, { workspace });
  });
  afterEach(() => fs.rmSync(workspace, { recursive: true, force: true }));

  /** A cache entry with a NAR of `size` bytes whose narinfo was modified `age` seconds ago. */
  function add(storePath: string, size: number, age: number, refs: string[] = []): string {
    fs.mkdirSync(path.join(dir, 'nar'), { recursive: true });
    const url = `nar/${storePath.slice(11, 43)}.nar.zst`;
    fs.writeFileSync(path.join(dir, url), Buffer.alloc(size));
    const file = path.join(dir, `${storePath.slice(11, 43)}.narinfo`);
    fs.writeFileSync(
      file,
      `StorePath: ${storePath}\nURL: ${url}\nCompression: zstd\nFileSize: ${size}\n` +
        `NarHash: sha256:${'1'.repeat(52)}\nNarSize: ${size}\nReferences: ${refs.map((r) => path.basename(r)).join(' ')}\n`,
    );
    const t = Date.now() / 1000 - age;
    fs.utimesSync(file, t, t);
    return file;
  }
  const cached = () =>
    fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.narinfo'))
      .sort();

  it('lives in .flake-ci/nix-cache under the project directory (the path cache.yml declares)', () => {
    expect(gitlabBackend.name).toBe('gitlab');
    expect(gitlabCacheDir(p)).toBe(path.join(workspace, '.flake-ci', 'nix-cache'));
    const template = fs.readFileSync(
      path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../gitlab-templates/cache.yml'),
      'utf8',
    );
    expect(template).toContain(`paths: [${GITLAB_CACHE_DIR}]`);
  });

  it('restores nothing, without running Nix, when GitLab restored no cache', async () => {
    const nix = fakeNix();
    expect(await gitlabBackend.restore(p, nix, restoreReq())).toEqual({ pathsRestored: 0, bytesDown: 0 });
    // An interrupted export's placeholders are not a cache either.
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(
      path.join(dir, `${'u'.repeat(32)}.narinfo`),
      `StorePath: ${sp('u', 'x')}\nURL: flake-ci-placeholder-not-in-this-cache\nNarHash: sha256:${'0'.repeat(52)}\nNarSize: 1\n`,
    );
    const r = await gitlabBackend.restore(p, nix, restoreReq());
    expect(r.matchedKey).toBeUndefined();
    expect(hitKind(r.matchedKey, KEY)).toBe('miss');
    expect(nix.calls).toEqual([]);
    expect(p.logs.map((l) => l.message).join('\n')).toMatch(/No Nix cache in \.flake-ci\/nix-cache/);
  });

  it('reports the key the saving job recorded: exact for the same key, partial for another or none', async () => {
    const a = sp('a', 'a');
    add(a, 100, 10);
    const nix = fakeNix([a]);
    let r = await gitlabBackend.restore(p, nix, restoreReq());
    expect(r).toEqual({ matchedKey: UNRECORDED_KEY, pathsRestored: 0, bytesDown: 0 });
    expect(hitKind(r.matchedKey, KEY)).toBe('partial');

    await writeRecordedKey(dir, KEY);
    r = await gitlabBackend.restore(p, nix, restoreReq());
    expect(hitKind(r.matchedKey, KEY)).toBe('exact');
    await writeRecordedKey(dir, 'flake-ci-nix-linux-arm64-0123456789abcdef');
    r = await gitlabBackend.restore(p, nix, restoreReq());
    expect(hitKind(r.matchedKey, KEY)).toBe('partial');
    expect(p.logs.map((l) => l.message).join('\n')).toContain('1 of its 1 paths were already in the store');
  });

  it('reads back only a single-line printable key (the file comes from a shared cache archive)', async () => {
    fs.mkdirSync(dir, { recursive: true });
    expect(await readRecordedKey(dir)).toBeUndefined();
    await writeRecordedKey(dir, KEY);
    expect(fs.readFileSync(path.join(dir, KEY_FILE), 'utf8')).toBe(`${KEY}\n`);
    expect(await readRecordedKey(dir)).toBe(KEY);
    for (const bad of ['two\nlines', 'with space', 'x'.repeat(513), 'bell\x07', '']) {
      fs.writeFileSync(path.join(dir, KEY_FILE), bad);
      expect(await readRecordedKey(dir)).toBeUndefined();
    }
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('saves nothing and creates no directory when there is neither a new path nor a cache', async () => {
    const nix = fakeNix();
    expect(await gitlabBackend.save(p, nix, saveReq({ maxBytes: 1000 }))).toEqual({
      pathsSaved: 0,
      bytesUp: 0,
      entries: 0,
    });
    expect(fs.existsSync(dir)).toBe(false);
    expect(nix.calls).toEqual([]);
  });

  it('with nothing new, keeps the cache, records the key and prunes it to max-size, oldest first', async () => {
    const old = sp('o', 'old');
    const mid = sp('m', 'mid');
    const young = sp('y', 'young');
    add(old, 400, 300);
    add(mid, 400, 200);
    add(young, 400, 100);
    const res = await gitlabBackend.save(p, fakeNix(), saveReq({ maxBytes: 1000 }));
    expect(res).toEqual({ pathsSaved: 0, bytesUp: 0, entries: 0 });
    expect(cached()).toEqual([`${'y'.repeat(32)}.narinfo`]);
    expect(await readRecordedKey(dir)).toBe(KEY);
    expect(p.logs.map((l) => l.message).join('\n')).toMatch(/Pruned 2 older paths to stay under max-size/);
    // No limit: everything stays.
    add(old, 400, 300);
    await gitlabBackend.save(p, fakeNix(), saveReq());
    expect(cached()).toHaveLength(2);
  });

  it('marks what the saved paths reference as used, so pruning drops unused entries instead', async () => {
    // dep is the oldest entry but today's paths need it; unused is younger but nothing refers to it.
    const dep = sp('d', 'dep');
    const depdep = sp('e', 'dep-of-dep');
    const unused = sp('u', 'unused');
    const fresh = sp('f', 'fresh');
    add(depdep, 300, 600);
    add(dep, 300, 500, [depdep, dep]);
    add(unused, 300, 400);
    add(fresh, 300, 0, [dep]);
    expect(await touchInUse(dir, [fresh, sp('z', 'not-cached')])).toBe(3);
    const mtime = (c: string) => fs.statSync(path.join(dir, `${c.repeat(32)}.narinfo`)).mtimeMs;
    expect(Date.now() - mtime('d')).toBeLessThan(60_000);
    expect(Date.now() - mtime('e')).toBeLessThan(60_000);
    expect(Date.now() - mtime('u')).toBeGreaterThan(300_000);

    // The prune that save runs next keeps the chain and drops `unused`, now the oldest, to fit the chain's size.
    const size = (c: string) => 300 + fs.statSync(path.join(dir, `${c.repeat(32)}.narinfo`)).size;
    await gitlabBackend.save(p, fakeNix(), saveReq({ maxBytes: size('d') + size('e') + size('f') }));
    expect(cached()).toEqual([`${'d'.repeat(32)}.narinfo`, `${'e'.repeat(32)}.narinfo`, `${'f'.repeat(32)}.narinfo`]);
  });
});
