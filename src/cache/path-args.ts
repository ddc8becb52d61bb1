/**
 * Store paths as arguments of the new `nix` CLI, which reads them as installables. A `.drv` path means its outputs on
 * Nix 2.8 (`nix path-info X.drv` prints the output, `nix copy X.drv` copies the outputs) and the file itself on 2.34;
 * `--derivation` means the file itself on both, but turns an output path into its deriver. So derivations and other
 * paths go in separate calls, derivations with `--derivation`.
 */

export function isDerivation(p: string): boolean {
  return p.endsWith('.drv');
}

/** Paths per call: keeps argv far below the kernel's limit whatever the number of paths. */
export const PATHS_PER_CALL = 1000;

/**
 * Argument lists (`[--derivation] -- path...`) covering `paths` in their order: each list is a run of consecutive
 * paths of one kind, at most `perCall` long, so a dependency order given by the caller is kept across calls.
 */
export function pathArgRuns(paths: readonly string[], perCall = PATHS_PER_CALL): string[][] {
  const runs: string[][] = [];
  let current: string[] = [];
  let drv = false;
  for (const p of paths) {
    if (current.length > 0 && (isDerivation(p) !== drv || current.length >= perCall)) {
      runs.push(withFlags(current, drv));
      current = [];
    }
    drv = isDerivation(p);
    current.push(p);
  }
  if (current.length > 0) runs.push(withFlags(current, drv));
  return runs;
}

/** Like pathArgRuns, for calls where order does not matter: at most two kinds of runs. */
export function groupedPathArgs(paths: readonly string[], perCall = PATHS_PER_CALL): string[][] {
  return pathArgRuns([...paths.filter((p) => !isDerivation(p)), ...paths.filter(isDerivation)], perCall);
}

function withFlags(paths: string[], drv: boolean): string[] {
  return drv ? ['--derivation', '--', ...paths] : ['--', ...paths];
}

/**
 * Dependency order for registering paths: every path after the paths it references within the set (references
 * outside are ignored, self-references too). Among the paths that are ready, those of the kind taken last come first,
 * so derivations and other paths form few runs (usually two) and pathArgRuns needs few calls. Deterministic.
 */
export function copyOrder(paths: Iterable<string>, references: (p: string) => readonly string[]): string[] {
  const set = new Set(paths);
  const waiting = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  const ready: [string[], string[]] = [[], []];
  for (const p of [...set].sort()) {
    const refs = new Set(references(p).filter((r) => r !== p && set.has(r)));
    waiting.set(p, refs.size);
    for (const r of refs) {
      const list = dependents.get(r) ?? [];
      list.push(p);
      dependents.set(r, list);
    }
    if (refs.size === 0) ready[isDerivation(p) ? 1 : 0].push(p);
  }
  const out: string[] = [];
  let kind: 0 | 1 = 0;
  while (ready[0].length > 0 || ready[1].length > 0) {
    if (ready[kind].length === 0) kind = kind === 0 ? 1 : 0;
    const p = ready[kind].pop() as string;
    out.push(p);
    for (const d of dependents.get(p) ?? []) {
      const left = (waiting.get(d) ?? 0) - 1;
      waiting.set(d, left);
      if (left === 0) ready[isDerivation(d) ? 1 : 0].push(d);
    }
  }
  // Only a reference cycle leaves paths behind; store paths cannot form one, but never drop a path.
  const placed = new Set(out);
  return [...out, ...[...set].filter((p) => !placed.has(p)).sort()];
}
