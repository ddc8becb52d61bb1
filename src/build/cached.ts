/**
 * skip-cached: an attribute whose outputs are all valid locally, or all present in one configured substituter, is
 * not built. Asked with `nix path-info --json [--store URL] PATHS`, which on both Nix 2.8 and 2.34 exits 0 and marks
 * missing paths (`valid: false` in 2.8's array, `null` in 2.34's object), locally and for a file:// or http(s) cache.
 * `nix build --dry-run` was not used: its "will be fetched" list is a log message whose wording changed.
 */
import { errorMessage } from '../errors.js';
import { atLeast } from '../nix/version.js';
import type { NixCommand } from '../nix/command.js';
import { parsePathInfo } from '../nix/path-info.js';
import { nixString } from './attr-path.js';

export interface NixConfigInfo {
  /** The `system` setting: the runner's system. */
  system: string;
  extraPlatforms: string[];
  substituters: string[];
  systemFeatures: string[];
  /** `accept-flake-config`: the flake's own nixConfig (its substituters) applies. */
  acceptFlakeConfig: boolean;
  /** The `builders` setting as Nix shows it (machine specs, `@file` entries); '' for none. */
  builders: string;
}

/** Paths per `nix path-info` call: far below ARG_MAX, and a failure costs one batch. */
const BATCH = 500;

/** `nix config show --json` (2.20+) or `nix show-config --json` (older; 2.34 warns it is deprecated). */
export async function readNixConfig(nix: NixCommand, cwd?: string): Promise<NixConfigInfo> {
  const args = atLeast(nix.version, '2.20') ? ['config', 'show', '--json'] : ['show-config', '--json'];
  const res = await nix.run(args, { cwd });
  const conf = JSON.parse(res.stdout) as Record<string, { value?: unknown } | undefined>;
  const list = (key: string): string[] => {
    const v = conf[key]?.value;
    if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string' && x !== '');
    if (typeof v === 'string') return v.split(/\s+/).filter(Boolean);
    return [];
  };
  const system = conf.system?.value;
  return {
    system: typeof system === 'string' ? system : '',
    extraPlatforms: list('extra-platforms'),
    substituters: list('substituters'),
    systemFeatures: list('system-features'),
    acceptFlakeConfig: conf['accept-flake-config']?.value === true,
    builders: typeof conf.builders?.value === 'string' ? conf.builders.value : '',
  };
}

/**
 * The substituters a flake's `nixConfig` adds (`substituters`, `extra-substituters`), which Nix uses when
 * `accept-flake-config` is set. flake.nix is a plain attribute set, so importing it reads nixConfig without
 * evaluating any output. `file` is the flake.nix to read: the checkout's for a local flake (a chroot store cannot
 * read its logical /nix/store path from outside), else the one in the flake's source store path. [] when unreadable.
 */
export async function flakeSubstituters(nix: NixCommand, file: string, cwd?: string): Promise<string[]> {
  const expr = `let f = import (/. + ${nixString(file)}); c = f.nixConfig or { }; l = v: if builtins.isList v then v else if builtins.isString v then [ v ] else [ ]; in l (c.substituters or [ ]) ++ l (c.extra-substituters or [ ])`;
  const res = await nix.run(['eval', '--json', '--impure', '--expr', expr], { cwd, allowFailure: true });
  if (res.exitCode !== 0) {
    nix.platform?.log('debug', `flake nixConfig not read from ${file}: ${res.stderr.trim().split('\n').pop() ?? ''}`);
    return [];
  }
  try {
    const v = JSON.parse(res.stdout) as unknown;
    return Array.isArray(v)
      ? v
          .filter((x): x is string => typeof x === 'string')
          .flatMap((x) => x.split(/\s+/))
          .filter(Boolean)
      : [];
  } catch {
    return [];
  }
}

/**
 * The subset of `paths` valid in `store` (the local store when undefined). A substituter that cannot be asked (down,
 * unknown scheme) counts as holding nothing, with a warning: a cache problem must not fail the build.
 */
export async function validPaths(nix: NixCommand, paths: readonly string[], store?: string): Promise<Set<string>> {
  const valid = new Set<string>();
  const unique = [...new Set(paths)];
  for (let i = 0; i < unique.length; i += BATCH) {
    const batch = unique.slice(i, i + BATCH);
    const args = ['path-info', ...nix.pathInfoJsonArgs(), ...(store ? ['--store', store] : []), ...batch];
    try {
      const res = await nix.run(args, { allowFailure: true });
      if (res.exitCode !== 0) {
        const tail = res.stderr.trim().split('\n').slice(-3).join(' ');
        nix.platform?.log('warning', `Could not query ${store ?? 'the local store'}: ${tail}`);
        continue;
      }
      for (const info of parsePathInfo(res.stdout)) if (info.valid) valid.add(info.path);
    } catch (e) {
      nix.platform?.log('warning', `Could not query ${store ?? 'the local store'}: ${errorMessage(e)}`);
    }
  }
  return valid;
}

export interface CacheTarget {
  attr: string;
  outputs: Record<string, string>;
}

/** Where an attribute's outputs are: `local`, or the substituter URL holding all of them. */
export type CachedAt = 'local' | string;

/**
 * Attribute -> where its outputs are, for the attributes that need no build. Each store is asked only about the
 * paths still missing, so an all-local run makes one call. An attribute with no known output paths (floating
 * content-addressed derivations) is never cached.
 */
export async function findCached(
  nix: NixCommand,
  targets: readonly CacheTarget[],
  substituters: readonly string[],
): Promise<Map<string, CachedAt>> {
  const found = new Map<string, CachedAt>();
  let pending = targets.filter((t) => Object.values(t.outputs).length > 0);
  for (const store of [undefined, ...substituters]) {
    if (pending.length === 0) break;
    const valid = await validPaths(
      nix,
      pending.flatMap((t) => Object.values(t.outputs)),
      store,
    );
    pending = pending.filter((t) => {
      if (!Object.values(t.outputs).every((p) => valid.has(p))) return true;
      found.set(t.attr, store ?? 'local');
      return false;
    });
  }
  return found;
}
