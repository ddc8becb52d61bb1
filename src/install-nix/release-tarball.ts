/**
 * Extracts the official Nix release tarball (DESIGN.md, "Release tarball") into a staging directory, refusing
 * anything that could write outside it or smuggle in more than store paths. The layout we accept:
 *
 *   nix-<ver>-<system>/install          captured (the installer; we read the nix and cacert paths from it)
 *   nix-<ver>-<system>/.reginfo         captured (input of `nix-store --load-db`)
 *   nix-<ver>-<system>/<other file>     ignored (install-multi-user and friends)
 *   nix-<ver>-<system>/store/<hash>-<name>/...   written to <stagingDir>/store/<hash>-<name>/...
 *
 * Speed matters (it is benchmarked against `xz -dc | tar -x`): small files are gathered (they are at most SMALL
 * bytes) and written by a bounded pool of concurrent tasks so the thread pool stays busy while we parse; large
 * files stream through writev batches; each directory is created once, memoised as a promise its children await.
 */
import { constants, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { checkSymlink, splitEntryName } from '../archive/safe-path.js';
import { readTar, type TarEntry } from '../archive/tar.js';

/** The archive tried to leave its lane. Deliberately not an InputError: no input of the user's can fix it. */
export class UnsafeArchiveError extends Error {
  override readonly name = 'UnsafeArchiveError';
  constructor(
    readonly entry: string,
    why: string,
  ) {
    super(`Unsafe entry '${entry}' in the Nix release tarball: ${why}`);
  }
}

export interface ReleaseContents {
  /** The single top-level directory, e.g. nix-2.34.8-x86_64-linux. */
  top: string;
  version?: string;
  system?: string;
  /** Basenames (<hash>-<name>) of the extracted store paths, sorted. */
  storePaths: string[];
  reginfo: string;
  installScript: string;
  /** Absolute /nix/store path of Nix itself. */
  nixStorePath?: string;
  /** Absolute /nix/store path of the CA bundle package. */
  cacertStorePath?: string;
}

export interface ExtractOptions {
  /** Largest `.reginfo` or `install` we hold in memory (default 16 MiB). */
  maxCaptureBytes?: number;
  /** Concurrent file-system tasks (default 16: enough to keep libuv's threads busy). */
  concurrency?: number;
}

const STORE = '/nix/store';
const STORE_NAME = /^[0123456789abcdfghijklmnpqrsvwxyz]{32}-[A-Za-z0-9+\-._?=]+$/;
const TOP_NAME = /^nix-([0-9][^-]*)-([^-]+-[^-]+)$/;
const SMALL = 1 << 20;
const BATCH = 1 << 20;
// O_EXCL refuses anything already there, symlinks included, so a file entry can never write through a link.
const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

type Source = AsyncIterable<Buffer> | NodeJS.ReadableStream;
type Kind = 'directory' | 'file' | 'symlink';

export async function extractRelease(
  tarStream: Source,
  stagingDir: string,
  opts: ExtractOptions = {},
): Promise<ReleaseContents> {
  const cap = opts.maxCaptureBytes ?? 16 * 1024 * 1024;
  const storeDir = join(stagingDir, 'store');
  await fsp.mkdir(stagingDir, { recursive: true });
  // A fresh store/ means every path under it is ours, so the symlink bookkeeping below sees everything.
  await fsp.mkdir(storeDir).catch((e: NodeJS.ErrnoException) => {
    throw e.code === 'EEXIST' ? new Error(`${storeDir} already exists; extract into a fresh staging directory`) : e;
  });
  const x = new Extractor(storeDir, opts.concurrency ?? 16);
  let top: string | undefined;
  let reginfo: string | undefined;
  let installScript: string | undefined;
  try {
    for await (const e of readTar(tarStream)) {
      const name = splitEntryName(e.path);
      if (!name.ok) throw new UnsafeArchiveError(e.path, name.reason);
      const parts = name.parts;
      if (parts.length === 0 && e.type === 'directory') continue; // `./` from `tar -C dir -cf - .`
      top ??= parts[0];
      if (parts[0] !== top) throw new UnsafeArchiveError(e.path, `a second top-level entry (the first was '${top}')`);
      if (e.type === 'other')
        throw new UnsafeArchiveError(e.path, `unsupported type '${e.typeflag}' (device, fifo...)`);
      const [, second, storePath] = parts;
      if (second === undefined) {
        if (e.type !== 'directory') throw new UnsafeArchiveError(e.path, 'the top level must be one directory');
      } else if (second !== 'store' && parts.length === 2) {
        if (e.type !== 'file') throw new UnsafeArchiveError(e.path, `only regular files may sit next to store/`);
        if (second === '.reginfo') reginfo = await capture(e, cap);
        else if (second === 'install') installScript = await capture(e, cap);
      } else if (second !== 'store') {
        throw new UnsafeArchiveError(e.path, `outside ${top}/store/`);
      } else if (storePath === undefined) {
        if (e.type !== 'directory') throw new UnsafeArchiveError(e.path, 'store must be a directory');
      } else if (!STORE_NAME.test(storePath)) {
        throw new UnsafeArchiveError(e.path, `'${storePath}' is not a store path name (<32 nix-base32 chars>-<name>)`);
      } else {
        await x.add(e, parts.slice(2), top as string);
      }
    }
    await x.finish();
    if (top === undefined) throw new Error('The Nix release tarball is empty.');
    if (reginfo === undefined) throw new Error(`The Nix release tarball has no ${top}/.reginfo.`);
    if (installScript === undefined) throw new Error(`The Nix release tarball has no ${top}/install.`);
    const storePaths = [...x.storePaths].sort();
    for (const p of reginfoPaths(reginfo)) {
      if (posix.dirname(p) !== STORE || !x.storePaths.has(posix.basename(p))) {
        throw new Error(`${top}/.reginfo registers ${p}, which the release tarball does not contain.`);
      }
    }
    const m = TOP_NAME.exec(top);
    const version = m?.[1];
    const scriptPath = (key: string, fallback: (name: string) => boolean): string | undefined => {
      const line = new RegExp(`^${key}="(${STORE}/[^"/]+)"$`, 'm').exec(installScript as string)?.[1];
      if (line !== undefined && !x.storePaths.has(posix.basename(line))) {
        throw new Error(`${top}/install names ${key}=${line}, which the release tarball does not contain.`);
      }
      const guesses = storePaths.filter((b) => fallback(b.slice(33)));
      return line ?? (guesses.length === 1 ? `${STORE}/${guesses[0]}` : undefined);
    };
    return {
      top,
      version,
      system: m?.[2],
      storePaths,
      reginfo,
      installScript,
      nixStorePath: scriptPath('nix', (n) => version !== undefined && n === `nix-${version}`),
      cacertStorePath: scriptPath('cacert', (n) => n.startsWith('nss-cacert-')),
    };
  } catch (err) {
    await x.settle();
    await fsp.rm(storeDir, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

async function capture(e: TarEntry, cap: number): Promise<string> {
  if (e.size > cap) throw new Error(`${e.path} in the Nix release tarball is ${e.size} bytes; the limit is ${cap}.`);
  const parts: Buffer[] = [];
  for await (const c of e.body) parts.push(c);
  return Buffer.concat(parts).toString('utf8');
}

/** `nix-store --dump-db` blocks: path, narHash, narSize, deriver (may be empty), reference count, references. */
export function reginfoPaths(text: string): string[] {
  const lines = text.split('\n');
  const paths: string[] = [];
  let i = 0;
  for (; i < lines.length && lines[i] !== '';) {
    const n = Number(lines[i + 4]);
    if (!/^\d+$/.test(lines[i + 4] ?? '') || i + 5 + n > lines.length) {
      throw new Error(`Malformed .reginfo in the Nix release tarball near line ${i + 1}.`);
    }
    paths.push(lines[i] as string);
    i += 5 + n;
  }
  if (lines.slice(i).some((l) => l !== ''))
    throw new Error(`Malformed .reginfo: a blank line inside, at line ${i + 1}.`);
  return paths;
}

/** Writes entries below `root` (= <stagingDir>/store) concurrently while remembering what each path is. */
class Extractor {
  readonly storePaths = new Set<string>();
  private readonly kinds = new Map<string, Kind>();
  private readonly links = new Map<string, { target: string; entry: string }>();
  private readonly dirs = new Map<string, Promise<void>>();
  private readonly written = new Map<string, Promise<void>>();
  private readonly dirEntries: { rel: string; mode: number; mtime: number; chmod: boolean }[] = [];
  private readonly running = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;
  // Read once: modes must survive the umask (a 077 umask would hide the store from the daemon's build users).
  private readonly umask = process.umask();

  constructor(
    private readonly root: string,
    private readonly limit: number,
  ) {}

  async add(e: TarEntry, parts: string[], top: string): Promise<void> {
    const rel = parts.join('/');
    const existing = this.kinds.get(rel);
    if (existing !== undefined && !(existing === 'directory' && e.type === 'directory')) {
      throw new UnsafeArchiveError(e.path, 'a second entry for the same path');
    }
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      const kind = this.kinds.get(parent);
      if (kind === undefined) this.kinds.set(parent, 'directory');
      else if (kind !== 'directory') throw new UnsafeArchiveError(e.path, `its parent ${parent} is a ${kind}`);
    }
    this.storePaths.add(parts[0] as string);
    const abs = join(this.root, rel);
    const mtime = e.mtime;
    if (e.type === 'directory') {
      const chmod = this.dirs.has(rel); // created earlier as some entry's parent, with a default mode
      this.kinds.set(rel, 'directory');
      void this.mkdir(rel, e.mode);
      this.dirEntries.push({ rel, mode: e.mode, mtime, chmod });
    } else if (e.type === 'symlink') {
      const readlink = (p: string) => this.links.get(p.slice(STORE.length + 1))?.target;
      const check = checkSymlink(`${STORE}/${rel}`, e.linkname, [STORE], readlink);
      if (check.escapes)
        throw new UnsafeArchiveError(e.path, `symlink to '${e.linkname}' leaves ${STORE}: ${check.reason}`);
      this.kinds.set(rel, 'symlink');
      this.links.set(rel, { target: e.linkname, entry: e.path });
      await this.spawn(async () => {
        await this.parentOf(rel);
        await fsp.symlink(e.linkname, abs);
        await fsp.lutimes(abs, mtime, mtime);
      });
    } else if (e.type === 'hardlink') {
      const t = splitEntryName(e.linkname);
      const target = t.ok && t.parts[0] === top && t.parts[1] === 'store' ? t.parts.slice(2).join('/') : undefined;
      const done = target === undefined ? undefined : this.written.get(target);
      if (target === undefined || done === undefined) {
        throw new UnsafeArchiveError(e.path, `hard link to '${e.linkname}', not a store file extracted before it`);
      }
      this.kinds.set(rel, 'file');
      this.written.set(rel, done);
      await this.spawn(async () => {
        await Promise.all([done, this.parentOf(rel)]);
        await fsp.link(join(this.root, target), abs);
      });
    } else {
      this.kinds.set(rel, 'file');
      const mode = this.fileMode(e.mode);
      if (e.size <= SMALL) {
        const chunks: Buffer[] = [];
        for await (const c of e.body) chunks.push(c);
        const task = await this.spawn(() => this.writeFile(rel, abs, mode, mtime, (fh) => writeAll(fh, chunks)));
        this.written.set(rel, task.done);
      } else {
        // Streamed in place (at most two batches in memory) while the pool finishes earlier small files.
        await this.writeFile(rel, abs, mode, mtime, (fh) => streamTo(fh, e.body));
        this.written.set(rel, Promise.resolve());
      }
    }
  }

  /** Waits for every task, restores directory times and modes, then re-checks symlinks against the final tree. */
  async finish(): Promise<void> {
    await this.settle();
    for (const d of this.dirEntries.reverse()) {
      await this.spawn(async () => {
        const abs = join(this.root, d.rel);
        if (d.chmod) await fsp.chmod(abs, this.dirMode(d.mode));
        await fsp.utimes(abs, d.mtime, d.mtime);
      });
    }
    await this.settle();
    if (this.failure) throw this.failure.error;
    // A link checked early can escape through a symlink extracted after it (a -> up/../.., then up -> ../..).
    const readlink = (p: string) => this.links.get(p.slice(STORE.length + 1))?.target;
    for (const [rel, { target, entry }] of this.links) {
      const check = checkSymlink(`${STORE}/${rel}`, target, [STORE], readlink);
      if (check.escapes) throw new UnsafeArchiveError(entry, `symlink to '${target}' leaves ${STORE}: ${check.reason}`);
    }
  }

  /** Lets running tasks end (their errors are recorded, not thrown) so a failed extraction can be cleaned up. */
  async settle(): Promise<void> {
    while (this.running.size > 0) await Promise.all(this.running);
  }

  /**
   * Starts `task` once fewer than `limit` run. Resolves when it has started, with `done`, a promise of its end that
   * never rejects (the first error is kept and thrown at the next spawn or at finish). Wrapped in an object because
   * an async function cannot resolve to a promise without waiting for it.
   */
  private async spawn(task: () => Promise<void>): Promise<{ done: Promise<void> }> {
    while (this.running.size >= this.limit) await Promise.race(this.running);
    if (this.failure) throw this.failure.error;
    const done: Promise<void> = task()
      .catch((error: unknown) => void (this.failure ??= { error }))
      .finally(() => this.running.delete(done));
    this.running.add(done);
    return { done };
  }

  private async writeFile(
    rel: string,
    abs: string,
    mode: number,
    mtime: number,
    fill: (fh: FileHandle) => Promise<void>,
  ): Promise<void> {
    await this.parentOf(rel);
    const fh = await fsp.open(abs, CREATE, mode);
    try {
      await fill(fh);
      if (mode & this.umask) await fh.chmod(mode);
      await fh.utimes(mtime, mtime);
    } finally {
      await fh.close();
    }
  }

  private parentOf(rel: string): Promise<void> {
    const slash = rel.lastIndexOf('/');
    return slash < 0 ? Promise.resolve() : this.mkdir(rel.slice(0, slash));
  }

  /** Creates a directory once (after its parent); directories stay owner-writable so staging can be moved and removed. */
  private mkdir(rel: string, mode = 0o755): Promise<void> {
    let p = this.dirs.get(rel);
    if (p === undefined) {
      const abs = join(this.root, rel);
      const m = this.dirMode(mode);
      p = this.parentOf(rel).then(async () => {
        await fsp.mkdir(abs, m);
        if (m & this.umask) await fsp.chmod(abs, m);
      });
      p.catch(() => undefined); // observed by the tasks that await it
      this.dirs.set(rel, p);
    }
    return p;
  }

  private dirMode(mode: number): number {
    return (mode & 0o777) | 0o700;
  }

  /** Permission bits only: setuid/setgid have no place in the store. */
  private fileMode(mode: number): number {
    return mode & 0o777;
  }
}

async function writeAll(fh: FileHandle, bufs: Buffer[]): Promise<void> {
  let list = bufs.filter((b) => b.length > 0);
  while (list.length > 0) {
    const want = list.reduce((n, b) => n + b.length, 0);
    const { bytesWritten } = list.length === 1 ? await fh.write(list[0] as Buffer) : await fh.writev(list);
    if (bytesWritten === want) return;
    // A short write (rare on regular files): continue after what was taken.
    let skip = bytesWritten;
    const rest: Buffer[] = [];
    for (const b of list) {
      if (skip >= b.length) skip -= b.length;
      else (rest.push(skip > 0 ? b.subarray(skip) : b), (skip = 0));
    }
    list = rest;
  }
}

/** Writes a large body in BATCH-sized writev calls, overlapping each write with reading the next batch. */
async function streamTo(fh: FileHandle, body: AsyncIterable<Buffer>): Promise<void> {
  let batch: Buffer[] = [];
  let size = 0;
  let inflight: Promise<void> = Promise.resolve();
  const flush = async () => {
    await inflight;
    inflight = writeAll(fh, batch);
    inflight.catch(() => undefined); // awaited at the next flush or at the end
    batch = [];
    size = 0;
  };
  for await (const c of body) {
    batch.push(c);
    size += c.length;
    if (size >= BATCH) await flush();
  }
  await flush();
  await inflight;
}
