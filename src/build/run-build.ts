/**
 * Building evaluated derivations in ONE `--keep-going` process with `--log-format internal-json` (no -L: the JSON
 * log carries build output anyway, and on 2.8 a later -L switches back to plain text). The command depends on the
 * version:
 * - Nix 2.13+: `nix build DRV^*` (the `^` syntax is from 2.13; since 2.15 a bare `.drv` means the file itself);
 * - older: `nix-store --realise DRV`, because Nix 2.8's `nix build` does not log why a REQUESTED derivation failed
 *   under --keep-going (only dependencies' failures appear), while nix-store names every failure and timeout.
 * stderr is consumed line by line (never held whole), so memory stays bounded however much builders print.
 */
import * as actionsExec from '@actions/exec';
import { existsSync } from 'node:fs';
import type { NixCommand } from '../nix/command.js';
import type { NixLogEvent } from '../nix/log.js';
import { atLeast } from '../nix/version.js';
import { AttributionLog, classify, needsClosure, type AttemptOutcome, type BuildTarget } from './attribution.js';
import { validPaths } from './cached.js';
import { mapLimit } from './pool.js';

export interface RunBuildOptions {
  /** Nix `timeout` setting: seconds a single build may take (0: none). A timeout is an infrastructure failure. */
  timeout?: number;
  /** Nix `max-silent-time`: seconds a builder may print nothing. */
  maxSilentTime?: number;
  /** Extra arguments for the build command (e.g. `--max-jobs 4`, `--builders ...`). */
  extraArgs?: readonly string[];
  /** Log lines kept per attribute. Default 100. */
  logLines?: number;
  cwd?: string;
  /** Every parsed log event, for live rendering. */
  onEvent?: (event: NixLogEvent) => void;
}

export interface BuildRun {
  outcomes: AttemptOutcome[];
  exitCode: number;
  log: AttributionLog;
}

export interface BuildInvocation {
  program: 'nix' | 'nix-store';
  args: string[];
}

export function buildInvocation(nix: NixCommand, drvs: readonly string[], opts: RunBuildOptions): BuildInvocation {
  const settings: string[] = [];
  if (opts.timeout !== undefined) settings.push('--option', 'timeout', String(opts.timeout));
  if (opts.maxSilentTime !== undefined) settings.push('--option', 'max-silent-time', String(opts.maxSilentTime));
  const common = ['--keep-going', '--log-format', 'internal-json', ...settings, ...(opts.extraArgs ?? [])];
  if (atLeast(nix.version, '2.13')) {
    return { program: 'nix', args: nix.nixArgs(['build', '--no-link', ...common, ...drvs.map((d) => `${d}^*`)]) };
  }
  if (existsSync(nix.program('nix-store'))) {
    return { program: 'nix-store', args: ['--realise', ...common, ...drvs] };
  }
  // Before 2.15 `nix build X.drv` builds X's outputs; only failure messages of requested derivations are missing.
  return { program: 'nix', args: nix.nixArgs(['build', '--no-link', ...common, ...drvs]) };
}

/** Spawns with stderr streamed to `onLine`; stdout (paths nix-store prints) is not needed and not kept. */
async function runStreaming(
  nix: NixCommand,
  inv: BuildInvocation,
  cwd: string | undefined,
  onLine: (line: string) => void,
): Promise<number> {
  const file = nix.program(inv.program);
  nix.platform?.log('debug', `run: ${[file, ...inv.args].map((a) => JSON.stringify(a)).join(' ')}`);
  // Same environment rule as NixCommand: @actions/exec replaces the environment when one is given.
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  Object.assign(env, nix.env);
  return actionsExec.exec(file, inv.args, {
    cwd,
    env,
    silent: true,
    ignoreReturnCode: true,
    listeners: { errline: onLine },
  });
}

/** Output closure of a derivation as .drv paths, for naming the failed dependency. */
async function drvClosure(nix: NixCommand, drv: string, cwd?: string): Promise<string[]> {
  const res = await nix.run(['path-info', '--recursive', '--derivation', drv], { cwd, allowFailure: true });
  if (res.exitCode !== 0) return [];
  return res.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.endsWith('.drv'));
}

export async function buildTargets(
  nix: NixCommand,
  targets: readonly BuildTarget[],
  opts: RunBuildOptions = {},
): Promise<BuildRun> {
  const logLines = opts.logLines ?? 100;
  const log = new AttributionLog(Math.max(200, logLines));
  if (targets.length === 0) return { outcomes: [], exitCode: 0, log };

  const drvs = [...new Set(targets.map((t) => t.drvPath))];
  const inv = buildInvocation(nix, drvs, opts);
  const exitCode = await runStreaming(nix, inv, opts.cwd, (line) => {
    const event = log.consumeLine(line);
    if (event && opts.onEvent) opts.onEvent(event);
  });

  const valid = await validPaths(
    nix,
    targets.flatMap((t) => Object.values(t.outputs)),
  );
  const closures = new Map<string, string[]>();
  if (log.failedDrvs().length > 0) {
    const wanted = [...new Set(targets.filter((t) => needsClosure(t, log, valid)).map((t) => t.drvPath))];
    const found = await mapLimit(wanted, 4, (d) => drvClosure(nix, d, opts.cwd));
    wanted.forEach((d, i) => closures.set(d, found[i] ?? []));
  }
  const outcomes = classify({ targets, log, valid, closures, exitCode, logLines });
  return { outcomes, exitCode, log };
}
