/**
 * Writing store paths straight into a local Nix store, the way Nix's own installer does with its release tarball:
 * files in place with Nix's canonical metadata, then ONE `nix-store --load-db` registers them all. That is only
 * possible when this process may write the store and its database itself: a local store (`auto` or `local`, or a
 * chroot store `store = DIR` / `local?root=DIR`) owned by us or with us as root. A daemon store (multi-user install
 * used by a non-root runner user), a remote store or a relocated store directory gets the binary-cache import
 * through Nix instead (binary-cache.ts), which the daemon accepts from trusted users.
 */
import { accessSync, chmodSync, closeSync, constants, fchmodSync, futimesSync, lstatSync, mkdirSync } from 'node:fs';
import { lutimesSync, openSync, readdirSync, rmSync, symlinkSync, utimesSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import type { NixCommand } from '../nix/command.js';
import { atLeast } from '../nix/version.js';
import type { NarSink } from './nar.js';

export const STORE_DIR = '/nix/store';

export interface LocalStore {
  /** Where the store's files are on disk (`<root>/nix/store`); store paths still say /nix/store. */
  realStoreDir: string;
}

const settings = new WeakMap<NixCommand, Promise<string>>();

/**
 * The `store` setting as Nix resolved it (nix.conf, NIX_CONFIG, NIX_REMOTE). Asked once per NixCommand (whose
 * environment fixes it): the restore as root and the restore itself both want it.
 */
export function storeSetting(nix: NixCommand): Promise<string> {
  let s = settings.get(nix);
  if (!s) {
    s = readStoreSetting(nix);
    s.catch(() => settings.delete(nix)); // a failure is not remembered
    settings.set(nix, s);
  }
  return s;
}

async function readStoreSetting(nix: NixCommand): Promise<string> {
  const args = atLeast(nix.version, '2.20.0') ? ['config', 'show', '--json'] : ['show-config', '--json'];
  const conf = JSON.parse((await nix.run(args)).stdout) as Record<string, { value?: unknown } | undefined>;
  const value = conf.store?.value;
  return typeof value === 'string' ? value : 'auto';
}

/**
 * The local store this process can write itself, or undefined. `env` is the job's environment: a relocated store
 * (NIX_STORE_DIR) or state directory (NIX_STATE_DIR) is left to Nix.
 */
export function localStoreFor(
  store: string,
  env: (name: string) => string | undefined,
  uid = process.getuid?.(),
): LocalStore | undefined {
  if (env('NIX_STORE_DIR') || env('NIX_STATE_DIR')) return undefined;
  let root: string;
  if (store === '' || store === 'auto' || store === 'local') root = '/';
  else if (store.startsWith('/')) root = store;
  else if (store.startsWith('local?')) {
    const params = new URLSearchParams(store.slice('local?'.length));
    const keys = [...params.keys()];
    if (keys.length !== 1 || keys[0] !== 'root' || !path.isAbsolute(params.get('root') ?? '')) return undefined;
    root = params.get('root') as string;
  } else return undefined;
  const realStoreDir = path.join(root, 'nix/store');
  if (uid !== 0) {
    // Not root: only a store (and database) we own, as in a single-user install; else `auto` means the daemon.
    try {
      accessSync(realStoreDir, constants.W_OK);
      accessSync(path.join(root, 'nix/var/nix/db'), constants.W_OK);
    } catch {
      return undefined;
    }
  }
  return { realStoreDir };
}

const SLASH = Buffer.from('/');
let processUmask: number | undefined;

/** Removes a tree we may have made read-only (Nix's 0555 directories), as the store's owner. */
export function removeTree(p: string): void {
  const fix = (dir: string) => {
    chmodSync(dir, 0o755);
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) fix(path.join(dir, e.name));
  };
  try {
    if (lstatSync(p).isDirectory()) fix(p);
  } catch {
    return; // nothing there
  }
  rmSync(p, { recursive: true, force: true });
}

/**
 * Writes one NAR into `target` with the metadata Nix gives store paths (canonicalisePathMetaData): files 0444, or
 * 0555 when executable, directories 0555, every modification time 1 (symlinks too). Directories are made read-only
 * after their last entry, so a non-root store owner can still fill them. `close` releases an open file after an
 * error.
 */
export class StoreSink implements NarSink {
  private open: number | undefined;
  private readonly root: Buffer;
  /** Whether open() already gives files their exact mode; if the umask masks some of it, fchmod sets it. */
  private readonly exactModes: boolean;

  constructor(target: string, umask = (processUmask ??= process.umask())) {
    this.root = Buffer.from(target);
    this.exactModes = (umask & 0o555) === 0;
  }

  private at(rel: readonly Buffer[]): Buffer {
    if (rel.length === 0) return this.root;
    const parts: Buffer[] = [this.root];
    for (const name of rel) parts.push(SLASH, name);
    return Buffer.concat(parts);
  }

  directory(rel: readonly Buffer[]): void {
    mkdirSync(this.at(rel), 0o755);
  }

  directoryDone(rel: readonly Buffer[]): void {
    const p = this.at(rel);
    chmodSync(p, 0o555);
    utimesSync(p, 1, 1);
  }

  file(rel: readonly Buffer[], executable: boolean, _size: number) {
    const mode = executable ? 0o555 : 0o444;
    // 'wx': never follow or reuse something already there.
    const fd = openSync(this.at(rel), 'wx', mode);
    this.open = fd;
    return {
      write: (piece: Buffer) => {
        for (let at = 0; at < piece.length;) at += writeSync(fd, piece, at, piece.length - at);
      },
      done: () => {
        if (!this.exactModes) fchmodSync(fd, mode);
        futimesSync(fd, 1, 1);
        this.open = undefined;
        closeSync(fd);
      },
    };
  }

  symlink(rel: readonly Buffer[], target: Buffer): void {
    const p = this.at(rel);
    symlinkSync(target, p);
    lutimesSync(p, 1, 1);
  }

  close(): void {
    if (this.open !== undefined) closeSync(this.open);
    this.open = undefined;
  }
}

/** One path's registration as `nix-store --load-db` reads it (the format `--dump-db` and the installer's .reginfo use). */
export function reginfoRecord(r: {
  path: string;
  narHashHex: string;
  narSize: number;
  deriver?: string;
  references: readonly string[];
}): string {
  return [r.path, r.narHashHex, String(r.narSize), r.deriver ?? '', String(r.references.length), ...r.references]
    .map((l) => `${l}\n`)
    .join('');
}
