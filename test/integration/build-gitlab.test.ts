/**
 * gitlab-templates/build.yml end to end: gitlab-ci-local runs a consumer pipeline that includes the template with
 * `include: local:` + `inputs:` on the shell executor, so GitLab's own steps run here: spec:inputs interpolation into
 * INPUT_* variables, this working tree's dist bundles (suite_dir), the script (build, then post), the JUnit, Code
 * Quality and dotenv reports, and a `needs:` job reading the counts. The consumer is the build engine's fixture flake
 * (a git repository, as a GitLab checkout is), built with real Nix 2.8 and 2.34, each in its own chroot store.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { REPO_ROOT } from '../harness/github-runner.js';
import {
  BINARIES,
  SYSTEM,
  distSnapshot,
  fixtureWorkspace,
  lineOf,
  removeScratch,
} from '../fixtures/build-action/workspace.js';
import { requireCommand } from '../support/fixtures.js';
import { spawnCollect, gitlabCiLocalLogs } from '../harness/namespace.mjs';

const GCL = path.join(REPO_ROOT, 'node_modules/gitlab-ci-local/dist/index.js');
const TEMPLATE = 'gitlab-templates/build.yml';
const TOKEN = 'ghp_GitLabBuildSecretToken0123456789';
let scratch: string;
let suiteDir: string;

interface CodeQualityIssue {
  description: string;
  check_name: string;
  severity: string;
  location: { path: string; lines: { begin: number } };
}

function git(cwd: string, ...args: string[]): void {
  const r = spawnSync('git', ['-c', 'user.name=flake-ci', '-c', 'user.email=ci@example.invalid', ...args], { cwd });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')} failed: ${String(r.stderr)}`);
}

/** The fixture workspace made a consumer repository with a copy of the template and this .gitlab-ci.yml. */
function project(dir: string, config: Record<string, unknown>): void {
  mkdirSync(path.join(dir, 'gitlab-templates'), { recursive: true });
  cpSync(path.join(REPO_ROOT, TEMPLATE), path.join(dir, TEMPLATE));
  writeFileSync(path.join(dir, '.gitlab-ci.yml'), stringify(config));
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'remote', 'add', 'origin', 'https://gitlab.example.invalid/acme/flakes.git');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'consumer');
  git(dir, 'update-ref', 'refs/remotes/origin/main', 'HEAD');
  git(dir, 'symbolic-ref', 'refs/remotes/origin/HEAD', 'refs/remotes/origin/main');
}

/**
 * gitlab-ci-local on the shell executor (the template's `image:` is ignored, as a shell runner does), GITLAB_CI=true
 * as GitLab sets it, and the job's environment from `env` (Nix on PATH, NIX_CONFIG with the chroot store).
 */
async function runPipeline(dir: string, env: Record<string, string>) {
  const args = [GCL, '--force-shell-executor', '--no-color'];
  const vars = { GITLAB_CI: 'true', CI_PROJECT_DIR: dir };
  for (const [k, v] of Object.entries(vars)) args.push('--variable', `${k}=${v}`);
  args.push('--ignore-predefined-vars', Object.keys(vars).join(','));
  const home = mkdtempSync(path.join(scratch, 'home-'));
  const fullEnv = {
    ...env,
    PATH: `${path.dirname(process.execPath)}:${env.PATH}`,
    HOME: home,
    LANG: 'C.UTF-8',
  };
  const { code, output } = await spawnCollect(process.execPath, args, 5 * 60_000, { cwd: dir, env: fullEnv });
  const logs = gitlabCiLocalLogs(dir);
  return { code, output, logs, read: (rel: string) => readFileSync(path.join(dir, rel), 'utf8') };
}

beforeAll(async () => {
  requireCommand('/usr/bin/nix', 'nix-bin');
  requireCommand('/usr/bin/rsync', 'rsync');
  requireCommand('/usr/bin/git', 'git');
  requireCommand(GCL, "gitlab-ci-local (devDependency: 'npm ci')");
  if (Number(process.versions.node.split('.')[0]) < 24)
    throw new Error(`Node ${process.version} runs the tests; the bundles need Node 24: run them with 'npm test'.`);
  scratch = mkdtempSync(path.join(tmpdir(), 'flake-ci-gitlab-build-'));
  suiteDir = path.dirname(await distSnapshot(scratch));
});

afterAll(() => removeScratch(scratch));

describe('gitlab-templates/build.yml', () => {
  it('mirrors every action.yml input in snake_case with its default, and runs both bundles', () => {
    type Inputs = Record<string, { default?: string }>;
    const action = parse(readFileSync(path.join(REPO_ROOT, 'actions/build/action.yml'), 'utf8')) as {
      inputs: Inputs;
      runs: { main: string; post: string };
    };
    const [header, body] = parseAllDocuments(readFileSync(path.join(REPO_ROOT, TEMPLATE), 'utf8')).map((d) => d.toJS());
    const spec = (header as { spec: { inputs: Inputs } }).spec.inputs;
    const job = (body as Record<string, { variables: Record<string, string>; script: string[] }>)['.flake-ci-build'];
    const gitlabDefaults: Record<string, string> = {
      'github-token': '',
      'results-json': '.flake-ci/tmp/flake-ci-build/results.json',
      'results-junit': '.flake-ci/tmp/flake-ci-build/results.xml',
    };
    for (const [name, input] of Object.entries(action.inputs)) {
      const snake = name.replace(/-/g, '_');
      expect({ snake, default: spec[snake]?.default }).toEqual({
        snake,
        default: gitlabDefaults[name] ?? input.default,
      });
      const variable = ['mode', 'github_token', 'timeout', 'strict'].includes(snake)
        ? `FLAKE_CI_BUILD_${snake.toUpperCase()}`
        : `INPUT_${snake.toUpperCase()}`;
      expect({ snake, value: job?.variables[variable] }).toEqual({ snake, value: `$[[ inputs.${snake} ]]` });
    }
    const templateOnly = Object.keys(spec).filter((k) => !(k.replace(/_/g, '-') in action.inputs));
    expect(templateOnly.sort()).toEqual(['child_include', 'image', 'suite_dir', 'suite_ref', 'suite_url']);
    expect(job?.variables.FLAKE_CI_CHILD_INCLUDE).toBe('$[[ inputs.child_include ]]');
    // No INPUT_MODE / INPUT_GITHUB_TOKEN / INPUT_TIMEOUT / INPUT_STRICT of ours: they would replace install-nix's or
    // cache.yml's when a job extends several templates.
    for (const v of ['INPUT_MODE', 'INPUT_GITHUB_TOKEN', 'INPUT_TIMEOUT', 'INPUT_STRICT'])
      expect(job?.variables).not.toHaveProperty(v);
    const script = job?.script.join('\n') ?? '';
    for (const entry of ['build', 'build-post']) expect(script).toContain(`dist/${entry}/index.js`);
    expect(action.runs).toEqual({
      using: 'node24',
      main: '../../dist/build/index.js',
      post: '../../dist/build-post/index.js',
    });
  });

  it("composes with install-nix.yml: neither template's inputs nor scripts replace the other's", () => {
    const dir = mkdtempSync(path.join(scratch, 'compose-'));
    mkdirSync(path.join(dir, 'gitlab-templates'), { recursive: true });
    cpSync(
      path.join(REPO_ROOT, 'gitlab-templates/install-nix.yml'),
      path.join(dir, 'gitlab-templates/install-nix.yml'),
    );
    project(dir, {
      include: [
        { local: 'gitlab-templates/install-nix.yml', inputs: { mode: 'single-user', github_token: 'nix-token' } },
        { local: TEMPLATE, inputs: { mode: 'matrix', github_token: 'build-token' } },
      ],
      checks: { extends: ['.flake-ci-nix', '.flake-ci-build'] },
    });
    const r = spawnSync(process.execPath, [GCL, '--preview', '--no-color'], {
      cwd: dir,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, HOME: dir },
    });
    expect(r.status === 0 ? '' : r.stdout + r.stderr).toBe('');
    type Job = { variables: Record<string, string>; before_script: string[]; script: string[]; after_script: string[] };
    const jobs = parseAllDocuments(r.stdout.slice(r.stdout.indexOf('---')))[0]?.toJS() as Record<string, Job>;
    const job = jobs.checks as Job;
    expect(job.variables).toMatchObject({
      INPUT_MODE: 'single-user',
      INPUT_GITHUB_TOKEN: 'nix-token',
      FLAKE_CI_BUILD_MODE: 'matrix',
      FLAKE_CI_BUILD_GITHUB_TOKEN: 'build-token',
    });
    expect(job.before_script.join('\n')).toContain('dist/install-nix/index.js');
    expect(job.after_script.join('\n')).toContain('dist/install-nix-post/index.js');
    expect(job.script.join('\n')).toContain('dist/build/index.js');
  });
});

describe.each(BINARIES)('gitlab-templates/build.yml under gitlab-ci-local with $name', ({ bin }) => {
  const attr = (name: string) => `checks.${SYSTEM}.${name}`;
  let p: Awaited<ReturnType<typeof runPipeline>>;
  let dir: string;

  beforeAll(async () => {
    const ws = fixtureWorkspace(bin, mkdtempSync(path.join(scratch, 'ws-')));
    dir = ws.workspace;
    project(dir, {
      include: [
        {
          local: TEMPLATE,
          inputs: {
            suite_dir: suiteDir,
            attributes: 'checks.*.pass-a checks.*.fail\nchecks.*.eval-throw',
            github_token: TOKEN,
          },
        },
      ],
      stages: ['build', 'use'],
      // allow_failure: the build fails (as it must), and the next stage still runs to read its dotenv report.
      checks: { extends: '.flake-ci-build', stage: 'build', allow_failure: true },
      use: {
        stage: 'use',
        needs: ['checks'],
        script: ['echo "got BUILT=$BUILT FAILED=$FAILED EVAL_ERRORS=$EVAL_ERRORS REPORT=$REPORT"'],
      },
    });
    p = await runPipeline(dir, ws.env);
  });

  it('fails the build job, and hands the counts to a later job through dotenv', () => {
    // WARN: failed with allow_failure (exit code 1, as gitlab-ci-local prints it).
    expect(p.output).toMatch(/checks\s+finished in [\d.]+ m?s\s+WARN 1/);
    expect(p.output).toMatch(/WARN\s+checks/);
    expect(p.output).toMatch(/PASS\s+use/);
    expect(p.logs.checks).toContain('1 failed to build and 1 failed to evaluate of 3 attribute(s)');
    const dotenv = p.read('.flake-ci/build/outputs.env');
    expect(dotenv).toContain('BUILT=1\n');
    expect(dotenv).toContain('FAILED=1\n');
    expect(dotenv).toContain('EVAL_ERRORS=1\n');
    expect(dotenv).toContain('REPORT=none\n');
    expect(dotenv).toContain(`RESULTS_JUNIT=${dir}/.flake-ci/tmp/flake-ci-build/results.xml\n`);
    expect(p.logs.use).toContain('got BUILT=1 FAILED=1 EVAL_ERRORS=1 REPORT=none');
  });

  it('writes the JUnit report the template hands to artifacts:reports:junit', () => {
    const xml = p.read('.flake-ci/tmp/flake-ci-build/results.xml');
    expect(XMLValidator.validate(xml)).toBe(true);
    const doc = new XMLParser({ ignoreAttributes: false }).parse(xml);
    expect(doc.testsuites).toMatchObject({ '@_tests': '3', '@_failures': '1', '@_errors': '1' });
    const json = JSON.parse(p.read('.flake-ci/tmp/flake-ci-build/results.json')) as { results: { attr: string }[] };
    expect(json.results.map((r) => r.attr).sort()).toEqual([attr('eval-throw'), attr('fail'), attr('pass-a')]);
  });

  it('puts the evaluation error and the failed build in the Code Quality report, at their lines', () => {
    const issues = JSON.parse(p.read('.flake-ci/build/codequality.json')) as CodeQualityIssue[];
    const byName = Object.fromEntries(issues.map((i) => [i.check_name, i]));
    expect(byName[`evaluation error: ${attr('eval-throw')}`]).toMatchObject({
      severity: 'major',
      location: { path: 'flake.nix', lines: { begin: lineOf('eval-throw = throw') } },
    });
    expect(byName[`evaluation error: ${attr('eval-throw')}`]?.description).toContain(
      'FIXTURE: eval-throw cannot be evaluated',
    );
    expect(byName[`build failed: ${attr('fail')}`]).toMatchObject({
      severity: 'major',
      location: { path: 'flake.nix', lines: { begin: lineOf('fail = mk') } },
    });
  });

  it('keeps the summary as an artifact, prints no workflow command and never the token', () => {
    expect(p.read('.flake-ci/build/summary.md').trim()).not.toBe('');
    for (const [job, log] of Object.entries(p.logs))
      expect({ job, lines: log.match(/^::.*$/gm) }).toEqual({ job, lines: null });
    const files = ['outputs.env', 'outputs.json', 'summary.md', 'codequality.json'].map((f) =>
      p.read(`.flake-ci/build/${f}`),
    );
    const results = ['results.json', 'results.xml'].map((f) => p.read(`.flake-ci/tmp/flake-ci-build/${f}`));
    expect([p.output, ...Object.values(p.logs), ...files, ...results].join('\n')).not.toContain(TOKEN);
  });
});
