/** The build action's inputs, parsed and validated once (actions/build/action.yml documents each). */
import * as path from 'node:path';
import { InputError, errorMessage } from '../errors.js';
import { getBoolean, getDuration, getEnum, getInteger, getList, getSecret, getString } from '../platform/inputs.js';
import type { Platform } from '../platform/types.js';
import type { BuildEngineOptions } from './engine.js';
import type { LintMode } from './lint/index.js';
import type { ReportEach } from './report/index.js';
import { compilePattern } from './select.js';

export const SELECTS = ['checks', 'packages'] as const;
export const MODES = ['build', 'matrix', 'publish'] as const;
export const REPORT_EACH = ['failures', 'all'] as const satisfies readonly ReportEach[];
export type BuildMode = (typeof MODES)[number];

/** The `lint` input's words -> the lint module's modes. */
const LINT: Record<string, LintMode> = { true: 'warn', false: 'off', strict: 'strict' };

export interface BuildInputs {
  flake: string;
  select: (typeof SELECTS)[number];
  /** Glob patterns over attribute paths; when given they replace `select`. */
  attributes: string[];
  /** Empty: the runner's system. */
  systems: string[];
  evalWorkers?: number;
  skipCached: boolean;
  retries: number;
  /** Seconds (Nix `timeout`), undefined for Nix's own setting. */
  timeout?: number;
  /** Seconds (Nix `max-silent-time`). */
  maxSilentTime?: number;
  allowEmulation: boolean;
  /** Machine specs as given (the builders module parses them). */
  builders: string;
  buildersSshKey: string;
  lint: LintMode;
  lintMaxAge: number;
  mode: BuildMode;
  maxShards: number;
  runnerMap: string;
  reportEach: ReportEach;
  checkName: string;
  githubToken: string;
  /** Publish mode: absolute path of the results-json file to publish; '' otherwise. */
  results: string;
  /** Absolute paths. */
  resultsJson: string;
  resultsJunit: string;
  strict: boolean;
}

/**
 * Attribute patterns: one per line or separated by blanks; a double-quoted segment (`checks.x."my check"`) keeps its
 * blanks. Lines starting with `#` are comments. Commas are not separators: they may belong to a name.
 */
export function splitPatterns(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    let cur = '';
    let quoted = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i] as string;
      if (c === '\\' && quoted && i + 1 < line.length) {
        cur += c + (line[++i] as string);
        continue;
      }
      if (c === '"') quoted = !quoted;
      if (!quoted && /\s/.test(c)) {
        if (cur !== '') out.push(cur);
        cur = '';
        continue;
      }
      cur += c;
    }
    if (cur !== '') out.push(cur);
  }
  return out;
}

/** A duration input in whole seconds for Nix settings; undefined when empty. */
function seconds(p: Platform, name: string): number | undefined {
  if (p.getInput(name) === '') return undefined;
  const ms = getDuration(p, name, 0);
  if (ms < 1000) throw new InputError(`Input '${name}' must be at least 1s; got '${p.getInput(name)}'.`);
  return Math.ceil(ms / 1000);
}

function resultPath(p: Platform, name: string, file: string): string {
  const given = getString(p, name);
  if (given === '') return path.join(p.runner.temp, 'flake-ci-build', file);
  return path.resolve(p.runner.workspace, given);
}

export function parseBuildInputs(p: Platform): BuildInputs {
  // Secrets first: an error quoting another input must already redact them (GitLab has no runtime masking).
  const githubToken = getSecret(p, 'github-token');
  const buildersSshKey = getSecret(p, 'builders-ssh-key');

  const lintWord = p.getInput('lint').toLowerCase();
  const lint = lintWord === '' ? 'warn' : LINT[lintWord];
  if (lint === undefined)
    throw new InputError(`Input 'lint' must be true, false or strict; got '${p.getInput('lint')}'.`);

  const systems = getList(p, 'systems');
  const attributes = splitPatterns(p.getMultilineInput('attributes'));
  for (const a of attributes) {
    try {
      compilePattern(a, systems);
    } catch (e) {
      throw new InputError(`Input 'attributes': ${errorMessage(e)}`);
    }
  }

  const mode = getEnum(p, 'mode', MODES, 'build');
  const resultsText = getString(p, 'results');
  if (mode === 'publish' && resultsText === '')
    throw new InputError(
      `'mode: publish' needs 'results': the path of a results-json file written by an earlier build ` +
        `(e.g. downloaded with actions/download-artifact).`,
    );
  if (mode !== 'publish' && resultsText !== '')
    throw new InputError(`Input 'results' is for 'mode: publish'; remove it, or set 'mode: publish'.`);

  const checkName = getString(p, 'check-name', 'flake-ci build');
  if (/[\r\n]/.test(checkName)) throw new InputError(`Input 'check-name' must be one line.`);

  const evalWorkersText = p.getInput('eval-workers');
  return {
    flake: getString(p, 'flake', '.'),
    select: getEnum(p, 'select', SELECTS, 'checks'),
    attributes,
    systems,
    evalWorkers: evalWorkersText === '' ? undefined : getInteger(p, 'eval-workers', 0, 1, 64),
    skipCached: getBoolean(p, 'skip-cached', false),
    retries: getInteger(p, 'retries', 1, 0, 10),
    timeout: seconds(p, 'timeout'),
    maxSilentTime: seconds(p, 'max-silent-time'),
    allowEmulation: getBoolean(p, 'allow-emulation', false),
    builders: p.getMultilineInput('builders').trim(),
    buildersSshKey,
    lint,
    lintMaxAge: getInteger(p, 'lint-max-age', 30, 1, 3650),
    mode,
    maxShards: getInteger(p, 'max-shards', 16, 1, 256),
    runnerMap: p.getMultilineInput('runner-map').trim(),
    reportEach: getEnum(p, 'report-each', REPORT_EACH, 'failures'),
    checkName,
    githubToken,
    results: resultsText === '' ? '' : path.resolve(p.runner.workspace, resultsText),
    resultsJson: resultPath(p, 'results-json', 'results.json'),
    resultsJunit: resultPath(p, 'results-junit', 'results.xml'),
    strict: getBoolean(p, 'strict', false),
  };
}

/** What the engine (and matrix planning) gets from the inputs; the action adds cwd, builders and hooks. */
export function engineOptions(inputs: BuildInputs): BuildEngineOptions {
  const opts: BuildEngineOptions = {
    flake: inputs.flake,
    mode: inputs.attributes.length > 0 ? 'attributes' : inputs.select,
    skipCached: inputs.skipCached,
    retries: inputs.retries,
  };
  if (inputs.attributes.length > 0) opts.attributes = inputs.attributes;
  if (inputs.systems.length > 0) opts.systems = inputs.systems;
  if (inputs.evalWorkers !== undefined) opts.evalWorkers = inputs.evalWorkers;
  if (inputs.timeout !== undefined) opts.timeout = inputs.timeout;
  if (inputs.maxSilentTime !== undefined) opts.maxSilentTime = inputs.maxSilentTime;
  return opts;
}

/** Inputs the matrix shards get as given (kebab-case); secrets never, lint once in the planning job. */
export const PASSED_TO_SHARDS = [
  'flake',
  'eval-workers',
  'skip-cached',
  'retries',
  'timeout',
  'max-silent-time',
  'allow-emulation',
  'builders',
  'lint-max-age',
  'report-each',
  'check-name',
  'strict',
] as const;

export function shardInputs(p: Platform): Record<string, string> {
  const out: Record<string, string> = { lint: 'false' };
  for (const name of PASSED_TO_SHARDS) {
    const v = p.getMultilineInput(name).trim();
    if (v !== '') out[name] = v;
  }
  return out;
}
