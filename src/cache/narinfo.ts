/**
 * Reading the `.narinfo` files of a binary cache directory, and the placeholder narinfos `exportBinaryCache` writes
 * for references it does not export (see there for why).
 */
import { readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';

export interface Narinfo {
  /** Full store path. */
  storePath: string;
  /** NAR file, relative to the cache root (`nar/<filehash>.nar.zst`). */
  url: string;
  compression: string;
  fileSize?: number;
  narHash: string;
  narSize: number;
  /** Full store paths. */
  references: string[];
  deriver?: string;
  /** `keyName:base64`. */
  sigs: string[];
  ca?: string;
}

export interface NarinfoFile {
  /** Absolute path of the .narinfo file. */
  file: string;
  mtimeMs: number;
  info: Narinfo;
}

/** The URL placeholders carry, so leftovers of an interrupted export are recognised and never imported. */
export const PLACEHOLDER_URL = 'flake-ci-placeholder-not-in-this-cache';

export function parseNarinfo(text: string, where: string): Narinfo {
  const fields = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(': ');
    if (colon <= 0) continue;
    const name = line.slice(0, colon);
    fields.set(name, [...(fields.get(name) ?? []), line.slice(colon + 2).trim()]);
  }
  const one = (name: string) => fields.get(name)?.[0];
  const storePath = one('StorePath');
  const url = one('URL');
  const narHash = one('NarHash');
  const narSize = Number(one('NarSize'));
  if (!storePath?.startsWith('/') || !url || !narHash || !Number.isFinite(narSize)) {
    throw new Error(`${where} is not a valid narinfo (StorePath, URL, NarHash and NarSize are required).`);
  }
  const storeDir = path.posix.dirname(storePath);
  const full = (p: string) => (p.startsWith('/') ? p : `${storeDir}/${p}`);
  const info: Narinfo = {
    storePath,
    url,
    // Nix's default when the field is missing.
    compression: one('Compression') ?? 'bzip2',
    narHash,
    narSize,
    references: (one('References') ?? '').split(/\s+/).filter(Boolean).map(full),
    sigs: fields.get('Sig') ?? [],
  };
  const fileSize = one('FileSize');
  if (fileSize !== undefined && Number.isFinite(Number(fileSize))) info.fileSize = Number(fileSize);
  const deriver = one('Deriver');
  if (deriver && deriver !== 'unknown-deriver') info.deriver = full(deriver);
  const ca = one('CA');
  if (ca) info.ca = ca;
  return info;
}

/**
 * Every narinfo in `dir`, placeholders included (callers decide). Unreadable or malformed files are skipped: one bad
 * file must not make the whole cache unusable (a skipped path is never passed to Nix, nor what references it).
 */
export async function readNarinfos(dir: string): Promise<NarinfoFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const files = names.filter((n) => /^[0-9a-z]{32}\.narinfo$/.test(n)).sort();
  const out: NarinfoFile[] = [];
  // In batches: parallel enough for caches of thousands of paths, few enough open files at a time.
  for (let i = 0; i < files.length; i += 64) {
    const batch = await Promise.all(files.slice(i, i + 64).map((name) => readOne(path.join(dir, name))));
    for (const n of batch) if (n) out.push(n);
  }
  return out;
}

async function readOne(file: string): Promise<NarinfoFile | undefined> {
  try {
    const [text, st] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
    return { file, mtimeMs: st.mtimeMs, info: parseNarinfo(text, file) };
  } catch {
    return undefined; // Malformed or vanished: treated as absent.
  }
}

/**
 * A NAR location we are willing to touch: relative, inside the cache, no `..`. A narinfo is data from the cache (on
 * GitLab, from a shared cache archive), so its URL must never steer a read or unlink elsewhere.
 */
export function isSafeNarUrl(url: string): boolean {
  return /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(url) && !url.split('/').some((s) => s === '..' || s === '.');
}

export function isPlaceholder(info: Narinfo): boolean {
  return info.url === PLACEHOLDER_URL;
}

export function narinfoFileName(storePath: string): string {
  const base = path.posix.basename(storePath);
  return `${base.slice(0, 32)}.narinfo`;
}

/**
 * Writes a placeholder narinfo for each path that has no narinfo in `dir` yet; returns the files written. Nix only
 * parses them (to see the reference "exists"); their NAR is never read. The hash is a syntactically valid dummy.
 */
export async function writePlaceholders(dir: string, storePaths: Iterable<string>): Promise<string[]> {
  const written: string[] = [];
  for (const p of storePaths) {
    const file = path.join(dir, narinfoFileName(p));
    const text = `StorePath: ${p}\nURL: ${PLACEHOLDER_URL}\nCompression: none\nNarHash: sha256:${'0'.repeat(52)}\nNarSize: 1\n`;
    try {
      // 'wx': a real narinfo already there (incremental cache) is kept and is not ours to remove.
      await writeFile(file, text, { flag: 'wx' });
      written.push(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  return written;
}

export async function removeFiles(files: readonly string[]): Promise<void> {
  await Promise.all(files.map((f) => unlink(f).catch(() => undefined)));
}
