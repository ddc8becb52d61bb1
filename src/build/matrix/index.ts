/**
 * `mode: matrix`. Evaluates (no build), packs attributes into shards by system, required features and expected cost,
 * and emits a GitHub matrix (output `matrix`) or, on GitLab, a child pipeline YAML for `trigger: include: artifact:`
 * (output `child-pipeline`). Evaluation errors are annotated and fail the step, and the plan still covers every
 * attribute that evaluated, so the shards build the rest.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { InputError } from '../../errors.js';
import type { NixCommand } from '../../nix/command.js';
import type { Platform } from '../../platform/types.js';
import { localFlake } from '../action-context.js';
import { annotateResults } from '../action-report.js';
import { assemble, evaluateSelection, type BuildEngineOptions } from '../engine.js';
import { estimateCosts } from './cost.js';
import { matrixEntry, matrixJson } from './github.js';
import { childPipelineYaml, jobName, parseChildInclude } from './gitlab.js';
import { MAX_SHARDS, packShards, type PlanItem, type Shard } from './pack.js';
import { exactPatterns } from './patterns.js';
import { GITHUB_DEFAULTS, GITLAB_DEFAULTS, mergeRunnerMaps, parseRunnerMap } from './runner-map.js';

export interface MatrixOptions {
  /** At most this many shards (1-256). */
  maxShards: number;
  /** The `runner-map` input as given (system / system+features -> runner labels); '' for the defaults. */
  runnerMap: string;
  /** Where the GitLab child pipeline YAML is written (GitLab only). */
  childPipelinePath: string;
  /** Inputs passed on to every shard job (flake, skip-cached, retries, ...), kebab-case names. */
  passInputs: Record<string, string>;
}

export interface MatrixPlanResult {
  shards: number;
  attributes: number;
  evalErrors: number;
}

const SUITE_VARIABLES = ['FLAKE_CI_SUITE_URL', 'FLAKE_CI_SUITE_REF', 'FLAKE_CI_SUITE_DIR'];

/**
 * Sets output `matrix` (GitHub) or writes the child pipeline and sets `child-pipeline` to its path relative to the
 * project (GitLab); returns counts. Evaluation errors fail the step after the plan is emitted.
 */
export async function runMatrixMode(
  platform: Platform,
  nix: NixCommand,
  engine: BuildEngineOptions,
  opts: MatrixOptions,
): Promise<MatrixPlanResult> {
  const gitlab = platform.name === 'gitlab';
  // Every input problem is reported before the (possibly long) evaluation.
  if (!Number.isInteger(opts.maxShards) || opts.maxShards < 1 || opts.maxShards > MAX_SHARDS) {
    throw new InputError(`Input 'max-shards' must be a whole number from 1 to ${MAX_SHARDS}; got ${opts.maxShards}.`);
  }
  const runnerMap = mergeRunnerMaps(parseRunnerMap(opts.runnerMap), gitlab ? GITLAB_DEFAULTS : GITHUB_DEFAULTS);
  const include = gitlab
    ? parseChildInclude({
        childInclude: platform.env('FLAKE_CI_CHILD_INCLUDE'),
        suiteUrl: platform.env('FLAKE_CI_SUITE_URL'),
        suiteRef: platform.env('FLAKE_CI_SUITE_REF'),
        serverHost: platform.env('CI_SERVER_HOST'),
        serverUrl: platform.env('CI_SERVER_URL'),
      })
    : undefined;
  if (gitlab && opts.childPipelinePath === '') throw new Error('matrix mode on GitLab needs a childPipelinePath');

  const { evaluated, systems } = await evaluateSelection(platform, nix, engine);
  const failed = evaluated.filter((e) => !e.ok);
  const ok = evaluated.flatMap((e) => (e.ok ? [e] : []));
  if (failed.length > 0) {
    const workspace = engine.cwd ?? platform.runner.workspace;
    annotateResults(
      platform,
      assemble(failed, new Map(), new Map()),
      localFlake(engine.flake ?? '.', workspace),
      workspace,
    );
  }

  const targets = ok.map((e) => ({ attr: e.attr, drvPath: e.drv.drvPath, features: e.drv.features }));
  const costs =
    targets.length > 0
      ? await platform.group(`Estimating the cost of ${targets.length} attribute(s)`, () =>
          estimateCosts(nix, targets, engine.cwd),
        )
      : new Map<string, number>();
  const items: PlanItem[] = ok.map((e) => ({
    attr: e.attr,
    attrPath: e.attrPath,
    system: e.drv.system || e.system || '',
    features: e.drv.features,
    cost: costs.get(e.attr) ?? 1,
  }));
  const shards = packShards(items, { maxShards: opts.maxShards, runnerMap, requireLabels: !gitlab });
  const all = evaluated.map((e) => e.attrPath);
  const patterns = shards.map((s) =>
    exactPatterns(
      s.items.map((i) => i.attrPath),
      all,
      systems,
    ),
  );

  if (include) {
    const suite: Record<string, string> = {};
    for (const name of SUITE_VARIABLES) suite[name] = platform.env(name) ?? '';
    const yaml = childPipelineYaml(shards, {
      include,
      passInputs: opts.passInputs,
      suite,
      patterns,
      attributes: items.length,
    });
    await mkdir(path.dirname(opts.childPipelinePath), { recursive: true });
    await writeFile(opts.childPipelinePath, yaml);
    // Relative to the project, as `trigger: include: - artifact:` wants it.
    const rel = path.relative(platform.runner.workspace, opts.childPipelinePath);
    const inside = rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
    platform.setOutput('child-pipeline', inside ? rel : opts.childPipelinePath);
  } else {
    platform.setOutput(
      'matrix',
      matrixJson(
        shards.map((s, i) => matrixEntry(s, patterns[i] ?? [])),
        items.length,
      ),
    );
  }

  for (const s of shards) {
    platform.log('info', `${gitlab ? jobName(s) : s.name}: ${s.items.length} attribute(s), cost ${round(s.cost)}`);
  }
  await platform.appendSummary(planSummary(shards, items.length, failed.length, gitlab));
  if (failed.length > 0) {
    const names = failed.slice(0, 10).map((e) => e.attr);
    platform.setFailed(
      `${failed.length} attribute(s) failed to evaluate (${names.join(', ')}${failed.length > 10 ? ', ...' : ''}); ` +
        `the plan covers the other ${items.length}.`,
    );
  }
  return { shards: shards.length, attributes: items.length, evalErrors: failed.length };
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/** Markdown cells: a `|` would end the cell, a line break the row. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function planSummary(shards: readonly Shard[], attributes: number, evalErrors: number, gitlab: boolean): string {
  const lines = [
    `### flake-ci build plan: ${attributes} attribute(s) in ${shards.length} shard(s)`,
    '',
    evalErrors > 0 ? `${evalErrors} attribute(s) failed to evaluate and are not in the plan.\n` : '',
    `| Shard | ${gitlab ? 'Runner tags' : 'Runner labels'} | Attributes | Estimated cost |`,
    '| --- | --- | ---: | ---: |',
    ...shards.map(
      (s) => `| ${cell(s.name)} | ${cell(s.labels.join(', ') || '(any)')} | ${s.items.length} | ${round(s.cost)} |`,
    ),
    '',
    "Cost is in derivation builds: those of each attribute's closure that are neither valid nor substitutable, " +
      'a NixOS VM test counting 10 and big-parallel 5.',
    '',
  ];
  return lines.filter((l, i) => l !== '' || lines[i - 1] !== '').join('\n');
}
