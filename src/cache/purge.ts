/**
 * `purge: true`: deletes older GitHub cache entries of this key family through the REST API, so that chains of
 * incremental entries do not crowd out everything else in the repository's 10 GB.
 *
 * Only entries of the current ref whose key starts with the prefix are considered (another branch's entries are not
 * ours to judge). The newest `keepLast` (by creation) always stay; of the others, those not used (restored) for
 * `maxAgeDays` days go. An entry that is still the parent of a kept one is restored along with it, which refreshes
 * its last use, so age by last use keeps live chains whole. The entries this run restored or created are never
 * deleted. Needs `permissions: actions: write`; without it the API answers 403 and purge is a warning.
 */
import { InputError } from '../errors.js';
import type { Platform } from '../platform/types.js';

export interface CacheListEntry {
  id: number;
  key: string;
  created_at?: string;
  last_accessed_at?: string;
  size_in_bytes?: number;
}

export interface PurgeOptions {
  token: string;
  apiUrl: string;
  /** owner/name */
  repository: string;
  /** Full ref (refs/heads/main); entries of other refs are left alone. */
  ref?: string;
  prefix: string;
  maxAgeDays: number;
  keepLast: number;
  /** Keys that must survive (restored or created by this run). */
  protect: ReadonlySet<string>;
  timeoutMs: number;
  now?: number;
}

export interface PurgeResult {
  listed: number;
  deleted: CacheListEntry[];
}

/** Which entries to delete: pure, for unit tests. */
export function pickForPurge(
  entries: readonly CacheListEntry[],
  opts: Pick<PurgeOptions, 'prefix' | 'maxAgeDays' | 'keepLast' | 'protect' | 'now'>,
): CacheListEntry[] {
  const now = opts.now ?? Date.now();
  const time = (s: string | undefined) => (s ? Date.parse(s) : NaN);
  const newestFirst = entries
    .filter((e) => e.key.startsWith(opts.prefix))
    .sort((a, b) => (time(b.created_at) || 0) - (time(a.created_at) || 0) || b.id - a.id);
  const cutoff = now - opts.maxAgeDays * 86_400_000;
  return newestFirst.slice(opts.keepLast).filter((e) => {
    if (opts.protect.has(e.key)) return false;
    const used = time(e.last_accessed_at) || time(e.created_at);
    // An entry whose times cannot be read is kept: deleting is the one thing we must not do by mistake.
    return Number.isFinite(used) && used < cutoff;
  });
}

/** At most this many deletions per run: a first purge of a large backlog continues in later runs. */
export const MAX_DELETIONS = 100;

export async function purgeCaches(p: Platform, opts: PurgeOptions): Promise<PurgeResult> {
  const [owner, repo] = opts.repository.split('/');
  if (!owner || !repo) throw new Error(`GITHUB_REPOSITORY is '${opts.repository}', not owner/name.`);
  // Loaded only when purging: most jobs never do, and it is a sizeable part of the bundle.
  const { Octokit } = await import('@octokit/rest');
  const octokit = new Octokit({
    auth: opts.token,
    baseUrl: opts.apiUrl.replace(/\/+$/, ''),
    userAgent: 'flake-ci-cache',
    request: { signal: AbortSignal.timeout(opts.timeoutMs) },
    log: {
      debug: () => {},
      info: () => {},
      warn: (m: string) => p.log('debug', m),
      error: (m: string) => p.log('debug', m),
    },
  });
  const entries: CacheListEntry[] = [];
  try {
    const list = await octokit.paginate(octokit.rest.actions.getActionsCacheList, {
      owner,
      repo,
      key: opts.prefix,
      ...(opts.ref ? { ref: opts.ref } : {}),
      sort: 'created_at',
      direction: 'desc',
      per_page: 100,
    });
    entries.push(...(list as CacheListEntry[]));
    const doomed = pickForPurge(entries, opts).slice(0, MAX_DELETIONS);
    const deleted: CacheListEntry[] = [];
    for (const e of doomed) {
      try {
        await octokit.rest.actions.deleteActionsCacheById({ owner, repo, cache_id: e.id });
        deleted.push(e);
      } catch (err) {
        // Already gone (another job purged it, or it was evicted): the goal is reached.
        if (status(err) !== 404) throw err;
      }
    }
    return { listed: entries.length, deleted };
  } catch (err) {
    if (status(err) === 403)
      throw new InputError(
        "the token may not manage caches: give the job 'permissions: actions: write' (or set purge: false)",
      );
    throw err;
  }
}

function status(e: unknown): number | undefined {
  const s = (e as { status?: unknown } | undefined)?.status;
  return typeof s === 'number' ? s : undefined;
}
