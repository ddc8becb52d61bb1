/**
 * The build engine: select -> evaluate -> skip cached -> build -> retry -> results. No reporting here (checks,
 * annotations, summary and files are written by the action from the returned results), so the engine can run
 * unchanged on GitHub, GitLab and in tests.
 */
import * as path from 'node:path';
import type { NixCommand } from '../nix/command.js';
import type { NixLogEvent } from '../nix/log.js';
import { formatVersion } from '../nix/version.js';
import type { Platform } from '../platform/types.js';
import type { BuildTarget } from './attribution.js';
import { findCached, flakeSubstituters, readNixConfig, type CachedAt, type NixConfigInfo } from './cached.js';
import { evaluateBatched } from './evaluate-batch.js';
import { defaultEvalWorkers, flakeSourcePath, type EvalOutcome } from './evaluate.js';
import { countResults, type AttrResult, type Counts } from './results.js';
import { buildWithRetries, type RetriedOutcome } from './retry.js';
import { buildTargets } from './run-build.js';
import { selectAttributes, type SelectMode } from './select.js';

export interface BuildEngineOptions {
  /** Flake reference. Default `.`. */
  flake?: string;
  /** Default `checks`. */
  mode?: SelectMode;
  /** Glob patterns over attribute paths, for mode `attributes`. */
  attributes?: readonly string[];
  /** Default: the runner's system (Nix's `system` setting). */
  systems?: readonly string[];
  /** Parallel evaluations. Default 2 to 4 by CPU count. */
  evalWorkers?: number;
  /** Report attributes whose outputs are valid locally or in a substituter as cached, without building them. */
  skipCached?: boolean;
  /** Substituters to ask for skip-cached. Default: Nix's `substituters` setting. */
  substituters?: readonly string[];
  /** Extra builds after infrastructure failures. Default 1. */
  retries?: number;
  /** Seconds a single derivation may build (Nix `timeout`). */
  timeout?: number;
  /** Seconds a builder may stay silent (Nix `max-silent-time`). */
  maxSilentTime?: number;
  /** Log lines kept per attribute. Default 100. */
  logLines?: number;
  /** Directory the flake reference is relative to. */
  cwd?: string;
  /** Extra arguments for the build command. */
  extraBuildArgs?: readonly string[];
  /** Every build log event, for live rendering. */
  onBuildEvent?: (event: NixLogEvent) => void;
  /**
   * Called once after evaluation with the attributes about to be built (cached ones excluded). It may refuse some
   * (e.g. VM tests on a runner without usable KVM): they are reported `failed` with the given message and not
   * built. Its `extraArgs` are added to every build command (e.g. `--option extra-system-features ...`). It gets the
   * Nix settings the engine read, so it need not ask Nix again.
   */
  prepareBuild?: (targets: readonly PreparedTarget[], config: NixConfigInfo) => Promise<BuildPreparation>;
}

export interface PreparedTarget extends BuildTarget {
  /** requiredSystemFeatures of the attribute's derivation. */
  features: string[];
  /** The derivation's `system` (which builders may take it). */
  system?: string;
}

export interface BuildPreparation {
  /** attr -> why it is not built. */
  refused?: ReadonlyMap<string, string>;
  extraArgs?: readonly string[];
}

export interface BuildEngineResult {
  results: AttrResult[];
  counts: Counts;
  systems: string[];
  nixVersion: string;
}

export interface EvaluatedSelection {
  evaluated: EvalOutcome[];
  systems: string[];
  config: NixConfigInfo;
  /** The flake's source store path (one `nix flake metadata`, run once and only if asked). */
  resolveSourcePath: () => Promise<string | undefined>;
}

/** Select and evaluate, without building: what the build needs first, and all that matrix planning needs. */
export async function evaluateSelection(
  platform: Platform,
  nix: NixCommand,
  opts: BuildEngineOptions = {},
): Promise<EvaluatedSelection> {
  const flake = opts.flake ?? '.';
  const cwd = opts.cwd;
  const config = await readNixConfig(nix, cwd);
  const systems = opts.systems?.length ? [...opts.systems] : [config.system];

  // Selection is one process and runs first, so it is what locks the flake (writing flake.lock if needed) before
  // parallel evaluations could race to. The source path (`nix flake metadata`) is asked for only when needed.
  let source: Promise<string | undefined> | undefined;
  const resolveSourcePath = () => (source ??= flakeSourcePath(nix, flake, cwd));
  const selected = await platform.group('Selecting attributes', () =>
    selectAttributes(nix, { flake, mode: opts.mode ?? 'checks', patterns: opts.attributes, systems, cwd }),
  );
  platform.log('info', `Selected ${selected.length} attribute(s) of ${flake} for ${systems.join(', ')}.`);

  const workers = opts.evalWorkers ?? defaultEvalWorkers();
  const evaluated = await platform.group(`Evaluating ${selected.length} attribute(s), ${workers} at a time`, () =>
    evaluateBatched(nix, selected, { flake, workers, cwd, resolveSourcePath }),
  );
  for (const e of evaluated) {
    if (!e.ok) platform.log('info', `evaluation error in ${e.attr}: ${e.error.summary}`);
  }
  return { evaluated, systems, config, resolveSourcePath };
}

export async function runBuild(
  platform: Platform,
  nix: NixCommand,
  opts: BuildEngineOptions = {},
): Promise<BuildEngineResult> {
  const cwd = opts.cwd;
  const { evaluated, systems, config, resolveSourcePath } = await evaluateSelection(platform, nix, opts);

  const targets: PreparedTarget[] = [];
  for (const e of evaluated)
    if (e.ok) {
      const { drvPath, outputs, features, system } = e.drv;
      targets.push({ attr: e.attr, drvPath, outputs, features, system });
    }

  let cached = new Map<string, CachedAt>();
  if (opts.skipCached && targets.length > 0) {
    const substituters = opts.substituters
      ? [...opts.substituters]
      : await defaultSubstituters(nix, config, opts, resolveSourcePath);
    cached = await platform.group('Looking for cached outputs', () => findCached(nix, targets, substituters));
    platform.log('info', `${cached.size} attribute(s) cached, ${targets.length - cached.size} to build.`);
  }

  let toBuild = targets.filter((t) => !cached.has(t.attr));
  const prepared: BuildPreparation =
    opts.prepareBuild && toBuild.length > 0 ? await opts.prepareBuild(toBuild, config) : {};
  const refused = prepared.refused ?? new Map<string, string>();
  toBuild = toBuild.filter((t) => !refused.has(t.attr));
  const extraBuildArgs = [...(opts.extraBuildArgs ?? []), ...(prepared.extraArgs ?? [])];
  const built = await buildWithRetries(toBuild, opts.retries ?? 1, (ts, attempt) =>
    platform.group(`Building ${ts.length} attribute(s)${attempt > 1 ? ` (retry ${attempt - 1})` : ''}`, async () => {
      const run = await buildTargets(nix, ts, {
        timeout: opts.timeout,
        maxSilentTime: opts.maxSilentTime,
        extraArgs: extraBuildArgs,
        logLines: opts.logLines,
        cwd,
        onEvent: opts.onBuildEvent,
      });
      return run.outcomes;
    }),
  );

  const results = assemble(evaluated, cached, new Map(built.map((b) => [b.attr, b])), refused);
  const counts = countResults(results);
  platform.log(
    'info',
    `built ${counts.built}, cached ${counts.cached}, failed ${counts.failed}, evaluation errors ${counts.evalErrors}` +
      (counts.flaky ? ` (${counts.flaky} flaky)` : ''),
  );
  return { results, counts, systems, nixVersion: formatVersion(nix.version) };
}

/** Nix's substituters, plus the flake's own when Nix accepts flake configuration (as the build itself would). */
async function defaultSubstituters(
  nix: NixCommand,
  config: NixConfigInfo,
  opts: BuildEngineOptions,
  resolveSourcePath: () => Promise<string | undefined>,
): Promise<string[]> {
  if (!config.acceptFlakeConfig) return config.substituters;
  const flake = opts.flake ?? '.';
  const local = /^(?:path:)?([./].*)$/.exec(flake)?.[1];
  const dir = local !== undefined ? path.resolve(opts.cwd ?? process.cwd(), local) : await resolveSourcePath();
  if (dir === undefined) return config.substituters;
  const extra = await flakeSubstituters(nix, path.join(dir, 'flake.nix'), opts.cwd);
  return [...new Set([...config.substituters, ...extra])];
}

/** One result per selected attribute, in selection order. */
export function assemble(
  evaluated: readonly EvalOutcome[],
  cached: ReadonlyMap<string, CachedAt>,
  built: ReadonlyMap<string, RetriedOutcome>,
  refused: ReadonlyMap<string, string> = new Map(),
): AttrResult[] {
  return evaluated.map((e): AttrResult => {
    const base = { attr: e.attr, attrPath: e.attrPath, system: e.system ?? '' };
    if (!e.ok) {
      const r: AttrResult = {
        ...base,
        drvPath: '',
        outputs: {},
        features: [],
        status: 'eval-error',
        duration: e.evalSeconds,
        attempts: 0,
        error: e.error.message,
      };
      if (e.error.location) r.errorLocation = e.error.location;
      return r;
    }
    const drv = { drvPath: e.drv.drvPath, outputs: e.drv.outputs, features: e.drv.features };
    const at = cached.get(e.attr);
    if (at !== undefined) return { ...base, ...drv, status: 'cached', duration: 0, attempts: 0, cachedAt: at };
    const why = refused.get(e.attr);
    if (why !== undefined) return { ...base, ...drv, status: 'failed', duration: 0, attempts: 0, error: why };
    const b = built.get(e.attr);
    if (!b) {
      return { ...base, ...drv, status: 'infra-failure', duration: 0, attempts: 0, error: 'no build result' };
    }
    const r: AttrResult = { ...base, ...drv, status: b.status, duration: b.duration, attempts: b.attempts };
    if (b.error !== undefined) r.error = b.error;
    if (b.failedDependency !== undefined) r.failedDependency = b.failedDependency;
    if (b.logTail !== undefined) r.logTail = b.logTail;
    if (b.previousErrors !== undefined) r.previousErrors = b.previousErrors;
    return r;
  });
}
