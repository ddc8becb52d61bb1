/**
 * actions/cache with the GitHub backend, end to end: the dist bundles run by the runner harness, each job in its own
 * mount namespace with a fresh tmpfs /nix, against the cache service double (twirp over Azurite) through the real
 * @actions/cache. Both Debian's Nix 2.8 and the relocated Nix 2.34. A restored store must build nothing
 * (`max-jobs 0`); every save must create exactly one entry holding only the paths the job added.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { scratchDir } from '../harness/namespace.mjs';
import { startCacheService, type CacheEntry, type CacheService } from '../support/actions-cache-service.mjs';
import {
  build,
  buildNothing,
  cacheJob,
  callsSince,
  countFixtures,
  daemonSetup,
  NIX_VERSIONS,
  nixKeyPair,
  recordedText,
  visible,
  warnings,
  writeFixture,
  type JobOptions,
} from '../support/cache-jobs.js';

describe.each(NIX_VERSIONS)('actions/cache (github backend) with $name', ({ bin }) => {
  let svc: CacheService;
  let scratch: string;
  let fixture: string;
  const workspaces: Record<string, string> = {};
  const job = (o: Omit<JobOptions, 'bin' | 'scratch'>) => cacheJob(svc, { bin, scratch, ...o });
  /** A workspace whose flake.lock gives the default key its hash. */
  const workspace = (lock: string) => {
    const dir = path.join(scratch, `ws-${lock}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'flake.lock'), `{"lock": "${lock}"}\n`);
    return (workspaces[lock] = dir);
  };
  const finalized = () => svc.entries().filter((e) => e.finalized);

  beforeAll(async () => {
    if (!existsSync(path.join(bin, 'nix')))
      throw new Error(`${bin}/nix is missing: run 'bash test/setup/nix-fixtures.sh'`);
    scratch = scratchDir('cache-github-');
    fixture = writeFixture(scratch);
    svc = await startCacheService();
  });
  afterAll(async () => {
    await svc?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  let first: CacheEntry;
  let second: CacheEntry;

  it('saves the 20 paths a job built as ONE cache entry under the default key', async () => {
    const r = await job({ workspace: workspace('one'), steps: [build(fixture, 'rt', 20)] });
    expect(r.main.ok).toBe(true);
    expect(r.main.outputs).toEqual({ hit: 'miss', 'restored-key': '', 'paths-restored': '0', 'bytes-down': '0' });
    expect(r.steps?.[0]?.exitCode).toBe(0);
    expect(r.post?.ok).toBe(true);
    expect(finalized()).toHaveLength(1);
    first = finalized()[0] as CacheEntry;
    expect(first.key).toMatch(/^flake-ci-nix-linux-x64-[0-9a-f]{16}-[0-9a-f]{6}$/);
    expect(r.post?.outputs).toEqual({ 'paths-saved': '20', 'bytes-up': String(first.sizeBytes) });
    expect(callsSince(svc, 0, 'CreateCacheEntry')).toHaveLength(1);
    expect(visible(r.post)).toContain('20 selected to save (left out: 0 served upstream, 20 derivations, 0 excluded)');
  });

  it('restores into a fresh store that then builds nothing; a second job uploads only its 10 new paths', async () => {
    const from = svc.calls.length;
    const r = await job({
      workspace: workspaces.one,
      steps: [buildNothing(fixture, 'rt', 20), build(fixture, 'rt', 30)],
    });
    expect(r.main.outputs).toEqual({
      hit: 'exact',
      'restored-key': first.key,
      'paths-restored': '20',
      'bytes-down': String(first.sizeBytes),
    });
    expect(r.steps?.map((s) => s.exitCode)).toEqual([0, 0]);
    expect(r.post?.outputs['paths-saved']).toBe('10');
    expect(callsSince(svc, from, 'CreateCacheEntry')).toHaveLength(1);
    second = finalized()[1] as CacheEntry;
    expect(second.key).not.toBe(first.key);
    expect(second.sizeBytes).toBeLessThan((first.sizeBytes as number) * 0.75);
    expect(visible(r.post)).toContain('on top of 1 earlier entries');
  });

  it('a third job restores the whole chain, and saves nothing (no upload, fast) when nothing is new', async () => {
    const from = svc.calls.length;
    const r = await job({ workspace: workspaces.one, steps: [buildNothing(fixture, 'rt', 30), countFixtures] });
    expect(r.main.outputs).toEqual({
      hit: 'exact',
      'restored-key': second.key,
      'paths-restored': '30',
      'bytes-down': String((first.sizeBytes as number) + (second.sizeBytes as number)),
    });
    expect(r.steps?.map((s) => s.exitCode)).toEqual([0, 0]);
    expect(r.steps?.[1]?.stdout.trim()).toBe('30');
    expect(r.post?.outputs).toEqual({ 'paths-saved': '0', 'bytes-up': '0' });
    expect(visible(r.post)).toContain('the exact key was restored and nothing new was added');
    expect(callsSince(svc, from, 'CreateCacheEntry')).toHaveLength(0);
    // How fast this is belongs to bench/cache.mjs (goal <= 0.5 s); here: nothing created, nothing uploaded.
  });

  it('restores the chain into a store behind nix-daemon (multi-user) through Nix, and builds nothing', async () => {
    const r = await job({
      workspace: workspaces.one,
      setup: daemonSetup(bin),
      env: { NIX_REMOTE: 'daemon' },
      steps: [buildNothing(fixture, 'rt', 30), countFixtures],
    });
    expect(r.main.outputs).toMatchObject({ hit: 'exact', 'restored-key': second.key, 'paths-restored': '30' });
    // Not written by the job itself: the daemon imported them (nix copy), each NAR checked against its narinfo.
    expect(r.main.stdout).toContain('Restoring through Nix');
    expect(r.main.stdout).toMatch(/"copy" "--no-recursive" "--no-check-sigs" "--from" "file:\/\//);
    expect(r.steps?.map((s) => s.exitCode)).toEqual([0, 0]);
    expect(r.steps?.[1]?.stdout.trim()).toBe('30');
    expect(r.post?.outputs).toEqual({ 'paths-saved': '0', 'bytes-up': '0' });
  });

  it('a new flake.lock hits partially, and records the chain so the next job hits exactly', async () => {
    const r = await job({ workspace: workspace('two'), steps: [buildNothing(fixture, 'rt', 30)] });
    expect(r.main.outputs).toMatchObject({ hit: 'partial', 'restored-key': second.key, 'paths-restored': '30' });
    expect(r.steps?.[0]?.exitCode).toBe(0);
    expect(r.post?.outputs['paths-saved']).toBe('0');
    // One entry without paths whose manifest names the restored chain as its parents.
    const pointer = finalized()[2] as CacheEntry;
    const keyHash = (k: string) => /^flake-ci-nix-linux-x64-([0-9a-f]{16})-/.exec(k)?.[1];
    expect(keyHash(pointer.key)).toBeDefined();
    expect(keyHash(pointer.key)).not.toBe(keyHash(first.key));
    const again = await job({ workspace: workspaces.two, steps: [buildNothing(fixture, 'rt', 30)] });
    expect(again.main.outputs).toMatchObject({ hit: 'exact', 'restored-key': pointer.key, 'paths-restored': '30' });
    expect(again.steps?.[0]?.exitCode).toBe(0);
  });

  it('signs what it saves, restores only with the trusted key, and never shows the key', async () => {
    const keys = nixKeyPair('flake-ci-test-1');
    const signed = await job({
      inputs: { key: 'signed', 'signing-key': keys.secret, 'trusted-public-keys': keys.pub },
      steps: [build(fixture, 'sig', 5)],
      debug: true,
    });
    expect(signed.post?.outputs['paths-saved']).toBe('5');
    expect(signed.main.masks).toContain(keys.secret);
    const restored = await job({
      inputs: { key: 'signed', 'trusted-public-keys': keys.pub },
      steps: [buildNothing(fixture, 'sig', 5), `nix path-info --sigs $(${build(fixture, 'sig', 5)})`],
      debug: true,
    });
    expect(restored.main.outputs).toMatchObject({ hit: 'exact', 'paths-restored': '5' });
    expect(restored.steps?.map((s) => s.exitCode)).toEqual([0, 0]);
    expect(restored.steps?.[1]?.stdout.match(/flake-ci-test-1:/g)).toHaveLength(5);
    for (const r of [signed, restored]) expect(recordedText(r)).not.toContain(keys.secret.split(':')[1]);

    // An entry saved without signatures is refused when keys are given: a warning, nothing imported, still green.
    await job({ inputs: { key: 'unsigned' }, steps: [build(fixture, 'uns', 5)] });
    const refused = await job({
      inputs: { key: 'unsigned', 'trusted-public-keys': keys.pub, strict: 'false' },
      steps: [countFixtures],
    });
    expect(refused.main.ok).toBe(true);
    expect(refused.main.outputs).toMatchObject({ hit: 'miss', 'paths-restored': '0' });
    expect(warnings(refused.main).join('\n')).toMatch(/Restoring the Nix store cache failed.*signature/s);
    expect(refused.steps?.[0]?.stdout.trim()).toBe('0');
    expect(refused.post?.ok).toBe(true);
  });
});

describe('actions/cache keeps its entry chains short (Debian Nix 2.8)', () => {
  const bin = (NIX_VERSIONS[0] as { bin: string }).bin;
  let svc: CacheService;
  let scratch: string;
  let fixture: string;

  beforeAll(async () => {
    scratch = scratchDir('cache-chain-');
    fixture = writeFixture(scratch);
    svc = await startCacheService();
  });
  afterAll(async () => {
    await svc?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('restores at most 5 entries per job: the save after a chain of 5 consolidates into one', async () => {
    const job = (n: number) =>
      cacheJob(svc, {
        bin,
        scratch,
        inputs: { key: 'chain' },
        steps: [buildNothing(fixture, 'ch', n - 2), build(fixture, 'ch', n)],
      });
    const restored: string[] = [];
    for (let round = 1; round <= 6; round++) {
      const r = await job(2 * round);
      restored.push(r.main.outputs['paths-restored'] as string);
      expect(r.steps?.map((s) => s.exitCode)).toEqual([0, 0]);
      // Rounds 1-5 save their 2 new paths on top of the chain; round 6 restored 5 entries and consolidates.
      expect(r.post?.outputs['paths-saved']).toBe(round < 6 ? '2' : '12');
    }
    expect(restored).toEqual(['0', '2', '4', '6', '8', '10']);
    const last = svc
      .entries()
      .filter((e) => e.finalized)
      .at(-1) as CacheEntry;
    const r = await job(12);
    expect(r.main.outputs).toMatchObject({ 'paths-restored': '12', 'restored-key': last.key });
    expect(r.main.outputs['bytes-down']).toBe(String(last.sizeBytes));
    expect(r.post?.outputs['paths-saved']).toBe('0');
  });
});

describe('actions/cache (store backend, file://) with Nix 2.34', () => {
  const bin = (NIX_VERSIONS[1] as { bin: string }).bin;
  let svc: CacheService;
  let scratch: string;
  let fixture: string;

  beforeAll(async () => {
    scratch = scratchDir('cache-store-');
    fixture = writeFixture(scratch);
    // Not used by the store backend; cacheJob passes its env, as a GitHub runner would have it.
    svc = await startCacheService();
  });
  afterAll(async () => {
    await svc?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('pushes signed paths to the store, and later jobs substitute them on demand', async () => {
    const keys = nixKeyPair('flake-ci-store-1');
    const url = `file://${path.join(scratch, 'binary-cache')}`;
    const inputs = { backend: 'store', 'store-url': url, 'trusted-public-keys': keys.pub };
    const pushed = await cacheJob(svc, {
      bin,
      scratch,
      inputs: { ...inputs, 'signing-key': keys.secret },
      steps: [build(fixture, 'store', 5)],
    });
    expect(pushed.main.outputs).toMatchObject({ hit: 'partial', 'paths-restored': '0' });
    expect(pushed.post?.outputs['paths-saved']).toBe('5');
    expect(recordedText(pushed)).not.toContain(keys.secret.split(':')[1]);

    // No signing-key (a fork's pull request gets no secrets): auto does not push unsigned paths readers would refuse.
    const pulled = await cacheJob(svc, {
      bin,
      scratch,
      inputs,
      steps: [buildNothing(fixture, 'store', 5), build(fixture, 'store', 6)],
    });
    expect(pulled.main.env.NIX_CONFIG).toContain(`extra-substituters = ${url}`);
    expect(pulled.steps?.map((s) => s.exitCode)).toEqual([0, 0]);
    expect(visible(pulled.post)).toContain('no signing-key was given');
    expect(pulled.post?.outputs['paths-saved']).toBe('0');
  });
});
