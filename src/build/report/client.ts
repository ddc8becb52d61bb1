/**
 * The GitHub REST client of the reporting: @octokit/rest with our retry rules on top (Octokit itself does not
 * retry). GitHub's documented rate-limit answers (docs "Rate limits for the REST API"): a secondary limit is 403 or
 * 429 with Retry-After (wait that long) or without it (wait at least a minute); a primary limit is 403/429 with
 * x-ratelimit-remaining 0 (wait until x-ratelimit-reset). When one request is told to wait, every worker waits:
 * requests sent meanwhile would only extend the penalty. Waits longer than `maxWaitMs` are not worth holding a CI
 * job for: that becomes an ApiError, a reporting warning. Messages never contain the token.
 */
import { Octokit } from '@octokit/rest';
import { errorMessage, TransientError } from '../../errors.js';
import { parseRetryAfter, withRetry } from '../../net/retry.js';
import type { Platform } from '../../platform/types.js';

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    message: string,
    /** HTTP status; 0 when no answer came. */
    readonly status: number,
    /** The token is not allowed to do this (401/403/404 other than rate limits). */
    readonly refused: boolean,
  ) {
    super(message);
  }
}

export interface ClientOptions {
  token: string;
  apiUrl: string;
  /** Attempts per request (first try included). */
  attempts?: number;
  /** The longest wait for a rate limit or Retry-After we accept. */
  maxWaitMs?: number;
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface HttpFailure {
  status?: unknown;
  message?: string;
  response?: { headers?: Record<string, unknown>; data?: unknown };
}

export class GitHubClient {
  readonly octokit: Octokit;
  private pausedUntil = 0;
  private readonly attempts: number;
  private readonly maxWaitMs: number;
  private readonly timeoutMs: number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(
    private readonly platform: Platform,
    private readonly opts: ClientOptions,
  ) {
    this.attempts = opts.attempts ?? 4;
    this.maxWaitMs = opts.maxWaitMs ?? 120_000;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.sleep = opts.sleep ?? defaultSleep;
    const debug = (m: string) => platform.log('debug', this.scrub(m));
    this.octokit = new Octokit({
      auth: opts.token,
      baseUrl: opts.apiUrl.replace(/\/+$/, ''),
      userAgent: 'flake-ci-build',
      // Octokit's request log prints every 4xx as an error; the caller decides what a failure means.
      log: { debug: () => {}, info: debug, warn: debug, error: debug },
    });
  }

  /** The token replaced wherever it appears: error texts can quote request data. */
  scrub(s: string): string {
    return this.opts.token ? s.split(this.opts.token).join('***') : s;
  }

  /** Runs one API request with retries; every failure that remains is an ApiError with a readable message. */
  async call<T>(what: string, fn: (octokit: Octokit, signal: AbortSignal) => Promise<T>): Promise<T> {
    try {
      return await withRetry(
        async () => {
          const wait = this.pausedUntil - Date.now();
          if (wait > 0) await this.sleep(wait);
          try {
            return await fn(this.octokit, AbortSignal.timeout(this.timeoutMs));
          } catch (e) {
            throw this.classify(what, e);
          }
        },
        {
          attempts: this.attempts,
          baseMs: 1000,
          maxMs: this.maxWaitMs,
          sleep: this.sleep,
          onRetry: (e, attempt, delay) =>
            this.platform.log('debug', `${e.message}; retry ${attempt} in ${Math.round(delay / 1000)} s`),
        },
      );
    } catch (e) {
      if (e instanceof ApiError) throw e;
      throw new ApiError(this.scrub(`${what}: ${errorMessage(e)}`), 0, false);
    }
  }

  private classify(what: string, e: unknown): Error {
    const f = (e ?? {}) as HttpFailure;
    const status = typeof f.status === 'number' ? f.status : 0;
    const headers = f.response?.headers ?? {};
    const header = (name: string) => (typeof headers[name] === 'string' ? (headers[name] as string) : undefined);
    const data = f.response?.data as { message?: unknown } | undefined;
    const said = typeof data?.message === 'string' ? data.message : errorMessage(e);
    const text = this.scrub(`${what}: ${status ? `HTTP ${status} ` : ''}${said}`);
    // No answer (network error, timeout: Octokit reports those as 500 without a response) or a server error.
    if (status === 0 || status >= 500) return new TransientError(text);

    if (status === 403 || status === 429) {
      const retryAfter = parseRetryAfter(header('retry-after'));
      const remaining = header('x-ratelimit-remaining');
      let waitMs: number | undefined;
      if (retryAfter !== undefined) waitMs = retryAfter;
      else if (remaining === '0') waitMs = Number(header('x-ratelimit-reset') ?? 0) * 1000 - Date.now();
      else if (status === 429 || /secondary rate limit/i.test(said)) waitMs = 60_000;
      if (waitMs !== undefined) {
        waitMs = Math.max(1000, waitMs);
        if (waitMs > this.maxWaitMs) {
          const until = new Date(Date.now() + waitMs).toISOString().replace(/\.\d+Z$/, 'Z');
          return new ApiError(`${text} (rate limited until ${until}, longer than this step waits)`, status, false);
        }
        this.pausedUntil = Math.max(this.pausedUntil, Date.now() + waitMs);
        return new TransientError(text, waitMs);
      }
    }
    return new ApiError(text, status, status === 401 || status === 403 || status === 404);
  }
}
