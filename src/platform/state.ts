/**
 * Typed state for the post phase: one JSON document under one key, so booleans stay booleans ("false" is never
 * read as truthy) and a missing state (main failed early) is distinguishable from an empty one.
 */
import type { Platform } from './types.js';

const KEY = 'flake_ci_state';

export function saveState<T extends object>(p: Platform, state: T): void {
  p.setState(KEY, JSON.stringify(state));
}

export function loadState<T extends object>(p: Platform): Partial<T> | undefined {
  const raw = p.getState(KEY);
  if (raw === '') return undefined;
  try {
    return JSON.parse(raw) as Partial<T>;
  } catch {
    return undefined;
  }
}
