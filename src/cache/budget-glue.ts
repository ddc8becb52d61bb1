/**
 * `gc-max-store-size`: a size budget for what one save holds, instead of a garbage collection.
 *
 * cache-nix-action garbage-collects the store before saving because it saves the whole store. We save only the
 * paths the job added, so a collection would shrink nothing we upload and could delete exactly what the job just
 * built (nothing roots it) before it is saved. So the store is never collected; instead, when the selected paths'
 * NARs add up to more than the budget, the largest paths are left out first, each together with the selected paths
 * that reference it (which could not be imported without it), until the rest fits.
 */
import type { NixCommand } from '../nix/command.js';
import type { PathInfo } from '../nix/path-info.js';
import { queryPathInfos } from './select.js';

export interface Budgeted {
  kept: string[];
  dropped: string[];
  /** NAR bytes of the kept paths. */
  bytes: number;
}

export function fitBudget(infos: readonly Pick<PathInfo, 'path' | 'narSize' | 'references'>[], max: number): Budgeted {
  const live = new Map(infos.map((i) => [i.path, i]));
  const dependents = new Map<string, string[]>();
  for (const i of infos)
    for (const r of i.references)
      if (r !== i.path && live.has(r)) dependents.set(r, [...(dependents.get(r) ?? []), i.path]);
  let bytes = infos.reduce((sum, i) => sum + i.narSize, 0);
  const dropped: string[] = [];
  // Largest first, ties by path so the result is deterministic.
  const bySize = [...infos].sort((a, b) => b.narSize - a.narSize || a.path.localeCompare(b.path));
  for (const big of bySize) {
    if (bytes <= max) break;
    const queue = [big.path];
    while (queue.length > 0) {
      const info = live.get(queue.pop() as string);
      if (!info) continue;
      live.delete(info.path);
      bytes -= info.narSize;
      dropped.push(info.path);
      queue.push(...(dependents.get(info.path) ?? []));
    }
  }
  return { kept: [...live.keys()].sort(), dropped: dropped.sort(), bytes };
}

export async function applyBudget(nix: NixCommand, paths: readonly string[], max: number): Promise<Budgeted> {
  if (paths.length === 0) return { kept: [], dropped: [], bytes: 0 };
  return fitBudget(await queryPathInfos(nix, paths), max);
}
