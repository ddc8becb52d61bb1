/**
 * actions/cache when things go wrong, end to end (dist bundles, runner harness, fresh tmpfs /nix per job, Nix 2.34):
 * read-only tokens and jobs, a 429 storm, the service down or answering 500, corrupted archives, an evicted parent
 * entry, and purge against the GitHub REST double. The build must stay green every time (strict: false), with a
 * warning that says what was skipped.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { scratchDir } from '../harness/namespace.mjs';
import { startCacheService, type CacheEntry, type CacheService } from '../support/actions-cache-service.mjs';
import {
  build,
  buildNothing,
  cacheJob,
  callsSince,
  countFixtures,
  NIX_VERSIONS,
  recordedText,
  visible,
  warnings,
  writeFixture,
  type JobOptions,
} from '../support/cache-jobs.js';
import { startGitHubApi, type GitHubApi } from '../support/github-api.mjs';

const bin = (NIX_VERSIONS[1] as { bin: string }).bin;
const TOKEN = 'ghs_flakeCiPurgeToken0123456789abcdef';
let svc: CacheService;
let scratch: string;
let fixture: string;

const job = (o: Omit<JobOptions, 'bin' | 'scratch'>) =>
  cacheJob(svc, { bin, scratch, ...o, inputs: { strict: 'false', ...o.inputs } });
const entriesOf = (key: string) => svc.entries().filter((e) => e.finalized && e.key.startsWith(`${key}-`));

beforeAll(async () => {
  scratch = scratchDir('cache-failures-');
  fixture = writeFixture(scratch);
  svc = await startCacheService();
});
afterAll(async () => {
  await svc?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('jobs that may not write', () => {
  it('a read-only token: the save is refused by the service, a warning, green', async () => {
    const r = await job({ inputs: { key: 'ro' }, token: { readOnly: true }, steps: [build(fixture, 'ro', 3)] });
    expect(r.main.ok && r.post?.ok).toBe(true);
    expect(warnings(r.post).join('\n')).toMatch(/Saving the Nix store cache failed.*cache write denied/s);
    expect(warnings(r.post)).toHaveLength(1);
    expect(r.post?.outputs).toEqual({ 'paths-saved': '0', 'bytes-up': '0' });
    expect(entriesOf('ro')).toHaveLength(0);
  });

  it('ACTIONS_CACHE_MODE=read and pull requests from forks do not even try', async () => {
    const event = path.join(scratch, 'event.json');
    writeFileSync(
      event,
      JSON.stringify({
        pull_request: {
          head: { repo: { full_name: 'someone/fork' } },
          base: { repo: { full_name: 'flake-ci/fixture' } },
        },
      }),
    );
    const from = svc.calls.length;
    const readMode = await job({
      inputs: { key: 'rm' },
      env: { ACTIONS_CACHE_MODE: 'read' },
      steps: [build(fixture, 'rm', 3)],
    });
    expect(visible(readMode.post)).toContain('the cache is read-only for this job (ACTIONS_CACHE_MODE=read)');
    const fork = await job({
      inputs: { key: 'fork' },
      env: { GITHUB_EVENT_NAME: 'pull_request', GITHUB_EVENT_PATH: event },
      steps: [build(fixture, 'fork', 3)],
    });
    expect(visible(fork.post)).toContain('this is a pull request from a fork');
    for (const r of [readMode, fork]) expect(warnings(r.post)).toEqual([]);
    expect(callsSince(svc, from, 'CreateCacheEntry')).toHaveLength(0);
    // save: always overrides auto's caution (here the token can write, so it saves).
    const forced = await job({
      inputs: { key: 'fork', save: 'always' },
      env: { GITHUB_EVENT_NAME: 'pull_request', GITHUB_EVENT_PATH: event },
      steps: [build(fixture, 'fork', 3)],
    });
    expect(forced.post?.outputs['paths-saved']).toBe('3');
  });
});

describe('a failing cache service never fails the job', () => {
  afterAll(async () => {
    await svc.setFailures({});
    svc.setRateLimit({ perMinute: 200 });
  });

  it('429 storm: a warning naming the rate limit, green, nothing saved', async () => {
    svc.setRateLimit({ perMinute: 0 });
    const r = await job({ inputs: { key: 'storm' }, steps: [build(fixture, 'storm', 3)] });
    svc.setRateLimit({ perMinute: 200 });
    expect(r.main.ok && r.post?.ok).toBe(true);
    expect(warnings(r.post).join('\n')).toMatch(/Saving the Nix store cache failed.*Rate limited/s);
    // One warning, ours, naming the cause: @actions/cache's own lines are in the log, not annotations.
    expect(warnings(r.post)).toHaveLength(1);
    expect(entriesOf('storm')).toHaveLength(0);
  });

  it('service down: restore and save are warnings, quickly', async () => {
    await svc.setFailures({ down: true });
    const r = await job({ inputs: { key: 'down' }, steps: [build(fixture, 'down', 3)] });
    await svc.setFailures({});
    expect(r.main.ok && r.post?.ok).toBe(true);
    expect(r.main.outputs).toMatchObject({ hit: 'miss', 'paths-restored': '0' });
    expect(warnings(r.main).join('\n')).toMatch(/Restoring the Nix store cache failed.*ECONNREFUSED/s);
    expect(warnings(r.post).join('\n')).toMatch(/Saving the Nix store cache failed/);
    expect(r.main.durationMs + (r.post?.durationMs ?? 0)).toBeLessThan(20_000);
  });

  it('persistent 500s: each step gives up at its time limit with a warning', async () => {
    await svc.setFailures({ status: { status: 500 } });
    const r = await job({ inputs: { key: 'http500', timeout: '4s' }, steps: [build(fixture, 'h500', 3)] });
    await svc.setFailures({});
    expect(r.main.ok && r.post?.ok).toBe(true);
    expect(warnings(r.main).join('\n')).toMatch(/Restoring the Nix store cache failed.*timed out after 4 s/s);
    expect(warnings(r.post).join('\n')).toMatch(/Saving the Nix store cache failed.*timed out after 4 s/s);
    // No `::error::` reaches the log: @actions/cache's 5xx errors are downgraded to warnings.
    expect(r.main.annotations.filter((a) => a.level === 'error')).toEqual([]);
  });

  it.each(['flip', 'truncate'] as const)(
    'a corrupted archive (%s) is rejected and nothing is imported',
    async (mode) => {
      if (entriesOf('corrupt').length === 0) {
        const saved = await job({ inputs: { key: 'corrupt', strict: 'true' }, steps: [build(fixture, 'corrupt', 5)] });
        expect(saved.post?.outputs['paths-saved']).toBe('5');
      }
      await svc.setFailures({ corruptDownloads: mode });
      const r = await job({ inputs: { key: 'corrupt' }, steps: [countFixtures] });
      await svc.setFailures({});
      expect(r.main.ok && r.post?.ok).toBe(true);
      expect(r.main.outputs).toMatchObject({ hit: 'miss', 'paths-restored': '0' });
      expect(warnings(r.main).join('\n')).toMatch(/Restoring the Nix store cache failed/);
      expect(r.steps?.[0]?.stdout.trim()).toBe('0');
    },
  );

  it('a NAR that does not match its narinfo is refused: nothing of that path is registered or left behind', async () => {
    await job({ inputs: { key: 'tamper', strict: 'true' }, steps: [build(fixture, 'tamper', 3)] });
    const [entry] = entriesOf('tamper') as [CacheEntry];
    // A valid archive whose bundle has one byte of fix-3's file changed: only the NAR hash can tell.
    const plain = zstdDecompressSync(Buffer.from(await svc.azurite.read(entry.blobName)));
    const at = plain.indexOf('tamper-3\n');
    expect(at).toBeGreaterThan(0);
    plain[at] = 'T'.charCodeAt(0);
    await svc.azurite.write(entry.blobName, zstdCompressSync(plain));
    const r = await job({
      inputs: { key: 'tamper' },
      steps: [countFixtures, "ls /nix/store | grep -c -- '-fix-[0-9]*$' || true"],
    });
    expect(r.main.ok && r.post?.ok).toBe(true);
    expect(warnings(r.main).join('\n')).toMatch(
      /Restoring the Nix store cache failed.*fix-3.*does not match the hash/s,
    );
    // fix-1 and fix-2 were verified and registered; of fix-3 nothing is registered, nor left on disk.
    expect(r.steps?.map((s) => s.stdout.trim())).toEqual(['2', '2']);
  });

  it('an evicted parent entry is a warning, and the next save stands on its own', async () => {
    await job({ inputs: { key: 'evict', strict: 'true' }, steps: [build(fixture, 'ev', 4)] });
    await job({
      inputs: { key: 'evict', strict: 'true' },
      steps: [buildNothing(fixture, 'ev', 4), build(fixture, 'ev', 6)],
    });
    const [parent, child] = entriesOf('evict') as [CacheEntry, CacheEntry];
    await svc.azurite.write(parent.blobName, Buffer.from('evicted'));
    const r = await job({ inputs: { key: 'evict' }, steps: [build(fixture, 'ev', 6)] });
    expect(r.main.outputs).toMatchObject({ hit: 'exact', 'restored-key': child.key });
    expect(warnings(r.main).join('\n')).toContain(`Cache entry ${parent.key}, which ${child.key} builds on`);
    // fix-5 and fix-6 need fix-1..4: nothing could be imported, the job rebuilt all 6, and all 6 are saved.
    expect(r.main.outputs['paths-restored']).toBe('0');
    expect(r.post?.outputs['paths-saved']).toBe('6');
    const own = entriesOf('evict').at(-1) as CacheEntry;
    const next = await job({ inputs: { key: 'evict', strict: 'true' }, steps: [buildNothing(fixture, 'ev', 6)] });
    expect(next.main.outputs).toMatchObject({ 'restored-key': own.key, 'paths-restored': '6' });
    expect(next.main.outputs['bytes-down']).toBe(String(own.sizeBytes));
  });
});

describe('purge', () => {
  let api: GitHubApi;
  beforeAll(async () => {
    api = await startGitHubApi({ token: TOKEN, repo: 'flake-ci/fixture' });
  });
  afterAll(async () => {
    await api?.close();
  });
  const daysAgo = (d: number) => new Date(Date.now() - d * 86_400_000).toISOString();
  const purgeJob = (strict: string) =>
    job({
      inputs: { key: 'purge', purge: 'true', 'purge-keep-last': '1', 'purge-max-age': '7', strict },
      env: { GITHUB_API_URL: api.url, GITHUB_REF: 'refs/heads/main' },
      githubToken: TOKEN,
    });

  it('deletes old entries of the key family on this ref, never what the run restored', async () => {
    await job({ inputs: { key: 'purge', strict: 'true' }, steps: [build(fixture, 'purge', 2)] });
    const restored = (entriesOf('purge')[0] as CacheEntry).key;
    const seed = (key: string, created: number, accessed = created, ref = 'refs/heads/main') =>
      api.addCache({ key, ref, created_at: daysAgo(created), last_accessed_at: daysAgo(accessed) });
    seed(restored, 40);
    const old1 = seed('purge-old-1', 30);
    const old2 = seed('purge-old-2', 20, 10);
    seed('purge-used', 20, 1);
    seed('purge-newest', 1);
    seed('other-old', 30);
    seed('purge-dev-old', 30, 30, 'refs/heads/dev');
    const r = await purgeJob('true');
    expect(r.post?.ok).toBe(true);
    expect(api.violations()).toEqual([]);
    const deleted = api.requests().filter((q) => q.operationId === 'actions/delete-actions-cache-by-id');
    expect(deleted.map((q) => q.params.cache_id).sort()).toEqual([old1.id, old2.id].sort());
    expect(
      api
        .caches()
        .map((c) => c.key)
        .sort(),
    ).toEqual([restored, 'purge-used', 'purge-newest', 'other-old', 'purge-dev-old'].sort());
    expect(visible(r.post)).toContain('Purged 2 of 5 cache entries');
    expect(recordedText(r)).not.toContain(TOKEN);
  });

  it('without actions: write it is a warning, and the job stays green', async () => {
    api.setPermissions({ actions: 'read' });
    api.addCache({ key: 'purge-old-3', created_at: daysAgo(30), last_accessed_at: daysAgo(30) });
    const r = await purgeJob('false');
    expect(r.post?.ok).toBe(true);
    expect(warnings(r.post).join('\n')).toMatch(/Purging older cache entries failed.*actions: write/s);
    expect(api.caches().map((c) => c.key)).toContain('purge-old-3');
  });
});
