// What the plan emits: exact attribute patterns (round-tripped through the action's own input splitting and
// select.ts's pattern compiler), the GitHub matrix JSON, and the GitLab child pipeline YAML and its include source.
import { describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';
import { splitPatterns } from '../../src/build/inputs.js';
import { matrixEntry, matrixJson, MAX_OUTPUT_BYTES } from '../../src/build/matrix/github.js';
import { childPipelineYaml, parseChildInclude, parseGitUrl, type SuiteEnv } from '../../src/build/matrix/gitlab.js';
import type { Shard } from '../../src/build/matrix/pack.js';
import { escapeSegment, exactPatterns, literalPattern, patternMatches } from '../../src/build/matrix/patterns.js';
import { compilePattern } from '../../src/build/select.js';
import { InputError } from '../../src/errors.js';

const S = 'x86_64-linux';
const NAMES = [
  'plain',
  'a.b',
  'star*',
  'q?',
  '[ab]',
  '[!x]',
  'x]y',
  'sp ace',
  'tab\there',
  'com,ma',
  '#hash',
  "it's",
  '$HOME ${x}',
  '(re)+|^$',
  'dq"uote',
  'back\\slash',
  'new\nline',
  'ünï',
  '',
];
const ALL = [...NAMES.map((n) => ['checks', S, n]), ['checks', S, 'dq-uote'], ['checks', S, 'starX']];

describe('exact attribute patterns', () => {
  it('escape glob characters as one-character classes and unwritable ones as ?', () => {
    expect(escapeSegment('a*b?c[d]')).toBe('a[*]b[?]c[[]d]');
    expect(escapeSegment('a"b\\c\nd e,f')).toBe('a?b?c?d e,f');
    expect(literalPattern(['checks', S, 'a.b'])).toBe(`checks.${S}."a.b"`);
    expect(literalPattern(['checks', S, 'star*'])).toBe(`checks.${S}."star[*]"`);
    expect(literalPattern(['checks', S, 'plain'])).toBe(`checks.${S}.plain`);
    expect(() => literalPattern(['che*cks', S, 'a'])).toThrow(InputError);
  });

  it('select exactly their attribute after the input is split and compiled as the shard job does', () => {
    const paths = NAMES.filter((n) => n !== 'dq"uote').map((n) => ['checks', S, n]);
    const patterns = exactPatterns(paths, ALL, [S]);
    // One input line, as the matrix entry and INPUT_ATTRIBUTES carry it.
    const tokens = splitPatterns(patterns.join(' '));
    expect(tokens).toEqual(patterns);
    tokens.forEach((token, i) => {
      const compiled = compilePattern(token, [S]);
      const matched = ALL.filter((p) => patternMatches(compiled, p));
      expect({ token, matched }).toEqual({ token, matched: [paths[i]] });
    });
  });

  it('refuses a name it cannot write when the stand-in pattern would select another attribute too', () => {
    expect(() => exactPatterns([['checks', S, 'dq"uote']], ALL, [S])).toThrow(
      /checks.x86_64-linux."dq\?uote" .*also matches checks.x86_64-linux.dq-uote. Rename one of them/s,
    );
    // Without a neighbour to clash with, the stand-in is exact.
    const alone = ALL.filter((p) => p[2] !== 'dq-uote');
    expect(exactPatterns([['checks', S, 'dq"uote']], alone, [S])).toEqual([`checks.${S}."dq?uote"`]);
  });
});

function shard(name: string, labels: string[], attrs: string[], features: string[] = []): Shard {
  const items = attrs.map((a) => ({
    attr: `checks.${S}.${a}`,
    attrPath: ['checks', S, a],
    system: S,
    features,
    cost: 1,
  }));
  return { name, system: S, features, labels, items, cost: items.length };
}

describe('GitHub matrix', () => {
  it('gives runs-on as one label or a list, and the patterns space separated', () => {
    const one = matrixEntry(shard('x86_64-linux', ['ubuntu-latest'], ['a']), ['checks.x.a', 'checks.x."b c"']);
    expect(one).toEqual({
      name: 'x86_64-linux',
      system: S,
      features: '',
      'runs-on': 'ubuntu-latest',
      attributes: 'checks.x.a checks.x."b c"',
    });
    const two = matrixEntry(shard('vm', ['self-hosted', 'kvm'], ['v'], ['kvm', 'nixos-test']), ['p']);
    expect(two).toMatchObject({ 'runs-on': ['self-hosted', 'kvm'], features: 'kvm nixos-test' });
    expect(JSON.parse(matrixJson([one, two], 3))).toEqual({ include: [one, two] });
  });

  it("fails clearly instead of exceeding GitHub's output limit", () => {
    const attributes = Array.from({ length: 30_000 }, (_, i) => `checks.${S}.attribute-number-${i}`).join(' ');
    const entry = { name: 'n', system: S, features: '', 'runs-on': 'ubuntu-latest', attributes };
    expect(Buffer.byteLength(JSON.stringify({ include: [entry] }))).toBeGreaterThan(MAX_OUTPUT_BYTES);
    expect(() => matrixJson([entry], 30_000)).toThrow(/30000 attribute\(s\) is \d+ bytes, over GitHub's 1048576-byte/);
  });
});

describe('GitLab child include', () => {
  const suite: SuiteEnv = {
    suiteUrl: 'https://gitlab.example.com/tools/ci/flake-ci.git',
    suiteRef: 'v1.2.3',
    serverHost: 'gitlab.example.com',
    serverUrl: 'https://gitlab.example.com',
  };

  it('reads the three forms, with defaults for dir and ref, and per-template inputs', () => {
    expect(parseChildInclude({ ...suite, childInclude: '{"project": "g/flake-ci", "ref": "v1.0.0"}' })).toEqual({
      project: 'g/flake-ci',
      ref: 'v1.0.0',
      dir: '/gitlab-templates',
      inputs: {},
    });
    expect(parseChildInclude({ ...suite, childInclude: '{"project": "/g/f/", "dir": "/t"}' })).toMatchObject({
      project: 'g/f',
      ref: 'v1.2.3',
      dir: '/t',
    });
    expect(parseChildInclude({ childInclude: '{"remote": "https://h/raw/gitlab-templates/"}' })).toEqual({
      remote: 'https://h/raw/gitlab-templates',
      inputs: {},
    });
    const local = parseChildInclude({
      childInclude: '{"local": "ci/", "inputs": {"install-nix": {"source": "tarball", "kvm": false}}}',
    });
    expect(local).toEqual({ local: 'ci', inputs: { 'install-nix': { source: 'tarball', kvm: false } } });
    // A path to one of the templates (the form build.yml's input description shows) names their directory.
    const viaFile = '{project: group/flake-ci, ref: v1.0.0, file: gitlab-templates/build.yml}';
    expect(parseChildInclude({ childInclude: viaFile })).toMatchObject({
      project: 'group/flake-ci',
      dir: 'gitlab-templates',
    });
    expect(parseChildInclude({ childInclude: '{"local": "ci/build.yml"}' })).toMatchObject({ local: 'ci' });
    expect(parseChildInclude({ childInclude: '{"local": "build.yml"}' })).toMatchObject({ local: '' });
    expect(parseChildInclude({ childInclude: '{"remote": "https://h/t/install-nix.yml"}' })).toMatchObject({
      remote: 'https://h/t',
    });
  });

  it("derives project and ref from the suite's URL when it is on this instance", () => {
    expect(parseChildInclude(suite)).toEqual({
      project: 'tools/ci/flake-ci',
      ref: 'v1.2.3',
      dir: '/gitlab-templates',
      inputs: {},
    });
    const ssh = { ...suite, suiteUrl: 'git@gitlab.example.com:tools/flake-ci.git' };
    expect(parseChildInclude(ssh)).toMatchObject({ project: 'tools/flake-ci' });
    const rooted = {
      ...suite,
      suiteUrl: 'https://gitlab.example.com/gitlab/g/flake-ci',
      serverUrl: 'https://gitlab.example.com/gitlab',
    };
    expect(parseChildInclude(rooted)).toMatchObject({ project: 'g/flake-ci' });
    expect(parseGitUrl('ssh://git@h:2222/a/b.git')).toEqual({ host: 'h', path: 'a/b' });
    expect(parseGitUrl('file:///x')).toBeUndefined();
  });

  it.each([
    [
      { ...suite, suiteUrl: 'https://github.com/OWNER/flake-ci.git' },
      /is empty, and the suite .* is not a project on this GitLab \(gitlab.example.com\)/,
    ],
    [{ ...suite, suiteRef: '' }, /is empty/],
    [{ childInclude: '{"project": "g/f"}' }, /names a project but no 'ref'/],
    [
      { childInclude: '{"local": "a", "remote": "https://x"}' },
      /exactly one of 'project', 'remote' or 'local' \(got 2\)/,
    ],
    [{ childInclude: '{"local": "a", "ref": "v1"}' }, /'ref', 'dir' or 'file', which go with 'project' only/],
    [{ childInclude: '{"project": "p", "ref": "r", "dir": "d", "file": "f.yml"}' }, /both 'dir' and 'file'/],
    [{ childInclude: '{"remote": "ftp://x"}' }, /not an http\(s\) URL/],
    [{ childInclude: '{"local": ""}' }, /'local' that is not a non-empty string/],
    [{ childInclude: '{"local": "a", "extra": 1}' }, /unknown key\(s\) extra/],
    [{ childInclude: '{"local": "a", "inputs": {"cache": {}}}' }, /inputs for "cache"; only install-nix and build/],
    [{ childInclude: '{"local": "a", "inputs": {"build": {"x": [1]}}}' }, /inputs.build.x that is not a string/],
    [{ childInclude: '["local"]' }, /must be a JSON object/],
    [{ childInclude: '{"local": ' }, /is not valid JSON/],
  ])('rejects %j naming child_include', (env, why) => {
    let error: unknown;
    try {
      parseChildInclude(env as SuiteEnv);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toMatch(/^Input 'child_include' /);
    expect((error as Error).message).toMatch(why);
  });
});

describe('GitLab child pipeline', () => {
  const shards = [
    shard('x86_64-linux 1/2', [], ['a']),
    shard('x86_64-linux 2/2', [], ['b']),
    shard('x86_64-linux+kvm+nixos-test', ['kvm', 'nix runner'], ['vm'], ['kvm', 'nixos-test']),
  ];
  const patterns = [[`checks.${S}.a`], [`checks.${S}.b`, `checks.${S}."$HOME's"`], [`checks.${S}.vm`]];

  it('has one job per shard extending both templates, with tags and raw INPUT_* variables', () => {
    const text = childPipelineYaml(shards, {
      include: { project: 'g/flake-ci', ref: 'v1.0.0', dir: '/gitlab-templates', inputs: { build: { retries: 2 } } },
      passInputs: {
        flake: './sub',
        'skip-cached': 'true',
        'extra-args': 'a $b',
        mode: 'matrix',
        'github-token': 'ghp_x',
      },
      suite: { FLAKE_CI_SUITE_REF: 'v1.0.0', FLAKE_CI_SUITE_URL: 'https://h/g/flake-ci.git', FLAKE_CI_SUITE_DIR: '' },
      patterns,
      attributes: 4,
    });
    expect(text).toMatch(/^# flake-ci build, mode: matrix: 4 attribute\(s\) in 3 shard\(s\)\./);
    expect(text).not.toContain('ghp_x');
    const doc = parse(text) as Record<string, Record<string, unknown>>;
    expect(doc.include).toEqual([
      { project: 'g/flake-ci', ref: 'v1.0.0', file: '/gitlab-templates/install-nix.yml' },
      { project: 'g/flake-ci', ref: 'v1.0.0', file: '/gitlab-templates/build.yml', inputs: { retries: 2 } },
    ]);
    expect(Object.keys(doc).filter((k) => k !== 'include')).toEqual([
      'build x86_64-linux 1/2',
      'build x86_64-linux 2/2',
      'build x86_64-linux+kvm+nixos-test',
    ]);
    const second = doc['build x86_64-linux 2/2'] as Record<string, unknown>;
    expect(second).toEqual({
      extends: ['.flake-ci-nix', '.flake-ci-build'],
      variables: {
        FLAKE_CI_SUITE_REF: 'v1.0.0',
        FLAKE_CI_SUITE_URL: 'https://h/g/flake-ci.git',
        INPUT_FLAKE: './sub',
        INPUT_SKIP_CACHED: 'true',
        INPUT_EXTRA_ARGS: { value: 'a $b', expand: false },
        INPUT_ATTRIBUTES: { value: `checks.${S}.b checks.${S}."$HOME's"`, expand: false },
      },
    });
    expect(doc['build x86_64-linux+kvm+nixos-test']?.tags).toEqual(['kvm', 'nix runner']);
    expect(doc['build x86_64-linux 1/2']?.tags).toBeUndefined();
  });

  it('includes local and remote templates by path, and still has a job when there is nothing to build', () => {
    const base = { passInputs: {}, suite: {}, patterns: [[`checks.${S}.a`]], attributes: 1 };
    const local = parse(childPipelineYaml([shards[0] as Shard], { ...base, include: { local: 'ci', inputs: {} } }));
    expect(local.include).toEqual([{ local: 'ci/install-nix.yml' }, { local: 'ci/build.yml' }]);
    const remote = parse(
      childPipelineYaml([shards[0] as Shard], { ...base, include: { remote: 'https://r/t', inputs: {} } }),
    );
    expect(remote.include).toEqual([{ remote: 'https://r/t/install-nix.yml' }, { remote: 'https://r/t/build.yml' }]);
    const root = parse(childPipelineYaml([shards[0] as Shard], { ...base, include: { local: '', inputs: {} } }));
    expect(root.include).toEqual([{ local: 'install-nix.yml' }, { local: 'build.yml' }]);
    const empty = parse(
      childPipelineYaml([], { ...base, patterns: [], attributes: 0, include: { local: 'ci', inputs: {} } }),
    );
    expect(Object.keys(empty)).toEqual(['flake-ci: nothing to build']);
  });
});
