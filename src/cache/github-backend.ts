/**
 * The `github` backend: the GitHub Actions cache service (v2), through @actions/cache.
 *
 * Entries are immutable and a repository may create only ~200 per minute, so one save makes ONE entry, keyed
 * `<primary key>-<entry suffix>`, whatever the number of store paths. An entry holds a Nix binary cache directory
 * (narinfos + NARs, written by `nix copy`) with the job's new paths only, plus `flake-ci-cache.json`: the keys of the
 * older entries ("parents") those paths build on. Restore fetches the newest entry matching the key (then the
 * restore-keys), then each parent by its exact key, and imports everything at once (Nix verifies every NAR hash;
 * signatures are checked when trusted-public-keys are given). The chain is bounded: a save whose chain would exceed
 * MAX_PARENTS, or that lost a parent to eviction, consolidates: its entry holds the new paths plus every restored
 * path still in the store, and no parents.
 *
 * NARs are stored uncompressed: @actions/cache compresses the whole archive with zstd anyway, so compressing each NAR
 * first would only spend CPU twice on save and on restore.
 */
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { errorMessage, InputError, TransientError } from '../errors.js';
import type { NixCommand } from '../nix/command.js';
import type { Platform } from '../platform/types.js';
import { restoreEntry, saveEntry, saveWithRetry } from './actions-cache-glue.js';
import type { Backend, RestoreRequest, RestoreResult, SaveRequest, SaveResult } from './backend.js';
import { exportBinaryCache, importBinaryCache } from './binary-cache.js';
import { entryKey } from './key.js';
import { snapshotStore } from './snapshot.js';

/** The one path given to @actions/cache, relative to the scratch workspace (see actions-cache-glue.ts). */
export const ENTRY_DIR = 'flake-ci-nix-cache';
export const MANIFEST = 'flake-ci-cache.json';
export const FORMAT = 1;
/** Entries restored besides the matched one, at most; a longer chain makes the next save consolidate. */
export const MAX_PARENTS = 4;

export interface Manifest {
  format: number;
  key: string;
  /** Exact keys of the entries this one builds on, newest first. */
  parents: string[];
  paths: number;
}

/** What restore tells save (typed state, no secret). */
export interface GitHubMemo {
  /** Keys restored, matched entry first, then its parents. */
  chain: string[];
  /** A parent was missing or the chain is too long: the next save must not reference this chain. */
  consolidate: boolean;
  /** File listing the hash parts of the store paths the chain held (for a consolidating save). */
  restoredList?: string;
}

export function parseManifest(text: string): Manifest | undefined {
  try {
    const m = JSON.parse(text) as Partial<Manifest>;
    const keyOk = (k: unknown) => typeof k === 'string' && k !== '' && k.length <= 512 && !/[,\s]/.test(k);
    if (m.format !== FORMAT || !keyOk(m.key) || !Array.isArray(m.parents) || !m.parents.every(keyOk)) return undefined;
    return { format: FORMAT, key: m.key as string, parents: m.parents, paths: Number(m.paths) || 0 };
  } catch {
    return undefined;
  }
}

export function asMemo(value: unknown): GitHubMemo {
  const m = (value ?? {}) as Partial<GitHubMemo>;
  return {
    chain: Array.isArray(m.chain) ? m.chain.filter((k) => typeof k === 'string') : [],
    consolidate: m.consolidate === true,
    restoredList: typeof m.restoredList === 'string' ? m.restoredList : undefined,
  };
}

/** The parents a new entry records, or undefined when this save must consolidate instead. */
export function parentsFor(memo: GitHubMemo): string[] | undefined {
  if (memo.consolidate || memo.chain.length > MAX_PARENTS) return undefined;
  return memo.chain;
}

export function githubAvailable(p: Platform): boolean {
  return Boolean(p.env('ACTIONS_RESULTS_URL')) && Boolean(p.env('ACTIONS_RUNTIME_TOKEN'));
}

interface Fetched {
  key: string;
  dir: string;
  bytes: number;
}

/**
 * One entry into `<scratch>/<name>/flake-ci-nix-cache`: undefined on a miss or an inexact match, a TransientError
 * when the download or extraction failed (a corrupt archive, the service down).
 */
async function fetchEntry(scratch: string, name: string, key: string, restoreKeys: string[], exact: boolean) {
  const ws = path.join(scratch, name);
  await mkdir(ws, { recursive: true });
  const got = await restoreEntry(ws, ENTRY_DIR, key, restoreKeys);
  // A failed download may have left part of an archive behind: only a returned key means the extraction completed.
  if (got.failure !== undefined)
    throw new TransientError(`the cache entry for ${key} was not restored: ${got.failure}`);
  if (got.key === undefined || (exact && got.key !== key)) return undefined;
  return { key: got.key, dir: path.join(ws, ENTRY_DIR), bytes: got.bytes } satisfies Fetched;
}

/**
 * One binary cache holding every narinfo and NAR of `dirs`, imported with one `nix copy`: the only directory when
 * there is one, else `into`, where the files are moved (not copied).
 */
async function merge(dirs: string[], into: string): Promise<string> {
  if (dirs.length === 1) return dirs[0] as string;
  await mkdir(path.join(into, 'nar'), { recursive: true });
  for (const dir of dirs) {
    for (const sub of ['', 'nar']) {
      const entries = await readdir(path.join(dir, sub), { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        if (e.isFile() && e.name !== MANIFEST) await rename(path.join(dir, sub, e.name), path.join(into, sub, e.name));
      }
    }
  }
  return into;
}

export const githubBackend: Backend = {
  name: 'github',

  async restore(p: Platform, nix: NixCommand, req: RestoreRequest): Promise<RestoreResult> {
    if (!githubAvailable(p))
      throw new InputError('backend: github needs the GitHub Actions cache service (ACTIONS_RESULTS_URL is not set).');
    const scratch = await mkdtemp(path.join(req.tempDir, 'restore-'));
    try {
      // `<key>-` so that key `a` never matches entries of key `ab`; the service picks the newest entry of the prefix.
      const started = Date.now();
      const first = await fetchEntry(scratch, 'e0', `${req.primaryKey}-`, req.restoreKeys, false);
      if (!first) return { pathsRestored: 0, bytesDown: 0, memo: { chain: [], consolidate: false } };
      const manifest = parseManifest(await readFile(path.join(first.dir, MANIFEST), 'utf8').catch(() => ''));
      if (!manifest) {
        p.log('warning', `Cache entry ${first.key} has no readable ${MANIFEST} (another tool's entry?); ignored.`);
        return { pathsRestored: 0, bytesDown: 0, memo: { chain: [], consolidate: false } };
      }
      const memo: GitHubMemo = { chain: [first.key], consolidate: manifest.parents.length > MAX_PARENTS };
      const dirs = [first.dir];
      let bytesDown = first.bytes;
      for (const [i, parent] of manifest.parents.slice(0, MAX_PARENTS).entries()) {
        const got = await fetchEntry(scratch, `e${i + 1}`, parent, [], true).catch((e: unknown) => {
          p.log('debug', errorMessage(e));
          return undefined;
        });
        if (got) {
          memo.chain.push(got.key);
          dirs.push(got.dir);
          bytesDown += got.bytes;
        } else {
          // Evicted (least recently used) or unreadable: its paths are rebuilt; the next save stands on its own.
          p.log('warning', `Cache entry ${parent}, which ${first.key} builds on, could not be restored.`);
          memo.consolidate = true;
        }
      }
      const fetched = Date.now();
      const merged = await merge(dirs, path.join(scratch, 'merged'));
      // The hash parts of what the chain holds (narinfo names: no need to read 800 files twice).
      const hashes = (await readdir(merged))
        .filter((n) => /^[0-9a-z]{32}\.narinfo$/.test(n))
        .map((n) => n.slice(0, 32));
      memo.restoredList = path.join(req.tempDir, 'restored.hashes');
      await writeFile(memo.restoredList, hashes.join('\n'));
      const res = await importBinaryCache(nix, merged, {
        trustedPublicKeys: req.trustedPublicKeys,
        trustSource: req.trustSource,
      });
      p.log(
        'info',
        `Restored ${memo.chain.length} cache entries (${mib(bytesDown)}): ${res.imported.length} store paths ` +
          `imported, ${res.alreadyValid} already present (download ${secs(fetched - started)} s, import ` +
          `${secs(Date.now() - fetched)} s).`,
      );
      if (res.skipped.length > 0) {
        p.log('info', `${res.skipped.length} cached paths were left out (details in debug output).`);
        for (const s of res.skipped) p.log('debug', `Skipped ${s.path}: ${s.reason}`);
      }
      return { matchedKey: first.key, pathsRestored: res.imported.length, bytesDown, memo };
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  },

  async save(p: Platform, nix: NixCommand, req: SaveRequest): Promise<SaveResult> {
    const memo = asMemo(req.memo);
    const parents = parentsFor(memo);
    let paths = req.paths;
    if (parents === undefined && memo.restoredList) {
      // Consolidate: the restored paths still valid go into this entry, so it needs no parent.
      const restored = new Set((await readFile(memo.restoredList, 'utf8').catch(() => '')).split('\n'));
      const valid = [...(await snapshotStore(nix))].filter((sp) => restored.has(path.basename(sp).slice(0, 32)));
      paths = [...new Set([...paths, ...valid])].sort();
      p.log('info', `Consolidating: the new entry also holds the ${paths.length - req.paths.length} restored paths.`);
    }
    // Without paths, an entry is only worth making to point a new key at the restored chain (the next job with this
    // key then hits exactly); when the chain already is this key's, there is nothing to save.
    const sameKey = (parents ?? [])[0]?.startsWith(`${req.primaryKey}-`) ?? true;
    if (paths.length === 0 && sameKey) {
      p.log('info', 'Nothing to save: no new store paths.');
      return { pathsSaved: 0, bytesUp: 0, entries: 0 };
    }
    const key = entryKey(req.primaryKey, req.entrySuffix);
    const ws = await mkdtemp(path.join(req.tempDir, 'save-'));
    try {
      const dir = path.join(ws, ENTRY_DIR);
      await mkdir(dir, { recursive: true });
      const exported = await exportBinaryCache(nix, dir, paths, {
        compression: 'none',
        signingKey: req.signingKey,
        tempDir: req.tempDir,
      });
      const manifest: Manifest = { format: FORMAT, key, parents: parents ?? [], paths: exported.exported.length };
      await writeFile(path.join(dir, MANIFEST), `${JSON.stringify(manifest)}\n`);
      const saved = await saveWithRetry(
        key,
        () => saveEntry(ws, ENTRY_DIR, key),
        (m) => p.log('info', m),
      );
      const bytes = saved.bytes ?? (await dirBytes(dir));
      p.log(
        'info',
        `Saved ${exported.exported.length} store paths (${mib(bytes)}) as cache entry ${key}` +
          (manifest.parents.length > 0 ? `, on top of ${manifest.parents.length} earlier entries.` : '.'),
      );
      return { pathsSaved: exported.exported.length, bytesUp: bytes, entries: 1 };
    } finally {
      await rm(ws, { recursive: true, force: true });
    }
  },
};

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) total += (await stat(path.join(e.parentPath, e.name))).size;
  }
  return total;
}

const secs = (ms: number) => (ms / 1000).toFixed(2);

export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}
