/**
 * actions/build beyond the plain build (build-action.test.ts), through the dist bundles as the runner runs them, with
 * real Nix 2.8 in a chroot store and the GitHub REST double: `mode: publish` in a workflow_run job (the commit, the
 * statuses fallback, strict mode), `mode: matrix` and the shard jobs it plans, flake.lock lint, and the remote
 * builders key's lifetime (written 0600 by main, never printed, removed by post).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT, runAction, runStep, type StepResult } from '../harness/github-runner.js';
import {
  HEAD,
  REPO,
  TOKEN,
  eventEnv,
  githubEnv as jobEnv,
  printed,
  refused,
  startBuildSuite,
  stopBuildSuite,
} from '../fixtures/build-action/github.js';
import { fixtureWorkspace } from '../fixtures/build-action/workspace.js';
import type { GitHubApi } from '../support/github-api.mjs';

let api: GitHubApi;
let scratch: string;
let distRoot: string;

function githubEnv(extra: Record<string, string> = {}): Record<string, string> {
  return jobEnv(api.url, extra);
}

function event(name: string, payload: unknown): Record<string, string> {
  return eventEnv(scratch, name, payload);
}

beforeAll(async () => {
  ({ api, scratch, distRoot } = await startBuildSuite('flake-ci-build-modes-'));
});

afterAll(() => stopBuildSuite({ api, scratch }));

describe("actions/build publish mode (a workflow_run job publishing a fork's results)", () => {
  let results: string;

  beforeAll(async () => {
    const ws = fixtureWorkspace('/usr/bin', mkdtempSync(path.join(scratch, 'publish-')));
    // A quick build to get a real results file: one passing and one failing check.
    const built = await runStep({
      action: 'build',
      distRoot,
      inputs: { attributes: 'checks.*.pass-a checks.*.fail', 'github-token': '' },
      env: { ...ws.env, ...githubEnv({}) },
      dirs: { workspace: ws.workspace },
      workDir: path.join(ws.root, 'runner'),
      keepWorkDir: true,
    });
    // Each attribute's status (and error) in the file, so a failure shows what each became and why.
    const file = JSON.parse(readFileSync(built.outputs['results-json'] as string, 'utf8')) as {
      results: { attr: string; status: string; error: string | null }[];
    };
    const records = file.results.map((x) => ({ attr: x.attr, status: x.status, error: x.error?.slice(0, 300) }));
    expect({ built: built.outputs.built, failed: built.outputs.failed, records }).toEqual({
      built: '1',
      failed: '1',
      records: [
        { attr: 'checks.x86_64-linux.pass-a', status: 'built', error: undefined },
        { attr: 'checks.x86_64-linux.fail', status: 'failed', error: expect.stringContaining('exit code 1') },
      ],
    });
    results = path.join(ws.root, 'downloaded', 'results.json');
    mkdirSync(path.dirname(results), { recursive: true });
    copyFileSync(built.outputs['results-json'] as string, results);
  });

  it('publishes the file for the head commit of the triggering run, not the commit the file names', async () => {
    api.reset();
    const runUrl = `https://github.com/${REPO}/actions/runs/999`;
    const r = await runStep({
      action: 'build',
      distRoot,
      inputs: { mode: 'publish', results },
      env: githubEnv(event('workflow_run', { workflow_run: { head_sha: HEAD, html_url: runUrl } })),
      token: TOKEN,
    });
    expect({ ok: r.ok, log: r.ok ? '' : r.log }).toEqual({ ok: true, log: '' });
    expect(r.outputs).toMatchObject({ built: '1', failed: '1', 'eval-errors': '0' });
    expect(r.summary.trim()).not.toBe('');
    expect(api.violations()).toEqual([]);
    expect(r.outputs.report).toBe('checks');
    expect(api.checkRuns().find((c) => c.name === 'flake-ci build')).toMatchObject({
      head_sha: HEAD,
      conclusion: 'failure',
      details_url: runUrl,
    });
    expect(printed(r)).not.toContain(TOKEN);
  });

  it('falls back to commit statuses without checks: write, and fails only in strict mode when nothing works', async () => {
    const publish = (inputs: Record<string, string>) =>
      runStep({
        action: 'build',
        distRoot,
        inputs: { mode: 'publish', results, ...inputs },
        env: githubEnv(event('workflow_run', { workflow_run: { head_sha: HEAD } })),
        token: TOKEN,
      });
    api.reset();
    api.setPermissions({ checks: 'read' });
    const fallback = await publish({});
    expect({ ok: fallback.ok, log: fallback.ok ? '' : fallback.log }).toEqual({ ok: true, log: '' });
    expect(fallback.outputs.report).toBe('statuses');
    expect(api.statuses().find((x) => x.context === 'flake-ci build')).toMatchObject({ sha: HEAD, state: 'failure' });
    expect(fallback.annotations.some((a) => a.level === 'warning' && /commit statuses instead/.test(a.message))).toBe(
      true,
    );

    api.reset();
    api.setPermissions({ checks: 'read', statuses: 'read' });
    const lenient = await publish({});
    expect(lenient.ok).toBe(true);
    expect(lenient.outputs.report).toBe('none');
    const strict = await publish({ strict: 'true' });
    refused(strict, /Build results were not published to GitHub/);
    expect(api.violations()).toEqual([]);
  });
});

describe('actions/build remote builders wiring', () => {
  it('writes the builders key 0600 for the job, never prints it, and the post step removes it', async () => {
    const ws = fixtureWorkspace('/usr/bin', mkdtempSync(path.join(scratch, 'builders-')));
    const material = 'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ0123456789';
    const key = `-----BEGIN OPENSSH PRIVATE KEY-----\n${material}\n-----END OPENSSH PRIVATE KEY-----\n`;
    const r = await runAction({
      action: 'build',
      distRoot,
      // Nothing matches, so nothing is sent to the (absent) builder: this is about the key's lifetime.
      inputs: {
        attributes: 'checks.*.nothing-*',
        builders: 'ssh-ng://nix@127.0.0.1 x86_64-linux',
        'builders-ssh-key': key,
      },
      env: { ...ws.env, ...githubEnv({}) },
      dirs: { workspace: ws.workspace },
      workDir: path.join(ws.root, 'runner'),
      keepWorkDir: true,
      steps: ['stat -c %a "$RUNNER_TEMP"/flake-ci-builders-*/id'],
    });
    expect({ ok: r.main.ok, log: r.main.ok ? '' : r.main.log }).toEqual({ ok: true, log: '' });
    expect(r.main.annotations.some((a) => a.level === 'warning' && /No attributes of \. matched/.test(a.message))).toBe(
      true,
    );
    expect(r.steps?.[0]).toMatchObject({ exitCode: 0, stdout: '600\n' });
    expect(r.post?.ok).toBe(true);
    expect(readdirSync(r.main.dirs.temp).filter((n) => n.startsWith('flake-ci-builders-'))).toEqual([]);
    const logs = [r.main, r.post as StepResult].map(printed);
    expect([...logs, JSON.stringify(r.main.state), r.main.summary].join('\n')).not.toContain(material);
  });
});

describe('actions/build flake.lock lint', () => {
  // A nixpkgs input locked on 2021-01-01 to a long-unsupported channel. Lint reads flake.lock before Nix runs.
  const lint = async (mode: string) => {
    const ws = fixtureWorkspace('/usr/bin', mkdtempSync(path.join(scratch, 'lint-')));
    copyFileSync(
      path.join(REPO_ROOT, 'test/fixtures/build-action/stale-flake.lock'),
      path.join(ws.workspace, 'flake.lock'),
    );
    return runStep({
      action: 'build',
      distRoot,
      inputs: { lint: mode, attributes: 'checks.*.pass-a', 'github-token': '' },
      env: { ...ws.env, ...githubEnv({}) },
      dirs: { workspace: ws.workspace },
      workDir: path.join(ws.root, 'runner'),
      keepWorkDir: true,
    });
  };

  it('warns on flake.lock lines by default, fails the step in strict mode, and is silent when off', async () => {
    const warn = await lint('true');
    expect({ ok: warn.ok, log: warn.ok ? '' : warn.log }).toEqual({ ok: true, log: '' });
    const findings = (r: StepResult, level: string) =>
      r.annotations.filter((a) => a.level === level && a.file === 'flake.lock');
    expect(findings(warn, 'warning').length).toBeGreaterThan(0);
    expect(findings(warn, 'warning').every((a) => (a.line ?? 0) > 1)).toBe(true);
    expect(warn.outputs.built).toBe('1');

    const strict = await lint('strict');
    refused(strict, /flake\.lock lint found problems \(lint: strict\)/);
    expect(findings(strict, 'error').length).toBeGreaterThan(0);
    // The build still ran, so the results are complete.
    expect(strict.outputs.built).toBe('1');

    const off = await lint('false');
    expect(off.ok).toBe(true);
    expect(off.annotations.filter((a) => a.file === 'flake.lock')).toEqual([]);
  });
});

describe('actions/build matrix mode (a plan job, then the shard jobs it planned)', () => {
  it('plans shards whose attributes a build step takes as they are', async () => {
    const ws = fixtureWorkspace('/usr/bin', mkdtempSync(path.join(scratch, 'matrix-')));
    const step = (inputs: Record<string, string>) =>
      runStep({
        action: 'build',
        distRoot,
        inputs: { 'github-token': '', ...inputs },
        env: { ...ws.env, ...githubEnv({}) },
        dirs: { workspace: ws.workspace },
        workDir: path.join(ws.root, 'runner'),
        keepWorkDir: true,
      });
    const plan = await step({ mode: 'matrix', attributes: 'checks.*.pass-* checks.*.fail', 'max-shards': '2' });
    expect({ ok: plan.ok, log: plan.ok ? '' : plan.log }).toEqual({ ok: true, log: '' });
    const matrix = JSON.parse(plan.outputs.matrix ?? 'null') as {
      include: { attributes: string; 'runs-on': unknown }[];
    };
    expect(matrix.include.length).toBeGreaterThanOrEqual(1);
    expect(matrix.include.length).toBeLessThanOrEqual(2);
    // Nothing was built by the plan.
    expect(plan.outputs.built).toBeUndefined();

    const shards: StepResult[] = [];
    for (const entry of matrix.include) shards.push(await step({ attributes: entry.attributes }));
    const total = (key: string) => shards.reduce((n, r) => n + Number(r.outputs[key] ?? 'NaN'), 0);
    expect({ built: total('built'), failed: total('failed') }).toEqual({ built: 2, failed: 1 });
  });
});
