/**
 * install-nix end to end: the dist bundle, run as the GitHub runner runs it, installs a real Nix 2.34.8 release
 * tarball (built by test/setup from Debian sid's Nix, served over HTTP on 127.0.0.1) into a fresh /nix inside a
 * private mount namespace with a private copy of /etc, then later steps build a flake with it.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runActionInNamespace, type ActionResult } from '../harness/github-runner.js';
import { RELEASE_DIR, TARBALL_NAME, requireCommand, requireFixtures } from '../support/fixtures.js';
import { isolationSetup, serveDirectory, type StaticServer } from '../harness/namespace.mjs';
import { makeEvilTarball } from '../support/evil-tarball.js';

const TOKEN = 'ghs_flakeCiTestToken0123456789';
let server: StaticServer;
let scratch: string;
let flake: string;

/** A fresh /nix and a private /etc (useradd and nix.conf writes stay in the namespace). */
const isolation = (extra: string[] = []) => isolationSetup(scratch, extra);

function install(inputs: Record<string, string>, steps: string[], opts: { toolCache?: string; setup?: string[] } = {}) {
  return runActionInNamespace(
    {
      action: 'install-nix',
      inputs: { source: 'tarball', 'tarball-url': `${server.url}/${TARBALL_NAME}`, ...inputs },
      token: TOKEN,
      steps,
      dirs: opts.toolCache ? { toolCache: opts.toolCache } : undefined,
    },
    { setup: opts.setup ?? isolation() },
  );
}

const buildSteps = () => [
  'nix --version',
  `nix build --no-link --print-out-paths --option substituters '' path:${flake}#hello`,
  `nix flake check --option substituters '' path:${flake}`,
];

function secretFree(r: ActionResult): void {
  for (const step of [r.main, r.post]) {
    if (!step) continue;
    // The runner consumes `::add-mask::` lines (that is how masking works); nothing else may carry the token.
    const printed = (step.stdout + step.stderr).replace(/^::add-mask::.*$/gm, '');
    expect(printed).not.toContain(TOKEN);
    expect(JSON.stringify(step.state)).not.toContain(TOKEN);
    expect(JSON.stringify(step.outputs) + JSON.stringify(step.env) + step.summary).not.toContain(TOKEN);
  }
}

beforeAll(async () => {
  requireFixtures();
  requireCommand('/usr/bin/unshare', 'util-linux');
  requireCommand('/usr/bin/xz', 'xz-utils');
  scratch = mkdtempSync(path.join(os.tmpdir(), 'flake-ci-install-'));
  flake = path.join(scratch, 'hello');
  cpSync(path.resolve('examples/hello'), flake, { recursive: true });
  server = await serveDirectory(RELEASE_DIR);
});

afterAll(async () => {
  await server?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('install-nix from a release tarball', () => {
  it('installs single-user, exports PATH, and later steps build the flake', async () => {
    const r = await install({ sandbox: 'false' }, [
      ...buildSteps(),
      'stat -c %a "$(sed -n "s/^!include //p" /etc/nix/nix.conf)"',
      'cat /etc/nix/nix.conf',
      'test ! -e /nix/.flake-ci-staging-* && echo no-staging-left',
    ]);
    expect(r.main.ok).toBe(true);
    expect(r.main.outputs).toMatchObject({ 'nix-version': '2.34.8', mode: 'single-user', source: 'tarball' });
    expect(r.main.outputs['nix-path']).toBe('/nix/var/nix/profiles/default/bin/nix');
    expect(r.main.path).toContain('/nix/var/nix/profiles/default/bin');
    const steps = r.steps ?? [];
    expect(steps.map((s) => s.exitCode)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(steps[0]?.stdout).toContain('nix (Nix) 2.34.8');
    expect(steps[1]?.stdout).toMatch(/^\/nix\/store\/[a-z0-9]{32}-hello\n$/);
    expect(steps[3]?.stdout.trim()).toBe('600');
    expect(steps[4]?.stdout).toContain('extra-experimental-features = nix-command flakes');
    expect(steps[4]?.stdout).not.toContain(TOKEN);
    expect(steps[5]?.stdout).toContain('no-staging-left');
    expect(r.post?.ok).toBe(true);
    secretFree(r);
  });

  it('refuses a wrong checksum and installs nothing', async () => {
    const r = await install({ 'tarball-sha256': '0'.repeat(64) }, ['ls -A /nix | wc -l']);
    expect(r.main.ok).toBe(false);
    expect(r.main.annotations.map((a) => a.message).join('\n')).toMatch(
      /Checksum mismatch.*expected sha256 0{64}.*Nothing was installed/s,
    );
    expect(r.steps?.[0]?.stdout.trim()).toBe('0');
  });

  it('names a missing tarball URL', async () => {
    const r = await install({ 'tarball-url': `${server.url}/nix-9.9.9.tar.xz`, 'tarball-sha256': '1'.repeat(64) }, []);
    expect(r.main.ok).toBe(false);
    expect(r.main.stdout).toContain(`${server.url}/nix-9.9.9.tar.xz does not exist (404)`);
    const noSum = await install({ 'tarball-url': `${server.url}/nix-9.9.9.tar.xz` }, []);
    expect(noSum.main.stdout).toContain(`No published checksum at ${server.url}/nix-9.9.9.tar.xz.sha256`);
  });

  it('names an unreachable release URL', async () => {
    const r = await install({ 'nix-version': '2.99.0', 'tarball-url': '' }, [], {});
    // The default URL points at releases.nixos.org, which this machine cannot reach: the error names the URL.
    expect(r.main.ok).toBe(false);
    expect(r.main.stdout).toMatch(/releases\.nixos\.org\/nix\/nix-2\.99\.0\/nix-2\.99\.0-x86_64-linux\.tar\.xz/);
  });

  it('rejects a tarball with a path-escaping entry and leaves no /nix behind', async () => {
    const evil = await makeEvilTarball(path.join(RELEASE_DIR, TARBALL_NAME), scratch);
    const r = await install({ 'tarball-url': `file://${evil.file}`, 'tarball-sha256': evil.sha256 }, [
      'ls -A /nix | wc -l',
    ]);
    expect(r.main.ok).toBe(false);
    expect(r.main.stdout).toContain(evil.entry);
    expect(r.steps?.[0]?.stdout.trim()).toBe('0');
  });

  it('reinstalls from the tool cache without downloading the tarball again', async () => {
    const toolCache = mkdtempSync(path.join(scratch, 'tool-cache-'));
    const first = await install({}, [], { toolCache });
    expect(first.main.outputs.source).toBe('tarball');
    const before = server.requests.get(`/${TARBALL_NAME}`) ?? 0;
    const second = await install({ sandbox: 'false' }, buildSteps().slice(0, 2), { toolCache });
    expect(second.main.ok).toBe(true);
    expect(second.main.outputs.source).toBe('tool-cache');
    expect(server.requests.get(`/${TARBALL_NAME}`) ?? 0).toBe(before);
    expect(second.steps?.map((s) => s.exitCode)).toEqual([0, 0]);
  });

  it('runs multi-user with a daemon it starts and stops', async () => {
    const r = await install({ mode: 'multi-user', sandbox: 'false' }, [
      ...buildSteps(),
      'getent group nixbld && getent passwd nixbld1 | cut -d: -f1',
      'stat -c "%U %G %a" /nix/store',
      'echo "$NIX_REMOTE"',
    ]);
    expect(r.main.ok).toBe(true);
    expect(r.main.outputs.mode).toBe('multi-user');
    const steps = r.steps ?? [];
    expect(steps.map((s) => (s.exitCode === 0 ? 0 : s.stderr))).toEqual(steps.map(() => 0));
    expect(steps[3]?.stdout).toContain('nixbld1');
    expect(steps[4]?.stdout.trim()).toBe('root nixbld 1775');
    expect(steps[5]?.stdout.trim()).toBe('daemon');
    expect(r.post?.ok).toBe(true);
    expect(r.post?.stdout).toMatch(/Stopped nix-daemon \(pid \d+\)/);
  });
});

describe('install-nix over an existing Nix', () => {
  it("configures Debian's Nix 2.8 without reinstalling it", async () => {
    requireCommand('/usr/bin/nix', 'nix-bin');
    const r = await install({ source: 'existing', sandbox: 'false' }, [
      'nix --version',
      `nix build --no-link --option substituters '' path:${flake}#hello`,
      'grep -c "BEGIN flake-ci" /etc/nix/nix.conf',
    ]);
    expect(r.main.ok).toBe(true);
    expect(r.main.outputs).toMatchObject({ 'nix-version': '2.8.0', source: 'existing', mode: 'single-user' });
    expect(r.main.outputs['nix-path']).toBe('/usr/bin/nix');
    expect(r.steps?.map((s) => s.exitCode)).toEqual([0, 0, 0]);
    expect(r.steps?.[2]?.stdout.trim()).toBe('1');
    expect(server.requests.size).toBeGreaterThanOrEqual(0);
  });

  it("installs the distribution's package with source: distro and warns that it may be old", async () => {
    requireCommand('/usr/bin/apt-get', 'apt');
    const r = await install({ source: 'distro', sandbox: 'false' }, ['nix --version']);
    expect(r.main.ok).toBe(true);
    expect(r.main.outputs).toMatchObject({ source: 'distro', 'nix-version': '2.8.0' });
    expect(r.main.annotations.map((a) => a.message).join('\n')).toMatch(/distribution's Nix 2\.8\.0; it may be older/);
    expect(r.steps?.[0]?.stdout).toContain('2.8.0');
  });

  it('fails clearly when asked for an existing Nix and there is none', async () => {
    const r = await install({ source: 'existing' }, [], {
      setup: isolation(['mount -t tmpfs tmpfs /usr/bin/nix 2>/dev/null || mount --bind /dev/null /usr/bin/nix']),
    });
    expect(r.main.ok).toBe(false);
    expect(r.main.stdout).toMatch(/source: existing, but no Nix was found/);
  });
});
