// actions/build's reporting against the GitHub REST double (test/support/github-api.mjs), which validates every
// request against GitHub's published OpenAPI description and records it: check runs, annotations, the statuses and
// summary-only fallbacks, rate limits, and that the token never leaks. Results are constructed: no Nix needed here.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { publishResults, type ReportOptions } from '../../src/build/report/index.js';
import type { AttrResult } from '../../src/build/results.js';
import { InputError } from '../../src/errors.js';
import { RecordingPlatform } from '../../src/platform/recording.js';
import { startGitHubApi, type GitHubApi } from '../support/github-api.mjs';
import { attrResult } from '../support/build-results.js';

const TOKEN = 'ghs_reportTestToken0123456789abcdefABCDEF';
const REPO = 'flake-ci/demo';
const SHA = '89abcdef0123456789abcdef0123456789abcdef';
const DETAILS = 'https://github.com/flake-ci/demo/actions/runs/42/job/7';
const WS = '/home/runner/work/demo/demo';
const SRC = `/nix/store/${'s'.repeat(32)}-source`;

let api: GitHubApi;
beforeAll(async () => {
  api = await startGitHubApi({ token: TOKEN, repo: REPO });
});
afterAll(async () => {
  await api?.close();
});
beforeEach(() => api.reset());

const result = (name: string, extra: Partial<AttrResult> = {}): AttrResult =>
  attrResult(name, { duration: 2.5, ...extra });
const evalError = (name: string, line: number): AttrResult =>
  result(name, {
    status: 'eval-error',
    drvPath: '',
    outputs: {},
    attempts: 0,
    error: `error: attribute 'nope' missing (${name})`,
    errorLocation: { file: `${SRC}/checks/${name}.nix`, line, column: 9, relativeFile: `checks/${name}.nix` },
  });
const bigLog = Array.from({ length: 4000 }, (_, i) => `make[1]: step ${i} ${'q'.repeat(30)}`);
const mixed = (): AttrResult[] => [
  result('ok'),
  result('cached', { status: 'cached', duration: 0, attempts: 0, cachedAt: 'https://cache.example' }),
  result('broken', { status: 'failed', error: 'builder failed with exit code 2', logTail: bigLog }),
  result('dep', {
    status: 'dependency-failed',
    error: 'dependency failed',
    failedDependency: `/nix/store/${'a'.repeat(32)}-broken.drv`,
  }),
  result('infra', { status: 'infra-failure', attempts: 2, error: 'timed out after 600 seconds' }),
  evalError('evalbad', 12),
  result('flaky', { status: 'flaky', attempts: 2, previousErrors: ['killed by signal 9'] }),
];

const options = (extra: Partial<ReportOptions> = {}): ReportOptions => ({
  token: TOKEN,
  apiUrl: api.url,
  repository: REPO,
  sha: SHA,
  checkName: 'nix build',
  reportEach: 'failures',
  detailsUrl: DETAILS,
  flake: '.',
  nixVersion: '2.34.8',
  systems: ['x86_64-linux'],
  workspace: WS,
  ...extra,
});

/** Nothing a real GitHub would object to, and the token nowhere but in Authorization headers. */
function expectClean(p: RecordingPlatform) {
  expect(api.violations()).toEqual([]);
  expect(JSON.stringify(api.requests())).not.toContain(TOKEN);
  expect(p.allText()).not.toContain(TOKEN);
}

describe('check runs', () => {
  it('creates the aggregate check and one run per failed attribute', async () => {
    const p = new RecordingPlatform();
    const out = await publishResults(p, mixed(), options());
    expect(out).toEqual({ via: 'checks', checkRunIds: expect.any(Array), warnings: [] });
    const runs = api.checkRuns();
    expect(out.checkRunIds).toEqual(runs.map((r) => r.id));
    expect(runs.map((r) => r.name).sort()).toEqual([
      'nix build',
      'nix build / checks.x86_64-linux.broken',
      'nix build / checks.x86_64-linux.dep',
      'nix build / checks.x86_64-linux.evalbad',
      'nix build / checks.x86_64-linux.infra',
    ]);
    for (const r of runs) {
      expect(r).toMatchObject({ head_sha: SHA, status: 'completed', conclusion: 'failure', details_url: DETAILS });
    }
    const agg = runs.find((r) => r.name === 'nix build')!;
    expect(agg.output.title).toBe('3 failed, 1 evaluation error, 2 built (1 flaky), 1 cached');
    expect(agg.output.summary).toContain('| 2 | 1 | 3 | 1 | 1 |');
    expect(agg.output.summary).toContain('| `checks.x86_64-linux.broken` | ❌ build failed | 2.5 s |');
    expect(agg.output.text).toContain('### 💥 `checks.x86_64-linux.infra`: infrastructure failure');
    // The evaluation error is an annotation on the repository file Nix pointed into.
    expect(agg.annotations).toEqual([
      {
        path: 'checks/evalbad.nix',
        start_line: 12,
        end_line: 12,
        start_column: 9,
        end_column: 9,
        annotation_level: 'failure',
        title: 'Evaluation error in checks.x86_64-linux.evalbad',
        message: "error: attribute 'nope' missing (evalbad)",
      },
    ]);

    const broken = runs.find((r) => r.name.endsWith('.broken'))!;
    expect(broken.external_id).toBe('checks.x86_64-linux.broken');
    expect(broken.output.summary).toContain('**Status:** ❌ build failed · **Duration:** 2.5 s');
    expect(broken.output.summary).toContain('builder failed with exit code 2');
    expect(broken.output.summary).toContain(`make[1]: step 3999 ${'q'.repeat(30)}`);
    expect(broken.output.text!.length).toBeLessThanOrEqual(65_535);
    expect(broken.output.text).toMatch(/^```text\n\[… \d+ earlier characters cut/);
    expect(broken.output.text).toContain(`make[1]: step 3999 ${'q'.repeat(30)}\n\`\`\``);
    const dep = runs.find((r) => r.name.endsWith('.dep'))!;
    expect(dep.output.summary).toContain(`a dependency failed to build: \`/nix/store/${'a'.repeat(32)}-broken.drv\``);
    expectClean(p);
  });

  it('passes the aggregate when everything built, and reports every attribute with report-each: all', async () => {
    const p = new RecordingPlatform();
    const rs = [result('a'), result('b', { status: 'cached', attempts: 0 }), result('c', { status: 'flaky' })];
    const out = await publishResults(p, rs, options({ reportEach: 'all' }));
    expect(out.via).toBe('checks');
    const runs = api.checkRuns();
    expect(runs).toHaveLength(4);
    expect(runs.every((r) => r.conclusion === 'success')).toBe(true);
    const b = runs.find((r) => r.name === 'nix build / checks.x86_64-linux.b')!;
    expect(b.output.title).toBe('cached (2.5 s)');
    expect(b.output.text).toBeUndefined();
    expectClean(p);
  });

  it('creates at most maxAttributeRuns per-attribute runs, failures first, and says so in the aggregate', async () => {
    const p = new RecordingPlatform();
    const out = await publishResults(p, mixed(), options({ reportEach: 'all', maxAttributeRuns: 2 }));
    expect(out.checkRunIds).toHaveLength(3);
    const runs = api.checkRuns();
    expect(runs.map((r) => r.name)).toEqual([
      'nix build',
      'nix build / checks.x86_64-linux.evalbad',
      'nix build / checks.x86_64-linux.broken',
    ]);
    expect(runs[0]!.output.summary).toContain('5 of 7 attributes have no check run of their own (at most 2 per build)');
    expectClean(p);
  });

  it('sends 120 evaluation-error annotations as one POST and two PATCHes on the aggregate', async () => {
    const p = new RecordingPlatform();
    const rs = Array.from({ length: 120 }, (_, i) => evalError(`e${i}`, i + 1));
    const out = await publishResults(p, rs, options({ concurrency: 8 }));
    expect(out.via).toBe('checks');
    const agg = api.checkRuns().find((r) => r.name === 'nix build')!;
    expect(agg.conclusion).toBe('failure');
    expect(agg.requests).toBe(3);
    expect(agg.annotations).toHaveLength(120);
    expect(agg.annotations.map((a) => a.start_line)).toEqual(rs.map((_, i) => i + 1));
    const aggRequests = api
      .requests()
      .filter((r) => (r.body as { name?: string }).name === 'nix build' || r.operationId === 'checks/update');
    expect(
      aggRequests.map((r) => [r.operationId, (r.body as { output: { annotations: [] } }).output.annotations.length]),
    ).toEqual([
      ['checks/create', 50],
      ['checks/update', 50],
      ['checks/update', 20],
    ]);
    expect(api.checkRuns()).toHaveLength(121);
    expectClean(p);
  });

  it('puts evaluation errors outside the repository into the text, not annotations', async () => {
    const p = new RecordingPlatform();
    const nixpkgs = result('lib', {
      status: 'eval-error',
      error: 'error: infinite recursion encountered',
      errorLocation: { file: `/nix/store/${'n'.repeat(32)}-nixpkgs/lib/fixed-points.nix`, line: 3 },
    });
    await publishResults(p, [nixpkgs], options());
    const agg = api.checkRuns().find((r) => r.name === 'nix build')!;
    expect(agg.annotations).toEqual([]);
    expect(agg.output.text).toContain('infinite recursion encountered');
    expect(agg.output.text).toContain('fixed-points.nix:3');
    expectClean(p);
  });

  it('waits out a secondary rate limit (403 + Retry-After) and retries', async () => {
    const p = new RecordingPlatform();
    api.injectFault({ status: 403, retryAfter: 1, operationId: 'checks/create' });
    const out = await publishResults(p, mixed(), options());
    expect(out).toMatchObject({ via: 'checks', warnings: [] });
    const creates = api.requests().filter((r) => r.operationId === 'checks/create');
    expect(creates[0]).toMatchObject({ status: 403, injected: 403 });
    expect(creates.slice(1).map((r) => r.status)).toEqual([201, 201, 201, 201, 201]);
    expect(api.checkRuns()).toHaveLength(5);
    expect(p.logs.some((l) => l.level === 'debug' && /secondary rate limit.*retry 1/.test(l.message))).toBe(true);
    expectClean(p);
  });
});

describe('fallbacks', () => {
  it.each(['none', 'read'] as const)('uses commit statuses when checks permission is %s', async (level) => {
    api.setPermissions({ checks: level });
    const p = new RecordingPlatform();
    const out = await publishResults(p, mixed(), options());
    expect(out.via).toBe('statuses');
    expect(out.checkRunIds).toEqual([]);
    expect(api.checkRuns()).toEqual([]);
    const statuses = api.statuses();
    expect(statuses.map((s) => [s.context, s.state])).toEqual(
      expect.arrayContaining([
        ['nix build', 'failure'],
        ['nix build / checks.x86_64-linux.broken', 'failure'],
        ['nix build / checks.x86_64-linux.dep', 'failure'],
        ['nix build / checks.x86_64-linux.infra', 'error'],
        ['nix build / checks.x86_64-linux.evalbad', 'error'],
      ]),
    );
    expect(statuses).toHaveLength(5);
    for (const s of statuses) {
      expect(s.target_url).toBe(DETAILS);
      expect(s.sha).toBe(SHA);
      expect(s.description!.length).toBeLessThanOrEqual(140);
    }
    expect(statuses.find((s) => s.context === 'nix build')?.description).toBe(
      '3 failed, 1 evaluation error, 2 built (1 flaky), 1 cached',
    );
    const warnings = p.logs.filter((l) => l.level === 'warning');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.message).toMatch(/Check runs could not be created \(creating check run "nix build": HTTP 403/);
    expect(warnings[0]!.message).toContain('commit statuses instead');
    expect(warnings[0]!.message).toContain('permissions: checks: write');
    expect(out.warnings).toEqual([warnings[0]!.message]);
    expectClean(p);
  });

  it('falls back to nothing with one warning when statuses are refused too', async () => {
    api.setPermissions({ checks: 'read', statuses: 'read' });
    const p = new RecordingPlatform();
    const out = await publishResults(p, mixed(), options());
    expect(out).toMatchObject({ via: 'none', checkRunIds: [] });
    expect(api.checkRuns()).toEqual([]);
    expect(api.statuses()).toEqual([]);
    const warnings = p.logs.filter((l) => l.level === 'warning');
    expect(warnings).toHaveLength(1);
    const w = warnings[0]!.message;
    expect(w).toMatch(/^Build results were not published to GitHub: check runs failed \(.*HTTP 403 Resource not/);
    expect(w).toMatch(/commit statuses failed \(.*HTTP 403/);
    expect(w).toContain('`permissions: checks: write`');
    expect(w).toContain("`workflow_run` workflow with this action's `mode: publish`");
    // Only the two refused requests were made: no per-attribute attempts after the refusals.
    expect(api.requests().map((r) => [r.operationId, r.status])).toEqual([
      ['checks/create', 403],
      ['repos/create-commit-status', 403],
    ]);
    expectClean(p);
  });

  it('fails instead of warning with strict', async () => {
    api.setPermissions({ checks: 'none', statuses: 'none' });
    const p = new RecordingPlatform();
    await expect(publishResults(p, mixed(), options({ strict: true }))).rejects.toThrow(InputError);
    expect(p.logs.filter((l) => l.level === 'warning')).toEqual([]);
    expectClean(p);
  });

  it('with strict, still publishes statuses before failing on the refused check runs', async () => {
    api.setPermissions({ checks: 'none' });
    const p = new RecordingPlatform();
    await expect(publishResults(p, mixed(), options({ strict: true }))).rejects.toThrow(
      /^Check runs could not be created .*commit statuses instead/,
    );
    expect(api.statuses()).toHaveLength(5);
    expectClean(p);
  });

  it('makes no request without a token, and says so once', async () => {
    const p = new RecordingPlatform();
    const out = await publishResults(p, mixed(), options({ token: '' }));
    expect(out.via).toBe('none');
    expect(api.requests()).toEqual([]);
    expect(p.logs.filter((l) => l.level === 'warning').map((l) => l.message)).toEqual([
      expect.stringContaining('no token was given'),
    ]);
  });

  it('gives up on an exhausted primary rate limit instead of waiting an hour', async () => {
    const limited = await startGitHubApi({ token: TOKEN, repo: REPO, rateLimit: { remaining: 0 } });
    try {
      const p = new RecordingPlatform();
      const out = await publishResults(p, mixed(), options({ apiUrl: limited.url }));
      expect(out.via).toBe('none');
      expect(out.warnings).toHaveLength(1);
      expect(out.warnings[0]).toMatch(/API rate limit exceeded.*rate limited until \d{4}-/);
      expect(limited.requests()).toHaveLength(2);
      expect(limited.violations()).toEqual([]);
    } finally {
      await limited.close();
    }
  });
});
