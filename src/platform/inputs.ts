/**
 * Typed inputs over Platform.getInput. Every parse error is an InputError naming the input, what was given and what
 * is allowed, so the user can fix the workflow without reading our code.
 */
import { InputError } from '../errors.js';
import type { Platform } from './types.js';

export function getString(p: Platform, name: string, fallback = ''): string {
  const v = p.getInput(name);
  return v === '' ? fallback : v;
}

export function getRequired(p: Platform, name: string): string {
  const v = p.getInput(name);
  if (v === '')
    throw new InputError(`Input '${name}' is required but was empty. Set '${name}:' in the step's 'with:'.`);
  return v;
}

const TRUE = new Set(['true', 'yes', 'on', '1']);
const FALSE = new Set(['false', 'no', 'off', '0']);

export function getBoolean(p: Platform, name: string, fallback: boolean): boolean {
  const v = p.getInput(name).toLowerCase();
  if (v === '') return fallback;
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw new InputError(`Input '${name}' must be true or false, got '${p.getInput(name)}'.`);
}

export function getEnum<T extends string>(p: Platform, name: string, allowed: readonly T[], fallback: T): T {
  const v = p.getInput(name);
  if (v === '') return fallback;
  if ((allowed as readonly string[]).includes(v)) return v as T;
  throw new InputError(`Input '${name}' must be one of ${allowed.join(', ')}; got '${v}'.`);
}

/** A list given as lines or separated by commas/whitespace; empty entries and `#` comments dropped. */
export function getList(p: Platform, name: string): string[] {
  return p
    .getMultilineInput(name)
    .split(/\r?\n/)
    .map((l) => l.replace(/(^|\s)#.*$/, ''))
    .flatMap((l) => l.split(/[,\s]+/))
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** Non-negative integer. */
export function getInteger(
  p: Platform,
  name: string,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const v = p.getInput(name);
  if (v === '') return fallback;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max)
    throw new InputError(`Input '${name}' must be a whole number from ${min} to ${max}; got '${v}'.`);
  return Number(v);
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A duration such as `90s`, `5m`, `1h30m` or a bare number of seconds; returns milliseconds. */
export function getDuration(p: Platform, name: string, fallbackMs: number): number {
  const v = p.getInput(name);
  if (v === '') return fallbackMs;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const parts = [...v.matchAll(/(\d+)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((m) => m[0]).join('') !== v)
    throw new InputError(`Input '${name}' must be a duration such as 30s, 5m or 1h30m; got '${v}'.`);
  return parts.reduce((sum, m) => sum + Number(m[1]) * (UNITS[m[2] as string] as number), 0);
}

/** A secret input: registered for masking/redaction before anything else can print it. */
export function getSecret(p: Platform, name: string): string {
  const v = p.getInput(name);
  if (v !== '') p.setSecret(v);
  return v;
}
