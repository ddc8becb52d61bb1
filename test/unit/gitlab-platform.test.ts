import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { InputError } from '../../src/errors.js';
import { GitLabPlatform, type CodeQualityIssue } from '../../src/platform/gitlab.js';

let dir: string;
let env: NodeJS.ProcessEnv;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-gitlab-'));
  env = { CI_PROJECT_DIR: dir, CI_JOB_ID: '42', PATH: '/usr/bin:/bin' };
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  process.exitCode = undefined;
});

function platform(extra: NodeJS.ProcessEnv = {}) {
  const chunks: string[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  Object.assign(env, extra);
  const p = new GitLabPlatform(env, { action: 'install-nix', out });
  return { p, text: () => chunks.join('') };
}

const read = (...parts: string[]) => fs.readFileSync(path.join(dir, '.flake-ci', ...parts), 'utf8');
const issues = (): CodeQualityIssue[] => JSON.parse(read('install-nix', 'codequality.json')) as CodeQualityIssue[];

/** Sources env.sh with a real POSIX shell and prints one variable, proving the quoting round-trips. */
function sourced(name: string): string {
  const file = path.join(dir, '.flake-ci', 'env.sh');
  const r = spawnSync('sh', ['-c', `. "$1"; printf %s "$${name}"`, 'sh', file], {
    env: { PATH: '/usr/bin:/bin' },
    encoding: 'utf8',
  });
  expect(r.stderr).toBe('');
  return r.stdout;
}

describe('GitLabPlatform context and inputs', () => {
  it('reads the runner context from GitLab variables without touching the disk', () => {
    const { p } = platform({ CI_SERVER_URL: 'https://gitlab.example', CI_PROJECT_PATH: 'g/p', CI_COMMIT_SHA: 'abc' });
    expect(p.name).toBe('gitlab');
    expect(p.runner).toMatchObject({
      workspace: dir,
      temp: path.join(dir, '.flake-ci', 'tmp'),
      toolCache: '',
      serverUrl: 'https://gitlab.example',
      repository: 'g/p',
      sha: 'abc',
      hosted: false,
      debug: false,
    });
    expect(fs.existsSync(path.join(dir, '.flake-ci'))).toBe(false);
    expect(platform({ FLAKE_CI_TOOL_CACHE: '/tc', FLAKE_CI_HOSTED: 'true' }).p.runner).toMatchObject({
      toolCache: '/tc',
      hosted: true,
    });
  });

  it('maps kebab-case, snake_case and spaced names to the same INPUT_* variable', () => {
    const { p } = platform({ INPUT_NIX_VERSION: '  2.24  ', INPUT_EXTRA_CONF: '  a = 1\nb = 2\n' });
    expect(p.getInput('nix-version')).toBe('2.24');
    expect(p.getInput('nix_version')).toBe('2.24');
    expect(p.getInput('Nix version')).toBe('2.24');
    expect(p.getMultilineInput('extra-conf')).toBe('  a = 1\nb = 2\n');
    expect(p.getInput('missing')).toBe('');
    expect(p.env('CI_JOB_ID')).toBe('42');
  });
});

describe('GitLabPlatform outputs', () => {
  it('writes dotenv lines verbatim and keeps what dotenv cannot carry in outputs.json only', async () => {
    const { p, text } = platform();
    const values: Record<string, string> = {
      'nix-version': '2.24.1',
      quoted: `it's "quoted" = fine`,
      empty: '',
      lines: 'one\ntwo',
      big: 'x'.repeat(6000),
      dollar: 'costs $HOME',
      padded: ' padded ',
    };
    for (const [k, v] of Object.entries(values)) p.setOutput(k, v);
    await p.finish();
    expect(read('install-nix', 'outputs.env')).toBe(`NIX_VERSION=2.24.1\nQUOTED=it's "quoted" = fine\nEMPTY=\n`);
    expect(JSON.parse(read('install-nix', 'outputs.json'))).toEqual(values);
    for (const skipped of ['lines', 'big', 'dollar', 'padded'])
      expect(text()).toContain(`Output '${skipped}' is not in the dotenv report`);
    expect(text()).not.toContain(`Output 'quoted'`);
    expect(issues()).toEqual([]);
  });

  it('keeps the whole dotenv file under the size and count limits GitLab enforces', async () => {
    const { p, text } = platform();
    for (let i = 0; i < 30; i++) p.setOutput(`small-${i}`, String(i));
    for (let i = 0; i < 3; i++) p.setOutput(`large-${i}`, 'y'.repeat(2000));
    await p.finish();
    const dotenv = read('install-nix', 'outputs.env');
    expect(dotenv.split('\n').filter(Boolean)).toHaveLength(20);
    expect(Buffer.byteLength(dotenv)).toBeLessThan(5120);
    expect(text()).toContain(`Output 'small-20' is not in the dotenv report (more than 20 outputs)`);
    expect(Object.keys(JSON.parse(read('install-nix', 'outputs.json')))).toHaveLength(33);
  });

  it('keeps outputs and issues of main when post finishes, and drops those of an older job', async () => {
    const main = platform().p;
    main.setOutput('store-path', '/nix/store/abc');
    main.log('warning', 'slow', { file: 'flake.nix', startLine: 3 });
    await main.finish();
    await platform().p.finish();
    expect(read('install-nix', 'outputs.env')).toBe('STORE_PATH=/nix/store/abc\n');
    expect(issues()).toHaveLength(1);
    await platform({ CI_JOB_ID: '43' }).p.finish();
    expect(read('install-nix', 'outputs.env')).toBe('');
    expect(issues()).toEqual([]);
  });
});

describe('GitLabPlatform state', () => {
  it('round-trips state from main to a separate post process, in a 0600 file', () => {
    const main = platform().p;
    expect(main.getState('x')).toBe('');
    main.setState('installed', '{"daemon":false}');
    main.setState('other', 'b');
    const post = platform().p;
    expect(post.getState('installed')).toBe('{"daemon":false}');
    expect(post.getState('other')).toBe('b');
    expect(post.getState('missing')).toBe('');
    expect(fs.statSync(path.join(dir, '.flake-ci', 'install-nix', 'state.json')).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(path.join(dir, '.flake-ci', 'install-nix')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('ignores state left by another job', () => {
    platform().p.setState('installed', 'true');
    expect(platform({ CI_JOB_ID: '43' }).p.getState('installed')).toBe('');
  });
});

describe('GitLabPlatform env.sh', () => {
  it('quotes exported values so that sh reads them back exactly', () => {
    const { p } = platform();
    const tricky = `it's $HOME and \`id\` "quoted"\nsecond line \\ end '`;
    p.exportVariable('TRICKY', tricky);
    p.exportVariable('PLAIN', 'value');
    expect(sourced('TRICKY')).toBe(tricky);
    expect(sourced('PLAIN')).toBe('value');
    expect(env.TRICKY).toBe(tricky);
  });

  it('prepends PATH entries for later script lines and this process', () => {
    const { p } = platform();
    p.addPath(`/opt/it's here/bin`);
    p.addPath('/nix/var/nix/profiles/default/bin');
    expect(sourced('PATH')).toBe(`/nix/var/nix/profiles/default/bin:/opt/it's here/bin:/usr/bin:/bin`);
    expect(env.PATH).toBe(`/nix/var/nix/profiles/default/bin:/opt/it's here/bin:/usr/bin:/bin`);
  });

  it('rejects invalid names and starts afresh over an env.sh of another job', () => {
    const { p } = platform();
    expect(() => p.exportVariable('NO-DASH', 'x')).toThrow(InputError);
    expect(() => p.exportVariable('1ST', 'x')).toThrow(/must match/);
    p.exportVariable('OLD', 'old');
    platform({ CI_JOB_ID: '43' }).p.exportVariable('NEW', 'new');
    expect(sourced('OLD')).toBe('');
    expect(sourced('NEW')).toBe('new');
  });
});

describe('GitLabPlatform redaction', () => {
  const secret = `s3cr"et'Tok$n`;

  it('redacts a registered secret from everything it prints or writes', async () => {
    const { p, text } = platform();
    p.setSecret(secret);
    p.log('info', `token is ${secret}`);
    p.log('error', `bad ${secret}`, { file: 'flake.nix', startLine: 1, title: `t ${secret}` });
    await p.group(`fetch with ${secret}`, async () => undefined);
    await p.appendSummary(`| token | ${secret} |`);
    p.setOutput('token', secret);
    p.setState('leak', secret);
    p.exportVariable('LEAK', secret);
    p.setFailed(`failed: ${secret}`);
    await p.finish();
    expect(process.exitCode).toBe(1);
    const files = ['summary.md', 'outputs.env', 'outputs.json', 'codequality.json', 'state.json'];
    const written = [...files.map((f) => read('install-nix', f)), read('env.sh')];
    for (const t of [text(), ...written]) expect(t).not.toContain('s3cr');
    expect(text()).toContain('token is [MASKED]');
    expect(text()).toContain('error:\x1b[0m ');
    expect(text()).toContain('failed: [MASKED]');
    expect(read('install-nix', 'summary.md')).toBe('| token | [MASKED] |\n');
    expect(read('install-nix', 'outputs.env')).toBe('TOKEN=[MASKED]\n');
    expect(issues()[0]).toMatchObject({ description: 'bad [MASKED]', check_name: 't [MASKED]' });
    expect(sourced('LEAK')).toBe('[MASKED]');
    expect(env.LEAK).toBe(secret);
  });

  it('redacts each line of a multi-line secret and the JSON-escaped form', () => {
    const { p, text } = platform();
    p.setSecret('-----BEGIN KEY-----\nAAAAsecretbody\n}\n-----END KEY-----');
    p.setSecret('');
    p.log('info', 'line AAAAsecretbody and {"k":"-----BEGIN KEY-----\\nAAAAsecretbody\\n}\\n-----END KEY-----"} }');
    expect(text()).toBe('line [MASKED] and {"k":"[MASKED]"} }\n');
  });
});

describe('GitLabPlatform logging', () => {
  it('prints levels, hides debug unless enabled and never starts a line with ::', async () => {
    const { p, text } = platform({ FLAKE_CI_DEBUG: 'true' });
    p.log('info', '::add-mask::x\n::set-output name=a::b');
    p.log('debug', 'a\n::b');
    p.log('notice', 'n', { file: 'a.nix', startLine: 2 });
    p.log('warning', '::warning::w', { file: 'a.nix' });
    await p.group('::group::g', async () => p.log('info', 'inside'));
    p.setFailed('::error::e');
    const lines = text().split(/\r\n|\n|\r/);
    expect(lines.filter((l) => l.startsWith('::'))).toEqual([]);
    expect(text()).toContain('[debug] a\n[debug] ::b\n');
    expect(text()).toContain('\x1b[36mnotice:\x1b[0m n (a.nix:2)\n');
    expect(text()).toContain('\x1b[33mwarning:\x1b[0m ::warning::w (a.nix)\n');
    expect(platform({ FLAKE_CI_DEBUG: 'false' }).p.runner.debug).toBe(false);
  });

  it('omits debug lines when debug is off', () => {
    const { p, text } = platform();
    p.log('debug', 'hidden');
    expect(text()).toBe('');
  });

  it('wraps groups in collapsed sections with unique ids, closed even when fn throws', async () => {
    const { p, text } = platform();
    await p.group('Install Nix 2.24!', async () => p.log('info', 'body'));
    await expect(
      p.group('Install Nix 2.24!', async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    // ESC spelled out so the patterns need no control characters.
    const shown = text().replaceAll('\x1b', '<ESC>');
    const starts = [
      ...shown.matchAll(/<ESC>\[0Ksection_start:(\d+):([a-z0-9_.-]+)\[collapsed=true\]\r<ESC>\[0K(.*)\n/g),
    ];
    const ends = [...shown.matchAll(/<ESC>\[0Ksection_end:(\d+):([a-z0-9_.-]+)\r<ESC>\[0K\n/g)];
    expect(starts.map((m) => m[3])).toEqual(['Install Nix 2.24!', 'Install Nix 2.24!']);
    expect(starts.map((m) => m[2])).toEqual(ends.map((m) => m[2]));
    expect(starts[0]?.[2]).toMatch(/^install_nix_2.24_\d+_1$/);
    expect(new Set(starts.map((m) => m[2])).size).toBe(2);
    expect(Math.abs(Number(starts[0]?.[1]) - Date.now() / 1000)).toBeLessThan(60);
    expect(text()).toContain('Install Nix 2.24!\nbody\n\x1b[0Ksection_end');
  });

  it('records Code Quality issues with stable fingerprints', async () => {
    const report = async (line: number) => {
      fs.rmSync(path.join(dir, '.flake-ci'), { recursive: true, force: true });
      const { p } = platform();
      p.log('warning', 'deprecated input', { file: path.join(dir, 'flake.nix'), startLine: line, title: 'lint' });
      p.log('error', 'build failed', { file: 'pkgs/a.nix' });
      p.log('error', 'no file, no issue');
      await p.finish();
      return issues();
    };
    const first = await report(7);
    expect(first).toHaveLength(2);
    expect(first[0]).toMatchObject({
      description: 'deprecated input',
      check_name: 'lint',
      severity: 'minor',
      location: { path: 'flake.nix', lines: { begin: 7 } },
    });
    expect(first[1]).toMatchObject({ check_name: 'install-nix', severity: 'major', location: { lines: { begin: 1 } } });
    expect(first[0]?.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(await report(7)).toEqual(first);
    expect((await report(8))[0]?.fingerprint).not.toBe(first[0]?.fingerprint);
  });
});
