/**
 * Expected cost of each attribute, estimated without building, in "derivation builds":
 * - which derivations need building at all: `nix-store --realise --dry-run` on every attribute's .drv at once. Nix
 *   answers from the local store and the configured substituters (what is valid or substitutable is not listed, and
 *   neither is anything only needed to build it), so the plan job costs a few narinfo queries, not a build. Its
 *   list is a log message, so only its indented `.drv` lines are read, which both 2.8 and 2.34 print;
 * - each attribute's derivation closure: one `nix path-info --json --recursive --derivation` over all .drv files
 *   (the references of a .drv are its input derivations and sources), walked per attribute;
 * - cost = the derivations of the closure that need building, the attribute's own counted by its features
 *   (FEATURE_WEIGHTS: a NixOS VM test boots machines, big-parallel marks the large builds), plus NOTHING_TO_BUILD
 *   for the evaluation and cache query every attribute costs its shard even when nothing is built.
 * Shared dependencies count in full for every attribute needing them: shards run on separate machines, and each one
 * builds (or substitutes) all it needs. When Nix cannot answer, every derivation counts as needing a build, with a
 * warning: a rougher plan, never a failed one.
 */
import { errorMessage } from '../../errors.js';
import type { NixCommand } from '../../nix/command.js';
import { parsePathInfo } from '../../nix/path-info.js';

export const FEATURE_WEIGHTS: Readonly<Record<string, number>> = { 'nixos-test': 10, kvm: 10, 'big-parallel': 5 };
export const NOTHING_TO_BUILD = 0.1;

/** Arguments per Nix call: far below ARG_MAX. */
const BATCH = 500;

export interface CostTarget {
  attr: string;
  drvPath: string;
  features: readonly string[];
}

export function ownWeight(features: readonly string[]): number {
  return Math.max(1, ...features.map((f) => FEATURE_WEIGHTS[f] ?? 1));
}

/** The `.drv` paths of `nix-store --realise --dry-run`'s "will be built" list (stderr). */
export function parseDryRun(stderr: string): Set<string> {
  const out = new Set<string>();
  for (const m of stderr.matchAll(/^\s+(\/\S+\.drv)\s*$/gm)) out.add(m[1] as string);
  return out;
}

/** attr -> cost, given each .drv's input derivations and the set that needs building. */
export function costsFrom(
  targets: readonly CostTarget[],
  inputs: ReadonlyMap<string, readonly string[]>,
  toBuild: ReadonlySet<string>,
): Map<string, number> {
  const closureCount = new Map<string, number>();
  const costs = new Map<string, number>();
  for (const t of targets) {
    const seen = new Set<string>([t.drvPath]);
    const stack = [t.drvPath];
    let deps = 0;
    while (stack.length > 0) {
      const drv = stack.pop() as string;
      if (drv !== t.drvPath && toBuild.has(drv)) deps++;
      for (const next of inputs.get(drv) ?? []) {
        if (!seen.has(next)) {
          seen.add(next);
          stack.push(next);
        }
      }
    }
    closureCount.set(t.drvPath, seen.size);
    const own = toBuild.has(t.drvPath) ? ownWeight(t.features) : 0;
    costs.set(t.attr, NOTHING_TO_BUILD + deps + own);
  }
  return costs;
}

/** attr -> expected cost (see the header). */
export async function estimateCosts(
  nix: NixCommand,
  targets: readonly CostTarget[],
  cwd?: string,
): Promise<Map<string, number>> {
  const drvs = [...new Set(targets.map((t) => t.drvPath))];
  const inputs = new Map<string, string[]>();
  let toBuild: Set<string> | undefined = new Set<string>();
  for (let i = 0; i < drvs.length; i += BATCH) {
    const batch = drvs.slice(i, i + BATCH);
    try {
      const info = await nix.run(['path-info', ...nix.pathInfoJsonArgs(), '--recursive', '--derivation', ...batch], {
        cwd,
      });
      for (const p of parsePathInfo(info.stdout)) {
        if (p.path.endsWith('.drv'))
          inputs.set(
            p.path,
            p.references.filter((r) => r.endsWith('.drv')),
          );
      }
    } catch (e) {
      nix.platform?.log('warning', `Could not read the derivation graph, so shard costs are rough: ${errorMessage(e)}`);
    }
    const dry = await nix.runStore(['--realise', '--dry-run', ...batch], { cwd, allowFailure: true });
    if (dry.exitCode === 0) {
      if (toBuild) for (const d of parseDryRun(dry.stderr)) toBuild.add(d);
    } else {
      const tail = dry.stderr.trim().split('\n').slice(-2).join(' ');
      nix.platform?.log('warning', `Could not tell which derivations need building, so all count: ${tail}`);
      toBuild = undefined;
    }
  }
  return costsFrom(targets, inputs, toBuild ?? new Set(inputs.size > 0 ? inputs.keys() : drvs));
}
