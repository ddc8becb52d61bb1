/**
 * The store diff: which store paths appeared during the job. Main lists the valid paths after restoring, post lists
 * them again, and the difference is what the job built or fetched.
 *
 * `nix path-info --all` is the listing: it reads the valid-paths table of the Nix database (through the daemon when
 * there is one), works unchanged on Nix 2.8 and 2.34, and prints full store paths only. About 20-30 ms for ~2,000
 * paths on both versions here. Listing /nix/store instead would be faster still but wrong: it shows paths being built,
 * half-substituted paths and lock files, none of which are valid.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { NixCommand } from '../nix/command.js';

/** Where a snapshot was written; this (never the list itself) goes into the typed post-step state. */
export interface SnapshotRef {
  /** Absolute path of the file, one store path per line. */
  file: string;
  count: number;
}

/** All valid store paths. */
export async function snapshotStore(nix: NixCommand): Promise<Set<string>> {
  const res = await nix.run(['path-info', '--all']);
  return parsePathList(res.stdout);
}

/** Lists the store and writes the list to a new file in `dir` (the job's temp directory). */
export async function takeSnapshot(nix: NixCommand, dir: string): Promise<SnapshotRef & { paths: Set<string> }> {
  const paths = await snapshotStore(nix);
  const file = path.join(dir, `flake-ci-store-${randomBytes(6).toString('hex')}.paths`);
  await writeSnapshot(file, paths);
  return { file, count: paths.size, paths };
}

/** Writes a listing the caller already has (the same file takeSnapshot writes). */
export async function snapshotFromSet(paths: Set<string>, dir: string): Promise<SnapshotRef & { paths: Set<string> }> {
  const file = path.join(dir, `flake-ci-store-${randomBytes(6).toString('hex')}.paths`);
  await writeSnapshot(file, paths);
  return { file, count: paths.size, paths };
}

/** Sorted, one path per line; written to a temporary name first so a killed step never leaves half a list. */
export async function writeSnapshot(file: string, paths: Iterable<string>): Promise<void> {
  const text = [...paths].sort().join('\n');
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text === '' ? '' : `${text}\n`);
  await rename(tmp, file);
}

export async function readSnapshot(file: string): Promise<Set<string>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`The store snapshot ${file} taken by the main step cannot be read: ${(e as Error).message}`);
  }
  return parsePathList(text);
}

/** Paths valid now that were not before, sorted. Paths that disappeared (garbage-collected) do not matter here. */
export function newPaths(before: ReadonlySet<string>, after: ReadonlySet<string>): string[] {
  return [...after].filter((p) => !before.has(p)).sort();
}

/** Lines that are absolute paths; anything else (blank lines, a stray warning) is not a store path. */
export function parsePathList(text: string): Set<string> {
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const p = line.trim();
    if (p.startsWith('/')) out.add(p);
  }
  return out;
}
