/**
 * Evaluating many attributes in few processes. Starting an evaluator (parse the flake, lock it, build the root
 * attribute set) costs 50-250 ms per process, which dominated runs with hundreds of small checks, while evaluating one
 * more attribute in a running evaluator costs well under a millisecond. So attributes are evaluated in batches, one
 * `nix eval` per batch, each attribute inside `builtins.tryEval`, and only what a batch could not evaluate is
 * evaluated again on its own (evaluateAttr), which gives the error message and position the report needs:
 * - a `throw` or failed `assert` is caught by tryEval: that attribute comes back null and is re-evaluated alone;
 * - anything tryEval cannot catch (type errors, missing attributes, infinite recursion, `abort`) fails the whole
 *   batch process: the batch is split in two and each half tried again, down to single attributes. With k broken
 *   attributes among n that is O(k log n) extra processes, and none when nothing is broken.
 * Batches are capped in size so one evaluator never holds too many attributes' values at once (memory stays bounded
 * as with a process per attribute, by a constant factor), and batches run `workers` at a time.
 */
import type { NixCommand } from '../nix/command.js';
import { formatAttrPath, nixSelect, nixString } from './attr-path.js';
import type { DrvInfo, EvalOutcome, EvaluateOptions } from './evaluate.js';
import { drvInfoFields, evaluateAttr, NO_EVAL_CACHE, parseDrvInfo } from './evaluate.js';
import { mapLimit } from './pool.js';
import type { SelectedAttr } from './select.js';

/**
 * Attributes per evaluator process at most. Attributes of one flake share most of their evaluation (nixpkgs, the
 * module system), so a batch costs far less memory than its attributes evaluated apart; the cap keeps a batch of
 * heavy attributes (NixOS systems and tests) within a few GB.
 */
export const MAX_BATCH = 128;

/** The --apply function for a batch of attributes under one root: index -> DrvInfo fields, or null when it threw. */
export function batchExpression(items: readonly SelectedAttr[]): string {
  const lines = [
    'root: let',
    '  list = v: if builtins.isList v then map toString v else [ ];',
    '  info = d:',
    '    if !(builtins.isAttrs d && (d.type or null) == "derivation") then throw "flake-ci: not a derivation"',
    '    else',
    ...drvInfoFields('d', '    '),
    '  ;',
    '  one = d: let r = builtins.tryEval (let v = info d; in builtins.deepSeq v v); in if r.success then r.value else null;',
    'in {',
  ];
  items.forEach((item, i) =>
    lines.push(`  ${nixString(`a${i}`)} = one (${nixSelect('root', item.attrPath.slice(1))});`),
  );
  lines.push('}');
  return lines.join('\n');
}

/** Splits items into batches of at most `max`, each under a single root, spread so `workers` batches run at once. */
export function planBatches(items: readonly SelectedAttr[], workers: number, max = MAX_BATCH): SelectedAttr[][] {
  const byRoot = new Map<string, SelectedAttr[]>();
  for (const item of items) {
    const root = item.attrPath[0] ?? '';
    byRoot.set(root, [...(byRoot.get(root) ?? []), item]);
  }
  // Enough batches to keep every worker busy, none larger than max.
  const size = Math.max(1, Math.min(max, Math.ceil(items.length / Math.max(1, workers))));
  const batches: SelectedAttr[][] = [];
  for (const group of byRoot.values()) {
    for (let i = 0; i < group.length; i += size) batches.push(group.slice(i, i + size));
  }
  return batches;
}

type Partial = Map<SelectedAttr, EvalOutcome>;

/**
 * One batch process; on an uncatchable failure, bisects. Results go into `out`; what needs a process of its own
 * (it threw, or it is what is left of a bisection) goes into `alone`.
 */
async function evaluateBatch(
  nix: NixCommand,
  batch: readonly SelectedAttr[],
  opts: EvaluateOptions,
  out: Partial,
  alone: SelectedAttr[],
): Promise<void> {
  const first = batch[0];
  if (!first) return;
  if (batch.length === 1) {
    alone.push(first);
    return;
  }
  const started = Date.now();
  const installable = `${opts.flake}#${formatAttrPath([first.attrPath[0] ?? ''])}`;
  const res = await nix.run(['eval', ...NO_EVAL_CACHE, '--json', installable, '--apply', batchExpression(batch)], {
    cwd: opts.cwd,
    allowFailure: true,
  });
  let values: Record<string, unknown> | undefined;
  if (res.exitCode === 0) {
    try {
      values = JSON.parse(res.stdout) as Record<string, unknown>;
    } catch {
      values = undefined;
    }
  }
  if (!values) {
    const half = Math.ceil(batch.length / 2);
    await evaluateBatch(nix, batch.slice(0, half), opts, out, alone);
    await evaluateBatch(nix, batch.slice(half), opts, out, alone);
    return;
  }
  // Each attribute's share of the batch's time: what evaluating it cost, near enough for reports.
  const share = (Date.now() - started) / 1000 / batch.length;
  batch.forEach((item, i) => {
    const v = values[`a${i}`];
    let drv: DrvInfo | undefined;
    try {
      drv = v === null || v === undefined ? undefined : parseDrvInfo(JSON.stringify(v));
    } catch {
      drv = undefined;
    }
    if (drv) out.set(item, { ...item, system: drv.system || item.system, ok: true, drv, evalSeconds: share });
    else alone.push(item);
  });
}

export interface BatchedOptions extends EvaluateOptions {
  /**
   * The flake's source store path, asked for only when an attribute failed to evaluate (error positions are given
   * relative to it): `nix flake metadata` costs a flake fetch, which a run without errors does not need.
   */
  resolveSourcePath?: () => Promise<string | undefined>;
}

export async function evaluateBatched(
  nix: NixCommand,
  items: readonly SelectedAttr[],
  opts: BatchedOptions,
): Promise<EvalOutcome[]> {
  const workers = Math.max(1, opts.workers ?? 2);
  const out: Partial = new Map();
  const alone: SelectedAttr[] = [];
  await mapLimit(planBatches(items, workers), workers, (batch) => evaluateBatch(nix, batch, opts, out, alone));
  if (alone.length > 0) {
    // What threw is evaluated alone: its own process reports the message and position.
    const sourcePath = opts.sourcePath ?? (await opts.resolveSourcePath?.());
    const single: EvaluateOptions = { ...opts, ...(sourcePath ? { sourcePath } : {}) };
    const done = await mapLimit(alone, workers, (item) => evaluateAttr(nix, item, single));
    alone.forEach((item, i) => out.set(item, done[i] as EvalOutcome));
  }
  return items.map((item) => {
    const r = out.get(item);
    if (!r) throw new Error(`internal: no evaluation result for ${item.attr}`);
    return r;
  });
}
