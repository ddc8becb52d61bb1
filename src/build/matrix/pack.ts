/**
 * Packing attributes into shards. Attributes are grouped by system and required features (a shard runs on one kind
 * of runner, and a VM test shard can be told apart from a plain one); every group gets one shard, and further shards,
 * up to `maxShards` in all, go one at a time to the group whose estimated makespan (max(total / shards, largest
 * attribute)) drops the most, as long as it drops by more than SHARD_OVERHEAD: another job costs a runner, a Nix
 * install and an evaluation, worth about that many derivation builds, so cheap or cached work stays in few jobs.
 * Within a group, attributes go to shards longest-processing-time first (each to the least loaded shard), which is
 * within 4/3 of the best makespan.
 */
import { InputError } from '../../errors.js';
import { chooseRunner, type RunnerMap } from './runner-map.js';

/** GitHub's limit on jobs per matrix. */
export const MAX_SHARDS = 256;
/** A shard is worth adding only if it shortens its group by more than this many derivation builds. */
export const SHARD_OVERHEAD = 2;

export interface PlanItem {
  attr: string;
  attrPath: string[];
  system: string;
  /** requiredSystemFeatures. */
  features: string[];
  cost: number;
}

export interface Shard {
  /** `x86_64-linux`, `x86_64-linux+kvm+nixos-test 2/3`. */
  name: string;
  system: string;
  features: string[];
  /** Runner labels (GitHub) or tags (GitLab); empty for none. */
  labels: string[];
  /** Sorted by attribute path. */
  items: PlanItem[];
  cost: number;
}

export interface PackOptions {
  maxShards: number;
  runnerMap: RunnerMap;
  /** GitHub needs labels for every shard; GitLab runs untagged jobs on any runner. */
  requireLabels: boolean;
}

interface Group {
  key: string;
  system: string;
  features: string[];
  labels: string[];
  items: PlanItem[];
  total: number;
  largest: number;
  shards: number;
}

function groupKey(system: string, features: readonly string[]): string {
  return [system, ...features].join('+');
}

const compareGroups = (a: Group, b: Group) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

function makespan(g: Group, shards: number): number {
  return Math.max(g.total / shards, g.largest);
}

export function packShards(items: readonly PlanItem[], opts: PackOptions): Shard[] {
  if (!Number.isInteger(opts.maxShards) || opts.maxShards < 1 || opts.maxShards > MAX_SHARDS) {
    throw new InputError(`Input 'max-shards' must be a whole number from 1 to ${MAX_SHARDS}; got ${opts.maxShards}.`);
  }
  let groups = makeGroups(items, opts);
  if (groups.length > opts.maxShards) groups = mergeByRunner(groups).sort(compareGroups);
  if (groups.length > opts.maxShards) {
    throw new InputError(
      `Input 'max-shards' is ${opts.maxShards}, but the attributes need ${groups.length} kinds of runner ` +
        `(${groups.map((g) => g.key).join(', ')}), one shard each at least. Raise 'max-shards' to ` +
        `${groups.length} or more, or map several of them to the same runner in 'runner-map'.`,
    );
  }
  allocate(groups, opts.maxShards);
  return groups.flatMap(lpt);
}

function makeGroups(items: readonly PlanItem[], opts: PackOptions): Group[] {
  const byKey = new Map<string, Group>();
  for (const item of items) {
    const features = [...new Set(item.features)].sort();
    const key = groupKey(item.system, features);
    let g = byKey.get(key);
    if (!g) {
      const { labels } = chooseRunner(item.system, features, opts.runnerMap);
      if (opts.requireLabels && labels.length === 0) {
        throw new InputError(
          `Input 'runner-map' has no runner for ${key} (attribute ${item.attr}): add a line ` +
            `'${item.system}: <runner label>' (or '${key}: [labels]').`,
        );
      }
      g = { key, system: item.system, features, labels, items: [], total: 0, largest: 0, shards: 1 };
      byKey.set(key, g);
    }
    g.items.push(item);
    g.total += item.cost;
    g.largest = Math.max(g.largest, item.cost);
  }
  return [...byKey.values()].sort(compareGroups);
}

/** Groups of one system that run on the same runner anyway share shards (features united). */
function mergeByRunner(groups: readonly Group[]): Group[] {
  const byRunner = new Map<string, Group>();
  for (const g of groups) {
    const key = JSON.stringify([g.system, g.labels]);
    const into = byRunner.get(key);
    if (!into) {
      byRunner.set(key, { ...g, items: [...g.items] });
      continue;
    }
    into.features = [...new Set([...into.features, ...g.features])].sort();
    into.key = groupKey(into.system, into.features);
    into.items.push(...g.items);
    into.total += g.total;
    into.largest = Math.max(into.largest, g.largest);
  }
  return [...byRunner.values()];
}

function allocate(groups: Group[], maxShards: number): void {
  let used = groups.length;
  while (used < maxShards) {
    let best: Group | undefined;
    let bestGain = SHARD_OVERHEAD;
    for (const g of groups) {
      if (g.shards >= g.items.length) continue;
      const gain = makespan(g, g.shards) - makespan(g, g.shards + 1);
      if (gain > bestGain) {
        best = g;
        bestGain = gain;
      }
    }
    if (!best) return;
    best.shards++;
    used++;
  }
}

const byAttr = (a: PlanItem, b: PlanItem) => (a.attr < b.attr ? -1 : a.attr > b.attr ? 1 : 0);

/** Longest processing time first: each attribute, costliest first, to the least loaded shard (lowest index on ties). */
function lpt(g: Group): Shard[] {
  const shards: Shard[] = Array.from({ length: g.shards }, (_, i) => ({
    name: g.shards > 1 ? `${g.key} ${i + 1}/${g.shards}` : g.key,
    system: g.system,
    features: g.features,
    labels: g.labels,
    items: [],
    cost: 0,
  }));
  const sorted = [...g.items].sort((a, b) => b.cost - a.cost || byAttr(a, b));
  for (const item of sorted) {
    let target = shards[0] as Shard;
    for (const s of shards) if (s.cost < target.cost) target = s;
    target.items.push(item);
    target.cost += item.cost;
  }
  for (const s of shards) s.items.sort(byAttr);
  return shards;
}
