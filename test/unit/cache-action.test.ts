/**
 * The cache action's own decisions, without Nix or a service: inputs, size budget, purge selection, entry manifests
 * and chains, what @actions/cache's output tells about a failed save, retries, and job facts (fork PRs, backends).
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { archiveBytes, saveFailure, saveWithRetry, type SaveOutcome } from '../../src/cache/actions-cache-glue.js';
import { fitBudget } from '../../src/cache/budget-glue.js';
import { parseHeader } from '../../src/cache/bundle.js';
import { asMemo, MAX_PARENTS, parentsFor } from '../../src/cache/github-backend.js';
import { parseCacheInputs, parseSize } from '../../src/cache/inputs.js';
import { pickForPurge } from '../../src/cache/purge.js';
import { chooseBackend, entrySuffix, pullRequestFromFork, readOnlyReason } from '../../src/cache/runner-glue.js';
import { InputError } from '../../src/errors.js';
import { RecordingPlatform } from '../../src/platform/recording.js';

const SECRET = `k-1:${Buffer.alloc(64, 7).toString('base64')}`;

describe('inputs', () => {
  it('parses sizes in binary multiples', () => {
    expect(parseSize('', 'x')).toBeUndefined();
    expect(parseSize('123', 'x')).toBe(123);
    expect(parseSize('2K', 'x')).toBe(2048);
    expect(parseSize('1.5GiB', 'x')).toBe(1.5 * 1024 ** 3);
    expect(parseSize('500mb', 'x')).toBe(500 * 1024 ** 2);
    expect(() => parseSize('lots', 'max-size')).toThrow(/Input 'max-size' must be a size/);
  });

  it('registers secrets first and never quotes them', () => {
    const p = new RecordingPlatform({ 'signing-key': SECRET, 'github-token': 'tok', save: 'sometimes' });
    expect(() => parseCacheInputs(p)).toThrow(/Input 'save' must be one of auto, always, never/);
    expect(p.secrets).toEqual([SECRET, 'tok']);
    const bad = new RecordingPlatform({ 'signing-key': 'k-1:c2VjcmV0' });
    const err = (() => {
      try {
        parseCacheInputs(bad);
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(InputError);
    expect(err?.message).not.toContain('c2VjcmV0');
  });

  it('checks keys, restore-keys and the store backend', () => {
    const parse = (inputs: Record<string, string>) => parseCacheInputs(new RecordingPlatform(inputs));
    expect(() => parse({ key: 'a,b' })).toThrow(/without commas/);
    expect(() => parse({ 'restore-keys': Array.from({ length: 10 }, (_, i) => `k${i}`).join('\n') })).toThrow(
      /at most 9/,
    );
    expect(() => parse({ backend: 'store' })).toThrow(/needs 'store-url'/);
    const i = parse({ 'restore-keys': 'a-\nb-', timeout: '90s', 'gc-max-store-size': '1G' });
    expect(i).toMatchObject({ restoreKeys: ['a-', 'b-'], timeoutMs: 90_000, gcMaxStoreSize: 1024 ** 3, save: 'auto' });
  });
});

describe('gc-max-store-size budget', () => {
  const info = (p: string, narSize: number, references: string[] = []) => ({ path: p, narSize, references });
  it('drops the largest paths first, with what references them', () => {
    const infos = [info('/a', 10), info('/big', 100), info('/uses-big', 5, ['/big', '/a']), info('/b', 20, ['/a'])];
    expect(fitBudget(infos, 1000)).toEqual({ kept: ['/a', '/b', '/big', '/uses-big'], dropped: [], bytes: 135 });
    expect(fitBudget(infos, 40)).toEqual({ kept: ['/a', '/b'], dropped: ['/big', '/uses-big'], bytes: 30 });
    expect(fitBudget(infos, 0).kept).toEqual([]);
  });
});

describe('purge selection', () => {
  const now = Date.parse('2026-03-01T00:00:00Z');
  const at = (days: number) => new Date(now - days * 86_400_000).toISOString();
  const e = (id: number, key: string, created: number, used = created) => ({
    id,
    key,
    created_at: at(created),
    last_accessed_at: at(used),
  });
  it('keeps the newest, the recently used and the protected; deletes the rest past the age', () => {
    const entries = [
      e(1, 'p-new', 0),
      e(2, 'p-used', 30, 1),
      e(3, 'p-old', 30),
      e(4, 'p-mine', 40),
      e(5, 'q-old', 40),
      { id: 6, key: 'p-undated' },
    ];
    const picked = pickForPurge(entries, {
      prefix: 'p-',
      maxAgeDays: 7,
      keepLast: 1,
      protect: new Set(['p-mine']),
      now,
    });
    expect(picked.map((x) => x.id)).toEqual([3]);
    const all = pickForPurge(entries, { prefix: 'p-', maxAgeDays: 0, keepLast: 0, protect: new Set(), now });
    // Age 0: everything used before now goes, the entry used this very moment stays.
    expect(all.map((x) => x.id).sort()).toEqual([2, 3, 4]);
  });
});

describe('entry manifests and chains', () => {
  it('accepts only well-formed bundle headers of this format', () => {
    expect(parseHeader('{"format":2,"key":"k-1","parents":["k-0"],"narinfos":["StorePath: x"]}')).toEqual({
      format: 2,
      key: 'k-1',
      parents: ['k-0'],
      narinfos: ['StorePath: x'],
    });
    expect(() => parseHeader('{"format":1,"key":"k","parents":[],"narinfos":[]}')).toThrow(/format 1/);
    expect(() => parseHeader('{"format":2,"key":"k","parents":["a,b"],"narinfos":[]}')).toThrow(/key/);
    expect(() => parseHeader('{"format":2,"key":"k","parents":[]}')).toThrow(/narinfo/);
    expect(() => parseHeader('not json')).toThrow(/JSON/);
  });
  it('records the restored chain as parents, up to MAX_PARENTS; consolidates beyond or after a loss', () => {
    const keys = (n: number) => Array.from({ length: n }, (_, i) => `k-${i}`);
    expect(parentsFor(asMemo({ chain: keys(MAX_PARENTS) }))).toEqual(keys(MAX_PARENTS));
    expect(parentsFor(asMemo({ chain: keys(MAX_PARENTS + 1) }))).toBeUndefined();
    expect(parentsFor(asMemo({ chain: ['k-0'], consolidate: true }))).toBeUndefined();
    expect(parentsFor(asMemo(undefined))).toEqual([]);
  });
});

describe('reading @actions/cache output', () => {
  it('finds the archive size and why a save failed', () => {
    expect(archiveBytes(['Cache Size: ~3 MB (3145728 B)'])).toBe(3145728);
    expect(archiveBytes(['::debug::File Size: 42'])).toBe(42);
    const limited = saveFailure([
      '::debug::Failed to reserve cache: Error: Rate limited: Failed request: (429) Too Many Requests',
      "::warning::You've hit a rate limit, your rate limit will reset in 12 seconds",
      'Failed to save: Unable to reserve cache with key k-1, another job may be creating this cache.',
    ]);
    expect(limited).toMatchObject({ retryAfterSeconds: 12, rateLimited: true, writeDenied: false });
    expect(limited.reason).toContain('(Error: Rate limited');
    const denied = saveFailure([
      '::warning::Failed to save: Unable to reserve cache. More details: cache write denied: x',
    ]);
    expect(denied).toMatchObject({ writeDenied: true, rateLimited: false });
  });

  it('retries a rate-limited save after Retry-After, at most twice, and not without it', async () => {
    const waits: number[] = [];
    const outcomes = (list: Partial<SaveOutcome>[]) => {
      const queue = list.map((o) => ({ entryId: -1, reason: 'r', writeDenied: false, ...o }));
      return () => Promise.resolve(queue.shift() as SaveOutcome);
    };
    const sleep = async (ms: number) => void waits.push(ms);
    const limited = { rateLimited: true, retryAfterSeconds: 2 };
    const ok = await saveWithRetry('k', outcomes([limited, { entryId: 7 }]), () => {}, sleep);
    expect(ok.entryId).toBe(7);
    expect(waits).toEqual([2000]);
    await expect(saveWithRetry('k', outcomes([limited, limited, limited]), () => {}, sleep)).rejects.toThrow(
      /did not save entry k/,
    );
    expect(waits).toHaveLength(3);
    await expect(saveWithRetry('k', outcomes([{ rateLimited: true }]), () => {}, sleep)).rejects.toThrow(/r$/);
    await expect(
      saveWithRetry('k', outcomes([{ rateLimited: true, retryAfterSeconds: 600 }]), () => {}, sleep),
    ).rejects.toThrow();
    expect(waits).toHaveLength(3);
  });
});

describe('job facts', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cache-action-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const event = (head: string | null, base = 'o/r') => {
    const file = path.join(dir, `${String(head).replace('/', '_')}.json`);
    const repo = head === null ? null : { full_name: head };
    writeFileSync(file, JSON.stringify({ pull_request: { head: { repo }, base: { repo: { full_name: base } } } }));
    return file;
  };
  const pr = (file: string, name = 'pull_request') =>
    new RecordingPlatform({}, { GITHUB_EVENT_NAME: name, GITHUB_EVENT_PATH: file });

  it('tells pull requests from forks (and deleted forks) from branches of the repository', async () => {
    expect(await pullRequestFromFork(pr(event('other/r')))).toBe(true);
    expect(await pullRequestFromFork(pr(event(null)))).toBe(true);
    expect(await pullRequestFromFork(pr(event('o/r')))).toBe(false);
    expect(await pullRequestFromFork(pr(event('other/r'), 'push'))).toBe(false);
    expect(await pullRequestFromFork(pr(event('other/r'), 'pull_request_target'))).toBe(false);
    expect(await readOnlyReason(new RecordingPlatform({}, { ACTIONS_CACHE_MODE: 'read' }))).toMatch(/read-only/);
  });

  it('picks the backend and a unique entry suffix', () => {
    const gh = new RecordingPlatform({}, { ACTIONS_RESULTS_URL: 'http://x/', ACTIONS_RUNTIME_TOKEN: 't' });
    expect(chooseBackend(gh, { backend: 'auto', storeUrl: '' }).name).toBe('github');
    expect(
      chooseBackend(new RecordingPlatform({}, { GITLAB_CI: 'true' }), { backend: 'auto', storeUrl: '' }).name,
    ).toBe('gitlab');
    expect(chooseBackend(new RecordingPlatform(), { backend: 'auto', storeUrl: 'file:///c' }).name).toBe('store');
    expect(() => chooseBackend(new RecordingPlatform(), { backend: 'auto', storeUrl: '' })).toThrow(InputError);
    const env = { GITHUB_RUN_ID: '42', GITHUB_RUN_ATTEMPT: '2', GITHUB_JOB: 'build nix' };
    const a = entrySuffix(new RecordingPlatform({}, env));
    expect(a).toMatch(/^42-2-build_nix-[0-9a-f]{6}$/);
    expect(entrySuffix(new RecordingPlatform({}, env))).not.toBe(a);
  });
});
