/**
 * The build engine against real Nix 2.8 (host) and 2.34 (relocated), each with its own throwaway chroot store
 * (`store = DIR` in NIX_CONFIG; the host /nix is never touched and no store is shared between versions). The fixture
 * flake (test/fixtures/build) has passing, failing, evaluation-error, dependency-failed, slow and flaky checks, and a
 * package whose output sits in a local file:// binary cache, filled from a scratch store beforehand.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { runBuild, type BuildEngineResult } from '../../src/build/engine.js';
import { junitXml, resultsJson, type AttrResult } from '../../src/build/results.js';
import { selectAttributes } from '../../src/build/select.js';
import { NixCommand } from '../../src/nix/command.js';
import { formatVersion } from '../../src/nix/version.js';
import { RecordingPlatform } from '../../src/platform/recording.js';
import { NIX234_BIN, removeScratch } from '../support/fixtures.js';

const FIXTURE = path.resolve('test/fixtures/build');
const SYSTEM = 'x86_64-linux';

const BINARIES = [
  { name: 'Debian Nix 2.8', bin: '/usr/bin', version: /^2\.8\./ },
  { name: 'Nix 2.34', bin: process.env.FLAKE_CI_NIX234 || NIX234_BIN, version: /^2\.3[4-9]\./ },
];

function nixConfig(store: string, substituters: string, state: string): string {
  return [
    `store = ${store}`,
    `substituters = ${substituters}`,
    'require-sigs = false',
    'sandbox = false',
    // A store outside /nix/store builds in a chroot: map in the shell, its tools and the state directory.
    `sandbox-paths = /bin /usr /lib /lib64 ${state}`,
    'build-users-group =',
    'experimental-features = nix-command flakes',
  ].join('\n');
}

describe.each(BINARIES)('build engine with $name', ({ bin, version }) => {
  let tmp: string;
  let flake: string;
  let state: string;
  let cacheUrl: string;
  let nix: NixCommand;
  let result: BuildEngineResult;
  const byAttr = (name: string): AttrResult => {
    const r = result.results.find((x) => x.attr === name);
    if (!r) throw new Error(`no result for ${name}`);
    return r;
  };

  beforeAll(async () => {
    if (!fs.existsSync(path.join(bin, 'nix')))
      throw new Error(`No nix in ${bin}: run 'bash test/setup/nix-fixtures.sh'.`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-build-'));
    flake = path.join(tmp, 'flake');
    state = path.join(tmp, 'state');
    for (const d of [flake, state, 'conf', 'home', 'cache']) fs.mkdirSync(path.resolve(tmp, d), { recursive: true });
    fs.copyFileSync(path.join(FIXTURE, 'flake.nix'), path.join(flake, 'flake.nix'));
    fs.writeFileSync(path.join(flake, 'config.json'), JSON.stringify({ stateDir: state }));
    cacheUrl = `file://${path.join(tmp, 'binary-cache')}`;
    const base = {
      NIX_CONF_DIR: path.join(tmp, 'conf'),
      HOME: path.join(tmp, 'home'),
      XDG_CONFIG_HOME: path.join(tmp, 'home'),
      XDG_CACHE_HOME: path.join(tmp, 'cache'),
    };

    // Fill the binary cache from a scratch store, so the test store has never seen the package.
    const scratch = await NixCommand.detect(undefined, bin, {
      ...base,
      NIX_CONFIG: nixConfig(path.join(tmp, 'scratch-store'), '', state),
    });
    const installable = `${flake}#packages.${SYSTEM}.cached`;
    const out = (await scratch.run(['eval', '--raw', `${installable}.outPath`])).stdout.trim();
    await scratch.run(['build', '--no-link', installable]);
    await scratch.run(['copy', '--to', cacheUrl, out]);

    nix = await NixCommand.detect(new RecordingPlatform(), bin, {
      ...base,
      NIX_CONFIG: nixConfig(path.join(tmp, 'store'), cacheUrl, state),
    });
    expect(formatVersion(nix.version)).toMatch(version);
  });

  afterAll(() => removeScratch(tmp));

  it('discovers check names without evaluating them, and globs over attribute paths', async () => {
    const checks = await selectAttributes(nix, { flake, mode: 'checks', systems: [SYSTEM, 'aarch64-linux'] });
    expect(checks.map((c) => c.attr)).toEqual(
      ['dep-failed', 'eval-throw', 'eval-type', 'fail', 'flaky', 'pass-a', 'pass-b', 'slow'].map(
        (n) => `checks.${SYSTEM}.${n}`,
      ),
    );
    expect(checks.every((c) => c.system === SYSTEM)).toBe(true);
    const globbed = await selectAttributes(nix, {
      flake,
      mode: 'attributes',
      patterns: ['checks.*.pass-?', 'packages.x86_64-linux.c*', 'packages.*.nothing-*'],
      systems: [SYSTEM],
    });
    expect(globbed.map((c) => c.attr)).toEqual([
      `checks.${SYSTEM}.pass-a`,
      `checks.${SYSTEM}.pass-b`,
      `packages.${SYSTEM}.cached`,
    ]);
  });

  it('runs select -> evaluate -> skip cached -> build -> retry', async () => {
    const platform = new RecordingPlatform();
    result = await runBuild(platform, nix, {
      flake,
      mode: 'attributes',
      attributes: ['checks.*.*', 'packages.*.*'],
      skipCached: true,
      retries: 1,
      timeout: 3,
      logLines: 20,
    });
    expect(result.systems).toEqual([SYSTEM]);
    const statuses = Object.fromEntries(result.results.map((r) => [r.attr.split('.').pop(), r.status]));
    expect(statuses).toEqual({
      'dep-failed': 'dependency-failed',
      'eval-throw': 'eval-error',
      'eval-type': 'eval-error',
      fail: 'failed',
      flaky: 'flaky',
      'pass-a': 'built',
      'pass-b': 'built',
      slow: 'built',
      cached: 'cached',
      plain: 'built',
    });
    expect(result.counts).toMatchObject({ built: 5, cached: 1, failed: 2, evalErrors: 2, flaky: 1, total: 10 });
    expect(platform.groups.filter((g) => g.startsWith('Building'))).toEqual([
      'Building 7 attribute(s)',
      'Building 1 attribute(s) (retry 1)',
    ]);
  });

  it('reports a failing check with its log tail and never retries it', () => {
    const fail = byAttr(`checks.${SYSTEM}.fail`);
    expect(fail.attempts).toBe(1);
    expect(fail.logTail).toContain('FIXTURE-ASSERTION: expected 1, got 2 <&> ]]>');
    expect(fail.error).toMatch(/exit code 1/);
    expect(fs.readFileSync(path.join(state, 'fail.count'), 'utf8')).toBe('run\n');
  });

  it('names the failed dependency instead of reporting a second failure', () => {
    const dep = byAttr(`checks.${SYSTEM}.dep-failed`);
    expect(dep.failedDependency).toMatch(/-broken-dep\.drv$/);
    expect(dep.error).toMatch(/exit code 3/);
    expect(dep.logTail).toContain('FIXTURE: broken-dep is about to fail');
    expect(result.results.filter((r) => r.status === 'failed')).toHaveLength(1);
  });

  it('keeps evaluation errors with their message and position in flake.nix', () => {
    const thrown = byAttr(`checks.${SYSTEM}.eval-throw`);
    expect(thrown.error).toContain('FIXTURE: eval-throw cannot be evaluated');
    // 2.34 points at the throw call, 2.8 (with the --show-trace rerun) at the attribute: the same line.
    expect(thrown.errorLocation).toMatchObject({
      relativeFile: 'flake.nix',
      line: positionOf('eval-throw = throw').line,
    });
    const typed = byAttr(`checks.${SYSTEM}.eval-type`);
    expect(typed.error).toMatch(/cannot add a string to an integer/);
    // Both versions point at the string operand.
    expect(typed.errorLocation).toMatchObject({ relativeFile: 'flake.nix', ...positionOf('"a")') });
  });

  it('retries the timed-out check once and reports it flaky', () => {
    const flaky = byAttr(`checks.${SYSTEM}.flaky`);
    expect(flaky.attempts).toBe(2);
    expect(flaky.previousErrors?.join('\n')).toMatch(/timed out after 3 seconds/);
    expect(fs.readFileSync(path.join(state, 'flaky.count'), 'utf8')).toBe('run\nrun\n');
  });

  it('skips the cached package without building or fetching it, and times the slow check', async () => {
    const cached = byAttr(`packages.${SYSTEM}.cached`);
    expect(cached.cachedAt).toBe(cacheUrl);
    const out = cached.outputs.out ?? '';
    const info = await nix.run(['path-info', ...nix.pathInfoJsonArgs(), out], { allowFailure: true });
    expect(info.stdout).not.toMatch(/"narHash"/);
    expect(byAttr(`checks.${SYSTEM}.slow`).duration).toBeGreaterThanOrEqual(0.9);
    expect(byAttr(`checks.${SYSTEM}.pass-a`).outputs.out).toMatch(/^\/nix\/store\/[a-z0-9]{32}-pass-a$/);
  });

  it('writes a results file and a JUnit report from the real results', () => {
    const json = JSON.parse(resultsJson(result.results)) as { results: Record<string, unknown>[] };
    expect(json.results).toHaveLength(10);
    expect(json.results.find((r) => r.status === 'eval-error')).toMatchObject({ type: 'EVAL', success: false });
    const xml = junitXml(result.results);
    expect(XMLValidator.validate(xml)).toBe(true);
    const doc = new XMLParser({ ignoreAttributes: false }).parse(xml);
    expect(doc.testsuites['@_tests']).toBe('10');
  });
});

/** 1-based line and column of the first occurrence of `needle` in the fixture flake. */
function positionOf(needle: string): { line: number; column: number } {
  const lines = fs.readFileSync(path.join(FIXTURE, 'flake.nix'), 'utf8').split('\n');
  const line = lines.findIndex((l) => l.includes(needle));
  return { line: line + 1, column: (lines[line] ?? '').indexOf(needle) + 1 };
}
