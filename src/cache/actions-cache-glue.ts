/**
 * Calling @actions/cache from an action that owns its own fail-open policy.
 *
 * @actions/cache is configured only through the process environment and reports failures only by printing
 * (`::warning::` / `::error::` through its own copy of @actions/core) and returning -1 or undefined. So each call:
 * - runs with GITHUB_WORKSPACE and the working directory set to a scratch directory, because tar archives the given
 *   paths relative to GITHUB_WORKSPACE and the entry's "version" hashes the path strings: with one constant relative
 *   path, every job on every runner computes the same version and extracts into its own scratch directory;
 * - watches what the library prints during the call, to learn why a save or restore failed (rate limit and its
 *   Retry-After, write denied, already exists, a corrupt archive) and prints its `::warning::` and `::error::` lines
 *   as plain log lines instead: every such failure ends in exactly one warning of ours that names the cause and what
 *   was skipped (or, with `strict`, a failure), so the library's annotations would only repeat it, and its
 *   `::error::` (for 5xx answers) would look like a failed job.
 * Calls must not overlap: they share process-wide state. Our callers run them one at a time.
 */
// @actions/cache (with the Azure SDK) is most of the bundle: loaded on first use, so that a restore, which streams
// entries itself (github-restore.ts), does not spend ~0.1 s of startup compiling it.
const actionsCache = () => import('@actions/cache');
import { TransientError } from '../errors.js';

interface Watched<T> {
  value: T;
  /** Lines the library printed during the call (commands and plain info lines). */
  printed: string[];
}

/** Undoes the current call's process-wide changes; set while a call runs. */
let restoreProcess: (() => void) | undefined;

/**
 * Puts stdout, the working directory and GITHUB_WORKSPACE back at once. For a call abandoned at its time limit,
 * which may still be running: from then on our own warnings must reach the runner as annotations again.
 */
export function releaseActionsCache(): void {
  restoreProcess?.();
}

async function watched<T>(workspace: string, fn: () => Promise<T>): Promise<Watched<T>> {
  const env = process.env.GITHUB_WORKSPACE;
  const cwd = process.cwd();
  const printed: string[] = [];
  const stdout = process.stdout;
  const write = stdout.write;
  // Everything else passes through as it is: masks, debug and info lines.
  stdout.write = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]): boolean {
    let text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('utf8') : undefined;
    if (text !== undefined) {
      printed.push(...text.split('\n').filter((l) => l !== ''));
      text = text.replace(/^::(?:error|warning)(?:\s[^:]*)?::(.*)$/gm, (_, msg: string) => unescapeCommand(msg));
      return (write as (c: string, ...r: unknown[]) => boolean).call(this, text, ...rest);
    }
    return (write as (c: unknown, ...r: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof stdout.write;
  const undo = () => {
    if (restoreProcess !== undo) return;
    restoreProcess = undefined;
    stdout.write = write;
    process.chdir(cwd);
    if (env === undefined) delete process.env.GITHUB_WORKSPACE;
    else process.env.GITHUB_WORKSPACE = env;
  };
  restoreProcess = undo;
  process.env.GITHUB_WORKSPACE = workspace;
  process.chdir(workspace);
  try {
    return { value: await fn(), printed };
  } finally {
    undo();
  }
}

/** How long an aborted phase gets to undo its half-done work before we stop waiting for it. */
export const ABORT_GRACE_MS = 3_000;

/**
 * Runs `fn` with a time limit. On expiry `fn`'s signal is aborted (downloads stop, child processes are killed, what
 * was half written is removed), the process-wide state of an @actions/cache call still running is released (from
 * then on our own warnings reach the runner as annotations again), and once `fn` has settled (at most
 * ABORT_GRACE_MS later) the returned promise rejects with a TransientError. An upload inside @actions/cache cannot
 * be cancelled: the entry point exits when the phase is done, which ends it.
 */
export function withTimeLimit<T>(fn: (signal: AbortSignal) => Promise<T>, ms: number): () => Promise<T> {
  return () =>
    new Promise<T>((resolve, reject) => {
      const controller = new AbortController();
      const work = fn(controller.signal);
      const timer = setTimeout(() => {
        const err = new TransientError(`timed out after ${Math.round(ms / 1000)} s`);
        controller.abort(err);
        releaseActionsCache();
        let grace: ReturnType<typeof setTimeout> | undefined;
        void Promise.race([
          work.then(
            () => undefined,
            () => undefined,
          ),
          new Promise((r) => (grace = setTimeout(r, ABORT_GRACE_MS))),
        ]).then(() => {
          clearTimeout(grace);
          reject(err);
        });
      }, ms);
      work.then(
        (v) => {
          if (controller.signal.aborted) return;
          clearTimeout(timer);
          resolve(v);
        },
        (e: unknown) => {
          if (controller.signal.aborted) return;
          clearTimeout(timer);
          reject(e);
        },
      );
    });
}

/** Bytes of the archive, from what the library prints (`Cache Size: ~N MB (B B)`, `::debug::File Size: B`). */
export function archiveBytes(printed: readonly string[]): number | undefined {
  for (const line of printed) {
    const m = /Cache Size: ~\d+ MB \((\d+) B\)/.exec(line) ?? /^::debug::File Size: (\d+)$/.exec(line);
    if (m) return Number(m[1]);
  }
  return undefined;
}

export interface RestoreOutcome {
  /** The matched key; undefined on a miss or a failure. */
  key: string | undefined;
  /** Compressed archive bytes downloaded. */
  bytes: number;
  /** Why the restore failed (the library's `Failed to restore:` warning), when it did; undefined on a miss. */
  failure?: string;
}

/** restoreCache of `entryDir` (relative to `workspace`) into `workspace`. */
export async function restoreEntry(
  workspace: string,
  entryDir: string,
  key: string,
  restoreKeys: string[],
): Promise<RestoreOutcome> {
  const { value, printed } = await watched(workspace, async () =>
    (await actionsCache()).restoreCache([entryDir], key, restoreKeys),
  );
  if (value !== undefined) return { key: value, bytes: archiveBytes(printed) ?? 0 };
  const failed = printed.map(unescapeCommand).find((l) => /^::(warning|error)[^:]*::Failed to restore:/.test(l));
  return { key: undefined, bytes: 0, failure: failed?.replace(/^::[a-z]+[^:]*::Failed to restore: /, '') };
}

/** Workflow command messages escape `%`, CR and LF. */
function unescapeCommand(line: string): string {
  return line.replace(/%0D/g, ' ').replace(/%0A/g, ' ').replace(/%25/g, '%');
}

export interface SaveOutcome {
  entryId: number;
  /** Compressed archive bytes, when the library said. */
  bytes?: number;
  /** Why the service did not take the entry, from what the library printed; '' when it did. */
  reason: string;
  /** Seconds the service asked us to wait (429 with Retry-After). */
  retryAfterSeconds?: number;
  rateLimited?: boolean;
  writeDenied: boolean;
}

/** Recognises the reasons @actions/cache 6 prints for a failed save (see saveCacheV2 and its twirp client). */
export function saveFailure(printed: readonly string[]): Omit<SaveOutcome, 'entryId'> {
  const lines = printed.map((l) => unescapeCommand(l.replace(/^::(warning|error|notice|debug)[^:]*::/, '')));
  const text = lines.join('\n');
  const reset = /rate limit will reset in (\d+) seconds/.exec(text);
  const failed = lines.find((l) =>
    /^Failed to save:|^Cache reservation failed:|another job may be creating|cache write denied/i.test(l),
  );
  // A rate limit or a network error at reservation is reported as "another job may be creating this cache"; the
  // real cause is only in the debug line before it.
  const cause = lines.find((l) => l.startsWith('Failed to reserve cache: '))?.slice(25);
  const reason = failed ?? 'the cache service did not accept the entry';
  return {
    reason: cause && /another job may be creating/.test(reason) ? `${reason} (${cause})` : reason,
    retryAfterSeconds: reset ? Number(reset[1]) : undefined,
    rateLimited: /Rate limited|rate limit exceeded|\(429\)/i.test(text),
    writeDenied: /cache write denied/i.test(text),
  };
}

/** saveCache of `entryDir` (relative to `workspace`) under `key`. */
export async function saveEntry(workspace: string, entryDir: string, key: string): Promise<SaveOutcome> {
  const { value, printed } = await watched(workspace, async () => (await actionsCache()).saveCache([entryDir], key));
  if (value !== -1) return { entryId: value, bytes: archiveBytes(printed), reason: '', writeDenied: false };
  return { entryId: -1, ...saveFailure(printed) };
}

/** Longest wait for a rate limit's Retry-After; beyond it the save is given up (a warning) instead of stalling. */
export const MAX_RETRY_WAIT_S = 60;

/**
 * Runs `attempt` (a saveEntry) again when the service answered 429 with a Retry-After we can afford: at most twice,
 * each wait at most MAX_RETRY_WAIT_S (the post step's own time limit still bounds the total). A 429 without
 * Retry-After is not retried: with ~200 new entries per minute per repository, hammering only delays other jobs.
 * Throws a TransientError with the reason when the entry was not saved.
 */
export async function saveWithRetry(
  key: string,
  attempt: () => Promise<SaveOutcome>,
  log: (message: string) => void,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<SaveOutcome> {
  for (let tries = 1; ; tries++) {
    const out = await attempt();
    if (out.entryId !== -1) return out;
    const wait = out.rateLimited ? out.retryAfterSeconds : undefined;
    if (wait === undefined || wait > MAX_RETRY_WAIT_S || tries > 2) {
      const hint = out.writeDenied ? ' (the job token cannot write to the cache)' : '';
      throw new TransientError(`the cache service did not save entry ${key}${hint}: ${out.reason}`);
    }
    log(`The cache service is rate limiting new entries; retrying in ${wait} s as it asked (Retry-After).`);
    await sleep(wait * 1000);
  }
}
