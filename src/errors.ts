/**
 * The three kinds of failure DESIGN.md names. The top-level runner prints InputError and TransientError messages as
 * they are (they are written for the user); anything else is a bug and is reported with its stack in debug output.
 */

/** The user can fix this: the message names the input (or environment) and the fix. */
export class InputError extends Error {
  override readonly name = 'InputError';
}

/** Worth retrying: network hiccups, 5xx, 429, timeouts. */
export class TransientError extends Error {
  override readonly name = 'TransientError';
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === 'string') return e;
  try {
    return JSON.stringify(e);
  } catch {
    return String(e);
  }
}
