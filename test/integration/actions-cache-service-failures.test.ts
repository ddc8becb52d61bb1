// How the REAL @actions/cache 6.3 behaves when the cache service v2 refuses, limits, fails or serves corrupted data,
// against the double (test/support/actions-cache-service.mjs). The messages asserted here are the ones the cache
// action will see on a runner; none of these cases may throw out of saveCache/restoreCache.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheWorkspace, restoreWith as restore, saveWith as save, snapshot } from '../support/actions-cache-run.js';
import { startCacheService } from '../support/actions-cache-service.mjs';
import type { CacheService } from '../support/actions-cache-service.mjs';

const scratch = mkdtempSync(join(tmpdir(), 'flake-ci-cache-fail-'));
let svc: CacheService;
let azure: CacheService;
const workspace = (files: Record<string, string | Buffer> = {}) => cacheWorkspace(scratch, files);
const callsSince = (s: CacheService, n: number) => s.calls.slice(n);
const RESERVE_FAILED = (key: string) =>
  `Failed to save: Unable to reserve cache with key ${key}, another job may be creating this cache.`;

beforeAll(async () => {
  // One after the other: if the second fails to start, afterAll still stops the first.
  svc = await startCacheService();
  azure = await startCacheService({ blobHostnames: 'azure' });
}, 60_000);

afterAll(async () => {
  await Promise.allSettled([svc?.stop(), azure?.stop()]);
  rmSync(scratch, { recursive: true, force: true });
}, 30_000);

describe('refusals', () => {
  it('same key twice: the second save is a logged no-op (409 already_exists), the entry keeps its bytes', async () => {
    const ws = workspace({ 'v.txt': 'first' });
    const first = await save(svc, ws, 'dup');
    const second = await save(svc, workspace({ 'v.txt': 'second' }), 'dup');
    expect(second).toMatchObject({ value: -1, warnings: [], errors: [] });
    expect(second.threw).toBeUndefined();
    // An info line, not a warning: @actions/cache folds every reservation failure into ReserveCacheError.
    expect(second.out).toContain(RESERVE_FAILED('dup'));
    expect(svc.calls.at(-1)).toMatchObject({ method: 'CreateCacheEntry', status: 409, result: 'already_exists' });
    const back = workspace();
    expect((await restore(svc, back, 'dup')).value).toBe('dup');
    expect(readFileSync(join(back, 'data/v.txt'), 'utf8')).toBe('first');
    expect(svc.entries().filter((e) => e.key === 'dup')).toEqual([expect.objectContaining({ id: first.value })]);
  });

  it('read-only token: save refused with a warning, restore still works; no readable scope: a miss', async () => {
    await save(svc, workspace({ 'v.txt': 'ro' }), 'ro-base');
    const refused = await save(svc, workspace({ 'v.txt': 'x' }), 'ro-new', { readOnly: true });
    expect(refused).toMatchObject({ value: -1, errors: [] });
    expect(refused.warnings).toEqual([
      'Failed to save: Unable to reserve cache with key ro-new. More details: cache write denied: token has no writable scopes',
    ]);
    expect(svc.calls.at(-1)).toMatchObject({ status: 200, result: 'write_denied' });
    expect(svc.entries().some((e) => e.key === 'ro-new')).toBe(false);
    expect((await restore(svc, workspace(), 'ro-base', [], { readOnly: true })).value).toBe('ro-base');

    const blind = await restore(svc, workspace(), 'ro-base', [], { scopes: [] });
    expect(blind).toMatchObject({ value: null, errors: [] });
    expect(blind.warnings).toEqual([expect.stringContaining('cache read denied: token has no readable scopes')]);
    expect(svc.calls.at(-1)).toMatchObject({ status: 403, result: 'read_denied' });
  });

  it('429 storm: saves beyond the limit fail quietly (a rate-limit warning), restores are not limited', async () => {
    svc.setRateLimit({ perMinute: 2 });
    try {
      const mark = svc.calls.length;
      for (const key of ['rl-1', 'rl-2'])
        expect((await save(svc, workspace({ k: key }), key)).value).toBeGreaterThan(0);
      const limited = await save(svc, workspace({ k: 'rl-3' }), 'rl-3');
      expect(limited).toMatchObject({ value: -1, errors: [] });
      expect(limited.threw).toBeUndefined();
      expect(limited.warnings).toEqual([
        expect.stringMatching(/^You've hit a rate limit, your rate limit will reset in \d+ seconds$/),
      ]);
      expect(limited.out).toContain(RESERVE_FAILED('rl-3'));
      // No retry of a 429: exactly one CreateCacheEntry for rl-3.
      expect(callsSince(svc, mark).filter((c) => c.key === 'rl-3')).toEqual([
        expect.objectContaining({ status: 429, result: 'rate_limited' }),
      ]);
      expect((await restore(svc, workspace(), 'rl-1')).value).toBe('rl-1');
    } finally {
      svc.setRateLimit({ perMinute: 200 });
    }
  });
});

describe('outages', () => {
  it('service down: restore is a miss with a warning, save is skipped, nothing throws', async () => {
    await save(svc, workspace({ 'v.txt': 'up' }), 'down-base');
    const mark = svc.calls.length;
    await svc.setFailures({ down: true });
    try {
      const r = await restore(svc, workspace(), 'down-base');
      expect(r).toMatchObject({ value: null, errors: [] });
      expect(r.threw).toBeUndefined();
      expect(r.warnings).toEqual([
        expect.stringMatching(
          /^Failed to restore: Failed to GetCacheEntryDownloadURL: Unable to make request: ECONNREFUSED\n/,
        ),
      ]);
      const s = await save(svc, workspace({ 'v.txt': 'x' }), 'down-new');
      expect(s).toMatchObject({ value: -1, warnings: [], errors: [] });
      expect(s.out).toContain(RESERVE_FAILED('down-new'));
      expect(callsSince(svc, mark)).toEqual([]);
    } finally {
      await svc.setFailures({});
    }
    expect((await restore(svc, workspace(), 'down-base')).value).toBe('down-base');
  });

  it('transient 503s are retried (3 s, then ~4.5-6.75 s) and the restore succeeds', async () => {
    await save(svc, workspace({ 'v.txt': 't' }), 'flaky');
    const mark = svc.calls.length;
    await svc.setFailures({ status: { status: 503, methods: ['GetCacheEntryDownloadURL'], times: 2 } });
    try {
      const r = await restore(svc, workspace(), 'flaky');
      expect(r).toMatchObject({ value: 'flaky', warnings: [], errors: [] });
      expect(r.out).toContain('Attempt 1 of 5 failed with error: Failed request: (503) Service Unavailable: injected');
      expect(callsSince(svc, mark).map((c) => c.result)).toEqual(['injected', 'injected', 'ok']);
    } finally {
      await svc.setFailures({});
    }
  });

  it('persistent 500s: five attempts (~25-35 s), then save and restore give up without throwing', async () => {
    await save(svc, workspace({ 'v.txt': 'p' }), 'broken');
    const mark = svc.calls.length;
    await svc.setFailures({ status: { status: 500 } });
    try {
      const [s, r] = await Promise.all([
        save(svc, workspace({ 'v.txt': 'q' }), 'broken-new'),
        restore(svc, workspace(), 'broken'),
      ]);
      expect(s).toMatchObject({ value: -1, warnings: [], errors: [] });
      expect(s.out).toContain(RESERVE_FAILED('broken-new'));
      expect(r).toMatchObject({ value: null, errors: [] });
      expect(r.warnings).toEqual([
        'Failed to restore: Failed to GetCacheEntryDownloadURL: Failed to make request after 5 attempts: ' +
          'Failed request: (500) Internal Server Error: injected failure (500)',
      ]);
      for (const ms of [s.ms, r.ms]) expect(ms).toBeGreaterThan(20_000);
      expect(callsSince(svc, mark).filter((c) => c.result === 'injected')).toHaveLength(10);
    } finally {
      await svc.setFailures({});
    }
  }, 120_000);
});

describe('corrupted blobs: a miss with a warning, but tar has already written files', () => {
  // One large incompressible file, so the middle of the archive lies inside its data whatever order tar picks.
  const files = () => ({ 'small.txt': 'small\n', 'big.bin': randomBytes(1 << 20), 'sub/last.txt': 'last\n' });

  it.each<['flip' | 'truncate', string, () => CacheService, RegExp]>([
    ['flip', 'plain-HTTP', () => svc, /Restored data doesn't match checksum/],
    ['flip', 'Azure SDK', () => azure, /Restored data doesn't match checksum/],
    ['truncate', 'plain-HTTP', () => svc, /premature end/],
    ['truncate', 'Azure SDK', () => azure, /premature end/],
  ])('%s (%s download)', async (mode, _path, get, zstdSays) => {
    const s = get();
    const key = `corrupt-${mode}`;
    const ws = workspace(files());
    const original = snapshot(ws);
    await save(s, ws, key);
    rmSync(join(ws, 'data'), { recursive: true });
    await s.setFailures({ corruptDownloads: mode });
    try {
      const r = await restore(s, ws, key);
      expect(r).toMatchObject({ value: null, errors: [] });
      expect(r.threw).toBeUndefined();
      expect(r.warnings).toEqual([
        `Failed to restore: "/usr/bin/tar" failed with error: The process '/usr/bin/tar' failed with exit code 2`,
      ]);
      expect(r.out).toMatch(zstdSays);
      expect(s.calls.at(-1)).toMatchObject({ result: `ok_corrupt_${mode}` });
      // The damage stays on disk: big.bin is there, shorter than the original, with wrong content.
      const left = snapshot(ws);
      expect(left['big.bin']).toBeDefined();
      expect(left['big.bin']).not.toBe(original['big.bin']);
      expect(statSync(join(ws, 'data/big.bin')).size).toBeLessThan(1 << 20);
    } finally {
      await s.setFailures({});
    }
    rmSync(join(ws, 'data'), { recursive: true });
    expect((await restore(s, ws, key)).value).toBe(key);
    expect(snapshot(ws)).toEqual(original);
  });

  it('flip in compressible data: zstd reports the corruption and the file is not restored intact', async () => {
    const text = Array.from({ length: 40_000 }, (_, i) => `line ${i} ${(i * i) % 977}\n`).join('');
    const ws = workspace({ 'text.txt': text });
    await save(svc, ws, 'corrupt-text');
    rmSync(join(ws, 'data'), { recursive: true });
    await svc.setFailures({ corruptDownloads: 'flip' });
    try {
      const r = await restore(svc, ws, 'corrupt-text');
      expect(r).toMatchObject({ value: null, errors: [] });
      expect(r.out).toMatch(/Data corruption detected/);
      const path = join(ws, 'data/text.txt');
      expect(!existsSync(path) || readFileSync(path, 'utf8') !== text).toBe(true);
    } finally {
      await svc.setFailures({});
    }
  });
});
