/**
 * Keeping a binary cache directory under a size (the GitLab backend's `max-size`): the oldest entries go first.
 *
 * Invariants kept at every step, so an interrupted prune still leaves a usable cache:
 * - a narinfo is removed before its NAR, so no narinfo ever points at a missing NAR;
 * - a NAR is removed only when no remaining narinfo uses it (identical NARs of two paths share one file);
 * - removing a path also removes the cached paths that reference it, which could no longer be imported anyway.
 */
import { readdir, stat, unlink } from 'node:fs/promises';
import * as path from 'node:path';
import { isPlaceholder, readNarinfos } from './narinfo.js';

export interface PruneResult {
  /** Store paths whose narinfo was removed. */
  removed: string[];
  bytesBefore: number;
  bytesAfter: number;
}

/**
 * Removes entries, oldest narinfo mtime first, until narinfos and NARs together take at most `maxBytes`. Leftovers are
 * cleaned first whatever the size: placeholders of an interrupted export, narinfos whose NAR is gone (and what
 * references them), NARs no narinfo uses.
 */
export async function pruneBinaryCache(dir: string, maxBytes: number): Promise<PruneResult> {
  const all = await readNarinfos(dir);
  const narBytes = await narSizes(dir);
  const live = new Map(all.map((n) => [n.info.storePath, n]));
  const narUsers = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  const narinfoBytes = new Map<string, number>();
  let bytes = 0;
  for (const n of all) {
    const size = (await stat(n.file).catch(() => ({ size: 0 }))).size;
    narinfoBytes.set(n.file, size);
    bytes += size;
    narUsers.set(n.info.url, (narUsers.get(n.info.url) ?? 0) + 1);
    for (const r of n.info.references) {
      if (r === n.info.storePath) continue;
      const list = dependents.get(r) ?? [];
      list.push(n.info.storePath);
      dependents.set(r, list);
    }
  }
  // NARs no narinfo uses (left by an interrupted prune or export) go first: nothing can reach them.
  for (const [url, size] of narBytes) {
    if (narUsers.has(url)) bytes += size;
    else await removeNar(dir, url);
  }
  const bytesBefore = bytes + [...narBytes].reduce((sum, [url, size]) => sum + (narUsers.has(url) ? 0 : size), 0);

  const removed: string[] = [];
  const drop = async (storePath: string) => {
    const queue = [storePath];
    while (queue.length > 0) {
      const n = live.get(queue.pop() as string);
      if (!n) continue;
      live.delete(n.info.storePath);
      // The narinfo first: an interruption between the two unlinks leaves an orphan NAR, never a dangling narinfo.
      await unlink(n.file).catch(() => undefined);
      bytes -= narinfoBytes.get(n.file) ?? 0;
      const users = (narUsers.get(n.info.url) ?? 1) - 1;
      narUsers.set(n.info.url, users);
      if (users === 0 && narBytes.has(n.info.url)) {
        await removeNar(dir, n.info.url);
        bytes -= narBytes.get(n.info.url) ?? 0;
      }
      // A placeholder stands for a path that was never in this cache: what references it is as usable as before.
      if (isPlaceholder(n.info)) continue;
      removed.push(n.info.storePath);
      queue.push(...(dependents.get(n.info.storePath) ?? []));
    }
  };

  for (const n of all) if (isPlaceholder(n.info) || !narBytes.has(n.info.url)) await drop(n.info.storePath);
  for (const n of [...all].sort((x, y) => x.mtimeMs - y.mtimeMs || x.file.localeCompare(y.file))) {
    if (bytes <= maxBytes) break;
    await drop(n.info.storePath);
  }
  return { removed: removed.sort(), bytesBefore, bytesAfter: bytes };
}

/** Sizes of the files under nar/, keyed by their URL relative to the cache (`nar/<name>`). */
async function narSizes(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let names: string[] = [];
  try {
    names = await readdir(path.join(dir, 'nar'));
  } catch {
    return out;
  }
  for (const name of names) {
    const st = await stat(path.join(dir, 'nar', name)).catch(() => undefined);
    if (st?.isFile()) out.set(`nar/${name}`, st.size);
  }
  return out;
}

/** Only files listed under nar/ by narSizes: a narinfo's URL is data and must never steer an unlink elsewhere. */
async function removeNar(dir: string, url: string): Promise<void> {
  await unlink(path.join(dir, url)).catch(() => undefined);
}
