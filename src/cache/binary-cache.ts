/**
 * A Nix binary cache in a local directory (narinfo + compressed NARs), written and read by `nix copy` so that NAR
 * serialisation, compression, signing and every hash and signature check stay Nix's own.
 *
 * Nix wants a binary cache to be closed under references: `nix copy --to file://` refuses a path whose references
 * have no narinfo in the cache (seen on Nix 2.8 and 2.34). We save only new paths (see select.ts), so for the
 * references we do not export, export writes placeholder narinfos that Nix parses but never downloads from, and
 * removes them afterwards. Import does the reverse: Nix can only register a path whose references are valid, so
 * references that are neither in the cache nor in the store are first realised from the configured substituters
 * (upstream), and paths whose references cannot be had are skipped, not failed.
 *
 * Compression is zstd by default: both Nix 2.8 and 2.34 write and read `.nar.zst` (checked by the integration test).
 */
import { access, mkdir } from 'node:fs/promises';
import * as path from 'node:path';
import { CommandError } from '../exec.js';
import type { NixCommand } from '../nix/command.js';
import { copyOrder, pathArgRuns, PATHS_PER_CALL } from './path-args.js';
import { queryPathInfos } from './select.js';
import { fileStoreUrl, validatePublicKeys, withSecretKeyFile, withStoreParams } from './signing.js';
import { snapshotStore } from './snapshot.js';
import { isPlaceholder, isSafeNarUrl, readNarinfos, removeFiles, writePlaceholders, type Narinfo } from './narinfo.js';

export type Compression = 'zstd' | 'xz' | 'none';

export interface ExportOptions {
  compression?: Compression;
  /** Secret signing key (`name:base64`): every exported path is signed with it. Never logged or put on argv. */
  signingKey?: string;
  /** Private scratch space for the key file (the job's temp directory). */
  tempDir: string;
}

export interface ExportResult {
  /** The paths now in the cache (those given), in dependency order. */
  exported: string[];
  /** Those of them that were not in the cache before (an incremental cache keeps the others). */
  added: string[];
  /** Compressed bytes of the NARs added. */
  bytes: number;
}

/** Exports exactly `paths` (not their closures) into the binary cache `dir`; paths already in it are skipped by Nix. */
export async function exportBinaryCache(
  nix: NixCommand,
  dir: string,
  paths: readonly string[],
  opts: ExportOptions,
): Promise<ExportResult> {
  if (paths.length === 0) return { exported: [], added: [], bytes: 0 };
  await mkdir(dir, { recursive: true });
  const before = new Set(await narinfoPaths(dir));
  const infos = new Map((await queryPathInfos(nix, paths)).map((i) => [i.path, i]));
  const wanted = new Set(paths);
  const outside = new Set<string>();
  for (const info of infos.values()) for (const r of info.references) if (!wanted.has(r)) outside.add(r);
  const ordered = copyOrder(paths, (p) => infos.get(p)?.references ?? []);
  const copy = async (url: string) => {
    // In dependency order, so that each call only references paths already in the cache.
    for (const args of pathArgRuns(ordered)) await nix.run(['copy', '--no-recursive', '--to', url, ...args]);
  };
  const placeholders = await writePlaceholders(dir, outside);
  try {
    const url = withStoreParams(fileStoreUrl(dir), { compression: opts.compression ?? 'zstd' });
    if (opts.signingKey) {
      await withSecretKeyFile(opts.signingKey, opts.tempDir, (file) =>
        copy(withStoreParams(url, { 'secret-key': file })),
      );
    } else {
      await copy(url);
    }
  } finally {
    await removeFiles(placeholders);
  }
  const byPath = new Map((await readNarinfos(dir)).map((n) => [n.info.storePath, n.info]));
  const added = ordered.filter((p) => !before.has(p));
  const bytes = added.reduce((sum, p) => sum + (byPath.get(p)?.fileSize ?? 0), 0);
  return { exported: ordered, added, bytes };
}

/** Store paths the cache holds (placeholders left by an interrupted export excluded), sorted. */
export async function narinfoPaths(dir: string): Promise<string[]> {
  return (await readNarinfos(dir))
    .filter((n) => !isPlaceholder(n.info))
    .map((n) => n.info.storePath)
    .sort();
}

export interface ImportOptions {
  /**
   * When non-empty, every imported path must carry a valid signature by one of exactly these keys (`name:base64`):
   * Nix is run with `trusted-public-keys` set to them and `require-sigs = true`, whatever nix.conf says, so unsigned
   * and wrongly signed paths are refused. Takes precedence over `trustSource`. (Content-addressed paths, such as
   * .drv files, need no signature: Nix accepts them because their store path is derived from their content.)
   */
  trustedPublicKeys?: readonly string[];
  /**
   * The caller vouches for the source: `--no-check-sigs`. Only without `trustedPublicKeys`. Through a Nix daemon both
   * options take effect only for trusted users; for others the daemon checks against its own keys, which is stricter.
   */
  trustSource?: boolean;
  /** Realise references missing from both the cache and the store from the configured substituters (default true). */
  fetchMissingReferences?: boolean;
}

export interface ImportResult {
  /** Paths with a narinfo in the cache. */
  available: number;
  /** Paths that were already valid in the store. */
  alreadyValid: number;
  /** Paths this import added to the store. */
  imported: string[];
  /** Paths not attempted, with why (NAR missing from the cache, a reference that cannot be had). */
  skipped: Array<{ path: string; reason: string }>;
}

/**
 * Raised when Nix refused or failed part of an import (bad signature, hash mismatch, corrupt or truncated NAR).
 * Nix stops at the first failure: paths it had already added stay (each was fully verified), the failing path and
 * those still queued are not added, and nothing corrupt is ever registered. `imported` lists what did get in.
 */
export class ImportError extends Error {
  override readonly name = 'ImportError';
  constructor(
    message: string,
    readonly result: ImportResult,
  ) {
    super(message);
  }
}

export async function importBinaryCache(nix: NixCommand, dir: string, opts: ImportOptions = {}): Promise<ImportResult> {
  const keys = opts.trustedPublicKeys ?? [];
  validatePublicKeys(keys);
  const cache = new Map<string, Narinfo>();
  const skipped: ImportResult['skipped'] = [];
  const infos = (await readNarinfos(dir)).map((n) => n.info).filter((info) => !isPlaceholder(info));
  const present = await Promise.all(infos.map((i) => isSafeNarUrl(i.url) && exists(path.join(dir, i.url))));
  infos.forEach((info, i) => {
    // A narinfo without its NAR would make `nix copy` fail as a whole; leave that one path out instead.
    if (present[i]) cache.set(info.storePath, info);
    else skipped.push({ path: info.storePath, reason: `its NAR ${info.url} is missing from the cache` });
  });
  let valid = await snapshotStore(nix);
  const todo = [...cache.keys()].filter((p) => !valid.has(p));
  const result: ImportResult = { available: cache.size, alreadyValid: cache.size - todo.length, imported: [], skipped };
  if (todo.length === 0) return result;

  const external = new Set<string>();
  for (const p of todo)
    for (const r of cache.get(p)?.references ?? []) if (!cache.has(r) && !valid.has(r)) external.add(r);
  if (external.size > 0 && opts.fetchMissingReferences !== false) {
    // Derivations cannot be substituted (realising one builds it), so only outputs are fetched. --keep-going: every
    // reference that can be had is, and the paths that need one that cannot are skipped below.
    const fetchable = [...external].filter((p) => !p.endsWith('.drv'));
    if (fetchable.length > 0) {
      for (let i = 0; i < fetchable.length; i += PATHS_PER_CALL) {
        const batch = fetchable.slice(i, i + PATHS_PER_CALL);
        await nix.runStore(['--realise', '--keep-going', ...batch], { allowFailure: true });
      }
      valid = await snapshotStore(nix);
    }
  }
  const importable = new Set<string>();
  for (const p of copyOrder(todo, (q) => cache.get(q)?.references ?? [])) {
    const missing = (cache.get(p)?.references ?? []).find((r) => r !== p && !valid.has(r) && !importable.has(r));
    if (missing === undefined) importable.add(p);
    else skipped.push({ path: p, reason: `it references ${missing}, which is neither in the cache nor available` });
  }

  const ordered = [...importable];
  let failure: unknown;
  try {
    await copyFromBinaryCache(nix, dir, ordered, opts);
  } catch (e) {
    failure = e;
  }
  const after = await snapshotStore(nix);
  result.imported = ordered.filter((p) => after.has(p));
  if (failure !== undefined) {
    const why = failure instanceof CommandError ? nixErrorLines(failure.result.stderr) : String(failure);
    throw new ImportError(
      `Importing the binary cache stopped after ${result.imported.length} of ${ordered.length} paths: ${why}`,
      result,
    );
  }
  return result;
}

/**
 * `nix copy` of exactly `paths` (in dependency order; references outside them must be valid already) from the binary
 * cache `dir`, with the signature policy of `opts` (see ImportOptions). Throws what Nix said on a failure.
 */
export async function copyFromBinaryCache(
  nix: NixCommand,
  dir: string,
  paths: readonly string[],
  opts: ImportOptions,
): Promise<void> {
  const keys = opts.trustedPublicKeys ?? [];
  const trust =
    keys.length > 0
      ? ['--option', 'trusted-public-keys', keys.join(' '), '--option', 'require-sigs', 'true']
      : opts.trustSource
        ? ['--no-check-sigs']
        : [];
  for (const args of pathArgRuns(paths))
    await nix.run(['copy', '--no-recursive', ...trust, '--from', fileStoreUrl(dir), ...args]);
}

/** The `error:` lines of Nix's output (with their continuation lines), without the progress chatter. */
export function nixErrorLines(stderr: string): string {
  const lines = stderr.split('\n');
  const start = lines.findIndex((l) => l.startsWith('error:'));
  const picked = start === -1 ? lines.slice(-5) : lines.slice(start).filter((l) => !l.startsWith('copying path'));
  return picked.join('\n').trim().slice(0, 2000);
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}
