/**
 * The retries one push may spend, shared by every registry client of the push (the targets, cache-from and index
 * sources), so a push against several failing registries still ends after a bounded number of retries in total
 * rather than that number per registry. Spending past the limit throws RetryBudgetExhausted, which no outer loop
 * retries (transport.ts, isRetryable).
 */
import type { TransientError } from '../../errors.js';
import { RetryBudgetExhausted } from './transport.js';

export class RetryBudget {
  private used = 0;

  /** `hint`: how the user raises the limit, ended to the error (e.g. the action input that sets it). */
  constructor(
    readonly limit: number,
    private readonly hint = '',
  ) {}

  /** Retries spent so far by every client sharing this budget. */
  get spent(): number {
    return this.used;
  }

  /** Takes one retry for a request to `registry` that failed with `error`; throws when none is left. */
  spend(registry: string, error: TransientError): number {
    if (this.used >= this.limit)
      throw new RetryBudgetExhausted(
        `gave up after ${this.used} retries pushing to ${registry}: the retry budget of the push (${this.limit} ` +
          `retries across all registries) is spent${this.hint ? `; ${this.hint}` : ''}. Last error: ${error.message}`,
      );
    return ++this.used;
  }
}
