/**
 * build: evaluate and build flake attributes, then report them (results files, outputs, check runs, summary,
 * annotations). Three modes: `build` (the default), `matrix` (plan shards for other jobs, build nothing) and
 * `publish` (report a results file an earlier, less privileged run wrote, e.g. from a fork's pull request).
 * The engine does the work; this file only wires inputs, the feature modules and the reports around it.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { InputError, errorMessage } from '../errors.js';
import { NixCommand, nixBinOnPath } from '../nix/command.js';
import type { Platform } from '../platform/types.js';
import { detailsUrl, localFlake, reportSha } from './action-context.js';
import { annotateResults, artifactsMarkdown, failureSummary } from './action-report.js';
import { setupBuilders } from './builders.js';
import { machinesOf, parseBuilders } from './builders-spec.js';
import { runBuild, type BuildEngineOptions } from './engine.js';
import { engineOptions, parseBuildInputs, shardInputs, type BuildInputs } from './inputs.js';
import { lintFlakeLock } from './lint/index.js';
import { runMatrixMode } from './matrix/index.js';
import { publishResults, readResultsFile, renderBuildSummary, type ReportOutcome } from './report/index.js';
import { countResults, junitXml, resultsJson, type AttrResult, type Counts } from './results.js';
import { collectVmArtifacts, prepareVmTests } from './vm.js';

/** The directory of the job's nix (see nixBinOnPath). */
function nixBinDir(p: Platform): string {
  const bin = nixBinOnPath(p);
  if (bin === undefined)
    throw new InputError('No nix on PATH: run install-nix (or another Nix installer) in an earlier step.');
  return bin;
}

/** flake.lock lint of a local flake. Returns true when strict mode found something (the step fails at the end). */
async function lint(p: Platform, inputs: BuildInputs): Promise<boolean> {
  if (inputs.lint === 'off') return false;
  const flake = localFlake(inputs.flake, p.runner.workspace);
  if (!flake) {
    p.log('debug', `flake.lock lint skipped: '${inputs.flake}' is not a local path.`);
    return false;
  }
  const lockFile = path.join(flake.dir, 'flake.lock');
  const result = await p.group('Checking flake.lock', () =>
    lintFlakeLock(p, {
      lockFile,
      relPath: path.relative(p.runner.workspace, lockFile),
      maxAgeDays: inputs.lintMaxAge,
      mode: inputs.lint,
    }),
  );
  return result.failed;
}

/**
 * Nix with the remote builders set up (their extra arguments go to every build command, their environment to every
 * nix process). setupBuilders saves its own state for the post step, which removes the key it wrote.
 */
async function nixWithBuilders(p: Platform, inputs: BuildInputs): Promise<{ nix: NixCommand; extraArgs: string[] }> {
  const bin = nixBinDir(p);
  const setup = await setupBuilders(p, {
    builders: inputs.builders,
    sshKey: inputs.buildersSshKey,
    temp: p.runner.temp,
  });
  return { nix: await NixCommand.detect(p, bin, setup.env), extraArgs: setup.extraArgs };
}

async function writeResults(p: Platform, inputs: BuildInputs, text: { json: string; junit: string }): Promise<void> {
  for (const [file, data] of [
    [inputs.resultsJson, text.json],
    [inputs.resultsJunit, text.junit],
  ] as const) {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, data);
  }
  p.setOutput('results-json', inputs.resultsJson);
  p.setOutput('results-junit', inputs.resultsJunit);
}

function setCountOutputs(p: Platform, counts: Counts): void {
  p.setOutput('built', String(counts.built));
  p.setOutput('cached', String(counts.cached));
  p.setOutput('failed', String(counts.failed));
  p.setOutput('eval-errors', String(counts.evalErrors));
}

interface ReportMeta {
  flake: string;
  nixVersion: string;
  systems: string[];
  sha: string;
}

interface Published {
  via: ReportOutcome['via'];
  /** Strict mode: why publishing failed; the step fails with it after the summary is written. */
  error?: string;
}

/** Check runs or statuses on GitHub; nothing on GitLab (JUnit and Code Quality reports do that job there). */
async function publish(
  p: Platform,
  inputs: BuildInputs,
  results: readonly AttrResult[],
  meta: ReportMeta,
): Promise<Published> {
  if (p.name === 'gitlab') return { via: 'none' };
  try {
    const outcome = await p.group('Publishing results', () =>
      publishResults(p, results, {
        token: inputs.githubToken,
        apiUrl: p.env('GITHUB_API_URL') || 'https://api.github.com',
        repository: p.env('GITHUB_REPOSITORY') || p.runner.repository,
        sha: meta.sha,
        checkName: inputs.checkName,
        reportEach: inputs.reportEach,
        detailsUrl: detailsUrl(p),
        flake: meta.flake,
        nixVersion: meta.nixVersion,
        systems: meta.systems,
        workspace: p.runner.workspace,
        strict: inputs.strict,
      }),
    );
    return { via: outcome.via };
  } catch (e) {
    // DESIGN.md: reporting problems are warnings unless the user asked for strict mode.
    if (inputs.strict) return { via: 'none', error: errorMessage(e) };
    p.log('warning', `Could not publish the results: ${errorMessage(e)}`);
    return { via: 'none' };
  }
}

async function buildMode(p: Platform, inputs: BuildInputs, started: number): Promise<void> {
  const lintFailed = await lint(p, inputs);
  const { nix, extraArgs } = await nixWithBuilders(p, inputs);
  const engine: BuildEngineOptions = {
    ...engineOptions(inputs),
    cwd: p.runner.workspace,
    extraBuildArgs: extraArgs,
    prepareBuild: (targets, config) =>
      prepareVmTests(p, targets, {
        allowEmulation: inputs.allowEmulation,
        nix,
        config,
        // The input replaces Nix's own `builders` for the build; without it, Nix's setting decides.
        remoteBuilders: inputs.builders.trim() ? machinesOf(parseBuilders(inputs.builders)) : undefined,
      }),
  };
  const run = await runBuild(p, nix, engine);
  const { results, counts } = run;
  if (results.length === 0) p.log('warning', `No attributes of ${inputs.flake} matched the selection.`);

  const meta = { flake: inputs.flake, nixVersion: run.nixVersion, systems: run.systems, sha: reportSha(p) };
  // Extra fields ride along in the file: the publisher of a fork's results reads them back (readResultsFile).
  const fileMeta = { ...meta, repository: p.env('GITHUB_REPOSITORY') || p.runner.repository };
  await writeResults(p, inputs, {
    json: resultsJson(results, fileMeta),
    junit: junitXml(results, { name: inputs.checkName }),
  });
  setCountOutputs(p, counts);

  const artifactDir = path.join(p.runner.temp, 'flake-ci-build', 'artifacts');
  const artifacts = await collectVmArtifacts(p, results, artifactDir, {
    nix,
    flake: inputs.flake,
    cwd: p.runner.workspace,
  });
  p.setOutput('artifacts', artifactDir);

  const published = await publish(p, inputs, results, meta);
  const via = published.via;
  p.setOutput('report', via);
  const seconds = (Date.now() - started) / 1000;
  await p.appendSummary(
    renderBuildSummary(results, counts, { ...meta, seconds, reportedVia: via }) +
      artifactsMarkdown(artifacts, artifactDir),
  );

  annotateResults(p, results, localFlake(inputs.flake, p.runner.workspace), p.runner.workspace);
  const failure = failureSummary(results, counts);
  const lintMessage = lintFailed ? 'flake.lock lint found problems (lint: strict); see the annotations.' : undefined;
  const message = [failure, lintMessage, published.error].filter((m) => m !== undefined).join(' ');
  if (message !== '') p.setFailed(message);
}

async function matrixMode(p: Platform, inputs: BuildInputs): Promise<void> {
  const lintFailed = await lint(p, inputs);
  const nix = await NixCommand.detect(p, nixBinDir(p));
  const dir = path.join(p.runner.temp, 'flake-ci-build');
  await mkdir(dir, { recursive: true });
  const plan = await runMatrixMode(
    p,
    nix,
    { ...engineOptions(inputs), cwd: p.runner.workspace },
    {
      maxShards: inputs.maxShards,
      runnerMap: inputs.runnerMap,
      childPipelinePath: path.join(dir, 'child-pipeline.yml'),
      passInputs: shardInputs(p),
    },
  );
  p.log('info', `Planned ${plan.attributes} attribute(s) in ${plan.shards} shard(s).`);
  if (lintFailed) p.setFailed('flake.lock lint found problems (lint: strict); see the annotations.');
}

async function publishMode(p: Platform, inputs: BuildInputs, started: number): Promise<void> {
  let text: string;
  try {
    text = await readFile(inputs.results, 'utf8');
  } catch (e) {
    throw new InputError(
      `Input 'results': cannot read ${inputs.results} (${errorMessage(e)}). Download the results artifact of the ` +
        `build run first (actions/download-artifact with run-id), and give the path of its results.json.`,
    );
  }
  let file: ReturnType<typeof readResultsFile>;
  try {
    file = readResultsFile(text);
  } catch (e) {
    throw new InputError(`Input 'results': ${inputs.results} is not a flake-ci results file: ${errorMessage(e)}`);
  }
  const { results, meta: m } = file;
  const counts = countResults(results);
  setCountOutputs(p, counts);
  const meta: ReportMeta = {
    flake: m.flake ?? inputs.flake,
    nixVersion: m.nixVersion ?? '',
    systems: m.systems ?? [...new Set(results.map((r) => r.system).filter((s) => s !== ''))],
    // The event's commit, never the file's (reportSha): a fork writes the file.
    sha: reportSha(p),
  };
  if (m.sha && m.sha !== meta.sha)
    p.log('warning', `The results file names commit ${m.sha}; publishing for ${meta.sha}, the commit of the event.`);
  const { via, error } = await publish(p, inputs, results, meta);
  p.setOutput('report', via);
  const seconds = (Date.now() - started) / 1000;
  await p.appendSummary(renderBuildSummary(results, counts, { ...meta, seconds, reportedVia: via }));
  if (error !== undefined) p.setFailed(error);
  else p.log('info', `Published ${results.length} result(s) from ${inputs.results} via ${via}.`);
}

export async function main(p: Platform): Promise<void> {
  const started = Date.now();
  const inputs = parseBuildInputs(p);
  if (inputs.mode === 'matrix') return matrixMode(p, inputs);
  if (inputs.mode === 'publish') return publishMode(p, inputs, started);
  return buildMode(p, inputs, started);
}
