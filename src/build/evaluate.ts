/**
 * Evaluating one attribute in its own `nix eval` process. evaluate-batch.ts evaluates most attributes in batches and
 * comes here for what a batch could not evaluate: a process of its own isolates the error (a throw, a type error or
 * an infinite recursion fails that attribute alone) and gives Nix's message and position for annotations.
 */
import * as os from 'node:os';
import type { NixCommand } from '../nix/command.js';
import { formatAttrPath, nixSelect, nixString } from './attr-path.js';
import { parseEvalError, type EvalErrorInfo } from './eval-error.js';
import { mapLimit } from './pool.js';
import type { SelectedAttr } from './select.js';

export interface DrvInfo {
  drvPath: string;
  /** Output name -> store path. */
  outputs: Record<string, string>;
  system: string;
  name: string;
  /** requiredSystemFeatures (`nixos-test`, `kvm`, `big-parallel`, ...). */
  features: string[];
}

export type EvalOutcome =
  | (SelectedAttr & { ok: true; drv: DrvInfo; evalSeconds: number })
  | (SelectedAttr & { ok: false; error: EvalErrorInfo; evalSeconds: number });

export interface EvaluateOptions {
  flake: string;
  /** Parallel `nix eval` processes. */
  workers?: number;
  cwd?: string;
  /** The flake's source store path, so positions in its files get a relative path. */
  sourcePath?: string;
  /** Re-run a failed evaluation with --show-trace when the first message has no usable position (Nix 2.8 throws). */
  traceForPosition?: boolean;
}

/**
 * For every `nix eval` of the flake: Nix 2.8's evaluation cache is a SQLite file shared by all processes, and
 * parallel evaluations of the same flake race on it: one of them then fails with "attribute 'packages.<system>.checks'
 * is unexpectedly missing" for an attribute that exists. Each of our processes asks a different question once, so
 * the cache never saves anything here anyway.
 */
export const NO_EVAL_CACHE = ['--option', 'eval-cache', 'false'] as const;

/** 2 to 4 by CPU count: more processes than cores only adds memory pressure. */
export function defaultEvalWorkers(cpus: number = os.availableParallelism()): number {
  return Math.min(4, Math.max(2, cpus));
}

/**
 * The --apply function for one attribute: everything the later steps need, without building. Output paths come
 * from `d.${o}.outPath` so multi-output derivations list each output.
 */
export function evalExpression(attr: string, rest: readonly string[]): string {
  return [
    'root: let',
    `  d = ${nixSelect('root', rest)};`,
    '  list = v: if builtins.isList v then map toString v else [ ];',
    'in',
    '  if !(builtins.isAttrs d && (d.type or null) == "derivation") then',
    `    throw ("flake-ci: " + ${nixString(attr)} + " is not a derivation (it is " + builtins.typeOf d + ")")`,
    '  else',
    ...drvInfoFields('d', '  '),
  ].join('\n');
}

/**
 * The attribute set of DrvInfo fields of derivation `d` (uses `list` from the enclosing let), as lines indented by
 * `indent`; shared by the single and the batch expressions so both report the same fields.
 */
export function drvInfoFields(d: string, indent: string): string[] {
  return [
    `${indent}{`,
    `${indent}  drvPath = ${d}.drvPath;`,
    `${indent}  name = ${d}.name or "";`,
    `${indent}  system = ${d}.system or "";`,
    `${indent}  outputs = builtins.listToAttrs (map (o: { name = o; value = ${d}.\${o}.outPath; }) (${d}.outputs or [ "out" ]));`,
    `${indent}  features = list (${d}.requiredSystemFeatures or [ ]);`,
    `${indent}}`,
  ];
}

export function parseDrvInfo(stdout: string): DrvInfo {
  const v = JSON.parse(stdout) as Partial<DrvInfo>;
  if (typeof v.drvPath !== 'string' || typeof v.outputs !== 'object' || v.outputs === null) {
    throw new Error(`unexpected evaluation result ${stdout.trim().slice(0, 200)}`);
  }
  return {
    drvPath: v.drvPath,
    outputs: v.outputs,
    system: typeof v.system === 'string' ? v.system : '',
    name: typeof v.name === 'string' ? v.name : '',
    features: Array.isArray(v.features) ? v.features.filter((f) => typeof f === 'string') : [],
  };
}

export async function evaluateAttr(nix: NixCommand, item: SelectedAttr, opts: EvaluateOptions): Promise<EvalOutcome> {
  const started = Date.now();
  const [root, ...rest] = item.attrPath;
  const installable = `${opts.flake}#${formatAttrPath([root ?? ''])}`;
  const args = ['eval', ...NO_EVAL_CACHE, '--json', installable, '--apply', evalExpression(item.attr, rest)];
  const res = await nix.run(args, { cwd: opts.cwd, allowFailure: true });
  const seconds = () => (Date.now() - started) / 1000;
  if (res.exitCode === 0) {
    try {
      const drv = parseDrvInfo(res.stdout);
      return { ...item, system: drv.system || item.system, ok: true, drv, evalSeconds: seconds() };
    } catch (e) {
      const message = `nix eval printed an unexpected result for ${item.attr}: ${(e as Error).message}`;
      return { ...item, ok: false, error: { message, summary: message }, evalSeconds: seconds() };
    }
  }
  // Nix 2.8 prints a partial JSON document on stdout when evaluation fails, so stdout is ignored here.
  let error = parseEvalError(res.stderr, { sourcePath: opts.sourcePath });
  if (!error.location && opts.traceForPosition !== false) {
    const traced = await nix.run([...args, '--show-trace'], { cwd: opts.cwd, allowFailure: true });
    const withTrace = traced.exitCode !== 0 ? parseEvalError(traced.stderr, { sourcePath: opts.sourcePath }) : error;
    // Keep the short message for people; take only the position from the trace.
    if (withTrace.location) error = { ...error, location: withTrace.location };
  }
  if (error.message === '') {
    error = { message: `nix eval exited with code ${res.exitCode} and no message`, summary: 'evaluation failed' };
  }
  return { ...item, ok: false, error, evalSeconds: seconds() };
}

export async function evaluateAll(
  nix: NixCommand,
  items: readonly SelectedAttr[],
  opts: EvaluateOptions,
): Promise<EvalOutcome[]> {
  return mapLimit(items, opts.workers ?? defaultEvalWorkers(), (item) => evaluateAttr(nix, item, opts));
}

/** `nix flake metadata --json`: the source store path (for error positions); undefined when Nix cannot tell. */
export async function flakeSourcePath(nix: NixCommand, flake: string, cwd?: string): Promise<string | undefined> {
  const res = await nix.run(['flake', 'metadata', '--json', flake], { cwd, allowFailure: true });
  if (res.exitCode !== 0) return undefined;
  try {
    const meta = JSON.parse(res.stdout) as { path?: unknown };
    return typeof meta.path === 'string' ? meta.path : undefined;
  } catch {
    return undefined;
  }
}
