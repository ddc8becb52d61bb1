/**
 * Fail-open: a cache must never turn a green build red. Any error of a cache operation becomes one warning that says
 * what was attempted, what kind of failure it was and what the job does without it; `strict` (our own tests, users
 * who want to know) turns it into a failure instead.
 */
import { errorMessage, InputError, TransientError } from '../errors.js';
import type { Platform } from '../platform/types.js';

export interface FailOpenOptions {
  /** What was attempted, as the start of a sentence: "Restoring the Nix store cache". */
  what: string;
  /** What is skipped because of the failure: "the job continues without cached store paths". */
  skipped: string;
  strict?: boolean;
  /**
   * Stop waiting after this long (a post step must never hang). The operation itself is not cancelled: the caller
   * must not rely on it afterwards.
   */
  timeoutMs?: number;
}

export type FailOpenResult<T> = { ok: true; value: T } | { ok: false; error: unknown; message: string };

export type FailureKind = 'transient' | 'input' | 'other';

export function failureKind(e: unknown): FailureKind {
  if (e instanceof TransientError) return 'transient';
  if (e instanceof InputError) return 'input';
  return 'other';
}

const KIND_TEXT: Record<FailureKind, string> = {
  transient: 'a temporary network or cache service error; a later run may succeed',
  input: 'a configuration problem',
  other: 'an unexpected error',
};

/** "<what> failed (<kind>): <error>. Skipped: <skipped>." */
export function failureMessage(what: string, skipped: string, e: unknown): string {
  const detail = errorMessage(e).trim().replace(/\.$/, '');
  return `${what} failed (${KIND_TEXT[failureKind(e)]}): ${detail}. Skipped: ${skipped}.`;
}

export async function failOpen<T>(
  platform: Platform,
  opts: FailOpenOptions,
  fn: () => Promise<T>,
): Promise<FailOpenResult<T>> {
  try {
    return { ok: true, value: await withTimeout(fn, opts.timeoutMs) };
  } catch (e) {
    const message = failureMessage(opts.what, opts.skipped, e);
    if (failureKind(e) === 'other' && e instanceof Error && e.stack) platform.log('debug', e.stack);
    if (opts.strict) throw rethrowable(e, message);
    platform.log('warning', message);
    return { ok: false, error: e, message };
  }
}

/** Keeps the error's class (the top-level runner reports InputError and TransientError as written for users). */
function rethrowable(e: unknown, message: string): Error {
  if (e instanceof TransientError) return new TransientError(message, e.retryAfterMs);
  if (e instanceof InputError) return new InputError(message);
  return new Error(message, { cause: e });
}

async function withTimeout<T>(fn: () => Promise<T>, timeoutMs: number | undefined): Promise<T> {
  if (timeoutMs === undefined) return fn();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new TransientError(`timed out after ${Math.round(timeoutMs / 1000)} s`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([fn(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
