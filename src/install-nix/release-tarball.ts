/**
 * Extracts the official Nix release tarball (DESIGN.md, "Release tarball") into a staging directory, refusing
 * anything that could write outside it or smuggle in more than store paths. The layout we accept:
 *
 *   nix-<ver>-<system>/install          captured (the installer; we read the nix and cacert paths from it)
 *   nix-<ver>-<system>/.reginfo         captured (input of `nix-store --load-db`)
 *   nix-<ver>-<system>/<other file>     ignored (install-multi-user and friends)
 *   nix-<ver>-<system>/store/<hash>-<name>/...   written to <stagingDir>/store/<hash>-<name>/...
 *
 * Speed matters (it is benchmarked against `xz -dc | tar -x`): bodies are written in writev batches of up to BATCH
 * bytes (one call for a typical small file), each directory is created once, and the calls are synchronous (see
 * Extractor for why).
 */
import * as fs from 'node:fs';
import { constants, promises as fsp } from 'node:fs';
import { join, posix } from 'node:path';
import { checkSymlink, splitEntryName } from '../archive/safe-path.js';
import { readTar, type TarEntry, type TarSource } from '../archive/tar.js';

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
  /** The upstream installer; '' for tarball variants without one (e.g. nix-installer's), which we do not need. */
  installScript: string;
  /** Absolute /nix/store path of Nix itself. */
  nixStorePath?: string;
  /** Absolute /nix/store path of the CA bundle package. */
  cacertStorePath?: string;
}

export interface ExtractOptions {
  /** Largest `.reginfo` or `install` we hold in memory (default 16 MiB). */
  maxCaptureBytes?: number;
}

const STORE = '/nix/store';
const STORE_NAME = /^[0123456789abcdfghijklmnpqrsvwxyz]{32}-[A-Za-z0-9+\-._?=]+$/;
const TOP_NAME = /^nix-([0-9][^-]*)-([^-]+-[^-]+)$/;
const BATCH = 1 << 20;
// O_EXCL refuses anything already there, symlinks included, so a file entry can never write through a link.
const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

type Kind = 'directory' | 'file' | 'symlink';

export async function extractRelease(
  tarStream: TarSource,
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
  const x = new Extractor(storeDir);
  let top: string | undefined;
  let reginfo: string | undefined;
  let installScript = '';
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
    x.finish();
    if (top === undefined) throw new Error('The Nix release tarball is empty.');
    if (reginfo === undefined) throw new Error(`The Nix release tarball has no ${top}/.reginfo.`);
    const storePaths = [...x.storePaths].sort();
    for (const p of reginfoPaths(reginfo)) {
      if (posix.dirname(p) !== STORE || !x.storePaths.has(posix.basename(p))) {
        throw new Error(`${top}/.reginfo registers ${p}, which the release tarball does not contain.`);
      }
    }
    const m = TOP_NAME.exec(top);
    const version = m?.[1];
    const scriptPath = (key: string, fallback: (name: string) => boolean): string | undefined => {
      const line = new RegExp(`^${key}="(${STORE}/[^"/]+)"$`, 'm').exec(installScript)?.[1];
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
  while (i < lines.length && lines[i] !== '') {
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

/**
 * Writes entries below `root` (= <stagingDir>/store) while remembering what each path is. The file-system calls are
 * synchronous on purpose, as in tar: a call into the page cache takes microseconds, a promise round trip through
 * libuv's thread pool tens of them, and the producer (xz) keeps decompressing into the pipe meanwhile. On tmpfs, a
 * 100 MB tree of 7000 entries took 0.5 s with a pool of 16 concurrent async tasks and 0.25 s like this.
 */
class Extractor {
  readonly storePaths = new Set<string>();
  private readonly kinds = new Map<string, Kind>();
  private readonly links = new Map<string, { target: string; entry: string }>();
  private readonly made = new Set<string>();
  private readonly dirEntries: { rel: string; mode: number; mtime: number; chmod: boolean }[] = [];
  // Read once: modes must survive the umask (a 077 umask would hide the store from the daemon's build users).
  private readonly umask = process.umask();

  constructor(private readonly root: string) {}

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
      this.kinds.set(rel, 'directory');
      this.dirEntries.push({ rel, mode: e.mode, mtime, chmod: this.made.has(rel) });
      this.mkdir(rel, e.mode);
    } else if (e.type === 'symlink') {
      const check = checkSymlink(`${STORE}/${rel}`, e.linkname, [STORE], this.readlink);
      if (check.escapes)
        throw new UnsafeArchiveError(e.path, `symlink to '${e.linkname}' leaves ${STORE}: ${check.reason}`);
      this.kinds.set(rel, 'symlink');
      this.links.set(rel, { target: e.linkname, entry: e.path });
      this.parentOf(rel);
      fs.symlinkSync(e.linkname, abs);
      fs.lutimesSync(abs, mtime, mtime);
    } else if (e.type === 'hardlink') {
      const t = splitEntryName(e.linkname);
      const target = t.ok && t.parts[0] === top && t.parts[1] === 'store' ? t.parts.slice(2).join('/') : undefined;
      if (target === undefined || this.kinds.get(target) !== 'file') {
        throw new UnsafeArchiveError(e.path, `hard link to '${e.linkname}', not a store file extracted before it`);
      }
      this.kinds.set(rel, 'file');
      this.parentOf(rel);
      fs.linkSync(join(this.root, target), abs);
    } else {
      this.kinds.set(rel, 'file');
      this.parentOf(rel);
      const mode = e.mode & 0o777; // permission bits only: setuid/setgid have no place in the store
      const fd = fs.openSync(abs, CREATE, mode);
      try {
        // Gather up to BATCH bytes per write: one syscall for a small file, few for a large one.
        let batch: Buffer[] = [];
        let size = 0;
        for await (const c of e.body) {
          batch.push(c);
          size += c.length;
          if (size < BATCH) continue;
          writeAll(fd, batch);
          batch = [];
          size = 0;
        }
        writeAll(fd, batch);
        if (mode & this.umask) fs.fchmodSync(fd, mode);
        fs.futimesSync(fd, mtime, mtime);
      } finally {
        fs.closeSync(fd);
      }
    }
  }

  /** Restores directory times and modes, then re-checks symlinks against the final tree. */
  finish(): void {
    for (const d of this.dirEntries) {
      const abs = join(this.root, d.rel);
      if (d.chmod) fs.chmodSync(abs, dirMode(d.mode));
      fs.utimesSync(abs, d.mtime, d.mtime);
    }
    // A link checked early can escape through a symlink extracted after it (a -> up/../.., then up -> ../..).
    for (const [rel, { target, entry }] of this.links) {
      const check = checkSymlink(`${STORE}/${rel}`, target, [STORE], this.readlink);
      if (check.escapes) throw new UnsafeArchiveError(entry, `symlink to '${target}' leaves ${STORE}: ${check.reason}`);
    }
  }

  private readonly readlink = (p: string) => this.links.get(p.slice(STORE.length + 1))?.target;

  private parentOf(rel: string): void {
    const slash = rel.lastIndexOf('/');
    if (slash >= 0) this.mkdir(rel.slice(0, slash));
  }

  /** Creates a directory once, parents first; it stays owner-writable so staging can be moved and removed. */
  private mkdir(rel: string, mode = 0o755): void {
    if (this.made.has(rel)) return;
    this.parentOf(rel);
    const abs = join(this.root, rel);
    fs.mkdirSync(abs, dirMode(mode));
    if (dirMode(mode) & this.umask) fs.chmodSync(abs, dirMode(mode));
    this.made.add(rel);
  }
}

const dirMode = (mode: number): number => (mode & 0o777) | 0o700;

function writeAll(fd: number, bufs: Buffer[]): void {
  const list = bufs.filter((b) => b.length > 0);
  while (list.length > 0) {
    let done = list.length === 1 ? fs.writeSync(fd, list[0] as Buffer) : fs.writevSync(fd, list);
    // A short write (rare on regular files): continue after what was taken.
    while (list.length > 0 && done >= (list[0] as Buffer).length) done -= (list.shift() as Buffer).length;
    if (done > 0) list[0] = (list[0] as Buffer).subarray(done);
  }
}
