/**
 * actions/cache (github backend) run by a non-root user against a store behind nix-daemon, as on GitHub's runners:
 * the steps' node runs as uid 1001 (`runner`, password-less sudo), the daemon as root. With `sudo: auto` on a
 * GitHub-hosted runner the restore runs as root through `sudo -n` and writes the store directly; with `sudo: never`,
 * `auto` on a self-hosted runner, or when sudo wants a password, it imports through `nix copy`. Either way the restored store builds nothing, and no root-owned file is left in the
 * runner's directories. Real sudo, real daemon, both Nix versions.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { RUNNER_UID, runnerUserSetup, scratchDir, writeRunnerNode } from '../harness/namespace.mjs';
import { startCacheService, type CacheService } from '../support/actions-cache-service.mjs';
import { build, buildNothing, cacheJob, daemonSetup, NIX_VERSIONS, writeFixture } from '../support/cache-jobs.js';
import { requireCommand } from '../support/fixtures.js';

/** The daemon trusts `runner` too, so that the `nix copy` way may import the cache's unsigned paths. */
const userSetup = (sudo: boolean) => [
  ...runnerUserSetup(sudo),
  `echo 'trusted-users = root runner' >> /etc/nix/nix.conf`,
];
/** Files under the runner's directories that are not the runner's (none may be left by a root process). */
const foreignFiles = `find "$RUNNER_TEMP" "$HOME" ! -user ${RUNNER_UID} | grep -v _runner_file_commands || true`;

describe.each(NIX_VERSIONS)('actions/cache restores a daemon store as a non-root user with $name', ({ bin }) => {
  let svc: CacheService;
  let scratch: string;
  let fixture: string;
  let node: string;
  let workspace: string;

  beforeAll(async () => {
    requireCommand('/usr/bin/sudo', 'sudo');
    requireCommand('/usr/bin/setpriv', 'util-linux');
    if (!existsSync(path.join(bin, 'nix')))
      throw new Error(`${bin}/nix is missing: run 'bash test/setup/nix-fixtures.sh'`);
    scratch = scratchDir('cache-sudo-');
    fixture = writeFixture(scratch);
    node = writeRunnerNode(scratch);
    workspace = path.join(scratch, 'ws');
    mkdirSync(workspace);
    writeFileSync(path.join(workspace, 'flake.lock'), '{"lock": "sudo"}\n');
    svc = await startCacheService();
    // Saved by a root job: the entry the non-root jobs restore.
    const seed = await cacheJob(svc, { bin, scratch, workspace, steps: [build(fixture, 'sudo', 12)] });
    if (seed.post?.outputs['paths-saved'] !== '12') throw new Error(`the seed job saved: ${JSON.stringify(seed.post)}`);
  });
  afterAll(async () => {
    await svc?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  /** A job of the non-root user; `hosted`: on a GitHub-hosted runner (RUNNER_ENVIRONMENT), where `auto` tries sudo. */
  const userJob = (
    sudo: boolean,
    inputs: Record<string, string> = {},
    hosted = true,
    env: Record<string, string> = {},
  ) =>
    cacheJob(svc, {
      bin,
      scratch,
      workspace,
      node,
      inputs,
      setup: [...userSetup(sudo), ...daemonSetup(bin)],
      env: { NIX_REMOTE: 'daemon', ...(hosted ? { RUNNER_ENVIRONMENT: 'github-hosted' } : {}), ...env },
      steps: [buildNothing(fixture, 'sudo', 12), 'stat -c %U /nix/store/*-fix-12', foreignFiles],
    });

  it('restores as root through sudo -n, straight into the store, and leaves nothing root-owned behind', async () => {
    const r = await userJob(true);
    expect(r.main.ok).toBe(true);
    expect(r.main.outputs).toMatchObject({ hit: 'exact', 'paths-restored': '12' });
    expect(r.main.stdout).toContain('Restoring as root through');
    expect(r.main.stdout).toContain('Restoring straight into the local store.');
    expect(r.main.stdout).not.toContain('Restoring through Nix');
    expect(r.steps?.map((s) => s.exitCode)).toEqual([0, 0, 0]);
    expect(r.steps?.[1]?.stdout.trim()).toBe('root');
    expect(r.steps?.[2]?.stdout.trim()).toBe('');
    expect(r.post?.ok).toBe(true);
    expect(r.post?.outputs).toEqual({ 'paths-saved': '0', 'bytes-up': '0' });
  });

  it('restores through Nix, with a warning, when the root process itself fails', async () => {
    // A sudo that says yes to `sudo -n true` and then fails to start anything.
    const fake = path.join(scratch, 'fake-sudo');
    mkdirSync(fake, { recursive: true });
    writeFileSync(
      path.join(fake, 'sudo'),
      '#!/bin/sh\n[ "$2" = true ] && exit 0\necho "sudo: this one cannot" >&2\nexit 1\n',
      { mode: 0o755 },
    );
    const r = await userJob(true, {}, true, { PATH: `${fake}:${bin}:/usr/bin:/bin` });
    expect(r.main.ok).toBe(true);
    expect(r.main.outputs).toMatchObject({ hit: 'exact', 'paths-restored': '12' });
    expect(r.main.stdout).toMatch(
      /the restore as root ended without a result \(exit 1\): sudo: this one cannot; restoring through Nix instead/,
    );
    expect(r.main.stdout).toContain('Restoring through Nix');
    expect(r.steps?.map((s) => s.exitCode)).toEqual([0, 0, 0]);
  });

  it('imports through nix copy with sudo: never, on a self-hosted runner with auto, and when sudo wants a password', async () => {
    for (const [sudo, inputs, hosted] of [
      [true, { sudo: 'never' }, true],
      [true, {}, false],
      [false, { sudo: 'always' }, false],
    ] as const) {
      const r = await userJob(sudo, inputs, hosted);
      expect(r.main.ok).toBe(true);
      expect(r.main.outputs).toMatchObject({ hit: 'exact', 'paths-restored': '12' });
      expect(r.main.stdout).not.toContain('Restoring as root');
      expect(r.main.stdout).toContain('Restoring through Nix');
      expect(r.steps?.map((s) => s.exitCode)).toEqual([0, 0, 0]);
      expect(r.steps?.[2]?.stdout.trim()).toBe('');
    }
  });
});
