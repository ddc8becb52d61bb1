// The GitHub runner harness itself, against a dependency-free fixture action that writes the runner's file-command
// formats by hand: if these pass, integration tests of the real bundles see what a runner would give them.
import { describe, expect, it } from '@jest/globals';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  REPO_ROOT,
  inputEnvName,
  parseKeyValueFile,
  parseWorkflowCommands,
  runAction,
  runActionInNamespace,
  runStep,
  shellQuote,
} from '../harness/github-runner.js';

const fixture = join(REPO_ROOT, 'test/fixtures/harness-action');

describe('file-command and workflow-command parsing', () => {
  it('names inputs like the runner', () => {
    expect(inputEnvName('nix-version')).toBe('INPUT_NIX-VERSION');
    expect(inputEnvName('my input')).toBe('INPUT_MY_INPUT');
  });

  it('parses name=value and heredoc entries, and rejects an unterminated heredoc', () => {
    expect(parseKeyValueFile('a=1=2\nb<<EOF\nx\n\ny\nEOF\nc<<X=Y\nd=e\nX=Y\n')).toEqual({
      a: '1=2',
      b: 'x\n\ny',
      c: 'd=e',
    });
    expect(() => parseKeyValueFile('a<<EOF\nnever closed\n')).toThrow(/delimiter 'EOF' not found/);
    expect(() => parseKeyValueFile('no separator\n')).toThrow(/invalid line 1/);
  });

  it('parses annotations with escapes, masks and stop-commands', () => {
    const parsed = parseWorkflowCommands(
      '::error file=a%2Cb.ts,line=7,endLine=8::x %25%0Ay\n  ::notice::n\n::stop-commands::t\n::error::no\n::t::\n::add-mask::m\n',
    );
    expect(parsed.annotations).toEqual([
      { level: 'error', message: 'x %\ny', file: 'a,b.ts', line: 7, endLine: 8 },
      { level: 'notice', message: 'n' },
    ]);
    expect(parsed.failed).toEqual(['x %\ny']);
    expect(parsed.masks).toEqual(['m']);
  });
});

describe('runAction with the fixture', () => {
  it('runs main and post like the runner', async () => {
    const { main, post } = await runAction({
      actionDir: fixture,
      inputs: { greeting: 'hi' },
      token: 'ghs_harness_token',
      env: { ONLY_THIS: '1' },
    });
    expect(main.ok).toBe(true);
    expect(main.outputs).toMatchObject({
      greeting: 'hi world',
      multi: 'line 1\nline 2\nline 3',
      simple: 'a=b',
      dashed: 'dash-default',
      token: 'ghs_harness_token',
      'no-default-set': 'true',
    });
    expect(main.state).toEqual({ phase: 'main-done', multi: 'a\nb' });
    expect(main.env).toEqual({ HARNESS_VAR: 'from-main', HARNESS_SIMPLE: 'x=y' });
    expect(main.path).toEqual([join(main.dirs.temp, 'harness-bin')]);
    expect(main.summary).toContain('### Harness summary');
    expect(main.annotations).toEqual([
      {
        level: 'warning',
        message: 'something 100% odd\nsecond line',
        file: 'src/a.ts',
        line: 3,
        column: 5,
        title: 'Odd, title',
      },
      { level: 'notice', message: 'plain notice' },
    ]);
    expect(main.failed).toEqual([]);
    expect(main.masks).toEqual(['s3cr3t-value']);
    expect(main.log).toContain('the secret is ***');
    expect(main.runnerWarnings).toEqual([]);

    // The step sees a clean environment: what the runner sets and what the test passed, not the jest process's.
    const names: string[] = JSON.parse(main.outputs['env-names'] ?? '[]');
    expect(names).toEqual(expect.arrayContaining(['ONLY_THIS', 'INPUT_DASHED-NAME', 'GITHUB_OUTPUT', 'RUNNER_TEMP']));
    expect(names).toEqual(
      expect.arrayContaining(['GITHUB_ACTIONS', 'RUNNER_ENVIRONMENT', 'GITHUB_API_URL', 'RUNNER_TOOL_CACHE']),
    );
    expect(names).not.toContain('JEST_WORKER_ID');
    expect(names).not.toContain('NODE_OPTIONS');

    expect(post).toBeDefined();
    expect(post?.stdout).not.toContain('::error');
    expect(post?.ok).toBe(true);
    expect(post?.outputs['post-ok']).toBe('true');
  });

  it('defaults github.token to empty, warns about undeclared inputs and reports failures', async () => {
    const { main, post } = await runAction({ actionDir: fixture, inputs: { fail: true, typo: 'x' } });
    expect(main.outputs.token).toBe('');
    expect(main.runnerWarnings).toEqual(["Unexpected input(s) 'typo'"]);
    expect(main.exitCode).toBe(1);
    expect(main.ok).toBe(false);
    expect(main.failed).toEqual(['boom']);
    expect(main.annotations).toContainEqual({ level: 'error', message: 'boom', file: 'main.mjs', line: 1 });
    expect(post?.ok).toBe(true); // post-if: always()
  });

  it('kills a step that exceeds its timeout', async () => {
    const main = await runStep({ actionDir: fixture, inputs: { 'sleep-seconds': 60 }, timeoutMs: 500 });
    expect(main.timedOut).toBe(true);
    expect(main.ok).toBe(false);
  });

  it('finds bundles under distRoot by entry name', async () => {
    const distRoot = mkdtempSync(join(tmpdir(), 'harness-dist-'));
    try {
      mkdirSync(join(distRoot, 'fixture-main'));
      writeFileSync(join(distRoot, 'fixture-main/package.json'), '{"type":"module"}\n');
      writeFileSync(join(distRoot, 'fixture-main/index.js'), `import ${JSON.stringify(join(fixture, 'main.mjs'))};\n`);
      const main = await runStep({ actionDir: fixture, distRoot, entry: 'fixture-main' });
      expect(main.script).toBe(join(distRoot, 'fixture-main/index.js'));
      expect(main.outputs.greeting).toBe('hello world');
    } finally {
      rmSync(distRoot, { recursive: true, force: true });
    }
  });
});

// Mount namespaces need root: without it these tests fail loudly rather than skip.
const asRoot = (name: string, fn: () => Promise<void>, timeout?: number) =>
  it(
    name,
    async () => {
      if (process.getuid?.() !== 0)
        throw new Error('runActionInNamespace needs root (unshare -m): run the tests as root.');
      await fn();
    },
    timeout,
  );

describe('runActionInNamespace', () => {
  asRoot('shares a tmpfs mounted in setup between main and post, and leaves nothing behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'harness-ns-'));
    chmodSync(dir, 0o755);
    try {
      const q = shellQuote(dir);
      const { main, post } = await runActionInNamespace(
        { actionDir: fixture, inputs: { 'probe-dir': dir } },
        { setup: [`mount -t tmpfs tmpfs ${q}`, `echo from-setup > ${q}/marker`] },
      );
      expect(main.ok).toBe(true);
      expect(main.outputs.probe).toBe('from-setup');
      expect(post?.ok).toBe(true);
      expect(post?.outputs.probe).toBe('seen');
      // The tmpfs existed only in the namespace: the host directory is still empty.
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  asRoot('reports a failing setup line with its output', async () => {
    await expect(runActionInNamespace({ actionDir: fixture }, { setup: ['echo nope >&2', 'false'] })).rejects.toThrow(
      /namespace run failed[\s\S]*nope/,
    );
  });
});
