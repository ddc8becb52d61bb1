// The GitHub REST double (test/support/github-api.mjs) driven by the real @octokit/rest client: if these pass, the
// reporting and purge tests of actions/build and actions/cache can trust what it records and how it answers.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Octokit } from '@octokit/rest';
import { request } from 'node:http';
import { startGitHubApi, type GitHubApi } from '../support/github-api.mjs';

const TOKEN = 'ghs_doubleTestToken0123456789abcdefABCDEF';
const owner = 'flake-ci';
const repo = 'demo';
const sha = '0123456789abcdef0123456789abcdef01234567';
// Octokit's request-log plugin prints every 4xx; the tests assert on those answers, so keep the output quiet.
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

let api: GitHubApi;
let gh: Octokit;

beforeAll(async () => {
  // One double per file: loading the description and compiling validators is the expensive part.
  api = await startGitHubApi({ token: TOKEN, repo: `${owner}/${repo}` });
  gh = new Octokit({ auth: TOKEN, baseUrl: api.url, log: quiet });
});
afterAll(async () => {
  await api?.close();
});
beforeEach(() => api.reset());

const annotation = (i: number) => ({
  path: 'flake.nix',
  start_line: i + 1,
  end_line: i + 1,
  annotation_level: 'failure' as const,
  message: `error ${i}`,
});
const annotations = (from: number, n: number) => Array.from({ length: n }, (_, i) => annotation(from + i));

/** The HTTP error an Octokit call ended with. */
async function failure(
  p: Promise<unknown>,
): Promise<{ status: number; message: string; response?: { headers: Record<string, unknown>; data: unknown } }> {
  try {
    await p;
  } catch (e) {
    return e as { status: number; message: string };
  }
  throw new Error('expected the request to fail');
}

describe('check runs', () => {
  it('records 120 annotations sent as one POST (50) and two PATCHes (50, 20)', async () => {
    const created = await gh.rest.checks.create({
      owner,
      repo,
      name: 'flake-ci / build',
      head_sha: sha,
      status: 'in_progress',
      output: { title: 'Building', summary: '3 attributes', annotations: annotations(0, 50) },
    });
    expect(created.status).toBe(201);
    expect(created.data).toMatchObject({ name: 'flake-ci / build', status: 'in_progress', conclusion: null });
    const id = created.data.id;
    await gh.rest.checks.update({
      owner,
      repo,
      check_run_id: id,
      output: { title: 'Building', summary: '3 attributes', annotations: annotations(50, 50) },
    });
    const done = await gh.rest.checks.update({
      owner,
      repo,
      check_run_id: id,
      conclusion: 'failure',
      output: { title: '1 failed', summary: 'hello failed', text: 'log tail', annotations: annotations(100, 20) },
    });
    // "Providing conclusion will automatically set the status parameter to completed."
    expect(done.data).toMatchObject({ status: 'completed', conclusion: 'failure' });
    expect(done.data.completed_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(done.data.output.annotations_count).toBe(120);

    const [run] = api.checkRuns();
    expect(run?.annotations.map((a) => a.message)).toEqual(annotations(0, 120).map((a) => a.message));
    expect(run?.output).toEqual({ title: '1 failed', summary: 'hello failed', text: 'log tail' });
    expect(run?.requests).toBe(3);
    const sent = api
      .requests()
      .map((r) => [r.operationId, (r.body as { output: { annotations: unknown[] } }).output.annotations.length]);
    expect(sent).toEqual([
      ['checks/create', 50],
      ['checks/update', 50],
      ['checks/update', 20],
    ]);

    // The annotations read back through pagination (Link headers followed by Octokit).
    const listed = await gh.paginate(gh.rest.checks.listAnnotations, { owner, repo, check_run_id: id, per_page: 50 });
    expect(listed).toHaveLength(120);
    expect(listed[119]).toMatchObject({
      message: 'error 119',
      blob_href: `https://github.com/${owner}/${repo}/blob/${sha}/flake.nix`,
    });
    const forRef = await gh.rest.checks.listForRef({ owner, repo, ref: sha });
    expect(forRef.data.total_count).toBe(1);
    expect(api.violations()).toEqual([]);
  });

  it("refuses 51 annotations in one request with 422 and GitHub's message, and records the violation", async () => {
    const err = await failure(
      gh.rest.checks.create({
        owner,
        repo,
        name: 'too many',
        head_sha: sha,
        output: { title: 't', summary: 's', annotations: annotations(0, 51) },
      }),
    );
    expect(err.status).toBe(422);
    expect(err.message).toContain('No more than 50 items are allowed; 51 were supplied.');
    expect(api.checkRuns()).toEqual([]);
    expect(api.violations()).toEqual([expect.objectContaining({ kind: 'schema', operationId: 'checks/create' })]);
  });

  it('refuses a summary or text over 65,535 characters with 422', async () => {
    const big = 'x'.repeat(65536);
    const err = await failure(
      gh.rest.checks.create({ owner, repo, name: 'big', head_sha: sha, output: { title: 't', summary: big } }),
    );
    expect(err.status).toBe(422);
    expect(err.message).toContain('Only 65535 characters are allowed; 65536 were supplied.');
    const created = await gh.rest.checks.create({
      owner,
      repo,
      name: 'ok',
      head_sha: sha,
      output: { title: 't', summary: 'x'.repeat(65535) },
    });
    const text = await failure(
      gh.rest.checks.update({ owner, repo, check_run_id: created.data.id, output: { summary: 's', text: big } }),
    );
    expect(text.status).toBe(422);
    expect(api.checkRuns()).toHaveLength(1);
    expect(api.violations().map((v) => [v.operationId, v.kind])).toEqual([
      ['checks/create', 'schema'],
      ['checks/update', 'schema'],
    ]);
  });

  it('flags a body field of the wrong type sent by hand, and an unknown field', async () => {
    const post = (body: unknown) =>
      fetch(`${api.url}/repos/${owner}/${repo}/check-runs`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${TOKEN}`,
          accept: 'application/vnd.github+json',
          'content-type': 'application/json',
          'user-agent': 'flake-ci-test',
        },
        body: JSON.stringify(body),
      });
    const wrong = await post({ name: 'n', head_sha: 1234 });
    expect(wrong.status).toBe(422);
    expect(((await wrong.json()) as { message: string }).message).toContain(
      "For 'properties/head_sha', 1234 is not a string.",
    );
    // GitHub ignores unknown fields; the double serves the request but flags the misspelling.
    const typo = await post({ name: 'n', head_sha: sha, output: { title: 't', summery: 's' } });
    expect(typo.status).toBe(422); // `summary` is required, so this one is refused too
    const [first, second] = api.requests();
    expect(first).toMatchObject({ valid: false, operationId: 'checks/create', body: { name: 'n', head_sha: 1234 } });
    expect(first?.errors.join('\n')).toMatch(/^schema: .*head_sha/);
    expect(second?.violations.map((v) => v.kind).sort()).toEqual(['schema', 'unknown-field']);
    expect(second?.errors.join('\n')).toContain('output.summery is not defined');
    expect(api.checkRuns()).toEqual([]);
  });

  it('enforces the documented conclusion rules', async () => {
    const err = await failure(gh.rest.checks.create({ owner, repo, name: 'n', head_sha: sha, status: 'completed' }));
    expect(err.status).toBe(422);
    const stale = await failure(gh.rest.checks.create({ owner, repo, name: 'n', head_sha: sha, conclusion: 'stale' }));
    expect(stale.status).toBe(422);
    const badSha = await failure(gh.rest.checks.create({ owner, repo, name: 'n', head_sha: 'main' }));
    expect(badSha).toMatchObject({ status: 422, message: expect.stringContaining('No commit found for SHA: main') });
    expect(api.violations().map((v) => v.kind)).toEqual(['semantic', 'semantic', 'semantic']);
  });
});

describe('permissions and the statuses fallback', () => {
  it('answers a check-run write without checks: write with 403, and accepts the commit status', async () => {
    api.setPermissions({ checks: 'none' });
    const err = await failure(gh.rest.checks.create({ owner, repo, name: 'flake-ci / build', head_sha: sha }));
    expect(err.status).toBe(403);
    expect((err.response?.data as { message: string }).message).toBe('Resource not accessible by integration');
    expect(err.response?.headers['x-accepted-github-permissions']).toBe('checks=write');

    const status = await gh.rest.repos.createCommitStatus({
      owner,
      repo,
      sha,
      state: 'failure',
      context: 'flake-ci / checks.x86_64-linux.hello',
      description: 'build failed',
      target_url: 'https://github.com/flake-ci/demo/actions/runs/1',
    });
    expect(status.status).toBe(201);
    expect(status.headers.location).toBe(`${api.url}/repos/${owner}/${repo}/statuses/${sha}`);
    expect(status.data.creator?.login).toBe('github-actions[bot]');
    expect(api.statuses()).toEqual([
      expect.objectContaining({ sha, state: 'failure', context: 'flake-ci / checks.x86_64-linux.hello' }),
    ]);
    const listed = await gh.rest.repos.listCommitStatusesForRef({ owner, repo, ref: sha });
    expect(listed.data).toHaveLength(1);
    // A missing permission is the token's fault, not the client's: no violation.
    expect(api.violations()).toEqual([]);
    expect(api.checkRuns()).toEqual([]);
  });

  it('answers statuses without statuses: write with 403 too, and refuses a description over 140 characters', async () => {
    const long = await failure(
      gh.rest.repos.createCommitStatus({ owner, repo, sha, state: 'success', description: 'd'.repeat(141) }),
    );
    expect(long.status).toBe(422);
    expect(long.response?.data).toMatchObject({
      message: 'Validation Failed',
      errors: [{ resource: 'Status', code: 'custom', field: 'description' }],
    });
    api.setPermissions({ statuses: 'read' });
    const err = await failure(gh.rest.repos.createCommitStatus({ owner, repo, sha, state: 'success' }));
    expect(err.status).toBe(403);
    expect(api.violations().map((v) => v.kind)).toEqual(['semantic']);
  });
});

describe('Actions caches', () => {
  const seed = () => {
    for (let i = 0; i < 5; i++) {
      api.addCache({ key: `nix-store-${i}`, created_at: new Date(Date.UTC(2026, 0, 1 + i)), size: 100 * (i + 1) });
    }
    api.addCache({ key: 'nix-store-pr', ref: 'refs/pull/7/merge', created_at: '2026-02-01T00:00:00Z' });
    api.addCache({ key: 'other-1', created_at: '2026-02-02T00:00:00Z' });
  };

  it('lists by key prefix and ref with pagination and a Link header', async () => {
    seed();
    const first = await gh.rest.actions.getActionsCacheList({
      owner,
      repo,
      key: 'nix-store-',
      ref: 'refs/heads/main',
      sort: 'created_at',
      direction: 'asc',
      per_page: 2,
    });
    expect(first.data.total_count).toBe(5);
    expect(first.data.actions_caches.map((c) => c.key)).toEqual(['nix-store-0', 'nix-store-1']);
    expect(first.headers.link).toContain('rel="next"');
    expect(first.headers.link).toMatch(/[?&]page=3>; rel="last"/);
    expect(first.headers['x-ratelimit-limit']).toBe('1000');
    expect(Number(first.headers['x-ratelimit-remaining'])).toBeLessThan(1000);
    expect(Number(first.headers['x-ratelimit-reset'])).toBeGreaterThan(Date.now() / 1000);

    const all = await gh.paginate(gh.rest.actions.getActionsCacheList, { owner, repo, key: 'nix-store-', per_page: 2 });
    // Default order: last_accessed_at, newest first; the PR cache is included without a ref filter.
    expect(all.map((c) => c.key)).toEqual([
      'nix-store-pr',
      'nix-store-4',
      'nix-store-3',
      'nix-store-2',
      'nix-store-1',
      'nix-store-0',
    ]);
    expect(api.violations()).toEqual([]);
  });

  it('deletes by id and by exact key (a prefix deletes nothing)', async () => {
    seed();
    const [oldest] = api.caches();
    const del = await gh.rest.actions.deleteActionsCacheById({ owner, repo, cache_id: oldest!.id });
    expect(del.status).toBe(204);
    expect((await failure(gh.rest.actions.deleteActionsCacheById({ owner, repo, cache_id: oldest!.id }))).status).toBe(
      404,
    );

    const byKey = await gh.rest.actions.deleteActionsCacheByKey({
      owner,
      repo,
      key: 'nix-store-pr',
      ref: 'refs/pull/7/merge',
    });
    expect(byKey.data).toMatchObject({ total_count: 1, actions_caches: [{ key: 'nix-store-pr' }] });
    expect((await failure(gh.rest.actions.deleteActionsCacheByKey({ owner, repo, key: 'nix-store-' }))).status).toBe(
      404,
    );
    expect(
      api
        .caches()
        .map((c) => c.key)
        .sort(),
    ).toEqual(['nix-store-1', 'nix-store-2', 'nix-store-3', 'nix-store-4', 'other-1']);
    expect(api.requests().find((r) => r.operationId === 'actions/delete-actions-cache-by-key')?.query).toEqual({
      key: 'nix-store-pr',
      ref: 'refs/pull/7/merge',
    });
    // A cache that is already gone (evicted, another job's purge) is a 404, not a client error.
    expect(api.violations()).toEqual([]);
  });

  it('lets a token with actions: read list but not delete', async () => {
    seed();
    api.setPermissions({ actions: 'read' });
    const list = await gh.rest.actions.getActionsCacheList({ owner, repo });
    expect(list.data.total_count).toBe(7);
    const err = await failure(
      // The description marks no field of a cache entry as required, so Octokit's type has `id?`: use the double's.
      gh.rest.actions.deleteActionsCacheById({ owner, repo, cache_id: api.caches()[0]!.id }),
    );
    expect(err).toMatchObject({
      status: 403,
      message: expect.stringContaining('Resource not accessible by integration'),
    });
    expect(api.caches()).toHaveLength(7);
  });
});

describe('protocol checks', () => {
  it('answers a request without a token with 401 and a wrong token with Bad credentials', async () => {
    const anonymous = new Octokit({ baseUrl: api.url, log: quiet });
    const err = await failure(anonymous.rest.checks.create({ owner, repo, name: 'n', head_sha: sha }));
    expect(err.status).toBe(401);
    expect((err.response?.data as { message: string }).message).toBe('Requires authentication');
    const wrong = new Octokit({ auth: 'ghs_not_the_token', baseUrl: api.url, log: quiet });
    const bad = await failure(wrong.rest.actions.getActionsCacheList({ owner, repo }));
    expect(bad.status).toBe(401);
    expect((bad.response?.data as { message: string }).message).toBe('Bad credentials');
    expect(api.violations().map((v) => v.kind)).toEqual(['auth', 'auth']);
  });

  it('answers routes GitHub does not have with 404, and other repositories with 404', async () => {
    const err = await failure(gh.request('GET /repos/{owner}/{repo}/no-such-thing', { owner, repo }));
    expect(err.status).toBe(404);
    const other = await failure(gh.rest.actions.getActionsCacheList({ owner: 'someone', repo: 'else' }));
    expect(other.status).toBe(404);
    expect(api.violations().map((v) => [v.kind, v.operationId])).toEqual([
      ['unknown-route', null],
      ['wrong-repository', 'actions/get-actions-cache-list'],
    ]);
  });

  it('flags missing headers and unknown query parameters', async () => {
    // node:http sends only what it is given, unlike fetch (which adds Accept and User-Agent).
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${api.url}/repos/${owner}/${repo}/actions/caches`, {
        headers: { authorization: `token ${TOKEN}` },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    // GitHub refuses requests without a User-Agent.
    expect(status).toBe(403);
    // Octokit puts parameters the route does not name into the query of a GET.
    await gh.request('GET /repos/{owner}/{repo}/actions/caches', { owner, repo, kee: 'nix-' });
    expect(api.violations().map((v) => [v.kind, v.message])).toEqual([
      ['header', expect.stringContaining('Accept')],
      ['header', 'no User-Agent header'],
      ['unknown-parameter', 'query parameter kee is not defined'],
    ]);
  });

  it('flags valid operations the double does not implement instead of pretending', async () => {
    const err = await failure(gh.rest.repos.get({ owner, repo }));
    expect(err.status).toBe(501);
    expect(api.violations()).toEqual([expect.objectContaining({ kind: 'unimplemented', operationId: 'repos/get' })]);
  });

  it('never records the token, and flags a caller that puts it in a body', async () => {
    await gh.rest.checks.create({ owner, repo, name: 'n', head_sha: sha, output: { title: 't', summary: 's' } });
    await gh.rest.repos.createCommitStatus({ owner, repo, sha, state: 'success' });
    expect(api.violations()).toEqual([]);
    expect(JSON.stringify(api.requests())).not.toContain(TOKEN);

    await gh.rest.repos.createCommitStatus({ owner, repo, sha, state: 'failure', description: `token ${TOKEN}` });
    const recorded = JSON.stringify(api.requests());
    expect(recorded).not.toContain(TOKEN);
    expect(recorded).toContain('token ***');
    expect(api.violations()).toEqual([
      expect.objectContaining({ kind: 'token-leak', operationId: 'repos/create-commit-status' }),
    ]);
    expect(JSON.stringify(api.violations())).not.toContain(TOKEN);
  });
});

describe('faults for retry tests', () => {
  it('injects 5xx and 429 with Retry-After once, then serves normally', async () => {
    api.injectFault({ status: 503, operationId: 'checks/create' });
    api.injectFault({ status: 429, retryAfter: 7, operationId: 'repos/create-commit-status' });
    const down = await failure(gh.rest.checks.create({ owner, repo, name: 'n', head_sha: sha }));
    expect(down.status).toBe(503);
    const limited = await failure(gh.rest.repos.createCommitStatus({ owner, repo, sha, state: 'pending' }));
    expect(limited.status).toBe(429);
    expect(limited.response?.headers['retry-after']).toBe('7');
    expect((await gh.rest.checks.create({ owner, repo, name: 'n', head_sha: sha })).status).toBe(201);
    expect((await gh.rest.repos.createCommitStatus({ owner, repo, sha, state: 'pending' })).status).toBe(201);
    expect(api.requests().map((r) => r.injected ?? r.status)).toEqual([503, 429, 201, 201]);
    expect(api.checkRuns()).toHaveLength(1);
    expect(api.violations()).toEqual([]);
  });

  it('drops a connection when asked', async () => {
    api.injectFault({ status: 'reset', operationId: 'actions/get-actions-cache-list' });
    await expect(gh.rest.actions.getActionsCacheList({ owner, repo })).rejects.toThrow();
    expect((await gh.rest.actions.getActionsCacheList({ owner, repo })).status).toBe(200);
    expect(api.requests().map((r) => r.injected ?? r.status)).toEqual(['reset', 200]);
  });

  it('answers 403 with x-ratelimit-remaining: 0 when the primary rate limit is used up', async () => {
    const limited = await startGitHubApi({
      token: TOKEN,
      repo: `${owner}/${repo}`,
      rateLimit: { limit: 1000, remaining: 1 },
    });
    try {
      const client = new Octokit({ auth: TOKEN, baseUrl: limited.url, log: quiet });
      const ok = await client.rest.actions.getActionsCacheList({ owner, repo });
      expect(ok.headers['x-ratelimit-remaining']).toBe('0');
      const err = await failure(client.rest.actions.getActionsCacheList({ owner, repo }));
      expect(err.status).toBe(403);
      expect(err.response?.headers['x-ratelimit-remaining']).toBe('0');
      expect(limited.violations()).toEqual([]);
    } finally {
      await limited.close();
    }
  });
});
