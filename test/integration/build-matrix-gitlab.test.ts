/**
 * `mode: matrix` on GitLab end to end. The plan runs here on a GitLabPlatform with real Nix 2.8 (chroot store) and
 * writes the child pipeline; gitlab-ci-local then runs a consumer pipeline whose `plan` job hands that file on as an
 * artifact and whose `shards` job triggers it with `trigger: include: - artifact:`. Each shard job extends copies of
 * the real gitlab-templates/install-nix.yml and build.yml (`{"local": ...}` child_include, with install-nix inputs
 * passed through it), so every shard installs Nix 2.34 from the release tarball and builds its attributes with a
 * snapshot of this tree's dist bundles. Everything runs in a private mount namespace (tmpfs /nix, private /etc).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { parse, stringify } from 'yaml';
import { splitPatterns } from '../../src/build/inputs.js';
import { runMatrixMode, type MatrixPlanResult } from '../../src/build/matrix/index.js';
import { NixCommand } from '../../src/nix/command.js';
import { GitLabPlatform } from '../../src/platform/gitlab.js';
import { REPO_ROOT } from '../harness/github-runner.js';
import { isolationSetup, serveDirectory, type StaticServer, spawnCollect } from '../harness/namespace.mjs';
import { RELEASE_DIR, TARBALL_NAME, requireCommand, requireFixtures } from '../support/fixtures.js';

const GCL = path.join(REPO_ROOT, 'node_modules/gitlab-ci-local/dist/index.js');
const FIXTURE = path.join(REPO_ROOT, 'test/fixtures/build-matrix/flake.nix');
const LINUX = 'x86_64-linux';
const BUNDLES = ['install-nix', 'install-nix-post', 'build', 'build-post'];
const CHECK_NAME = 'shards $NOT_A_VARIABLE "quoted"';
let scratch: string;
let server: StaticServer;

function git(cwd: string, ...args: string[]): void {
  const r = spawnSync('git', ['-c', 'user.name=flake-ci', '-c', 'user.email=ci@example.invalid', ...args], { cwd });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')} failed: ${String(r.stderr)}`);
}

/** The bundles, copied: another engineer's `npm run build` must not swap them under a running pipeline. */
async function suiteSnapshot(): Promise<string> {
  const suite = path.join(scratch, 'suite');
  for (const entry of BUNDLES) {
    const dir = path.join(REPO_ROOT, 'dist', entry);
    for (let waited = 0; !existsSync(path.join(dir, 'package.json')); waited += 500) {
      if (waited > 60_000) throw new Error(`${dir} is missing: run 'npm run build -- --only ${entry}'`);
      await new Promise((r) => setTimeout(r, 500));
    }
    cpSync(dir, path.join(suite, 'dist', entry), { recursive: true });
  }
  return suite;
}

/** gitlab-ci-local in a private mount namespace, one job at a time (the shards share /nix and the project dir). */
async function runPipeline(project: string): Promise<{ code: number | null; output: string }> {
  const setup = ['set -e', ...isolationSetup(scratch), 'exec "$@"'].join('\n');
  const args = ['-m', '--propagation', 'private', '--', '/bin/sh', '-c', setup, 'sh', process.execPath, GCL];
  args.push('--force-shell-executor', '--no-color', '--concurrency', '1');
  args.push('--variable', 'GITLAB_CI=true', '--variable', `CI_PROJECT_DIR=${project}`);
  args.push('--ignore-predefined-vars', 'GITLAB_CI,CI_PROJECT_DIR');
  const env = {
    PATH: `${path.dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOME: mkdtempSync(path.join(scratch, 'home-')),
    LANG: 'C.UTF-8',
  };
  return spawnCollect('unshare', args, 8 * 60_000, { cwd: project, env });
}

beforeAll(async () => {
  requireFixtures();
  for (const [file, pkg] of [
    ['/usr/bin/unshare', 'util-linux'],
    ['/usr/bin/rsync', 'rsync'],
    ['/usr/bin/git', 'git'],
    ['/usr/bin/xz', 'xz-utils'],
  ])
    requireCommand(file as string, pkg as string);
  requireCommand(GCL, "gitlab-ci-local (devDependency: 'npm ci')");
  if (Number(process.versions.node.split('.')[0]) < 24)
    throw new Error(`Node ${process.version} runs the tests; the bundles need Node 24: run them with 'npm test'.`);
  scratch = mkdtempSync(path.join(os.tmpdir(), 'flake-ci-matrix-gitlab-'));
  server = await serveDirectory(RELEASE_DIR);
});

afterAll(async () => {
  await server?.close();
  if (!scratch) return;
  spawnSync('chmod', ['-R', 'u+w', scratch]);
  rmSync(scratch, { recursive: true, force: true });
});

describe('matrix mode on GitLab', () => {
  let project: string;
  let plan: MatrixPlanResult;
  let child: Record<string, { tags?: string[]; variables: Record<string, unknown> }>;

  beforeAll(async () => {
    project = path.join(scratch, 'consumer');
    mkdirSync(path.join(project, 'gitlab-templates'), { recursive: true });
    cpSync(FIXTURE, path.join(project, 'flake.nix'));
    for (const t of ['install-nix.yml', 'build.yml'])
      cpSync(path.join(REPO_ROOT, 'gitlab-templates', t), path.join(project, 'gitlab-templates', t));
    writeFileSync(path.join(project, '.gitignore'), '.flake-ci/\n.gitlab-ci-local/\n');
    writeFileSync(
      path.join(project, '.gitlab-ci.yml'),
      stringify({
        stages: ['plan', 'shards'],
        plan: {
          stage: 'plan',
          script: ['mkdir -p out', 'cp planned/child-pipeline.yml out/child-pipeline.yml'],
          artifacts: { paths: ['out/child-pipeline.yml'] },
        },
        shards: {
          stage: 'shards',
          needs: ['plan'],
          // gitlab-ci-local hands a trigger job's variables to the child pipeline as its --variable list.
          variables: { GITLAB_CI: 'true', CI_PROJECT_DIR: project },
          trigger: { include: [{ artifact: 'out/child-pipeline.yml', job: 'plan' }], strategy: 'depend' },
        },
      }),
    );
    git(project, 'init', '-q', '-b', 'main');
    git(project, 'remote', 'add', 'origin', 'https://gitlab.example.invalid/acme/consumer.git');
    git(project, 'add', '-A');
    git(project, 'commit', '-q', '-m', 'consumer');

    const home = mkdtempSync(path.join(scratch, 'plan-home-'));
    const nix = await NixCommand.detect(undefined, '/usr/bin', {
      HOME: home,
      NIX_CONF_DIR: home,
      XDG_CACHE_HOME: home,
      NIX_CONFIG: `store = ${path.join(scratch, 'plan-store')}\nsubstituters =\nexperimental-features = nix-command flakes`,
    });
    const include = {
      local: 'gitlab-templates',
      inputs: {
        'install-nix': {
          source: 'tarball',
          tarball_url: `${server.url}/${TARBALL_NAME}`,
          sandbox: 'false',
          kvm: 'false',
        },
      },
    };
    const out = new Writable({ write: (_c, _e, cb) => cb() });
    const platform = new GitLabPlatform(
      {
        CI_PROJECT_DIR: project,
        PATH: '/usr/bin:/bin',
        FLAKE_CI_CHILD_INCLUDE: JSON.stringify(include),
        FLAKE_CI_SUITE_DIR: await suiteSnapshot(),
        FLAKE_CI_SUITE_REF: 'v0.1.0',
        FLAKE_CI_SUITE_URL: 'https://github.com/OWNER/flake-ci.git',
      },
      { action: 'build', out },
    );
    plan = await runMatrixMode(
      platform,
      nix,
      { flake: '.', cwd: project, systems: [LINUX] },
      {
        maxShards: 8,
        runnerMap: 'x86_64-linux+nixos-test: [kvm, "nix vm"]',
        childPipelinePath: path.join(project, 'planned', 'child-pipeline.yml'),
        passInputs: { flake: '.', 'allow-emulation': 'true', 'check-name': CHECK_NAME, lint: 'false' },
      },
    );
    await platform.finish();
    expect(readFileSync(path.join(project, '.flake-ci/build/outputs.env'), 'utf8')).toContain(
      'CHILD_PIPELINE=planned/child-pipeline.yml\n',
    );
    child = parse(readFileSync(path.join(project, 'planned', 'child-pipeline.yml'), 'utf8'));
    git(project, 'add', '-A');
    git(project, 'commit', '-q', '-m', 'plan');
  }, 120_000);

  it('writes one job per shard, tagged by the runner map, with literal variables', () => {
    expect(plan).toMatchObject({ attributes: 9, evalErrors: 1 });
    const jobs = Object.keys(child).filter((k) => k !== 'include');
    expect(jobs).toHaveLength(plan.shards);
    expect(child['build x86_64-linux+kvm+nixos-test']?.tags).toEqual(['kvm', 'nix vm']);
    for (const job of jobs) {
      expect(child[job]?.variables).toMatchObject({
        INPUT_ALLOW_EMULATION: 'true',
        INPUT_CHECK_NAME: { value: CHECK_NAME, expand: false },
      });
    }
  });

  it('runs every shard from the artifact and builds each attribute exactly once', async () => {
    const p = await runPipeline(project);
    expect({ code: p.code, output: p.code === 0 ? '' : p.output }).toEqual({ code: 0, output: '' });
    const jobs = Object.keys(child).filter((k) => k !== 'include');
    for (const job of jobs) expect(p.output).toMatch(new RegExp(`PASS\\s+.*${escapeRe(job)}`));

    const artifacts = path.join(project, '.gitlab-ci-local', 'artifacts');
    const built: string[] = [];
    for (const dir of readdirSync(artifacts)) {
      const file = path.join(artifacts, dir, '.flake-ci/tmp/flake-ci-build/results.json');
      if (!existsSync(file)) continue;
      const results = (JSON.parse(readFileSync(file, 'utf8')) as { results: { attr: string; status: string }[] })
        .results;
      for (const r of results) expect({ attr: r.attr, status: r.status }).toEqual({ attr: r.attr, status: 'built' });
      built.push(...results.map((r) => r.attr));
      // A passed input with a `$` reaches the shard as written (expand: false), not expanded by GitLab.
      const junit = readFileSync(path.join(artifacts, dir, '.flake-ci/tmp/flake-ci-build/results.xml'), 'utf8');
      expect(junit).toContain('<testsuites name="shards $NOT_A_VARIABLE &quot;quoted&quot;"');
    }
    const text = (v: unknown) => String(typeof v === 'object' && v !== null ? (v as { value: string }).value : v);
    const planned = jobs.flatMap((j) => splitPatterns(text(child[j]?.variables.INPUT_ATTRIBUTES)));
    expect(built).toHaveLength(planned.length);
    expect(new Set(built).size).toBe(9);
    expect(built).not.toContain(`checks.${LINUX}.broken`);
  });
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
