/**
 * The plumbing under RegistryClient: one registry host, keep-alive agents, authentication (Basic or cached Bearer
 * tokens, one re-authentication on a 401: an expired token or a first challenge), inactivity timeouts, and retries
 * with backoff and jitter (Retry-After honoured) out of a retry budget (retry-budget.ts) shared by everything the
 * client does, and by every client of a push when they are given the same one, so failing registries end a push with
 * one clear error instead of hours of retries.
 */
import { InputError, TransientError, errorMessage } from '../../errors.js';
import { displayUrl } from '../../net/http.js';
import { backoffDelay, withRetry } from '../../net/retry.js';
import type { Platform } from '../../platform/types.js';
import { Authenticator, type Credentials } from './auth.js';
import { apiHost, isLoopback } from './reference.js';
import { RetryBudget } from './retry-budget.js';
import type { Agents, Reply } from './transport.js';
import { createAgents, header, isRetryable, registryErrorText, send, transientStatus } from './transport.js';

export interface RegistryClientOptions {
  /** Host[:port] as in the image reference; docker.io is reached at registry-1.docker.io. */
  registry: string;
  credentials?: Credentials;
  /** Plain HTTP; default true only for 127.0.0.1, localhost and [::1]. */
  insecure?: boolean;
  /** For debug logs. */
  platform?: Platform;
  /** Per-request inactivity timeout (default 60 s). */
  timeoutMs?: number;
  /** Sockets per host (default 8). */
  maxSockets?: number;
  retry?: {
    /** Tries per request (default 5). */
    attempts?: number;
    /**
     * Retries allowed: a number is this client's own budget (default 50); a RetryBudget is shared with the other
     * clients given it, as every client of one push is.
     */
    budget?: number | RetryBudget;
    baseMs?: number;
    maxMs?: number;
  };
}

/** One request as the client sends it; `url` (absolute, e.g. an upload Location) or `path` under the registry. */
export interface Call {
  method: string;
  path?: string;
  url?: URL;
  headers?: Record<string, string>;
  body?: Buffer | Buffer[];
  scopes: string[];
  maxBody?: number;
  /** Follow 3xx (GET/HEAD of blobs, which may live on a CDN); Authorization is never sent to another host. */
  redirects?: boolean;
}

export const SMALL_BODY = 64 << 10;

export class RegistrySession {
  readonly registry: string;
  readonly base: URL;
  readonly attempts: number;
  private readonly budget: RetryBudget;
  private retriesUsed = 0;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly timeoutMs: number;
  private readonly agents: Agents;
  private readonly auth: Authenticator;
  private readonly platform: Platform | undefined;

  constructor(opts: RegistryClientOptions) {
    this.registry = opts.registry;
    const insecure = opts.insecure ?? isLoopback(opts.registry);
    this.base = new URL(`${insecure ? 'http' : 'https'}://${apiHost(opts.registry)}`);
    this.attempts = Math.max(1, opts.retry?.attempts ?? 5);
    const budget = opts.retry?.budget ?? 50;
    this.budget = budget instanceof RetryBudget ? budget : new RetryBudget(Math.max(0, budget));
    this.baseMs = opts.retry?.baseMs ?? 500;
    this.maxMs = opts.retry?.maxMs ?? 30_000;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.platform = opts.platform;
    this.agents = createAgents(opts.maxSockets ?? 8);
    this.auth = new Authenticator({
      registry: opts.registry,
      credentials: opts.credentials,
      get: (url, headers) =>
        send({ method: 'GET', url, headers, timeoutMs: this.timeoutMs, maxBody: SMALL_BODY }, this.agents),
      debug: (m) => this.debug(m),
    });
  }

  /** Retries this client spent so far (its budget may be shared: see RetryBudget.spent). */
  get retries(): number {
    return this.retriesUsed;
  }

  debug(message: string): void {
    this.platform?.log('debug', `[${this.registry}] ${message}`);
  }

  /** Closes idle keep-alive sockets; the client must not be used afterwards. */
  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  /**
   * Spends one retry from the budget and waits the backoff (or the server's Retry-After). Throws
   * RetryBudgetExhausted, carrying `error`, when the budget is used up. Also for callers that retry whole layers.
   */
  async pause(error: TransientError, attempt: number): Promise<void> {
    const delay = backoffDelay(attempt, this.baseMs, this.maxMs, error.retryAfterMs);
    this.spend(error, delay);
    await new Promise<void>((r) => setTimeout(r, delay));
  }

  private spend(error: TransientError, delayMs: number): void {
    const n = this.budget.spend(this.registry, error);
    this.retriesUsed++;
    this.debug(`retry ${n}/${this.budget.limit} of the budget in ${delayMs} ms after: ${error.message}`);
  }

  /** A request with authentication and retries. Statuses other than 401/403/429/5xx are the caller's to read. */
  async call(c: Call): Promise<Reply> {
    try {
      return await withRetry(() => this.callOnce(c), {
        attempts: this.attempts,
        baseMs: this.baseMs,
        maxMs: this.maxMs,
        onRetry: (e, _attempt, delayMs) => this.spend(e, delayMs),
      });
    } catch (e) {
      if (isRetryable(e) && this.attempts > 1)
        throw new TransientError(
          `gave up after ${this.attempts - 1} retries pushing to ${this.registry}: ${errorMessage(e)}`,
          (e as TransientError).retryAfterMs,
        );
      throw e;
    }
  }

  /** One try: authenticate, send, and on a 401 learn the challenge, re-authenticate and send once more. */
  async callOnce(c: Call): Promise<Reply> {
    const url = c.url ?? new URL(c.path as string, this.base);
    const first = await this.auth.authorization(c.scopes);
    let reply = await this.exchange(c, url, first);
    if (reply.status === 401) {
      const extra = this.auth.challenged(reply, c.scopes, first);
      const second = await this.auth.authorization(c.scopes, extra);
      reply = await this.exchange(c, url, second);
      if (reply.status === 401) throw this.auth.denied(reply, c.scopes);
    }
    if (reply.status === 403) throw this.auth.denied(reply, c.scopes);
    const transient = transientStatus(reply, `${c.method} ${displayUrl(url.href)}`);
    if (transient) throw transient;
    return reply;
  }

  private async exchange(c: Call, url: URL, authorization: string | undefined): Promise<Reply> {
    let target = url;
    for (let hop = 0; ; hop++) {
      const headers = { ...c.headers };
      // A redirect to another host (a CDN or object store with a signed URL) must not receive our credentials.
      if (authorization && target.host === this.base.host) headers.authorization = authorization;
      const reply = await send(
        {
          method: c.method,
          url: target,
          headers,
          body: c.body,
          timeoutMs: this.timeoutMs,
          maxBody: c.maxBody ?? SMALL_BODY,
        },
        this.agents,
      );
      const location = header(reply, 'location');
      if (!c.redirects || ![301, 302, 303, 307, 308].includes(reply.status) || !location) return reply;
      if (hop >= 5) throw new Error(`${c.method} ${displayUrl(url.href)}: too many redirects`);
      target = new URL(location, target);
      this.debug(`${c.method} redirected to ${displayUrl(target.href)}`);
    }
  }

  /** An error for a status the operation did not expect; a missing repository is the user's to fix. */
  unexpected(reply: Reply, what: string, repo: string): Error {
    const text = registryErrorText(reply);
    if (reply.status === 404 && /NAME_UNKNOWN/.test(text))
      return new InputError(`Repository ${repo} does not exist on ${this.registry} (create it, or check the name)`);
    return new Error(`${what} on ${this.registry} answered ${reply.status}${text ? `: ${text}` : ''}`);
  }
}
