/**
 * Cache keys. A key names what the cache holds (OS, architecture, the project's locked inputs); the entry actually
 * written gets a unique suffix because cache entries are immutable: a second job with the same key must still be
 * able to save what it built, and a later restore of the prefix picks the newest entry.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { InputError } from '../errors.js';

/** Every default key starts with this, so purging and restore prefixes never touch other tools' entries. */
export const KEY_NAMESPACE = 'flake-ci-nix';

export type HitKind = 'exact' | 'partial' | 'miss';

/** `flake-ci-nix-<os>-<arch>-`: the restore prefix matching any project state on this kind of runner. */
export function restorePrefix(os: string, arch: string): string {
  return `${KEY_NAMESPACE}-${keyPart(os, 'os')}-${keyPart(arch, 'arch')}-`;
}

export interface DefaultKeyOptions {
  os: string;
  arch: string;
  /** Directory that flake.lock and relative key files are resolved against (the workspace). */
  workspace: string;
  /** Extra files whose contents change the key (the `key-files` input); relative to `workspace` or absolute. */
  keyFiles?: readonly string[];
}

/**
 * `flake-ci-nix-<os>-<arch>-<16 hex>`: the hash covers flake.lock (when present: projects without flakes still get a
 * stable key) and every key file. 16 hex digits (64 bits) are plenty to tell a repository's lock file versions apart
 * and keep keys short.
 */
export async function defaultPrimaryKey(opts: DefaultKeyOptions): Promise<string> {
  return `${restorePrefix(opts.os, opts.arch)}${await hashKeyFiles(opts.workspace, opts.keyFiles ?? [])}`;
}

/**
 * SHA-256 over the name and contents of flake.lock and each key file, first 16 hex digits. Names are hashed too, so
 * moving text from one file to another changes the key. A missing key file is the user's mistake (a typo would
 * otherwise silently give a key that never changes), a missing flake.lock is not.
 */
export async function hashKeyFiles(workspace: string, keyFiles: readonly string[]): Promise<string> {
  const hash = createHash('sha256');
  const lock = await readOptional(lockFile(workspace));
  feed(hash, 'flake.lock', lock);
  for (const file of keyFiles) {
    const abs = path.resolve(workspace, file);
    const content = await readOptional(abs);
    if (content === undefined) {
      throw new InputError(`Input 'key-files' names '${file}', which does not exist (looked for ${abs}).`);
    }
    feed(hash, path.relative(workspace, abs), content);
  }
  return hash.digest('hex').slice(0, 16);
}

/** The key an entry is saved under: `<key>-<suffix>`, e.g. `<key>-<runId>-<attempt>` on GitHub. */
export function entryKey(primaryKey: string, suffix: string): string {
  if (suffix === '' || /\s/.test(suffix)) throw new Error(`Invalid cache entry suffix ${JSON.stringify(suffix)}.`);
  return `${primaryKey}-${suffix}`;
}

/**
 * How a restored entry relates to the wanted key: `exact` when it was saved under the primary key (the key itself or
 * the key plus a suffix), `partial` when it only matched a restore prefix, `miss` when nothing was restored.
 */
export function hitKind(matchedKey: string | undefined, primaryKey: string): HitKind {
  if (matchedKey === undefined || matchedKey === '') return 'miss';
  return matchedKey === primaryKey || matchedKey.startsWith(`${primaryKey}-`) ? 'exact' : 'partial';
}

/**
 * `<workspace>/flake.lock`. Not written as `path.resolve(workspace, 'flake.lock')`: ncc's asset relocator reads that
 * as a reference to files bundled with the action, copies every flake.lock of this repository into dist/ and rewrites
 * the call to point there, so the project's own lock file was never read (every project got the same key).
 */
function lockFile(workspace: string): string {
  return `${workspace.replace(/\/+$/, '')}/${['flake', 'lock'].join('.')}`;
}

function feed(hash: ReturnType<typeof createHash>, name: string, content: Buffer | undefined): void {
  // Length-prefixed fields: no choice of names and contents can make two different inputs hash alike.
  hash.update(`${Buffer.byteLength(name)}:${name}:${content === undefined ? 'absent' : content.length}:`);
  if (content !== undefined) hash.update(content);
}

async function readOptional(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Keys travel to cache services and file names: keep each part to a safe, readable alphabet. */
function keyPart(value: string, what: string): string {
  if (!/^[A-Za-z0-9_.]+$/.test(value)) throw new Error(`Invalid ${what} for a cache key: ${JSON.stringify(value)}.`);
  return value.toLowerCase();
}
