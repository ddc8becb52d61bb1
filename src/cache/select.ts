/**
 * What to save: the paths the job added, minus what upstream caches already serve, filtered by the user's patterns,
 * plus the closures of paths the user names explicitly.
 *
 * Only new paths are saved, not their closures (saving closures would put glibc & co. in every entry). A reference of
 * a new path is new too (saved alongside), came from upstream (substituted, so upstream serves it), or was in the
 * store before the job, which on CI means it was restored from the cache: a backend saving incremental entries must
 * keep restoring the entries such paths came from, and one that wants self-contained entries passes the new paths as
 * `explicit`, which saves their closures minus upstream paths. Import skips (never fails on) a path whose references
 * cannot be had.
 *
 * "Served by upstream" is decided from signatures in the local store: a path substituted from cache.nixos.org
 * carries a `cache.nixos.org-1:...` signature that Nix verified when it was substituted. No network lookup is made;
 * a locally built path that upstream happens to have as well is saved (harmless, rare in CI).
 */
import type { NixCommand } from '../nix/command.js';
import { parsePathInfo, type PathInfo } from '../nix/path-info.js';
import { groupedPathArgs, isDerivation } from './path-args.js';

export { isDerivation };

export const DEFAULT_UPSTREAM_KEYS: readonly string[] = ['cache.nixos.org-1'];

export interface SelectOptions {
  /** Key names (`cache.nixos.org-1`) or public keys (`name:base64`) whose signature means "upstream has it". */
  upstreamKeys?: readonly string[];
  /** Store path name patterns (`*`, `?`); when given, a new path must match one. */
  include?: readonly string[];
  /** Store path name patterns; a matching new path is not saved. */
  exclude?: readonly string[];
}

export interface Selection {
  /** Store paths to save, sorted. */
  paths: string[];
  skipped: { upstream: number; derivations: number; excluded: number; invalid: number };
}

/** `<hash>-<name>` -> `<name>`: patterns apply to names, which are what users recognise (`hello-2.12`). */
export function storePathName(p: string): string {
  const base = p.slice(p.lastIndexOf('/') + 1);
  return /^[0-9a-z]{32}-/.test(base) ? base.slice(33) : base;
}

/**
 * A glob over a whole store path name: `*` any run of characters, `?` one character, everything else literal. Names
 * hold no `/`, so `**` would mean the same as `*` and is not special.
 */
export function compileGlob(pattern: string): RegExp {
  let re = '';
  for (const ch of pattern) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

export function globMatch(pattern: string, name: string): boolean {
  return compileGlob(pattern).test(name);
}

/** The key name of each signature (`name:base64` -> `name`). */
export function signatureKeyNames(info: Pick<PathInfo, 'signatures'>): string[] {
  return info.signatures.map((s) => s.slice(0, Math.max(0, s.indexOf(':'))));
}

/**
 * Pure selection over path infos of new paths. Derivations (`.drv`) are skipped unless an `include` pattern that
 * itself ends in `.drv` matches: they are cheap to recreate (evaluation writes them again) and would otherwise make up
 * a large share of a cache entry, so saving them is opt-in and explicit (`include: '*.drv'`); a plain `*` does not
 * count as asking for them.
 */
export function selectPaths(infos: readonly PathInfo[], opts: SelectOptions = {}): Selection {
  const upstream = new Set((opts.upstreamKeys ?? DEFAULT_UPSTREAM_KEYS).map((k) => k.split(':')[0] ?? k));
  const include = (opts.include ?? []).map((p) => ({ drv: p.endsWith('.drv'), re: compileGlob(p) }));
  const exclude = (opts.exclude ?? []).map(compileGlob);
  const skipped = { upstream: 0, derivations: 0, excluded: 0, invalid: 0 };
  const paths: string[] = [];
  for (const info of infos) {
    if (!info.valid) {
      skipped.invalid++;
      continue;
    }
    if (signatureKeyNames(info).some((k) => upstream.has(k))) {
      skipped.upstream++;
      continue;
    }
    const name = storePathName(info.path);
    const matching = include.filter((p) => p.re.test(name));
    if (isDerivation(info.path) && !matching.some((p) => p.drv)) {
      skipped.derivations++;
      continue;
    }
    if ((include.length > 0 && matching.length === 0) || exclude.some((re) => re.test(name))) {
      skipped.excluded++;
      continue;
    }
    paths.push(info.path);
  }
  return { paths: paths.sort(), skipped };
}

/** `nix path-info --json` for many paths, in chunks, parsed for either JSON shape. */
export async function queryPathInfos(nix: NixCommand, paths: readonly string[]): Promise<PathInfo[]> {
  const out: PathInfo[] = [];
  for (const args of groupedPathArgs(paths)) {
    const res = await nix.run(['path-info', ...nix.pathInfoJsonArgs(), ...args]);
    out.push(...parsePathInfo(res.stdout));
  }
  return out;
}

/** The closure of some paths or installables (`nix path-info --recursive`), sorted. */
export async function closureOf(nix: NixCommand, paths: readonly string[]): Promise<string[]> {
  const out = new Set<string>();
  for (const args of groupedPathArgs(paths)) {
    const res = await nix.run(['path-info', '--recursive', ...args]);
    for (const line of res.stdout.split('\n')) if (line.trim().startsWith('/')) out.add(line.trim());
  }
  return [...out].sort();
}

export interface SaveSelectionInput extends SelectOptions {
  /** Paths added since the restore (snapshot diff). */
  newPaths: readonly string[];
  /**
   * Paths (or installables) whose closures are saved whatever the patterns say: the user asked for them by name.
   * Upstream-signed paths in those closures are still left out, since upstream serves them.
   */
  explicit?: readonly string[];
}

export async function selectForSave(nix: NixCommand, input: SaveSelectionInput): Promise<Selection> {
  const selection = selectPaths(await queryPathInfos(nix, input.newPaths), input);
  const explicit = await closureOf(nix, input.explicit ?? []);
  if (explicit.length > 0) {
    const infos = await queryPathInfos(nix, explicit);
    const extra = selectPaths(infos, { upstreamKeys: input.upstreamKeys, include: ['*', '*.drv'] });
    selection.paths = [...new Set([...selection.paths, ...extra.paths])].sort();
  }
  return selection;
}
