/**
 * gitlab-templates/cache.yml end to end under gitlab-ci-local, with install-nix.yml from the local tarball server and
 * this tree's dist bundles (suite_dir): pipeline 1 builds and saves into .flake-ci/nix-cache; pipeline 2 runs in a
 * fresh /nix (a new private mount namespace) on the same project directory with everything else of the first run
 * removed, as GitLab restores `cache:` into a fresh checkout (gitlab-ci-local ignores `cache:` for shell jobs, so the
 * directory surviving between the runs stands in for it). The backend alone, on Nix 2.8 and 2.34, is
 * cache-gitlab-backend.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { KEY_FILE } from '../../src/cache/gitlab-backend.js';
import { defaultPrimaryKey } from '../../src/cache/key.js';
import { REPO_ROOT } from '../harness/github-runner.js';
import {
  isolationSetup,
  serveDirectory,
  type StaticServer,
  spawnCollect,
  gitlabCiLocalLogs,
} from '../harness/namespace.mjs';
import { RELEASE_DIR, TARBALL_NAME, requireCommand, requireFixtures } from '../support/fixtures.js';

/** A Nix-format ed25519 key pair (secret = seed || public key), for the signed pipelines. */
const SIGNING = (() => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d as string, 'base64url');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url');
  return {
    CACHE_SIGNING_KEY: `test-gitlab-1:${Buffer.concat([seed, pub]).toString('base64')}`,
    CACHE_PUBLIC_KEY: `test-gitlab-1:${pub.toString('base64')}`,
  };
})();
let scratch: string;

beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-gitlab-cache-'));
});
afterAll(() => {
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

const GCL = path.join(REPO_ROOT, 'node_modules/gitlab-ci-local/dist/index.js');
const TEMPLATES = ['gitlab-templates/install-nix.yml', 'gitlab-templates/cache.yml'];

function git(cwd: string, ...args: string[]): void {
  const r = spawnSync('git', ['-c', 'user.name=flake-ci', '-c', 'user.email=ci@example.invalid', ...args], { cwd });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')} failed: ${String(r.stderr)}`);
}

/** A consumer repository: the fixture flake (with flake.lock), copies of both templates, this .gitlab-ci.yml. */
function consumer(name: string, config: Record<string, unknown>, extra: string[] = []): string {
  const project = path.join(scratch, name);
  fs.mkdirSync(path.join(project, 'gitlab-templates'), { recursive: true });
  for (const t of TEMPLATES) fs.copyFileSync(path.join(REPO_ROOT, t), path.join(project, t));
  fs.cpSync(path.join(REPO_ROOT, 'test/fixtures/cache-chain'), project, { recursive: true });
  fs.writeFileSync(path.join(project, '.gitignore'), '.flake-ci/\n.gitlab-ci-local/\n');
  fs.writeFileSync(path.join(project, '.gitlab-ci.yml'), [stringify(config), ...extra].join('\n'));
  git(project, 'init', '-q', '-b', 'main');
  // gitlab-ci-local derives CI_PROJECT_PATH etc. from the remote named origin; it is never contacted.
  git(project, 'remote', 'add', 'origin', 'https://gitlab.example.invalid/acme/consumer.git');
  git(project, 'add', '-A');
  git(project, 'commit', '-q', '-m', 'consumer');
  git(project, 'update-ref', 'refs/remotes/origin/main', 'HEAD');
  git(project, 'symbolic-ref', 'refs/remotes/origin/HEAD', 'refs/remotes/origin/main');
  return project;
}

type Job = { before_script: string[]; after_script: string[]; variables: Record<string, string> };

/** The jobs as GitLab would run them (extends, !reference and inputs resolved), from `gitlab-ci-local --preview`. */
function preview(project: string): Record<string, Job> {
  const env = { PATH: process.env.PATH, HOME: project };
  const r = spawnSync(process.execPath, [GCL, '--preview', '--no-color'], { cwd: project, encoding: 'utf8', env });
  expect(r.status === 0 ? '' : r.stdout + r.stderr).toBe('');
  return parseAllDocuments(r.stdout.slice(r.stdout.indexOf('---')))[0]?.toJS() as Record<string, Job>;
}

interface Pipeline {
  code: number | null;
  output: string;
  logs: Record<string, string>;
}

/** gitlab-ci-local in a new private mount namespace (fresh tmpfs /nix, private /etc); flags as in gitlab-template.test.ts. */
async function runPipeline(project: string, vars: Record<string, string>): Promise<Pipeline> {
  const setup = ['set -e', ...isolationSetup(scratch), `cd ${JSON.stringify(project)}`, 'exec "$@"'].join('\n');
  const args = ['-m', '--propagation', 'private', '--', '/bin/sh', '-c', setup, 'sh', 'env', '-i'];
  args.push(`PATH=${path.dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`, 'LANG=C.UTF-8');
  args.push(`HOME=${fs.mkdtempSync(path.join(scratch, 'home-'))}`, process.execPath, GCL);
  args.push('--force-shell-executor', '--no-color', '--variable', 'GITLAB_CI=true');
  args.push('--variable', `CI_PROJECT_DIR=${project}`, '--ignore-predefined-vars', 'GITLAB_CI,CI_PROJECT_DIR');
  for (const [k, v] of Object.entries(vars)) args.push('--variable', `${k}=${v}`);
  const { code, output } = await spawnCollect('unshare', args, 5 * 60_000);
  const logs = gitlabCiLocalLogs(project);
  return { code, output, logs };
}

describe('gitlab-templates/cache.yml under gitlab-ci-local', () => {
  let server: StaticServer;
  let project: string;
  const cacheDir = () => path.join(project, '.flake-ci/nix-cache');
  const narinfos = () => {
    const names = fs.readdirSync(cacheDir()).filter((f) => f.endsWith('.narinfo'));
    return new Map(names.map((f) => [f, fs.readFileSync(path.join(cacheDir(), f), 'utf8')]));
  };
  const dotenv = (rel: string) => {
    const lines = fs.readFileSync(path.join(project, rel), 'utf8').split('\n').filter(Boolean);
    return Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  };

  beforeAll(async () => {
    requireFixtures();
    for (const [file, pkg] of [
      ['/usr/bin/unshare', 'util-linux'],
      ['/usr/bin/rsync', 'rsync'],
      ['/usr/bin/git', 'git'],
      [GCL, "gitlab-ci-local (devDependency: 'npm ci')"],
    ])
      requireCommand(file as string, pkg as string);
    for (const entry of ['install-nix', 'install-nix-post', 'cache', 'cache-post'])
      requireCommand(path.join(REPO_ROOT, 'dist', entry, 'index.js'), "the dist bundles ('npm run build')");
    server = await serveDirectory(RELEASE_DIR);
    const nixInputs = {
      source: 'tarball',
      tarball_url: `${server.url}/${TARBALL_NAME}`,
      sandbox: 'false',
      kvm: 'false',
      // Offline: nothing may come from cache.nixos.org, so pipeline 2 can only get its paths from the cache.
      extra_conf: 'substituters =\n',
      suite_dir: REPO_ROOT,
    };
    // Keys as references to CI variables, as users pass masked variables: GitLab expands them at run time.
    const cacheInputs = {
      strict: 'true',
      max_size: '50M',
      signing_key: '$CACHE_SIGNING_KEY',
      trusted_public_keys: '$CACHE_PUBLIC_KEY',
    };
    const build = [
      'nix --version',
      // The cache's trusted_public_keys must not reach install-nix (it would add them to nix.conf).
      'echo "nix.conf has the cache key: $(grep -c test-gitlab-1 /etc/nix/nix.conf)"',
      'if [ "$SECOND" = true ]; then',
      '  nix build --no-link --print-out-paths --option max-jobs 0 .#c',
      '  nix build --no-link --print-out-paths .#extra',
      'else',
      '  nix build --no-link --print-out-paths .#c',
      'fi',
    ].join('\n');
    // A job with its own before_script, written as the template's header says (the yaml library cannot emit !reference).
    const custom = [
      'custom:',
      '  extends: [.flake-ci-nix, .flake-ci-cache]',
      '  stage: build',
      '  when: manual',
      '  before_script: [!reference [.flake-ci-cache, before_script], echo mine]',
      '  script: [echo custom]\n',
    ];
    project = consumer(
      'consumer',
      {
        include: [
          { local: TEMPLATES[0], inputs: nixInputs },
          { local: TEMPLATES[1], inputs: cacheInputs },
        ],
        stages: ['build', 'report'],
        build: { extends: ['.flake-ci-nix', '.flake-ci-cache'], stage: 'build', script: [build] },
        report: {
          stage: 'report',
          needs: ['build'],
          script: ['echo "report: HIT=$HIT PATHS_RESTORED=$PATHS_RESTORED PATHS_SAVED=$PATHS_SAVED NIX=$NIX_VERSION"'],
        },
      },
      custom,
    );
  });
  afterAll(async () => {
    await server?.close();
  });

  it('mirrors every action.yml input in snake_case, with its default, as a variable', () => {
    type Inputs = Record<string, { default?: string }>;
    const action = parse(fs.readFileSync(path.join(REPO_ROOT, 'actions/cache/action.yml'), 'utf8')) as {
      inputs: Inputs;
    };
    const reference = { tag: '!reference', collection: 'seq' as const, resolve: (v: unknown) => v };
    const text = fs.readFileSync(path.join(REPO_ROOT, TEMPLATES[1] as string), 'utf8');
    const [header, body] = parseAllDocuments(text, { customTags: [reference] }).map((d) => d.toJS());
    const spec = (header as { spec: { inputs: Inputs } }).spec.inputs;
    const vars = (body as Record<string, { variables: Record<string, string> }>)['.flake-ci-cache']?.variables ?? {};
    // ${{ github.token }} has no GitLab twin; after_script is cut at 5 minutes by default, hence a shorter timeout.
    const differs: Record<string, string> = { 'github-token': '', timeout: '4m' };
    // install-nix.yml has inputs of these names: see the template's header.
    const renamed = ['trusted_public_keys', 'github_token'];
    for (const [name, input] of Object.entries(action.inputs)) {
      const snake = name.replace(/-/g, '_');
      expect({ snake, default: spec[snake]?.default }).toEqual({ snake, default: differs[name] ?? input.default });
      const variable = renamed.includes(snake)
        ? `FLAKE_CI_CACHE_${snake.toUpperCase()}`
        : `INPUT_${snake.toUpperCase()}`;
      expect({ variable, value: vars[variable] }).toEqual({ variable, value: `$[[ inputs.${snake} ]]` });
    }
    expect(Object.keys(spec).filter((k) => !(k.replace(/_/g, '-') in action.inputs))).toEqual(['cache_prefix']);
  });

  it('merges into one job: install-nix, restore, script, save, install-nix post; both actions keep their inputs', () => {
    const { build: job, custom } = preview(project) as { build: Job; custom: Job };
    const nixJob = parse(
      fs.readFileSync(path.join(REPO_ROOT, TEMPLATES[0] as string), 'utf8').split('\n---\n')[1] ?? '',
    )['.flake-ci-nix'] as Job;
    const n = nixJob.before_script.length;
    expect(job.before_script.slice(0, n)).toEqual(nixJob.before_script);
    expect(job.before_script.slice(n).join('\n')).toMatch(/dist\/cache\/index\.js"\n.*env\.sh/s);
    expect(job.after_script.at(-1)).toEqual(nixJob.after_script.at(-1));
    expect(custom.before_script).toEqual([...job.before_script, 'echo mine']);
    expect(job.after_script[0]).toContain('dist/cache-post/index.js');
    // install-nix's variables of the same name are not overwritten by the cache template's.
    expect(job.variables.INPUT_TRUSTED_PUBLIC_KEYS).toBe('');
    expect(job.variables.INPUT_SOURCE).toBe('tarball');
    expect(job.variables.INPUT_MAX_SIZE).toBe('50M');
    expect(job.variables.FLAKE_CI_CACHE_GITHUB_TOKEN).toBe('');
  });

  it("accepts the README's GitLab example (its remote includes swapped for the local templates)", () => {
    const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const example = parse(/^### GitLab\n\n```yaml\n([\s\S]*?)^```/m.exec(readme)?.[1] ?? '') as {
      include: { remote?: string; local?: string }[];
    };
    const version = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string })
      .version;
    // Pinned to the release, like the install-nix quick start.
    const base = `https://raw.githubusercontent.com/OWNER/flake-ci/v${version}/`;
    expect(example.include.map((i) => i.remote)).toEqual(TEMPLATES.map((t) => `${base}${t}`));
    for (const i of example.include) i.local = (i.remote as string).slice(base.length);
    for (const i of example.include) delete i.remote;
    const { build } = preview(consumer('readme', example));
    expect(build?.before_script.join('\n')).toMatch(/install-nix\/index\.js[\s\S]*dist\/cache\/index\.js/);
    expect(build?.after_script.join('\n')).toMatch(/cache-post\/index\.js[\s\S]*install-nix-post\/index\.js/);
  });

  it('pipeline 1 builds and saves into .flake-ci/nix-cache; pipeline 2 in a fresh /nix restores and builds nothing', async () => {
    const p1 = await runPipeline(project, SIGNING);
    expect({ code: p1.code, output: p1.output }).toMatchObject({ code: 0 });
    const log1 = p1.logs.build ?? '';
    // The order one `extends` gives: install, restore, the script, save, then install-nix's post (multi-line
    // commands are collapsed in the log, so their output marks where they ran).
    const order = [
      'Nix 2.34.8 ready',
      'Cache miss',
      'nix (Nix) 2.34.8',
      'Added 4 store paths',
      'install-nix-post/index.js',
    ];
    const at = order.map((s) => log1.indexOf(s));
    expect({ at, found: at.every((i) => i >= 0) }).toEqual({ at: [...at].sort((x, y) => x - y), found: true });
    const built = log1.match(/^\/nix\/store\/[a-z0-9]{32}-fix-c$/m)?.[0];
    expect(built).toBeDefined();
    const out1 = dotenv('.flake-ci/cache/outputs.env');
    expect(out1).toMatchObject({ HIT: 'miss', PATHS_RESTORED: '0' });
    expect(Number(out1.PATHS_SAVED)).toBeGreaterThanOrEqual(3);
    const first = narinfos();
    const stored = [...first.values()].map((t) => /^StorePath: (.*)$/m.exec(t)?.[1]);
    for (const name of ['fix-a', 'fix-b', 'fix-c']) expect(stored.some((s) => s?.endsWith(`-${name}`))).toBe(true);
    const key = fs.readFileSync(path.join(cacheDir(), KEY_FILE), 'utf8').trim();
    // The project's own flake.lock went into the key (not a lock file bundled into dist/ by ncc).
    expect(key).toBe(await defaultPrimaryKey({ os: 'linux', arch: process.arch, workspace: project }));

    // A fresh checkout with GitLab's cache restored: only .flake-ci/nix-cache is left of the first run.
    for (const f of fs.readdirSync(path.join(project, '.flake-ci')))
      if (f !== 'nix-cache') fs.rmSync(path.join(project, '.flake-ci', f), { recursive: true, force: true });
    fs.rmSync(path.join(project, '.gitlab-ci-local'), { recursive: true, force: true });

    const p2 = await runPipeline(project, { ...SIGNING, SECOND: 'true' });
    expect({ code: p2.code, output: p2.output }).toMatchObject({ code: 0 });
    const log2 = p2.logs.build ?? '';
    // max-jobs 0 succeeded: fix-c and its dependencies came from the cache, and the same outputs as in pipeline 1.
    expect(log2).toContain(`\n${built}\n`);
    expect(log2).toMatch(/^\/nix\/store\/[a-z0-9]{32}-fix-extra$/m);
    const out2 = dotenv('.flake-ci/cache/outputs.env');
    expect(out2).toMatchObject({ HIT: 'exact', RESTORED_KEY: key, PATHS_SAVED: '1' });
    expect(Number(out2.PATHS_RESTORED)).toBe(first.size);
    expect(Number(out2.BYTES_DOWN)).toBeGreaterThan(3 * 4096 * 0.9);
    // Incremental: pipeline 1's narinfos are untouched, one more sits next to them.
    const second = narinfos();
    expect(second.size).toBe(first.size + 1);
    for (const [f, text] of first) expect(second.get(f)).toBe(text);
    // Both dotenv reports reached the `needs:` job.
    expect(p2.logs.report).toContain(`report: HIT=exact PATHS_RESTORED=${first.size} PATHS_SAVED=1 NIX=2.34.8`);
    for (const log of [log1, log2]) {
      expect(log).not.toMatch(/^::/m);
      expect(log).toContain('nix.conf has the cache key: 0');
    }
    // Signed with the key, restored with signatures required (trusted_public_keys), the secret never shown or kept.
    for (const text of second.values()) expect(text).toMatch(/^Sig: test-gitlab-1:/m);
    const files = fs.readdirSync(path.join(project, '.flake-ci'), { recursive: true, encoding: 'utf8' });
    const written = files
      .map((f) => path.join(project, '.flake-ci', f))
      .filter((f) => fs.statSync(f).isFile() && !f.includes('/nix-cache/nar/'))
      .map((f) => fs.readFileSync(f, 'utf8'));
    const secret = SIGNING.CACHE_SIGNING_KEY.split(':')[1] as string;
    expect(
      [p1.output, p2.output, ...Object.values(p1.logs), ...Object.values(p2.logs), ...written].join('\n'),
    ).not.toContain(secret);
  });
});
