/**
 * The import pipeline's batching (import-pipeline.ts) with a recording stand-in for `nix copy`: when batches start,
 * what they hold, what is left to the final import; and when a restore does not even try sudo (root-restore.ts).
 * Real Nix imports through a daemon, and the restore as root through real sudo, are covered by
 * test/integration/cache-github.test.ts and cache-github-sudo.test.ts.
 */
import { describe, expect, it } from '@jest/globals';
import type { NixCommand } from '../../src/nix/command.js';
import { ImportPipeline } from '../../src/cache/import-pipeline.js';
import { rootRestoreUsable } from '../../src/cache/root-restore.js';
import { RecordingPlatform } from '../../src/platform/recording.js';

/** A NixCommand whose `run` records each `nix copy` and finishes it only when the test says so. */
function fakeNix() {
  const calls: Array<{ paths: string[]; finish: (error?: Error) => void }> = [];
  const nix = {
    platform: undefined,
    run: (args: readonly string[]) =>
      new Promise((resolve, reject) => {
        const paths = args.slice(args.indexOf('--') + 1) as string[];
        calls.push({ paths, finish: (e) => (e ? reject(e) : resolve({ exitCode: 0, stdout: '', stderr: '' })) });
      }),
  } as unknown as NixCommand;
  return { nix, calls };
}

const p = (i: number) => `/nix/store/${String(i).padStart(32, 'a')}-p${i}`;
const tick = () => new Promise((r) => setImmediate(r));

describe('ImportPipeline', () => {
  it('starts after 32 paths, then hands over everything queued while a copy runs; drain finishes the rest', async () => {
    const { nix, calls } = fakeNix();
    const pipe = new ImportPipeline(nix, '/tmp/cache', { trustSource: true }, new Set());
    for (let i = 0; i < 31; i++) pipe.add(p(i), i > 0 ? [p(i - 1)] : []);
    expect(calls).toHaveLength(0);
    pipe.add(p(31), [p(30)]);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.paths).toHaveLength(32);
    for (let i = 32; i < 40; i++) pipe.add(p(i), [p(i - 1), p(0)]);
    expect(calls).toHaveLength(1); // one copy at a time
    calls[0]?.finish();
    await tick();
    expect(calls).toHaveLength(2);
    expect(calls[1]?.paths).toEqual([32, 33, 34, 35, 36, 37, 38, 39].map(p));
    pipe.add(p(40), [p(39)]);
    const drained = pipe.drain();
    calls[1]?.finish();
    await tick();
    expect(calls[2]?.paths).toEqual([p(40)]);
    calls[2]?.finish();
    await drained;
    expect(pipe.complete).toBe(true);
    expect(pipe.imported).toEqual(Array.from({ length: 41 }, (_, i) => p(i)));
    expect(pipe.started).toBe(3);
  });

  it('leaves paths with references from elsewhere, and what depends on them, to the final import', async () => {
    const { nix, calls } = fakeNix();
    const valid = new Set(['/nix/store/vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv-valid']);
    const pipe = new ImportPipeline(nix, '/tmp/cache', {}, valid);
    pipe.add(p(1), [...valid]);
    pipe.add(p(2), ['/nix/store/uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu-upstream']);
    pipe.add(p(3), [p(2)]);
    pipe.add(p(4), [p(1), p(4)]);
    const drained = pipe.drain();
    await tick();
    expect(calls.map((c) => c.paths)).toEqual([[p(1), p(4)]]);
    calls[0]?.finish();
    await drained;
    expect(pipe.imported).toEqual([p(1), p(4)]);
    expect(pipe.complete).toBe(false);
  });

  it('stops at a failed copy: nothing more is started, and the rest is left to the final import', async () => {
    const { nix, calls } = fakeNix();
    const pipe = new ImportPipeline(nix, '/tmp/cache', {}, new Set());
    for (let i = 0; i < 32; i++) pipe.add(p(i), []);
    calls[0]?.finish(new Error('hash mismatch importing path'));
    await tick();
    pipe.add(p(32), []);
    await pipe.drain();
    expect(calls).toHaveLength(1);
    expect(pipe.imported).toEqual([]);
    expect(pipe.complete).toBe(false);
  });

  it('starts nothing after stop() (an aborted restore)', async () => {
    const { nix, calls } = fakeNix();
    const pipe = new ImportPipeline(nix, '/tmp/cache', {}, new Set());
    pipe.stop();
    for (let i = 0; i < 40; i++) pipe.add(p(i), []);
    await pipe.drain();
    expect(calls).toHaveLength(0);
    expect(pipe.complete).toBe(false); // all 40 are the final import's
  });
});

describe('rootRestoreUsable', () => {
  /** A NixCommand whose `nix config show` reports `store`; it records whether it was asked. */
  const nixWithStore = (store: string) => {
    const asked: string[][] = [];
    const nix = {
      version: { major: 2, minor: 34, patch: 8 },
      run: async (args: readonly string[]) => {
        asked.push([...args]);
        return { exitCode: 0, stdout: JSON.stringify({ store: { value: store } }), stderr: '' };
      },
    } as unknown as NixCommand;
    return { nix, asked };
  };

  it('never for root, a relocated store, or a store other than the default one', async () => {
    const p = new RecordingPlatform({}, { PATH: '/usr/bin:/bin' });
    expect(await rootRestoreUsable(p, nixWithStore('daemon').nix, 'always', 0)).toBe(false);
    const relocated = new RecordingPlatform({}, { PATH: '/usr/bin:/bin', NIX_STORE_DIR: '/opt/nix/store' });
    expect(await rootRestoreUsable(relocated, nixWithStore('daemon').nix, 'always', 1001)).toBe(false);
    for (const store of ['ssh-ng://builder', 'https://cache.example', 'local?root=/tmp/x'])
      expect(await rootRestoreUsable(p, nixWithStore(store).nix, 'always', 1001)).toBe(false);
  });

  it('not when sudo is missing from PATH', async () => {
    const p = new RecordingPlatform({}, { PATH: '/nonexistent' });
    const { nix, asked } = nixWithStore('daemon');
    expect(await rootRestoreUsable(p, nix, 'always', 1001)).toBe(false);
    expect(asked).toHaveLength(1); // the store setting was read; no sudo was found to ask
  });

  it('with auto, only on GitHub-hosted runners; never with never: nothing is even asked', async () => {
    const selfHosted = new RecordingPlatform({}, { PATH: '/usr/bin:/bin' }, { hosted: false });
    const hosted = new RecordingPlatform({}, { PATH: '/usr/bin:/bin' }, { hosted: true });
    for (const [p, mode] of [
      [selfHosted, 'auto'],
      [hosted, 'never'],
    ] as const) {
      const { nix, asked } = nixWithStore('daemon');
      expect(await rootRestoreUsable(p, nix, mode, 1001)).toBe(false);
      expect(asked).toHaveLength(0);
    }
  });
});
