// oci-push inputs: every rule the user can break gets an InputError naming the input and the fix; secrets are
// registered before anything is validated; references are normalised; annotations are deterministic.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { InputError } from '../../src/errors.js';
import { annotationContext, createdTime, imageAnnotations } from '../../src/oci-push/annotations.js';
import { parseAnnotations, parsePushInputs } from '../../src/oci-push/inputs.js';
import { formatReference, parseFullReference, parsePlatform } from '../../src/oci-push/references.js';
import { RecordingPlatform } from '../../src/platform/recording.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const base = { image: '.#dockerImage', tags: 'ghcr.io/owner/app:1.0' };
const parse = (inputs: Record<string, string>, env: Record<string, string> = {}) =>
  parsePushInputs(new RecordingPlatform(inputs, env));

/** Expects an InputError whose message matches every pattern. */
function refuses(inputs: Record<string, string>, ...patterns: RegExp[]): void {
  let error: unknown;
  try {
    parse(inputs);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(InputError);
  for (const p of patterns) expect((error as Error).message).toMatch(p);
}

describe('parsePushInputs', () => {
  it('has sensible defaults', () => {
    const i = parse(base);
    expect(i).toMatchObject({
      mode: 'push',
      image: { kind: 'flake', installable: '.#dockerImage' },
      tags: [{ registry: 'ghcr.io', repository: 'owner/app', tag: '1.0' }],
      compression: 'gzip',
      compressionLevel: 1,
      manifestFormat: 'oci',
      annotations: {},
      cacheFrom: [],
      concurrency: 4,
      sources: [],
      retryBudget: 20,
      timeoutMs: 60_000,
    });
    expect(i.credentials).toBeUndefined();
    expect(i.platform).toBeUndefined();
  });

  it('tells a flake attribute from a path by its #', () => {
    expect(parse({ ...base, image: 'github:o/r#img' }).image).toEqual({ kind: 'flake', installable: 'github:o/r#img' });
    expect(parse({ ...base, image: './result' }).image).toEqual({ kind: 'path', path: './result' });
  });

  it('takes several tags in lines or spaces, normalised and without duplicates', () => {
    const i = parse({
      ...base,
      tags: 'ghcr.io/owner/app:1.0\nghcr.io/owner/app:latest docker.io/user/app:1.0\nindex.docker.io/user/app:1.0\nlocalhost:5000/app',
    });
    expect(i.tags.map(formatReference)).toEqual([
      'ghcr.io/owner/app:1.0',
      'ghcr.io/owner/app:latest',
      'docker.io/user/app:1.0',
      'localhost:5000/app',
    ]);
  });

  it('refuses references without a registry, with a digest, or malformed', () => {
    refuses({ ...base, tags: 'app:1.0' }, /'tags'/, /names no registry/, /docker\.io/);
    refuses({ ...base, tags: 'owner/app:1.0' }, /names no registry/);
    refuses({ ...base, tags: `ghcr.io/o/app@${DIGEST}` }, /cannot be pushed to|can be read but not pushed to/);
    refuses({ ...base, tags: 'ghcr.io/Owner/App:1' }, /lower-case/);
    refuses({ ...base, tags: 'ghcr.io/o/app:-bad' }, /tag '-bad'/);
    refuses({ ...base, tags: '' }, /'tags' is required/);
  });

  it('registers password and github-token before validating anything', () => {
    const p = new RecordingPlatform({
      ...base,
      tags: 'nope',
      username: 'u',
      password: 's3cret',
      'github-token': 'ghs_x',
    });
    expect(() => parsePushInputs(p)).toThrow(InputError);
    expect(p.secrets).toEqual(['s3cret', 'ghs_x']);
  });

  it('needs username and password together', () => {
    refuses({ ...base, username: 'u' }, /'username' and 'password' go together/);
    refuses({ ...base, password: 'p' }, /'username' and 'password' go together/);
    expect(parse({ ...base, username: 'u', password: 'p' }).credentials).toEqual({ username: 'u', password: 'p' });
  });

  it('offers the platform credentials only to their own registry', () => {
    const gh = parse(
      { ...base, 'github-token': 'ghs_x' },
      { GITHUB_ACTOR: 'octo', GITHUB_SERVER_URL: 'https://ghe.example.com' },
    );
    expect(gh.registryDefaults).toEqual({
      'ghcr.io': { username: 'octo', password: 'ghs_x' },
      'containers.ghe.example.com': { username: 'octo', password: 'ghs_x' },
    });
    const p = new RecordingPlatform(base, {
      CI_REGISTRY: 'Registry.GitLab.com',
      CI_REGISTRY_USER: 'gitlab-ci-token',
      CI_REGISTRY_PASSWORD: 'job-token',
    });
    expect(parsePushInputs(p).registryDefaults).toEqual({
      'registry.gitlab.com': { username: 'gitlab-ci-token', password: 'job-token' },
    });
    expect(p.secrets).toContain('job-token');
  });

  it('validates compression, its level, and the Docker format conflicts', () => {
    expect(parse({ ...base, compression: 'zstd' }).compressionLevel).toBe(3);
    expect(parse({ ...base, compression: 'gzip', 'compression-level': '6' }).compressionLevel).toBe(6);
    refuses({ ...base, 'compression-level': '10' }, /'compression-level' for gzip must be .* 0 to 9/);
    refuses({ ...base, compression: 'zstd', 'compression-level': 'max' }, /'compression-level' must be a whole/);
    refuses({ ...base, compression: 'none', 'compression-level': '1' }, /no effect with 'compression: none'/);
    refuses({ ...base, compression: 'brotli' }, /'compression' must be one of gzip, zstd, none/);
    refuses({ ...base, 'manifest-format': 'docker', compression: 'zstd' }, /only gzip/, /manifest-format: oci/);
    refuses({ ...base, 'manifest-format': 'docker', compression: 'none' }, /only gzip/);
    refuses({ ...base, 'manifest-format': 'docker', annotations: 'a=b' }, /no annotations/);
    expect(parse({ ...base, 'manifest-format': 'docker' }).manifestFormat).toBe('docker');
  });

  it('parses annotations as key=value lines', () => {
    const i = parse({ ...base, annotations: 'org.example.team=infra = ops\n\n# comment\nplain=\n' });
    expect(i.annotations).toEqual({ 'org.example.team': 'infra = ops', plain: '' });
    refuses({ ...base, annotations: 'no equals sign' }, /'annotations'.*'no equals sign'.*key=value/);
    refuses({ ...base, annotations: 'a=1\na=2' }, /sets 'a' twice/);
    refuses({ ...base, annotations: 'org.opencontainers.image.created=yesterday' }, /RFC 3339/);
  });

  it('checks cache-from, concurrency, retry-budget and timeout', () => {
    const i = parse({ ...base, 'cache-from': `ghcr.io/o/base:latest ghcr.io/o/app@${DIGEST}`, timeout: '2m' });
    expect(i.cacheFrom.map(formatReference)).toEqual(['ghcr.io/o/base:latest', `ghcr.io/o/app@${DIGEST}`]);
    expect(i.timeoutMs).toBe(120_000);
    refuses({ ...base, 'cache-from': 'ghcr.io/o/base' }, /'cache-from'.*no tag or digest/);
    refuses({ ...base, concurrency: '0' }, /'concurrency' must be a whole number from 1 to 32/);
    refuses({ ...base, 'retry-budget': 'lots' }, /'retry-budget'/);
    refuses({ ...base, timeout: '0s' }, /'timeout' must be at least 1s/);
  });

  it('keeps push and index inputs apart', () => {
    refuses({ tags: base.tags }, /'image' is required in push mode/);
    refuses({ ...base, sources: `ghcr.io/o/app@${DIGEST}` }, /'sources' is for 'mode: index'/);
    refuses({ ...base, mode: 'index' }, /'image' is for 'mode: push'/);
    refuses({ tags: base.tags, mode: 'index' }, /needs 'sources'/);
    refuses(
      { tags: base.tags, mode: 'index', sources: `ghcr.io/o/app@${DIGEST}`, platform: 'linux/amd64' },
      /prefix a 'sources' line/,
    );
    const i = parse({
      tags: base.tags,
      mode: 'index',
      sources: `ghcr.io/o/app@${DIGEST}\nlinux/arm/v7=ghcr.io/o/app:arm`,
    });
    expect(i.image).toBeUndefined();
    expect(i.sources).toEqual([
      { ref: { registry: 'ghcr.io', repository: 'o/app', digest: DIGEST } },
      {
        ref: { registry: 'ghcr.io', repository: 'o/app', tag: 'arm' },
        platform: { os: 'linux', architecture: 'arm', variant: 'v7' },
      },
    ]);
  });

  it('parses the platform override', () => {
    expect(parse({ ...base, platform: 'linux/arm64' }).platform).toEqual({ os: 'linux', architecture: 'arm64' });
    refuses({ ...base, platform: 'arm64' }, /os\/arch or os\/arch\/variant/);
  });
});

describe('references', () => {
  it('normalise Docker Hub names and keep ports and digests', () => {
    const o = { input: 'x', digest: true };
    expect(parseFullReference('registry-1.docker.io/nginx:1', o)).toEqual({
      registry: 'docker.io',
      repository: 'library/nginx',
      tag: '1',
    });
    expect(parseFullReference(`[::1]:5000/a/b:c@${DIGEST}`, o)).toEqual({
      registry: '[::1]:5000',
      repository: 'a/b',
      tag: 'c',
      digest: DIGEST,
    });
    expect(() => parseFullReference('ghcr.io/o/app@sha256:abc', o)).toThrow(/not a digest/);
    expect(() => parsePlatform('Linux/AMD64', 'p')).toThrow(InputError);
  });
});

describe('annotations', () => {
  const ctx = { serverUrl: 'https://github.com/', repository: 'o/r', sha: 'c0ffee' };

  it('sets source and revision, and created only from a real, deterministic time', () => {
    expect(imageAnnotations(ctx, {})).toEqual({
      'org.opencontainers.image.revision': 'c0ffee',
      'org.opencontainers.image.source': 'https://github.com/o/r',
    });
    expect(createdTime({ ...ctx, configCreated: '1970-01-01T00:00:01Z' })).toBeUndefined();
    expect(createdTime({ ...ctx, configCreated: '2024-05-01T12:00:00.123456789Z' })).toBe('2024-05-01T12:00:00Z');
    expect(createdTime({ ...ctx, configCreated: '1970-01-01T00:00:01Z', sourceDateEpoch: '1714564800' })).toBe(
      '2024-05-01T12:00:00Z',
    );
    expect(createdTime({ ...ctx, commitTime: '2024-05-01T14:00:00+02:00' })).toBe('2024-05-01T12:00:00Z');
    expect(createdTime({ ...ctx, configCreated: 'now' })).toBeUndefined();
  });

  it('lets the user override or remove defaults, with keys in a stable order', () => {
    const user = parseAnnotations('z.last=1\norg.opencontainers.image.revision=\norg.opencontainers.image.source=x');
    const merged = imageAnnotations(ctx, user);
    expect(merged).toEqual({ 'org.opencontainers.image.source': 'x', 'z.last': '1' });
    expect(Object.keys(merged)).toEqual(['org.opencontainers.image.source', 'z.last']);
  });

  it('reads the context from the platform', () => {
    const p = new RecordingPlatform({}, { CI_COMMIT_TIMESTAMP: '2024-05-01T12:00:00Z' }, { repository: 'g/p' });
    expect(annotationContext(p, '2020-01-01T00:00:00Z')).toMatchObject({
      repository: 'g/p',
      configCreated: '2020-01-01T00:00:00Z',
      commitTime: '2024-05-01T12:00:00Z',
    });
  });
});

describe('gitlab-templates/oci-push.yml', () => {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const action = parseYaml(readFileSync(join(root, 'actions/oci-push/action.yml'), 'utf8')) as {
    inputs: Record<string, { default?: string }>;
  };
  const [specDoc, jobsDoc] = parseAllDocuments(readFileSync(join(root, 'gitlab-templates/oci-push.yml'), 'utf8'));
  const spec = specDoc?.toJS() as { spec: { inputs: Record<string, { default?: string; options?: string[] }> } };
  const job = (jobsDoc?.toJS() as Record<string, { variables: Record<string, string>; script: string[] }>)[
    '.flake-ci-oci-push'
  ];

  it('mirrors every action input in snake_case, each passed as its INPUT_ variable', () => {
    for (const name of Object.keys(action.inputs)) {
      const snake = name.replace(/-/g, '_');
      expect({ name, present: snake in spec.spec.inputs }).toEqual({ name, present: true });
      // Inputs other templates share (install-nix's mode and github_token, cache's timeout) travel under names of
      // their own, so a job extending several templates keeps each one's value.
      const variable = ['mode', 'github_token', 'timeout'].includes(snake)
        ? `FLAKE_CI_OCI_PUSH_${snake.toUpperCase()}`
        : `INPUT_${snake.toUpperCase()}`;
      expect({ snake, value: job?.variables[variable] }).toEqual({ snake, value: `$[[ inputs.${snake} ]]` });
    }
    for (const v of ['INPUT_MODE', 'INPUT_GITHUB_TOKEN', 'INPUT_TIMEOUT']) expect(job?.variables).not.toHaveProperty(v);
  });

  it('keeps the action defaults, except the GitLab-specific tags and github_token', () => {
    for (const [name, input] of Object.entries(action.inputs)) {
      const snake = name.replace(/-/g, '_');
      const gitlabDefault = spec.spec.inputs[snake]?.default;
      if (name === 'tags') expect(gitlabDefault).toBe('$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA');
      else if (name === 'github-token') expect(gitlabDefault).toBe('');
      else expect({ name, default: gitlabDefault }).toEqual({ name, default: input.default ?? '' });
    }
  });

  it('runs the oci-push bundle from the pinned suite', () => {
    expect(job?.variables.FLAKE_CI_SUITE_REF).toBe('$[[ inputs.suite_ref ]]');
    expect(job?.script.at(-1)).toBe(
      'INPUT_MODE="$FLAKE_CI_OCI_PUSH_MODE" INPUT_GITHUB_TOKEN="$FLAKE_CI_OCI_PUSH_GITHUB_TOKEN" ' +
        'INPUT_TIMEOUT="$FLAKE_CI_OCI_PUSH_TIMEOUT" node "$FLAKE_CI_SUITE_DIR/dist/oci-push/index.js"',
    );
  });
});
