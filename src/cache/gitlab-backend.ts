/**
 * The `gitlab` backend: one Nix binary cache directory inside the project, `$CI_PROJECT_DIR/.flake-ci/nix-cache`.
 * GitLab moves the bytes: gitlab-templates/cache.yml declares the directory under `cache:` (key from flake.lock), so
 * the runner restores it before before_script and uploads it after after_script. This backend only imports what the
 * directory holds (main) and adds the job's new paths to it (post), so it never talks to a server and creates no
 * cache entries of its own.
 *
 * The cache is incremental: narinfos already in the directory stay, only the new paths are exported next to them,
 * then the directory is pruned to `max-size` (oldest first, see prune.ts). GitLab exposes no variable holding the
 * resolved cache key (`key:files` is hashed by GitLab itself), so the job that saves records its own primary key in a
 * file in the directory; restore reports that as the matched key, which makes `hit` exact only when the cache was
 * written for the same key (same OS, architecture, flake.lock and key files), and partial when GitLab handed over a
 * cache written for another one (a `fallback_keys` entry, another runner architecture, different key files).
 */
import { mkdir, readFile, rename, utimes, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { NixCommand } from '../nix/command.js';
import type { Platform } from '../platform/types.js';
import type { Backend, RestoreRequest, RestoreResult, SaveRequest, SaveResult } from './backend.js';
import { exportBinaryCache, importBinaryCache } from './binary-cache.js';
import { isPlaceholder, readNarinfos, type NarinfoFile } from './narinfo.js';
import { pruneBinaryCache } from './prune.js';

/** Relative to the project directory: the path cache.yml lists under `cache:paths` (GitLab wants it relative). */
export const GITLAB_CACHE_DIR = '.flake-ci/nix-cache';
/** Holds the primary key of the job that last saved; not a narinfo, so Nix and prune.ts ignore it. */
export const KEY_FILE = 'flake-ci-key';
/** Matched key of a non-empty cache that records no key (written by hand or by an older flake-ci): a partial hit. */
export const UNRECORDED_KEY = 'gitlab-cache-without-key';

export function gitlabCacheDir(p: Platform): string {
  return path.join(p.runner.workspace, GITLAB_CACHE_DIR);
}

export const gitlabBackend: Backend = {
  name: 'gitlab',

  async restore(p: Platform, nix: NixCommand, req: RestoreRequest): Promise<RestoreResult> {
    const dir = gitlabCacheDir(p);
    const entries = usable(await readNarinfos(dir));
    if (entries.length === 0) {
      p.log(
        'info',
        `No Nix cache in ${GITLAB_CACHE_DIR}: GitLab restored nothing for this job's cache key (first run with this ` +
          `flake.lock, or the job does not extend .flake-ci-cache). The post step saves what the job builds.`,
      );
      return { pathsRestored: 0, bytesDown: 0 };
    }
    const matchedKey = (await readRecordedKey(dir)) ?? UNRECORDED_KEY;
    const result = await importBinaryCache(nix, dir, {
      trustedPublicKeys: req.trustedPublicKeys,
      trustSource: req.trustSource,
    });
    const sizes = new Map(entries.map((n) => [n.info.storePath, n.info.fileSize ?? 0]));
    const bytesDown = result.imported.reduce((sum, sp) => sum + (sizes.get(sp) ?? 0), 0);
    p.log(
      'info',
      `Imported ${result.imported.length} store paths (${mib(bytesDown)}) from ${GITLAB_CACHE_DIR}, saved for key ` +
        `${matchedKey}; ${result.alreadyValid} of its ${result.available} paths were already in the store.`,
    );
    if (result.skipped.length > 0) {
      // Not a failure: such a path is rebuilt or substituted when needed, and the next save may add it again.
      p.log('info', `${result.skipped.length} cached paths were left out (details in debug output).`);
      for (const s of result.skipped) p.log('debug', `Skipped ${s.path}: ${s.reason}`);
    }
    return { matchedKey, pathsRestored: result.imported.length, bytesDown };
  },

  async save(p: Platform, nix: NixCommand, req: SaveRequest): Promise<SaveResult> {
    const dir = gitlabCacheDir(p);
    const before = usable(await readNarinfos(dir));
    if (req.paths.length === 0 && before.length === 0) {
      // Creating an empty directory would only make GitLab upload an empty archive.
      p.log('info', `Nothing to save, and no Nix cache in ${GITLAB_CACHE_DIR} to keep.`);
      return { pathsSaved: 0, bytesUp: 0, entries: 0 };
    }
    await mkdir(dir, { recursive: true });
    const exported = await exportBinaryCache(nix, dir, req.paths, {
      signingKey: req.signingKey,
      tempDir: req.tempDir,
    });
    await touchInUse(dir, exported.exported);
    const limit = req.maxBytes !== undefined && Number.isFinite(req.maxBytes) ? req.maxBytes : Infinity;
    // Also without a limit: prune clears what an interrupted export or prune left behind.
    const pruned = await pruneBinaryCache(dir, limit);
    await writeRecordedKey(dir, req.primaryKey);

    const after = new Map(usable(await readNarinfos(dir)).map((n) => [n.info.storePath, n.info.fileSize ?? 0]));
    const kept = exported.added.filter((sp) => after.has(sp));
    const bytesUp = kept.reduce((sum, sp) => sum + (after.get(sp) ?? 0), 0);
    p.log(
      'info',
      `Added ${kept.length} store paths (${mib(bytesUp)}) to ${GITLAB_CACHE_DIR}; it now holds ${after.size} paths ` +
        `(${mib(pruned.bytesAfter)}). GitLab uploads it after after_script (cache: in gitlab-templates/cache.yml).`,
    );
    if (pruned.removed.length > 0) {
      const why = limit === Infinity ? 'incomplete entries' : `to stay under max-size (${mib(limit)})`;
      p.log('info', `Pruned ${pruned.removed.length} older paths ${why}.`);
    }
    if (kept.length < exported.added.length) {
      p.log(
        'warning',
        `max-size (${mib(limit)}) is too small for what this job built: ${exported.added.length - kept.length} of ` +
          `the new paths were pruned again right away. Raise max-size to cache them.`,
      );
    }
    return { pathsSaved: kept.length, bytesUp, entries: 0 };
  },
};

/** Real entries only: placeholders of an interrupted export are never imported or counted. */
function usable(entries: NarinfoFile[]): NarinfoFile[] {
  return entries.filter((n) => !isPlaceholder(n.info));
}

/**
 * Marks the saved paths and everything they reference in the cache as just used (mtime = now). Pruning goes oldest
 * first and removes the dependents of what it removes, so without this an old dependency of today's build would be
 * pruned first and take the new paths with it. What the job did not touch keeps its older time and goes first. (The
 * times survive GitLab's cache archive; were they lost, the order would fall back to file names, still a valid cache.)
 */
export async function touchInUse(dir: string, roots: readonly string[]): Promise<number> {
  const byPath = new Map(usable(await readNarinfos(dir)).map((n) => [n.info.storePath, n]));
  const seen = new Set<string>();
  const queue = roots.filter((r) => byPath.has(r));
  while (queue.length > 0) {
    const sp = queue.pop() as string;
    if (seen.has(sp)) continue;
    seen.add(sp);
    for (const r of byPath.get(sp)?.info.references ?? []) if (byPath.has(r) && !seen.has(r)) queue.push(r);
  }
  const now = new Date();
  for (const sp of seen) await utimes((byPath.get(sp) as NarinfoFile).file, now, now).catch(() => undefined);
  return seen.size;
}

/** The recorded key, if it looks like one: the file comes from a shared cache archive and ends up in outputs. */
export async function readRecordedKey(dir: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dir, KEY_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const key = text.trim();
  return /^[\x21-\x7e]{1,512}$/.test(key) ? key : undefined;
}

/** Through a temporary name, so a job killed mid-write never leaves half a key. */
export async function writeRecordedKey(dir: string, key: string): Promise<void> {
  const file = path.join(dir, KEY_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${key}\n`);
  await rename(tmp, file);
}

function mib(bytes: number): string {
  if (bytes === Infinity) return 'no limit';
  return bytes < 1048576 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1048576).toFixed(1)} MiB`;
}
