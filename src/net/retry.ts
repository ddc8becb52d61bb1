/**
 * Retry with exponential backoff and full jitter, honouring a server's Retry-After (carried by TransientError).
 * Only TransientError is retried: anything else is either the user's to fix or a bug, and retrying hides it.
 */
import { TransientError } from '../errors.js';

export interface RetryOptions {
  attempts: number;
  baseMs?: number;
  maxMs?: number;
  onRetry?: (error: TransientError, attempt: number, delayMs: number) => void;
  sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function backoffDelay(attempt: number, baseMs: number, maxMs: number, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, maxMs);
  return Math.floor(Math.random() * Math.min(maxMs, baseMs * 2 ** attempt));
}

export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const { attempts, baseMs = 500, maxMs = 30_000, sleep = defaultSleep } = opts;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (!(e instanceof TransientError) || attempt + 1 >= attempts) throw e;
      const delay = backoffDelay(attempt, baseMs, maxMs, e.retryAfterMs);
      opts.onRetry?.(e, attempt + 1, delay);
      await sleep(delay);
    }
  }
}

/** Retry-After is either delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
