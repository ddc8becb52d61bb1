/**
 * gitlab-templates/install-nix.yml end to end: gitlab-ci-local runs a consumer pipeline that includes the template with
 * `include: local:` + `inputs:`, so GitLab's own steps run on this host: spec:inputs interpolation into INPUT_*
 * variables, before_script (this working tree's dist bundle, via the suite_dir input), sourcing env.sh, the job's
 * script, after_script (the post bundle), artifacts and a dotenv report passed through `needs:`. The whole run happens
 * in a private mount namespace with a tmpfs /nix and a private /etc, so the host's Nix and users are never touched.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { REPO_ROOT } from '../harness/github-runner.js';
import { RELEASE_DIR, TARBALL_NAME, requireCommand, requireFixtures } from '../support/fixtures.js';
import {
  isolationSetup,
  serveDirectory,
  type StaticServer,
  spawnCollect,
  gitlabCiLocalLogs,
} from '../harness/namespace.mjs';

const GCL = path.join(REPO_ROOT, 'node_modules/gitlab-ci-local/dist/index.js');
const TEMPLATE = 'gitlab-templates/install-nix.yml';
const TOKEN = 'glpat-test-secret-value';
const TIMEOUT_MS = 5 * 60_000;
/** The tag this tree will be released as: the template's suite_ref default and the ref examples include it at. */
const RELEASE_TAG = `v${(JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version}`;
let server: StaticServer;
let scratch: string;

interface Pipeline {
  project: string;
  code: number | null;
  /** gitlab-ci-local's own stdout+stderr (job lines prefixed with the job name). */
  output: string;
  /** Raw job logs from .gitlab-ci-local/output/<job>.log, as GitLab would show them. */
  logs: Record<string, string>;
  read(rel: string): string;
}

function git(cwd: string, ...args: string[]): void {
  const r = spawnSync('git', ['-c', 'user.name=flake-ci', '-c', 'user.email=ci@example.invalid', ...args], { cwd });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')} failed: ${String(r.stderr)}`);
}

/** A consumer repository whose .gitlab-ci.yml includes the template with these inputs. */
function consumer(name: string, inputs: Record<string, string>, jobs: Record<string, unknown>): string {
  return project(name, { include: [{ local: TEMPLATE, inputs }], stages: ['build', 'report'], ...jobs });
}

/** A git repository holding the example flake (hello/), a copy of the template, and this .gitlab-ci.yml. */
function project(name: string, config: Record<string, unknown>): string {
  const project = path.join(scratch, name);
  mkdirSync(path.join(project, 'gitlab-templates'), { recursive: true });
  cpSync(path.join(REPO_ROOT, 'examples/hello'), path.join(project, 'hello'), { recursive: true });
  cpSync(path.join(REPO_ROOT, TEMPLATE), path.join(project, TEMPLATE));
  // The yaml library quotes and block-formats the inputs, so multi-line and quote-laden values arrive intact.
  writeFileSync(path.join(project, '.gitlab-ci.yml'), stringify(config));
  git(project, 'init', '-q', '-b', 'main');
  // gitlab-ci-local derives CI_PROJECT_PATH etc. from the remote named origin; it is never contacted.
  git(project, 'remote', 'add', 'origin', 'https://gitlab.example.invalid/acme/consumer.git');
  git(project, 'add', '-A');
  git(project, 'commit', '-q', '-m', 'consumer');
  git(project, 'update-ref', 'refs/remotes/origin/main', 'HEAD');
  git(project, 'symbolic-ref', 'refs/remotes/origin/HEAD', 'refs/remotes/origin/main');
  return project;
}

/**
 * Runs the pipeline inside `unshare -m`. gitlab-ci-local flags, and why:
 * - --force-shell-executor: the template sets `image:`, so --shell-executor-no-image would pick Docker (absent here);
 *   forcing the shell executor is what a GitLab shell runner does with `image:` (it ignores it).
 * - --variable CI_PROJECT_DIR=<project>: with an `image:` gitlab-ci-local reports /builds/<group>/<project> even when
 *   the shell executor runs the job in the project directory; a shell runner reports where the job really runs.
 * - --variable GITLAB_CI=true: gitlab-ci-local sets GITLAB_CI=false; GitLab sets true, and the bundle picks the GitLab
 *   platform from it.
 */
async function runPipeline(project: string): Promise<Pipeline> {
  const setup = ['set -e', ...isolationSetup(scratch), 'exec "$@"'].join('\n');
  const args = ['-m', '--propagation', 'private', '--', '/bin/sh', '-c', setup, 'sh', process.execPath, GCL];
  args.push('--force-shell-executor', '--no-color', '--variable', 'GITLAB_CI=true');
  args.push('--variable', `CI_PROJECT_DIR=${project}`, '--ignore-predefined-vars', 'GITLAB_CI,CI_PROJECT_DIR');
  const home = mkdtempSync(path.join(scratch, 'home-'));
  // A clean environment: Node 24 first on PATH (jobs run `node`), a scratch HOME (Nix's ~/.cache, gitlab-ci-local's
  // ~/.gitlab-ci-local), nothing from the host's CI variables.
  const env = { PATH: `${path.dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`, HOME: home, LANG: 'C.UTF-8' };
  const { code, output } = await spawnCollect('unshare', args, TIMEOUT_MS, { cwd: project, env });
  const logs = gitlabCiLocalLogs(project);
  return { project, code, output, logs, read: (rel) => readFileSync(path.join(project, rel), 'utf8') };
}

/** Everything GitLab would show or upload: the job logs, env.sh and every file flake-ci writes for the template. */
function published(p: Pipeline): string {
  const reports = ['summary.md', 'outputs.env', 'outputs.json', 'codequality.json', 'state.json'];
  const files = ['env.sh', ...reports.map((f) => `install-nix/${f}`)].map((f) => path.join(p.project, '.flake-ci', f));
  const texts = files.filter((f) => existsSync(f)).map((f) => readFileSync(f, 'utf8'));
  return [p.output, ...Object.values(p.logs), ...texts].join('\n');
}

function noWorkflowCommands(p: Pipeline): void {
  for (const [job, log] of Object.entries(p.logs))
    expect({ job, lines: log.match(/^::.*$/gm) }).toEqual({ job, lines: null });
}

beforeAll(async () => {
  requireFixtures();
  requireCommand('/usr/bin/unshare', 'util-linux');
  requireCommand('/usr/bin/rsync', 'rsync');
  requireCommand('/usr/bin/git', 'git');
  requireCommand('/usr/bin/xz', 'xz-utils');
  requireCommand(GCL, "gitlab-ci-local (devDependency: 'npm ci')");
  for (const entry of ['install-nix', 'install-nix-post'])
    requireCommand(path.join(REPO_ROOT, 'dist', entry, 'index.js'), "the dist bundles ('npm run build')");
  if (Number(process.versions.node.split('.')[0]) < 24)
    throw new Error(`Node ${process.version} runs the tests; the bundles need Node 24: run them with 'npm test'.`);
  scratch = mkdtempSync(path.join(os.tmpdir(), 'flake-ci-gitlab-'));
  server = await serveDirectory(RELEASE_DIR);
});

afterAll(async () => {
  await server?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('gitlab-templates/install-nix.yml under gitlab-ci-local', () => {
  it('mirrors every action.yml input in snake_case, with its default, as an INPUT_* variable', () => {
    type Inputs = Record<string, { default?: string; options?: string[] }>;
    const action = parse(readFileSync(path.join(REPO_ROOT, 'actions/install-nix/action.yml'), 'utf8')) as {
      inputs: Inputs;
    };
    const [header, body] = parseAllDocuments(readFileSync(path.join(REPO_ROOT, TEMPLATE), 'utf8')).map((d) => d.toJS());
    const spec = (header as { spec: { inputs: Inputs } }).spec.inputs;
    const job = (body as Record<string, { variables: Record<string, string> }>)['.flake-ci-nix'];
    for (const [name, input] of Object.entries(action.inputs)) {
      const snake = name.replace(/-/g, '_');
      // ${{ github.token }} has no GitLab twin: the token is opt-in there.
      expect({ snake, default: spec[snake]?.default }).toEqual({
        snake,
        default: name === 'github-token' ? '' : input.default,
      });
      expect(job?.variables[`INPUT_${snake.toUpperCase()}`]).toBe(`$[[ inputs.${snake} ]]`);
    }
    const templateOnly = Object.keys(spec).filter((k) => !(k.replace(/_/g, '-') in action.inputs));
    expect(templateOnly.sort()).toEqual(['image', 'suite_dir', 'suite_ref', 'suite_url']);
    // The template pins the suite to the release it ships in (the README promises it).
    expect(spec.suite_ref?.default).toBe(RELEASE_TAG);
  });

  it('installs Nix in before_script, builds in script, and hands outputs to a later job through dotenv', async () => {
    const marker = path.join(scratch, 'pwned');
    const project = consumer(
      'ok',
      {
        source: 'tarball',
        tarball_url: `${server.url}/${TARBALL_NAME}`,
        sandbox: 'false',
        github_token: TOKEN,
        suite_dir: REPO_ROOT,
        // Two settings plus a comment full of shell syntax: it must reach nix.conf verbatim and never be executed.
        extra_conf: `connect-timeout = 5\nwarn-dirty = false\n# it's "quoted"; $(touch ${marker}) \`touch ${marker}\`\n`,
      },
      {
        nix: {
          extends: '.flake-ci-nix',
          stage: 'build',
          script: [
            'nix --version',
            `nix build --no-link --print-out-paths --option substituters '' "path:$CI_PROJECT_DIR/hello#hello"`,
            `nix flake check --option substituters '' "path:$CI_PROJECT_DIR/hello"`,
            'cat /etc/nix/nix.conf',
          ],
        },
        report: {
          stage: 'report',
          needs: ['nix'],
          script: [
            'echo "NIX_VERSION=$NIX_VERSION MODE=$MODE SOURCE=$SOURCE"',
            'echo "FLAKE_CI_NIX_PATH=$FLAKE_CI_NIX_PATH NIX_PATH=${NIX_PATH-unset}"',
          ],
        },
      },
    );
    const p = await runPipeline(project);
    expect({ code: p.code, output: p.output }).toMatchObject({ code: 0 });
    expect(p.output).toMatch(/PASS\s+nix/);
    expect(p.output).toMatch(/PASS\s+report/);

    const nix = p.logs.nix ?? '';
    expect(nix).toContain('nix (Nix) 2.34.8');
    expect(nix).toMatch(/^\/nix\/store\/[a-z0-9]{32}-hello$/m);
    expect(nix).toContain('all checks passed!');
    expect(nix).toMatch(/^connect-timeout = 5\nwarn-dirty = false\n# it's "quoted"; \$\(touch /m);
    expect(nix).toMatch(/^!include \S+\/nix-access-tokens\.conf$/m); // the token went to its 0600 file
    expect(existsSync(marker)).toBe(false);

    // The dotenv report reached the `needs:` job; nix-path is renamed so it cannot clobber Nix's NIX_PATH there.
    expect(p.logs.report).toContain('NIX_VERSION=2.34.8 MODE=single-user SOURCE=tarball');
    expect(p.logs.report).toContain('FLAKE_CI_NIX_PATH=/nix/var/nix/profiles/default/bin/nix NIX_PATH=unset');

    const dotenv = p.read('.flake-ci/install-nix/outputs.env');
    expect(dotenv.split('\n')).toEqual(
      expect.arrayContaining(['NIX_VERSION=2.34.8', 'MODE=single-user', 'SOURCE=tarball']),
    );
    // gitlab-ci-local's exported artifacts: the dotenv report and the `paths:` files (it ignores codequality).
    const artifacts = path.join(project, '.gitlab-ci-local/artifacts/nix');
    expect(
      readFileSync(path.join(artifacts, '.gitlab-ci-reports/dotenv/.flake-ci/install-nix/outputs.env'), 'utf8'),
    ).toBe(dotenv);
    expect(JSON.parse(readFileSync(path.join(artifacts, '.flake-ci/install-nix/outputs.json'), 'utf8'))).toMatchObject({
      'nix-version': '2.34.8',
      'nix-path': '/nix/var/nix/profiles/default/bin/nix',
    });
    expect(readFileSync(path.join(artifacts, '.flake-ci/install-nix/summary.md'), 'utf8')).toContain('### Nix 2.34.8');
    expect(JSON.parse(p.read('.flake-ci/install-nix/codequality.json'))).toBeInstanceOf(Array);

    // The post bundle ran from after_script: the 0600 token file is gone.
    expect(readdirSync(path.join(project, '.flake-ci/tmp/flake-ci-nix-secrets'))).toEqual([]);
    noWorkflowCommands(p);
    expect(published(p)).not.toContain(TOKEN);
  });

  it('clones the pinned suite, fails the job on a bad input, still runs after_script, and redacts the token', async () => {
    // A flake-ci "release": this tree's dist/ committed and tagged with the template's default suite_ref.
    const suite = path.join(scratch, 'suite-origin');
    cpSync(path.join(REPO_ROOT, 'dist'), path.join(suite, 'dist'), { recursive: true });
    git(suite, 'init', '-q', '-b', 'main');
    git(suite, 'add', '-A');
    git(suite, 'commit', '-q', '-m', 'release');
    git(suite, 'tag', RELEASE_TAG);
    const project = consumer(
      'bad-input',
      {
        source: 'tarball',
        // An unsupported scheme carrying the token: the input error quotes the URL, so the platform must redact it.
        tarball_url: `ftp://127.0.0.1/${TARBALL_NAME}?private_token=${TOKEN}`,
        github_token: TOKEN,
        kvm: 'false',
        // file:// so that --depth 1 applies; suite_ref and suite_dir keep their defaults.
        suite_url: `file://${suite}`,
      },
      {
        nix: { extends: '.flake-ci-nix', stage: 'build', script: ['echo script-ran'] },
        report: { stage: 'report', needs: ['nix'], script: ['echo report-ran'] },
      },
    );
    const p = await runPipeline(project);
    expect(p.code).not.toBe(0);
    expect(p.output).toMatch(/FAIL\s+nix/);
    const nix = p.logs.nix ?? '';
    expect(nix).toContain(
      `Input 'tarball-url' must be an https://, http:// or file:// URL; got 'ftp://127.0.0.1/${TARBALL_NAME}?private_token=[MASKED]'`,
    );
    expect(nix).not.toContain('script-ran');
    const cloned = path.join(project, '.flake-ci/suite');
    expect(readFileSync(path.join(cloned, 'dist/install-nix/index.js'))).toEqual(
      readFileSync(path.join(REPO_ROOT, 'dist/install-nix/index.js')),
    );
    expect(spawnSync('git', ['describe', '--tags'], { cwd: cloned, encoding: 'utf8' }).stdout.trim()).toBe(RELEASE_TAG);
    expect(nix).toContain('install-nix-post/index.js'); // after_script ran
    expect(p.logs.report ?? '').not.toContain('report-ran');
    expect(JSON.parse(p.read('.flake-ci/install-nix/codequality.json'))).toBeInstanceOf(Array);
    expect(p.read('.flake-ci/install-nix/outputs.env')).toBe('');
    noWorkflowCommands(p);
    expect(published(p)).not.toContain(TOKEN);
  });

  it('accepts examples/gitlab/.gitlab-ci.yml (its remote include swapped for the local template)', () => {
    // The remote include needs the network; the rest of the example (inputs, jobs, needs) is checked as written.
    const example = parse(readFileSync(path.join(REPO_ROOT, 'examples/gitlab/.gitlab-ci.yml'), 'utf8')) as {
      include: { remote?: string; local?: string; inputs?: Record<string, string> }[];
    };
    const [include] = example.include;
    // Pinned to the release, and the same include as the README's GitLab quick start.
    expect(include?.remote).toMatch(new RegExp(`/flake-ci/${RELEASE_TAG}/${TEMPLATE}$`.replace(/\./g, '\\.')));
    expect(readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8')).toContain(`- remote: ${include?.remote}\n`);
    example.include = [{ local: TEMPLATE, inputs: include?.inputs }];
    const dir = project('example', example);
    const env = { PATH: process.env.PATH, HOME: dir };
    const r = spawnSync(process.execPath, [GCL, '--list', '--no-color'], { cwd: dir, encoding: 'utf8', env });
    expect({ code: r.status, out: r.stdout + r.stderr }).toMatchObject({ code: 0 });
    expect(r.stdout).toMatch(/^build\s.*\bbuild\b/m);
    expect(r.stdout).toMatch(/^report\s.*\breport\b.*\[build\]/m);
  });
});
