/**
 * Checks for names and link targets read from an archive, before anything touches the disk. Everything here is
 * lexical (POSIX paths, no file system access) so it can run on untrusted input in any order; resolveLink can
 * additionally follow symlinks the caller knows about (those it extracted), which is what the kernel will do later.
 */
import { posix } from 'node:path';

export type NameCheck = { ok: true; parts: string[] } | { ok: false; reason: string };

/**
 * Splits an entry name into components, dropping `.` and empty ones (`./a//b/` -> [a, b]). Refuses what could land
 * outside the extraction root: absolute names, `..` anywhere, NUL bytes, and the empty string. `.` and `./` give
 * `parts: []` (the root itself); whether that is acceptable is the caller's call.
 */
export function splitEntryName(name: string): NameCheck {
  if (name === '') return { ok: false, reason: 'empty name' };
  if (name.includes('\0')) return { ok: false, reason: 'NUL byte in name' };
  if (name.startsWith('/')) return { ok: false, reason: 'absolute name' };
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return { ok: false, reason: "'..' component" };
  return { ok: true, parts };
}

/** True when `p` is `prefix` or below it (both absolute and normalised; a trailing slash on `prefix` is ignored). */
export function isWithin(p: string, prefix: string): boolean {
  const base = prefix.length > 1 ? prefix.replace(/\/+$/, '') : prefix;
  return p === base || p.startsWith(base === '/' ? '/' : `${base}/`);
}

/** Returns the target of a symlink at an absolute path, or undefined when the path is not a known symlink. */
export type Readlink = (absPath: string) => string | undefined;

/** Linux gives up after 40 links; so do we, and call it an escape (a loop is never a legitimate store layout). */
const MAX_HOPS = 40;

/**
 * Resolves `target` of a symlink living at absolute `linkPath` the way the kernel would: relative to the link's
 * directory, component by component, substituting every component that `readlink` says is a symlink. Without
 * `readlink` this is plain lexical resolution. Returns undefined on a symlink loop.
 */
export function resolveLink(linkPath: string, target: string, readlink?: Readlink): string | undefined {
  const stack = target.startsWith('/') ? [] : posix.dirname(linkPath).split('/').filter(Boolean);
  const pending = target.split('/').reverse();
  let hops = 0;
  while (pending.length > 0) {
    const c = pending.pop() as string;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      stack.pop();
      continue;
    }
    stack.push(c);
    const next = readlink?.(`/${stack.join('/')}`);
    if (next === undefined) continue;
    if (++hops > MAX_HOPS) return undefined;
    stack.pop();
    if (next.startsWith('/')) stack.length = 0;
    for (const part of next.split('/').reverse()) pending.push(part);
  }
  return `/${stack.join('/')}`;
}

export interface LinkCheck {
  /** Where the link points once resolved (undefined for a loop or a malformed target). */
  resolved: string | undefined;
  escapes: boolean;
  reason?: string;
}

/**
 * Decides whether a symlink at `linkPath` with `target` stays within one of the `allowed` absolute prefixes.
 * Absolute targets are taken as they are; relative ones are resolved from the link's directory. Pass the
 * extraction root's final location as the prefix for relative links (the caller maps its staging directory there).
 */
export function checkSymlink(
  linkPath: string,
  target: string,
  allowed: readonly string[],
  readlink?: Readlink,
): LinkCheck {
  if (target === '') return { resolved: undefined, escapes: true, reason: 'empty target' };
  if (target.includes('\0')) return { resolved: undefined, escapes: true, reason: 'NUL byte in target' };
  const resolved = resolveLink(linkPath, target, readlink);
  if (resolved === undefined) return { resolved, escapes: true, reason: 'symlink loop' };
  const escapes = !allowed.some((prefix) => isWithin(resolved, prefix));
  return escapes ? { resolved, escapes, reason: `resolves to ${resolved}` } : { resolved, escapes };
}
