/**
 * gitlab-templates/oci-push.yml end to end: gitlab-ci-local runs a consumer pipeline that includes the template with
 * `include: local:` + `inputs:` on the shell executor, so GitLab's own steps run here: spec:inputs interpolation into
 * INPUT_* variables, this working tree's dist bundle (suite_dir), the dotenv report handed to a `needs:` job, and
 * the artifacts. The push goes to the default tag, $CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA, with the job's registry
 * credentials (CI_REGISTRY_USER / CI_REGISTRY_PASSWORD) against a docker-registry with htpasswd auth, and skopeo
 * reads the image back.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { REPO_ROOT } from '../harness/github-runner.js';
import { requireCommand } from '../support/fixtures.js';
import { fixtures, verify, type Fixtures, distSnapshot, removeDistSnapshot } from '../support/oci-push.js';
import { startRegistry, type Registry } from '../support/registry.mjs';
import { spawnCollect, gitlabCiLocalLogs } from '../harness/namespace.mjs';

const GCL = join(REPO_ROOT, 'node_modules/gitlab-ci-local/dist/index.js');
const TEMPLATE = 'gitlab-templates/oci-push.yml';
const USER = 'gitlab-ci-token';
const PASSWORD = 'glcbt-job-Registry-Secret';
let fx: Fixtures;
let reg: Registry;
let scratch: string;

function git(cwd: string, ...args: string[]): string {
  const r = spawnSync('git', ['-c', 'user.name=flake-ci', '-c', 'user.email=ci@example.invalid', ...args], {
    cwd,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** A consumer repository with a copy of the template and this .gitlab-ci.yml. */
function project(name: string, config: Record<string, unknown>): string {
  const dir = join(scratch, name);
  mkdirSync(join(dir, dirname(TEMPLATE)), { recursive: true });
  cpSync(join(REPO_ROOT, TEMPLATE), join(dir, TEMPLATE));
  writeFileSync(join(dir, '.gitlab-ci.yml'), stringify(config));
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'remote', 'add', 'origin', 'https://gitlab.example.invalid/acme/consumer.git');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'consumer');
  git(dir, 'update-ref', 'refs/remotes/origin/main', 'HEAD');
  git(dir, 'symbolic-ref', 'refs/remotes/origin/HEAD', 'refs/remotes/origin/main');
  return dir;
}

/**
 * gitlab-ci-local with the shell executor (the template sets `image:`, which a shell runner ignores), GITLAB_CI=true
 * as GitLab sets it, and the registry variables GitLab gives every job. No namespace: oci-push touches no /nix or /etc.
 */
async function runPipeline(dir: string, variables: Record<string, string>) {
  const args = [GCL, '--force-shell-executor', '--no-color'];
  const vars = { GITLAB_CI: 'true', CI_PROJECT_DIR: dir, ...variables };
  for (const [k, v] of Object.entries(vars)) args.push('--variable', `${k}=${v}`);
  args.push('--ignore-predefined-vars', Object.keys(vars).join(','));
  const home = mkdtempSync(join(scratch, 'home-'));
  const env = { PATH: `${dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`, HOME: home, LANG: 'C.UTF-8' };
  const { code, output } = await spawnCollect(process.execPath, args, 5 * 60_000, { cwd: dir, env });
  const logs = gitlabCiLocalLogs(dir);
  return { code, output, logs, read: (rel: string) => readFileSync(join(dir, rel), 'utf8') };
}

beforeAll(async () => {
  requireCommand('/usr/bin/skopeo', 'skopeo');
  requireCommand('/usr/bin/rsync', 'rsync');
  requireCommand('/usr/bin/git', 'git');
  requireCommand(GCL, "gitlab-ci-local (devDependency: 'npm ci')");
  await distSnapshot();
  fx = await fixtures();
  reg = await startRegistry({ auth: 'htpasswd', users: { [USER]: PASSWORD } });
  scratch = mkdtempSync(join(tmpdir(), 'flake-ci-gitlab-oci-'));
}, 300_000);

afterAll(async () => {
  removeDistSnapshot();
  await reg?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('gitlab-templates/oci-push.yml under gitlab-ci-local', () => {
  it("pushes to $CI_REGISTRY_IMAGE with the job's credentials and hands DIGEST and REFS to a later job", async () => {
    const image = `${reg.host}/acme/consumer`;
    const dir = project('push', {
      include: [
        { local: TEMPLATE, inputs: { image: fx.archiveZstd, suite_dir: await distSnapshot(), compression: 'zstd' } },
      ],
      stages: ['push', 'use'],
      push: { extends: '.flake-ci-oci-push', stage: 'push' },
      use: { stage: 'use', needs: ['push'], script: ['echo "got DIGEST=$DIGEST"', 'echo "got REFS=$REFS"'] },
    });
    const sha = git(dir, 'rev-parse', '--short=8', 'HEAD');
    const p = await runPipeline(dir, {
      CI_REGISTRY: reg.host,
      CI_REGISTRY_IMAGE: image,
      CI_REGISTRY_USER: USER,
      CI_REGISTRY_PASSWORD: PASSWORD,
      CI_COMMIT_SHORT_SHA: sha,
    });
    expect({ code: p.code, output: p.code === 0 ? '' : p.output }).toEqual({ code: 0, output: '' });
    expect(p.output).toMatch(/PASS\s+push/);
    expect(p.output).toMatch(/PASS\s+use/);

    const dotenv = p.read('.flake-ci/oci-push/outputs.env');
    const digest = /^DIGEST=(sha256:[0-9a-f]{64})$/m.exec(dotenv)?.[1] as string;
    expect(digest).toBeDefined();
    expect(dotenv).toContain(`REFS=${image}:${sha}@${digest}\n`);
    expect(p.logs.use).toContain(`got DIGEST=${digest}`);
    expect(p.logs.use).toContain(`got REFS=${image}:${sha}@${digest}`);
    expect(p.logs.push).toContain(`${reg.host}: user '${USER}' from CI_REGISTRY_USER and CI_REGISTRY_PASSWORD`);
    const outputs = JSON.parse(p.read('.flake-ci/oci-push/outputs.json')) as Record<string, string>;
    expect(JSON.parse(outputs.metadata as string)).toMatchObject({ digest, refs: [`${image}:${sha}@${digest}`] });
    expect(p.read('.flake-ci/oci-push/summary.md')).toContain(`| \`${image}:${sha}\` | \`${digest}\` |`);

    const v = await verify(`${image}:${sha}`, fx.layers, { user: USER, password: PASSWORD });
    expect(v.digest).toBe(digest);
    expect(new Set(v.mediaTypes)).toEqual(new Set(['application/vnd.oci.image.layer.v1.tar+zstd']));
    // GitLab has no runtime masking; nothing flake-ci printed or wrote holds the password, and no `::` command leaked.
    const files = ['outputs.env', 'outputs.json', 'summary.md'].map((f) => p.read(`.flake-ci/oci-push/${f}`));
    expect([p.output, ...Object.values(p.logs), ...files].join('\n')).not.toContain(PASSWORD);
    expect(p.logs.push).not.toMatch(/^::/m);
  });
});
