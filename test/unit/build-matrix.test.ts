// Matrix planning without Nix: packing shards by cost, runner-map parsing and choice, and the cost model's pieces.
import { describe, expect, it } from '@jest/globals';
import { costsFrom, NOTHING_TO_BUILD, ownWeight, parseDryRun } from '../../src/build/matrix/cost.js';
import { MAX_SHARDS, packShards, SHARD_OVERHEAD, type PlanItem, type Shard } from '../../src/build/matrix/pack.js';
import {
  chooseRunner,
  GITHUB_DEFAULTS,
  GITLAB_DEFAULTS,
  mergeRunnerMaps,
  parseRunnerMap,
} from '../../src/build/matrix/runner-map.js';
import { runMatrixMode } from '../../src/build/matrix/index.js';
import { InputError } from '../../src/errors.js';
import { NixCommand } from '../../src/nix/command.js';
import { parseNixVersion } from '../../src/nix/version.js';
import { GitLabPlatform } from '../../src/platform/gitlab.js';
import { RecordingPlatform } from '../../src/platform/recording.js';

const github = mergeRunnerMaps(new Map(), GITHUB_DEFAULTS);

function item(name: string, cost: number, system = 'x86_64-linux', features: string[] = []): PlanItem {
  return { attr: `checks.${system}.${name}`, attrPath: ['checks', system, name], system, features, cost };
}

function pack(items: PlanItem[], maxShards: number, runnerMap = github, requireLabels = true): Shard[] {
  return packShards(items, { maxShards, runnerMap, requireLabels });
}

/** Every item in exactly one shard. */
function expectCovered(shards: Shard[], items: PlanItem[]): void {
  const placed = shards.flatMap((s) => s.items.map((i) => i.attr)).sort();
  expect(placed).toEqual(items.map((i) => i.attr).sort());
}

describe('packing shards', () => {
  it('balances by cost, longest first, and covers every attribute once', () => {
    const items = [40, 30, 30, 20, 20, 20, 10, 10, 10, 10].map((c, i) => item(`c${i}`, c));
    const shards = pack(items, 3);
    expect(shards.map((s) => s.name)).toEqual(['x86_64-linux 1/3', 'x86_64-linux 2/3', 'x86_64-linux 3/3']);
    expectCovered(shards, items);
    // 200 in all: LPT reaches the perfect 70/70/60 split here (the lower bound is 66.7).
    expect(shards.map((s) => s.cost).sort()).toEqual([60, 70, 70]);
    for (const s of shards) expect(s.items.map((i) => i.attr)).toEqual([...s.items.map((i) => i.attr)].sort());
  });

  it('never exceeds max-shards, and one costly attribute gets a shard of its own', () => {
    const items = [item('big', 100), ...Array.from({ length: 30 }, (_, i) => item(`s${i}`, 5))];
    expect(pack(items, 2).map((s) => s.cost)).toEqual([125, 125]);
    // A fourth shard could not finish before the big one: it is not made.
    const shards = pack(items, 8);
    expect(shards.map((s) => s.cost)).toEqual([100, 75, 75]);
    expectCovered(shards, items);
    expect(shards[0]?.items.map((i) => i.attr)).toEqual(['checks.x86_64-linux.big']);
  });

  it('keeps cheap or cached work in few shards: another job must save more than its overhead', () => {
    const cached = Array.from({ length: 200 }, (_, i) => item(`c${i}`, NOTHING_TO_BUILD));
    const shards = pack(cached, 64);
    expectCovered(shards, cached);
    // 20 units: each further shard is added only while it saves more than SHARD_OVERHEAD.
    expect(shards.length).toBeGreaterThan(1);
    expect(shards.length).toBeLessThan(8);
    const total = 200 * NOTHING_TO_BUILD;
    const n = shards.length;
    expect(total / (n - 1) - total / n).toBeGreaterThan(SHARD_OVERHEAD);
    expect(total / n - total / (n + 1)).toBeLessThanOrEqual(SHARD_OVERHEAD);
    expect(pack([item('a', 1), item('b', 1), item('c', 1)], 16)).toHaveLength(1);
  });

  it('groups by system and required features, each group on its runner', () => {
    const items = [
      item('a', 50),
      item('b', 50),
      item('vm', 1.5, 'x86_64-linux', ['nixos-test', 'kvm']),
      item('vm2', 1.5, 'x86_64-linux', ['kvm', 'nixos-test']),
      item('big', 5, 'x86_64-linux', ['big-parallel']),
      item('arm', 1, 'aarch64-linux'),
      item('mac', 1, 'aarch64-darwin'),
      item('intel-mac', 1, 'x86_64-darwin'),
    ];
    const shards = pack(items, 16);
    expectCovered(shards, items);
    const summary = shards.map((s) => [s.name, s.labels, s.items.map((i) => i.attrPath[2])]);
    expect(summary).toEqual([
      ['aarch64-darwin', ['macos-latest'], ['mac']],
      ['aarch64-linux', ['ubuntu-24.04-arm'], ['arm']],
      ['x86_64-darwin', ['macos-13'], ['intel-mac']],
      ['x86_64-linux 1/2', ['ubuntu-latest'], ['a']],
      ['x86_64-linux 2/2', ['ubuntu-latest'], ['b']],
      ['x86_64-linux+big-parallel', ['ubuntu-latest'], ['big']],
      ['x86_64-linux+kvm+nixos-test', ['ubuntu-latest'], ['vm', 'vm2']],
    ]);
    expect(shards.find((s) => s.name.startsWith('x86_64-linux+kvm'))?.features).toEqual(['kvm', 'nixos-test']);
  });

  it('shares shards between groups on the same runner when max-shards is too small for one each', () => {
    const items = [item('a', 5), item('vm', 5, 'x86_64-linux', ['nixos-test']), item('arm', 5, 'aarch64-linux')];
    const shards = pack(items, 2);
    expectCovered(shards, items);
    expect(shards.map((s) => [s.name, s.features])).toEqual([
      ['aarch64-linux', []],
      ['x86_64-linux+nixos-test', ['nixos-test']],
    ]);
    expect(() => pack(items, 1)).toThrow(/Input 'max-shards' is 1, but the attributes need 2 kinds of runner/);
  });

  it('uses all 256 shards when the work is worth it, and refuses more', () => {
    const items = Array.from({ length: 600 }, (_, i) => item(`n${String(i).padStart(3, '0')}`, 300 + (i % 7)));
    const shards = pack(items, MAX_SHARDS);
    expect(shards).toHaveLength(256);
    expectCovered(shards, items);
    const loads = shards.map((s) => s.cost);
    // LPT never leaves the fullest shard more than one attribute above the emptiest.
    expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(306);
    for (const bad of [0, 257, 2.5]) expect(() => pack(items, bad)).toThrow(/'max-shards' must be a whole number/);
  });

  it('needs a runner label for every system on GitHub, none on GitLab', () => {
    const riscv = [item('r', 1, 'riscv64-linux')];
    expect(() => pack(riscv, 4)).toThrow(InputError);
    expect(() => pack(riscv, 4)).toThrow(
      /Input 'runner-map' has no runner for riscv64-linux.*'riscv64-linux: <runner label>'/,
    );
    const gitlab = mergeRunnerMaps(new Map(), GITLAB_DEFAULTS);
    expect(pack(riscv, 4, gitlab, false)).toMatchObject([{ name: 'riscv64-linux', labels: [] }]);
  });

  it('returns no shards for no attributes', () => {
    expect(pack([], 8)).toEqual([]);
  });
});

describe('runner-map', () => {
  it('reads key: labels and key=labels lines, lists, comments and JSON', () => {
    const map = parseRunnerMap(
      [
        '# hosted first',
        'x86_64-linux: ubuntu-24.04',
        'aarch64-linux=ubuntu-24.04-arm',
        'x86_64-linux + nixos-test + kvm: [self-hosted, "kvm box"]',
        '  aarch64-darwin = self-hosted, macOS ,ARM64  ',
        '',
      ].join('\n'),
    );
    expect([...map]).toEqual([
      ['x86_64-linux', ['ubuntu-24.04']],
      ['aarch64-linux', ['ubuntu-24.04-arm']],
      ['x86_64-linux+kvm+nixos-test', ['self-hosted', 'kvm box']],
      ['aarch64-darwin', ['self-hosted', 'macOS', 'ARM64']],
    ]);
    const json = parseRunnerMap('{"x86_64-linux": "ubuntu-latest", "x86_64-linux+kvm": ["self-hosted", "kvm"]}');
    expect([...json]).toEqual([
      ['x86_64-linux', ['ubuntu-latest']],
      ['x86_64-linux+kvm', ['self-hosted', 'kvm']],
    ]);
    expect(parseRunnerMap('  \n')).toEqual(new Map());
  });

  it.each([
    ['x86_64-linux', /line 1 \("x86_64-linux"\) is not 'key: labels'/],
    ['x86_64-linux:', /line 1: "x86_64-linux" has no labels/],
    ['x86 64: a', /line 1: "x86 64" is not a 'system' or 'system\+feature' key/],
    ['x86_64-linux+: a', /is not a 'system' or 'system\+feature' key/],
    ['a: x\nb: y\na: z', /line 3: "a" is given twice/],
    ['a: [x, ', /line 1 has a malformed \[\.\.\.\] list/],
    ['a: []', /has an empty or non-text label/],
    ['a: x,,y', /has an empty or non-text label/],
    ['a: [{b: c}]', /has an empty or non-text label/],
    ['{"a": 1', /is not a valid JSON object/],
    ['{"a": {"b": "c"}}', /give "a" a label or a list of labels/],
  ])('rejects %j naming the input', (text, why) => {
    let error: unknown;
    try {
      parseRunnerMap(text);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toMatch(/^Input 'runner-map' /);
    expect((error as Error).message).toMatch(why);
    expect((error as Error).message).toMatch(/x86_64-linux\+kvm: \[self-hosted, kvm\]/);
  });

  it('picks the most specific entry whose features the attribute all requires', () => {
    const map = mergeRunnerMaps(
      parseRunnerMap('x86_64-linux+kvm: [self-hosted, kvm]\nx86_64-linux+big-parallel: big'),
      GITHUB_DEFAULTS,
    );
    expect(chooseRunner('x86_64-linux', [], map).labels).toEqual(['ubuntu-latest']);
    expect(chooseRunner('x86_64-linux', ['kvm', 'nixos-test'], map)).toEqual({
      key: 'x86_64-linux+kvm',
      labels: ['self-hosted', 'kvm'],
    });
    // Equally specific: the user's entry, listed first, wins over the default's nixos-test entry.
    expect(chooseRunner('x86_64-linux', ['nixos-test', 'kvm'], map).key).toBe('x86_64-linux+kvm');
    expect(chooseRunner('x86_64-linux', ['big-parallel'], map).labels).toEqual(['big']);
    expect(chooseRunner('aarch64-linux', ['kvm'], map).labels).toEqual(['ubuntu-24.04-arm']);
    expect(chooseRunner('i686-linux', [], map)).toEqual({ key: '', labels: [] });
  });

  it("lets a user's plain system entry take that system's feature defaults along", () => {
    const map = mergeRunnerMaps(parseRunnerMap('x86_64-linux: [self-hosted, nix]'), GITHUB_DEFAULTS);
    expect(chooseRunner('x86_64-linux', ['nixos-test', 'kvm'], map).labels).toEqual(['self-hosted', 'nix']);
    expect(chooseRunner('aarch64-darwin', [], map).labels).toEqual(['macos-latest']);
  });
});

describe('cost model', () => {
  const d = (n: string) => `/nix/store/${n.padEnd(32, 'a')}-${n}.drv`;

  it('reads the .drv lines of a dry run in the wording of Nix 2.8 and 2.34', () => {
    const stderr = [
      'these 2 derivations will be built:',
      `  ${d('dep')}`,
      `  ${d('top')}`,
      'these 1 paths will be fetched (0.01 MiB download, 0.05 MiB unpacked):',
      '  /nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-fetched',
      'this derivation will be built:',
      `  ${d('one')}`,
      `warning: something about ${d('not-listed')}`,
    ].join('\n');
    expect([...parseDryRun(stderr)]).toEqual([d('dep'), d('top'), d('one')]);
  });

  it('counts the derivations of each closure that need building, weighting VM tests and big builds', () => {
    const inputs = new Map([
      [d('a'), [d('shared'), d('own')]],
      [d('b'), [d('shared')]],
      [d('vm'), [d('shared')]],
      [d('shared'), [d('base')]],
      [d('own'), [d('base')]],
      [d('cached'), [d('base')]],
    ]);
    const toBuild = new Set([d('a'), d('b'), d('vm'), d('shared'), d('own'), d('base')]);
    const costs = costsFrom(
      [
        { attr: 'a', drvPath: d('a'), features: [] },
        { attr: 'b', drvPath: d('b'), features: ['big-parallel'] },
        { attr: 'vm', drvPath: d('vm'), features: ['nixos-test', 'kvm'] },
        { attr: 'cached', drvPath: d('cached'), features: [] },
      ],
      inputs,
      toBuild,
    );
    expect(Object.fromEntries(costs)).toEqual({
      a: NOTHING_TO_BUILD + 3 + 1,
      b: NOTHING_TO_BUILD + 2 + 5,
      vm: NOTHING_TO_BUILD + 2 + 10,
      // Its own outputs exist, so nothing below it is built either (and dry-run did not list base for it).
      cached: NOTHING_TO_BUILD + 1,
    });
    expect(ownWeight([])).toBe(1);
    expect(ownWeight(['benchmark'])).toBe(1);
  });
});

describe('runMatrixMode input checks', () => {
  // A Nix that cannot run: the inputs must be refused before anything is evaluated.
  const nix = new NixCommand({ bin: '/nonexistent', version: parseNixVersion('nix (Nix) 2.8.0') });
  const opts = { maxShards: 16, runnerMap: '', childPipelinePath: '/tmp/x/child.yml', passInputs: {} };

  it('refuses a bad runner-map or max-shards before evaluating', async () => {
    const p = new RecordingPlatform();
    await expect(runMatrixMode(p, nix, {}, { ...opts, runnerMap: 'x86_64-linux' })).rejects.toThrow(
      /^Input 'runner-map' line 1/,
    );
    await expect(runMatrixMode(p, nix, {}, { ...opts, maxShards: 300 })).rejects.toThrow(/^Input 'max-shards'/);
  });

  it('refuses an unusable child_include on GitLab before evaluating', async () => {
    const p = new GitLabPlatform(
      { CI_PROJECT_DIR: '/nonexistent', CI_SERVER_HOST: 'gitlab.example.com', FLAKE_CI_SUITE_REF: 'v1.0.0' },
      { action: 'build' },
    );
    await expect(runMatrixMode(p, nix, {}, opts)).rejects.toThrow(/^Input 'child_include' is empty, and the suite/);
  });
});
