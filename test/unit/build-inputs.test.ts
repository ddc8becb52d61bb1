// The build action's inputs and the pure parts around them: every rule the user can break gets an InputError naming
// the input; defaults match action.yml; the engine gets what the inputs say; local flakes, annotation places, the
// commit a report belongs to, and the message the step fails with.
import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync as makeTemp, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { annotationFile, attributeLine, detailsUrl, localFlake, reportSha } from '../../src/build/action-context.js';
import { annotateResults, failureSummary, MAX_ANNOTATIONS } from '../../src/build/action-report.js';
import { engineOptions, parseBuildInputs, shardInputs, splitPatterns } from '../../src/build/inputs.js';
import { countResults, type AttrResult } from '../../src/build/results.js';
import { InputError } from '../../src/errors.js';
import { RecordingPlatform } from '../../src/platform/recording.js';
import { attrResult } from '../support/build-results.js';

const temps: string[] = [];
const mkdtempSync = (prefix: string): string => {
  const dir = makeTemp(prefix);
  temps.push(dir);
  return dir;
};
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

const RUNNER = { temp: '/runner/temp', workspace: '/work/space' };
const platform = (inputs: Record<string, string> = {}, env: Record<string, string> = {}) =>
  new RecordingPlatform(inputs, env, RUNNER);
const parse = (inputs: Record<string, string> = {}) => parseBuildInputs(platform(inputs));

function refuses(inputs: Record<string, string>, pattern: RegExp): void {
  let error: unknown;
  try {
    parse(inputs);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(InputError);
  expect((error as Error).message).toMatch(pattern);
}

describe('parseBuildInputs', () => {
  it('has the defaults action.yml documents', () => {
    expect(parse()).toEqual({
      flake: '.',
      select: 'checks',
      attributes: [],
      systems: [],
      evalWorkers: undefined,
      skipCached: false,
      retries: 1,
      timeout: undefined,
      maxSilentTime: undefined,
      allowEmulation: false,
      builders: '',
      buildersSshKey: '',
      lint: 'warn',
      lintMaxAge: 30,
      mode: 'build',
      maxShards: 16,
      runnerMap: '',
      reportEach: 'failures',
      checkName: 'flake-ci build',
      githubToken: '',
      results: '',
      resultsJson: '/runner/temp/flake-ci-build/results.json',
      resultsJunit: '/runner/temp/flake-ci-build/results.xml',
      strict: false,
    });
    const action = parseYaml(readFileSync('actions/build/action.yml', 'utf8')) as {
      inputs: Record<string, { default?: string }>;
    };
    expect(action.inputs.flake?.default).toBe('.');
    expect(action.inputs['check-name']?.default).toBe('flake-ci build');
    expect(action.inputs['max-shards']?.default).toBe('16');
    expect(action.inputs.lint?.default).toBe('true');
  });

  it('parses every input', () => {
    const i = parse({
      flake: './sub',
      select: 'packages',
      attributes: 'checks.*.vm-*\n  packages.x86_64-linux."my app"   checks.x86_64-linux.a\n# a comment\n',
      systems: 'x86_64-linux aarch64-linux',
      'eval-workers': '3',
      'skip-cached': 'true',
      retries: '0',
      timeout: '1h30m',
      'max-silent-time': '90',
      'allow-emulation': 'yes',
      builders: 'ssh-ng://b x86_64-linux\n',
      'builders-ssh-key': '-----BEGIN KEY-----\nabc\n-----END KEY-----',
      lint: 'strict',
      'lint-max-age': '7',
      mode: 'matrix',
      'max-shards': '256',
      'runner-map': 'x86_64-linux: big\n',
      'report-each': 'all',
      'check-name': 'nix',
      'github-token': 'ghs_secret',
      'results-json': 'out/r.json',
      'results-junit': '/abs/r.xml',
      strict: 'true',
    });
    expect(i).toMatchObject({
      flake: './sub',
      select: 'packages',
      attributes: ['checks.*.vm-*', 'packages.x86_64-linux."my app"', 'checks.x86_64-linux.a'],
      systems: ['x86_64-linux', 'aarch64-linux'],
      evalWorkers: 3,
      skipCached: true,
      retries: 0,
      timeout: 5400,
      maxSilentTime: 90,
      allowEmulation: true,
      builders: 'ssh-ng://b x86_64-linux',
      lint: 'strict',
      lintMaxAge: 7,
      mode: 'matrix',
      maxShards: 256,
      runnerMap: 'x86_64-linux: big',
      reportEach: 'all',
      checkName: 'nix',
      resultsJson: '/work/space/out/r.json',
      resultsJunit: '/abs/r.xml',
      strict: true,
    });
    expect(parse({ lint: 'false' }).lint).toBe('off');
    expect(parse({ lint: 'TRUE' }).lint).toBe('warn');
    expect(parse({ mode: 'publish', results: 'dl/results.json' }).results).toBe('/work/space/dl/results.json');
  });

  it('registers both secrets before validating anything else', () => {
    const p = platform({ 'github-token': 'ghs_t', 'builders-ssh-key': 'KEY', select: 'bad' });
    expect(() => parseBuildInputs(p)).toThrow(InputError);
    expect(p.secrets).toEqual(['ghs_t', 'KEY']);
  });

  it.each([
    [{ select: 'tests' }, /Input 'select' must be one of checks, packages; got 'tests'/],
    [{ lint: 'maybe' }, /Input 'lint' must be true, false or strict; got 'maybe'/],
    [{ mode: 'deploy' }, /Input 'mode' must be one of build, matrix, publish/],
    [{ mode: 'publish' }, /'mode: publish' needs 'results'/],
    [{ results: 'r.json' }, /Input 'results' is for 'mode: publish'/],
    [{ 'max-shards': '257' }, /Input 'max-shards' must be a whole number from 1 to 256/],
    [{ 'max-shards': '0' }, /Input 'max-shards'/],
    [{ retries: '-1' }, /Input 'retries'/],
    [{ 'eval-workers': '0' }, /Input 'eval-workers' must be a whole number from 1 to 64/],
    [{ timeout: 'soon' }, /Input 'timeout' must be a duration/],
    [{ timeout: '500ms' }, /Input 'timeout' must be at least 1s/],
    [{ 'max-silent-time': '0' }, /Input 'max-silent-time' must be at least 1s/],
    [{ 'report-each': 'some' }, /Input 'report-each' must be one of failures, all/],
    [{ 'skip-cached': 'perhaps' }, /Input 'skip-cached' must be true or false/],
    [{ attributes: '*.x86_64-linux.a' }, /Input 'attributes': .*literal output name/],
    [{ attributes: 'checks."open' }, /Input 'attributes': Unterminated quote/],
    [{ 'check-name': 'a\nb' }, /Input 'check-name' must be one line/],
  ])('refuses %j', (inputs, pattern) => refuses(inputs as Record<string, string>, pattern));
});

describe('splitPatterns', () => {
  it('splits on lines and blanks, keeps quoted blanks and commas, drops comment lines', () => {
    expect(splitPatterns(' a.b  c.d\n\n# x y\ne."f g".h\ni.j,k\r\n')).toEqual(['a.b', 'c.d', 'e."f g".h', 'i.j,k']);
    expect(splitPatterns('a."q\\" r"')).toEqual(['a."q\\" r"']);
  });
});

describe('engineOptions and shardInputs', () => {
  it('turns attributes into mode attributes, replacing select', () => {
    expect(engineOptions(parse())).toEqual({ flake: '.', mode: 'checks', skipCached: false, retries: 1 });
    expect(engineOptions(parse({ select: 'packages', attributes: 'checks.*.a', timeout: '2m' }))).toEqual({
      flake: '.',
      mode: 'attributes',
      attributes: ['checks.*.a'],
      skipCached: false,
      retries: 1,
      timeout: 120,
    });
    expect(engineOptions(parse({ systems: 'a-b', 'eval-workers': '2', 'max-silent-time': '1m' }))).toMatchObject({
      systems: ['a-b'],
      evalWorkers: 2,
      maxSilentTime: 60,
    });
  });

  it('passes the shards what the user gave, never a secret, and lints only in the planning job', () => {
    const p = platform({
      flake: 'github:o/r',
      retries: '2',
      'github-token': 'ghs_t',
      'builders-ssh-key': 'KEY',
      attributes: 'checks.*.*',
      mode: 'matrix',
    });
    expect(shardInputs(p)).toEqual({ lint: 'false', flake: 'github:o/r', retries: '2' });
  });
});

describe('action context', () => {
  it('finds local flakes and leaves remote references alone', () => {
    expect(localFlake('.', '/w')).toMatchObject({ dir: '/w' });
    expect(localFlake('./sub', '/w')).toMatchObject({ dir: '/w/sub' });
    expect(localFlake('path:./sub', '/w')).toMatchObject({ dir: '/w/sub' });
    expect(localFlake('git+file:///repo?dir=nix', '/w')).toMatchObject({
      dir: '/repo/nix',
      roots: ['/repo/nix', '/repo'],
    });
    expect(localFlake('.?dir=sub', '/w')).toMatchObject({ dir: '/w/sub' });
    expect(localFlake('/abs', '/w')).toMatchObject({ dir: '/abs' });
    expect(localFlake('github:o/r', '/w')).toBeUndefined();
    expect(localFlake('nixpkgs', '/w')).toBeUndefined();
  });

  it('maps a path Nix reports relative to the repository or the flake to one relative to the workspace', () => {
    const ws = mkdtempSync(join(tmpdir(), 'build-ctx-'));
    mkdirSync(join(ws, '.git'));
    mkdirSync(join(ws, 'sub/nix'), { recursive: true });
    writeFileSync(join(ws, 'sub/flake.nix'), '');
    writeFileSync(join(ws, 'sub/nix/checks.nix'), '');
    const flake = localFlake('./sub', ws);
    expect(flake?.roots).toEqual([join(ws, 'sub'), ws]);
    expect(annotationFile(flake, ws, 'flake.nix')).toBe('sub/flake.nix');
    expect(annotationFile(flake, ws, 'sub/nix/checks.nix')).toBe('sub/nix/checks.nix');
    expect(annotationFile(flake, ws, 'gone.nix')).toBe('sub/gone.nix');
    expect(annotationFile(undefined, ws, 'flake.nix')).toBeUndefined();
  });

  it('finds the line defining an attribute', () => {
    const text = 'x\n  checks.s = {\n    a-b = 1;\n    "c d" = 2;\n    ab == 3;\n  };\n';
    expect(attributeLine(text, ['checks', 's', 'a-b'])).toBe(3);
    expect(attributeLine(text, ['checks', 's', 'c d'])).toBe(4);
    expect(attributeLine(text, ['checks', 's', 'ab'])).toBe(1);
    expect(attributeLine(text, ['checks', 's', 'b'])).toBe(1);
    expect(attributeLine(text, ['checks.s.a+b'])).toBe(1);
  });

  it("reports on the pull request's head, a workflow_run's head, or GITHUB_SHA", () => {
    const dir = mkdtempSync(join(tmpdir(), 'build-event-'));
    const file = join(dir, 'event.json');
    const head = 'a'.repeat(40);
    const run = 'b'.repeat(40);
    writeFileSync(file, JSON.stringify({ pull_request: { head: { sha: head } }, workflow_run: { head_sha: run } }));
    const at = (name: string) =>
      reportSha(
        new RecordingPlatform({}, { GITHUB_EVENT_NAME: name, GITHUB_EVENT_PATH: file }, { sha: 'c'.repeat(40) }),
      );
    expect(at('pull_request')).toBe(head);
    expect(at('pull_request_target')).toBe(head);
    expect(at('workflow_run')).toBe(run);
    expect(at('push')).toBe('c'.repeat(40));
    writeFileSync(file, JSON.stringify({ pull_request: { head: { sha: 'not a sha' } } }));
    expect(at('pull_request')).toBe('c'.repeat(40));
  });

  it("links to the run's page", () => {
    const env = { GITHUB_SERVER_URL: 'https://ghe.example', GITHUB_REPOSITORY: 'o/r', GITHUB_RUN_ID: '7' };
    expect(detailsUrl(new RecordingPlatform({}, env))).toBe('https://ghe.example/o/r/actions/runs/7');
    expect(detailsUrl(new RecordingPlatform({}, {}))).toBeUndefined();
  });
});

function result(name: string, status: AttrResult['status'], extra: Partial<AttrResult> = {}): AttrResult {
  return attrResult(name, { drvPath: '', outputs: {}, status, duration: 1, ...extra });
}

describe('failure reporting', () => {
  it('names the counts and the first attributes', () => {
    const ok = [result('a', 'built'), result('b', 'cached')];
    expect(failureSummary(ok, countResults(ok))).toBeUndefined();
    const bad = [...ok, result('c', 'failed'), result('d', 'eval-error'), result('e', 'dependency-failed')];
    expect(failureSummary(bad, countResults(bad))).toBe(
      '2 failed to build and 1 failed to evaluate of 5 attribute(s): checks.x86_64-linux.c, ' +
        'checks.x86_64-linux.d (evaluation error), checks.x86_64-linux.e (dependency failed).',
    );
    const many = Array.from({ length: 12 }, (_, i) => result(`f${i}`, 'failed'));
    expect(failureSummary(many, countResults(many))).toMatch(/f9, and 2 more\.$/);
  });

  it('annotates at the evaluation error position, else at the attribute in flake.nix, and caps the count', () => {
    const ws = mkdtempSync(join(tmpdir(), 'build-annot-'));
    writeFileSync(join(ws, 'flake.nix'), '{\n  checks.x = {\n    c = 1;\n    d = 2;\n  };\n}\n');
    const p = platform();
    annotateResults(
      p,
      [
        result('a', 'built'),
        result('c', 'failed', { error: 'exit 1', logTail: ['l1', 'l2'] }),
        result('d', 'eval-error', {
          error: 'boom',
          errorLocation: { file: '/s/flake.nix', line: 4, column: 5, relativeFile: 'flake.nix' },
        }),
        result('e', 'eval-error', { error: 'no position' }),
      ],
      localFlake('.', ws),
      ws,
    );
    expect(p.logs.map((l) => [l.message, l.annotation])).toEqual([
      ['exit 1\n\nl1\nl2', { title: 'build failed: checks.x86_64-linux.c', file: 'flake.nix', startLine: 3 }],
      ['boom', { title: 'evaluation error: checks.x86_64-linux.d', file: 'flake.nix', startLine: 4, startColumn: 5 }],
      [
        'no position',
        { title: 'evaluation error: checks.x86_64-linux.e', file: 'flake.nix', startLine: 1, startColumn: undefined },
      ],
    ]);
    const q = platform();
    annotateResults(
      q,
      Array.from({ length: MAX_ANNOTATIONS + 3 }, (_, i) => result(`f${i}`, 'failed')),
      undefined,
      ws,
    );
    expect(q.logs).toHaveLength(MAX_ANNOTATIONS + 1);
    expect(q.logs[0]?.annotation).toEqual({ title: 'build failed: checks.x86_64-linux.f0' });
    expect(q.logs.at(-1)?.message).toMatch(/^3 more attribute\(s\) failed/);
  });
});
