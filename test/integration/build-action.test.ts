/**
 * actions/build end to end: the dist bundles, run as the GitHub runner runs them (main, then post with its state),
 * build the engine's fixture flake (passing, failing, evaluation-error, dependency-failed, slow and flaky checks)
 * with real Nix 2.8 and 2.34, each in its own chroot store, on a pull_request event, and report to the GitHub REST
 * double (every request validated against GitHub's OpenAPI description and recorded). Bad inputs fail with errors
 * that name the input. The other modes, lint and remote builders: build-action-modes.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { runAction, runStep, type ActionResult, type StepResult } from '../harness/github-runner.js';
import {
  HEAD,
  REPO,
  RUN_ID,
  TOKEN,
  eventEnv,
  githubEnv as jobEnv,
  printed,
  refused,
  startBuildSuite,
  stopBuildSuite,
} from '../fixtures/build-action/github.js';
import {
  BINARIES,
  SYSTEM,
  fixtureWorkspace,
  lineOf,
  type FixtureWorkspace,
} from '../fixtures/build-action/workspace.js';
import type { GitHubApi } from '../support/github-api.mjs';

let api: GitHubApi;
let scratch: string;
let distRoot: string;

interface ResultsFile {
  version: number;
  flake: string;
  sha: string;
  counts: Record<string, number>;
  results: { attr: string; status: string; type: string; success: boolean }[];
}

function githubEnv(extra: Record<string, string> = {}): Record<string, string> {
  return jobEnv(api.url, extra);
}

function event(name: string, payload: unknown): Record<string, string> {
  return eventEnv(scratch, name, payload);
}

beforeAll(async () => {
  ({ api, scratch, distRoot } = await startBuildSuite('flake-ci-build-action-'));
});

afterAll(() => stopBuildSuite({ api, scratch }));

describe.each(BINARIES)('actions/build with $name', ({ bin }) => {
  let ws: FixtureWorkspace;
  let r: ActionResult;
  const attr = (name: string) => `checks.${SYSTEM}.${name}`;

  beforeAll(async () => {
    ws = fixtureWorkspace(bin, mkdtempSync(path.join(scratch, 'ws-')));
    api.reset();
    r = await runAction({
      action: 'build',
      distRoot,
      // The flaky check hangs on its first run until Nix's timeout kills it; the retry passes.
      inputs: { timeout: '3s' },
      env: { ...ws.env, ...githubEnv(event('pull_request', { pull_request: { head: { sha: HEAD } } })) },
      token: TOKEN,
      dirs: { workspace: ws.workspace },
      workDir: path.join(ws.root, 'runner'),
      keepWorkDir: true,
    });
  });

  it('fails the step naming the counts, and sets an output for every count', () => {
    expect({ exitCode: r.main.exitCode, timedOut: r.main.timedOut }).toEqual({ exitCode: 1, timedOut: false });
    const failed = r.main.failed.join('\n');
    expect(failed).toContain('2 failed to build and 2 failed to evaluate of 8 attribute(s)');
    for (const name of ['fail', 'eval-throw', 'eval-type']) expect(failed).toContain(attr(name));
    expect(failed).toContain(`${attr('dep-failed')} (dependency failed)`);
    expect(r.main.outputs).toMatchObject({ built: '4', cached: '0', failed: '2', 'eval-errors': '2' });
    expect(['checks', 'statuses', 'none']).toContain(r.main.outputs.report);
    expect(r.main.outputs.artifacts).toBe(path.join(r.main.dirs.temp, 'flake-ci-build', 'artifacts'));
    expect(r.main.runnerWarnings).toEqual([]);
  });

  it('writes a results-json file with one record per attribute, and valid JUnit', () => {
    const jsonPath = r.main.outputs['results-json'] as string;
    expect(jsonPath).toBe(path.join(r.main.dirs.temp, 'flake-ci-build', 'results.json'));
    const json = JSON.parse(readFileSync(jsonPath, 'utf8')) as ResultsFile;
    expect(json).toMatchObject({ version: 1, flake: '.', sha: HEAD });
    expect(json.counts).toMatchObject({ built: 4, cached: 0, failed: 2, evalErrors: 2, flaky: 1, total: 8 });
    const statuses = Object.fromEntries(json.results.map((x) => [x.attr, x.status]));
    expect(statuses).toEqual({
      [attr('dep-failed')]: 'dependency-failed',
      [attr('eval-throw')]: 'eval-error',
      [attr('eval-type')]: 'eval-error',
      [attr('fail')]: 'failed',
      [attr('flaky')]: 'flaky',
      [attr('pass-a')]: 'built',
      [attr('pass-b')]: 'built',
      [attr('slow')]: 'built',
    });

    const xml = readFileSync(r.main.outputs['results-junit'] as string, 'utf8');
    expect(XMLValidator.validate(xml)).toBe(true);
    const doc = new XMLParser({ ignoreAttributes: false }).parse(xml);
    expect(doc.testsuites).toMatchObject({ '@_name': 'flake-ci build', '@_tests': '8', '@_errors': '2' });
  });

  it('annotates evaluation errors where Nix points, and failed builds at their attribute in flake.nix', () => {
    const errors = r.main.annotations.filter((a) => a.level === 'error' && a.file !== undefined);
    const byTitle = Object.fromEntries(errors.map((a) => [a.title, a]));
    expect(byTitle[`evaluation error: ${attr('eval-throw')}`]).toMatchObject({
      file: 'flake.nix',
      line: lineOf('eval-throw = throw'),
    });
    expect(byTitle[`evaluation error: ${attr('eval-throw')}`]?.message).toContain(
      'FIXTURE: eval-throw cannot be evaluated',
    );
    expect(byTitle[`evaluation error: ${attr('eval-type')}`]).toMatchObject({
      file: 'flake.nix',
      line: lineOf('(1 + "a")'),
    });
    expect(byTitle[`build failed: ${attr('fail')}`]).toMatchObject({ file: 'flake.nix', line: lineOf('fail = mk') });
    expect(byTitle[`build failed: ${attr('fail')}`]?.message).toContain('FIXTURE-ASSERTION: expected 1, got 2');
    expect(byTitle[`dependency failed: ${attr('dep-failed')}`]).toMatchObject({
      file: 'flake.nix',
      line: lineOf('dep-failed = derivation'),
    });
    expect(errors).toHaveLength(4);
  });

  it('writes the job summary and reports on the pull request head through the API, as the API describes it', () => {
    expect(r.main.summary.trim()).not.toBe('');
    expect(api.violations()).toEqual([]);
    expect(r.main.outputs.report).toBe('checks');
    const details = `https://github.com/${REPO}/actions/runs/${RUN_ID}`;
    const runs = api.checkRuns();
    const aggregate = runs.filter((c) => c.name === 'flake-ci build');
    expect(aggregate).toHaveLength(1);
    expect(aggregate[0]).toMatchObject({
      head_sha: HEAD,
      status: 'completed',
      conclusion: 'failure',
      details_url: details,
    });
    // report-each: failures (the default): one run per failed or unevaluated attribute, none for the others.
    expect(runs.map((c) => c.name).sort()).toEqual(
      [
        'flake-ci build',
        ...['dep-failed', 'eval-throw', 'eval-type', 'fail'].map((n) => `flake-ci build / ${attr(n)}`),
      ].sort(),
    );
    expect(runs.every((c) => c.head_sha === HEAD)).toBe(true);
    for (const req of api.requests()) expect(req.path).toMatch(new RegExp(`^/repos/${REPO}/`));
  });

  it('runs the post step cleanly and never prints or writes the token', () => {
    expect(r.post).toBeDefined();
    expect({ ok: r.post?.ok, log: r.post?.log }).toMatchObject({ ok: true });
    expect(r.main.masks).toContain(TOKEN);
    const files = [r.main.outputs['results-json'], r.main.outputs['results-junit']].map((f) =>
      readFileSync(f as string, 'utf8'),
    );
    const bodies = api.requests().map((q) => JSON.stringify(q.body));
    const everything = [printed(r.main), printed(r.post as StepResult), r.main.summary, ...files, ...bodies];
    expect(everything.join('\n')).not.toContain(TOKEN);
    expect(JSON.stringify(r.main.state)).not.toContain(TOKEN);
  });
});

describe('actions/build input errors', () => {
  const step = (inputs: Record<string, string>) =>
    runStep({ action: 'build', distRoot, inputs, env: githubEnv({}), token: TOKEN });

  it('names the input and what it accepts', async () => {
    refused(await step({ select: 'tests' }), /Input 'select' must be one of checks, packages; got 'tests'/);
    refused(await step({ lint: 'sometimes' }), /Input 'lint' must be true, false or strict; got 'sometimes'/);
    refused(await step({ mode: 'publish' }), /'mode: publish' needs 'results'/);
    refused(await step({ 'max-shards': '300' }), /Input 'max-shards' must be a whole number from 1 to 256/);
    refused(await step({ attributes: '*.x86_64-linux.foo' }), /Input 'attributes': .*literal output name/);
  });

  it('says clearly when the results file to publish is missing', async () => {
    const missing = path.join(scratch, 'nowhere', 'results.json');
    refused(
      await step({ mode: 'publish', results: missing }),
      new RegExp(`Input 'results': cannot read ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*download-artifact`),
    );
  });
});
