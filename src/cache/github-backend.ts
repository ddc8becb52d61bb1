/**
 * The `github` backend: the GitHub Actions cache service (v2), through @actions/cache for saving.
 *
 * Entries are immutable and a repository may create only ~200 per minute, so one save makes ONE entry, keyed
 * `<primary key>-<entry suffix>`, whatever the number of store paths. An entry holds one bundle file (bundle.ts): the
 * keys of the older entries ("parents") its paths build on, the signed narinfos of the job's new paths, and their
 * NARs. Restore (github-restore.ts) reads the newest entry matching the key (then the restore-keys), then each parent
 * by its exact key, as streams written straight into the store, and registers everything at once. The chain is
 * bounded: a save whose chain would exceed MAX_PARENTS, or that lost a parent to eviction, consolidates: its entry
 * holds the new paths plus every restored path still in the store, and no parents.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { errorMessage, InputError } from '../errors.js';
import type { NixCommand } from '../nix/command.js';
import type { Platform } from '../platform/types.js';
import { saveEntry, saveWithRetry } from './actions-cache-glue.js';
import type { Backend, RestoreRequest, RestoreResult, SaveRequest, SaveResult } from './backend.js';
import { exportBinaryCache } from './binary-cache.js';
import { BUNDLE_FILE, writeBundle } from './bundle.js';
import { GitHubRestore, NotABundle, withScratch } from './github-restore.js';
import { entryKey } from './key.js';
import { snapshotStore } from './snapshot.js';

/** Entries restored besides the matched one, at most; a longer chain makes the next save consolidate. */
export const MAX_PARENTS = 4;

/** What restore tells save (typed state, no secret). */
export interface GitHubMemo {
  /** Keys restored, matched entry first, then its parents. */
  chain: string[];
  /** A parent was missing or the chain is too long: the next save must not reference this chain. */
  consolidate: boolean;
  /** File listing the hash parts of the store paths the chain held (for a consolidating save). */
  restoredList?: string;
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

export const githubBackend: Backend = {
  name: 'github',

  async restore(p: Platform, nix: NixCommand, req: RestoreRequest): Promise<RestoreResult> {
    if (!githubAvailable(p))
      throw new InputError('backend: github needs the GitHub Actions cache service (ACTIONS_RESULTS_URL is not set).');
    const none: RestoreResult = { pathsRestored: 0, bytesDown: 0, memo: { chain: [], consolidate: false } };
    return withScratch(req.tempDir, async (scratch) => {
      const started = Date.now();
      const r = new GitHubRestore(p, nix, scratch, req, req.signal);
      let done = false;
      try {
        // `<key>-` so that key `a` never matches entries of key `ab`; the service picks the newest entry of the prefix.
        const first = await r.fetch(`${req.primaryKey}-`, req.restoreKeys, false).catch((e: unknown) => {
          if (!(e instanceof NotABundle)) throw e;
          p.log('warning', `The matching cache entry is not one of ours (${e.message}); ignored.`);
          return undefined;
        });
        if (!first) return none;
        const memo: GitHubMemo = { chain: [first.key], consolidate: first.header.parents.length > MAX_PARENTS };
        const hashes = first.header.narinfos.map(hashPart);
        let bytesDown = first.bytes;
        for (const parent of first.header.parents.slice(0, MAX_PARENTS)) {
          const got = await r.fetch(parent, [], true).catch((e: unknown) => {
            if (req.signal?.aborted) throw e;
            p.log('debug', errorMessage(e));
            return undefined;
          });
          if (got) {
            memo.chain.push(got.key);
            hashes.push(...got.header.narinfos.map(hashPart));
            bytesDown += got.bytes;
          } else {
            // Evicted (least recently used) or unreadable: its paths are rebuilt; the next save stands on its own.
            p.log('warning', `Cache entry ${parent}, which ${first.key} builds on, could not be restored.`);
            memo.consolidate = true;
          }
        }
        const fetched = Date.now();
        memo.restoredList = path.join(req.tempDir, 'restored.hashes');
        await writeFile(memo.restoredList, hashes.join('\n'));
        const res = await r.finish();
        done = true;
        if (!res) return none;
        p.log(
          'info',
          `Restored ${memo.chain.length} cache entries (${mib(bytesDown)}): ${res.imported.length} store paths ` +
            `imported, ${res.alreadyValid} already present (download and unpack ${secs(fetched - started)} s, ` +
            `registration ${secs(Date.now() - fetched)} s).`,
        );
        if (res.skipped.length > 0) {
          p.log('info', `${res.skipped.length} cached paths were left out (details in debug output).`);
          for (const s of res.skipped) p.log('debug', `Skipped ${s.path}: ${s.reason}`);
        }
        return {
          matchedKey: first.key,
          pathsRestored: res.imported.length,
          bytesDown,
          memo,
          validAfter: res.validAfter,
        };
      } finally {
        if (!done) r.abort();
      }
    });
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
      const dir = path.join(ws, 'binary-cache');
      const exported = await exportBinaryCache(nix, dir, paths, {
        compression: 'none',
        signingKey: req.signingKey,
        tempDir: req.tempDir,
      });
      req.signal?.throwIfAborted();
      const count = await writeBundle(path.join(ws, BUNDLE_FILE), dir, { key, parents: parents ?? [] });
      await rm(dir, { recursive: true, force: true });
      req.signal?.throwIfAborted();
      const saved = await saveWithRetry(
        key,
        () => saveEntry(ws, BUNDLE_FILE, key),
        (m) => p.log('info', m),
      );
      const bytes = saved.bytes ?? (await stat(path.join(ws, BUNDLE_FILE))).size;
      p.log(
        'info',
        `Saved ${count} store paths (${mib(bytes)}) as cache entry ${key}` +
          ((parents ?? []).length > 0 ? `, on top of ${(parents ?? []).length} earlier entries.` : '.'),
      );
      return { pathsSaved: exported.exported.length, bytesUp: bytes, entries: 1 };
    } finally {
      await rm(ws, { recursive: true, force: true });
    }
  },
};

/** The hash part of a narinfo's store path (what a consolidating save looks for). */
function hashPart(narinfo: string): string {
  return /^StorePath: \S*\/([0-9a-z]{32})-/m.exec(narinfo)?.[1] ?? '';
}

const secs = (ms: number) => (ms / 1000).toFixed(2);

export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}
