/**
 * Installs an unpacked release into /nix without the upstream script: store paths are extracted to a staging
 * directory on the same filesystem and renamed into /nix/store, then registered with `nix-store --load-db`, then the
 * default profile is created. Any failure rolls back what this run added, so there is never a half-installed Nix.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { run } from '../exec.js';
import { InputError } from '../errors.js';
import type { Platform } from '../platform/types.js';
import { DEFAULT_PROFILE } from './existing.js';
import type { Privilege } from './privilege.js';
import { extractRelease } from './release-tarball.js';

export const NIX_ROOT = '/nix';
export const STORE = '/nix/store';

/** An unpacked release: `dir/store/<paths>`, plus what is needed to register them. */
export interface UnpackedRelease {
  dir: string;
  storePaths: string[];
  reginfo: string;
  /** Basenames of the nix and cacert store paths. */
  nix: string;
  cacert?: string;
}

const META = 'flake-ci-release.json';

function base(p: string | undefined): string | undefined {
  return p ? path.basename(p) : undefined;
}

/** Prepares /nix so this user can write it; returns whether this run created it (and so may remove it). */
export async function prepareNixRoot(p: Platform, priv: Privilege): Promise<boolean> {
  if (existsSync(NIX_ROOT)) {
    try {
      await writeFile(path.join(NIX_ROOT, '.flake-ci-write-test'), '');
      await rm(path.join(NIX_ROOT, '.flake-ci-write-test'));
    } catch {
      throw new InputError(
        `${NIX_ROOT} exists but this user cannot write it. Use 'source: existing' to configure the installed Nix, or run as root.`,
      );
    }
    return false;
  }
  if (priv.isRoot) await mkdir(NIX_ROOT, { mode: 0o755 });
  else {
    await priv.run(p, `Creating ${NIX_ROOT}`, 'mkdir', ['-m', '0755', NIX_ROOT]);
    await priv.run(p, `Creating ${NIX_ROOT}`, 'chown', [`${priv.uid}:${priv.gid}`, NIX_ROOT]);
  }
  return true;
}

export function stagingDir(): Promise<string> {
  return mkdtemp(path.join(NIX_ROOT, '.flake-ci-staging-'));
}

/** Streams `xz -dc tarball` through the validating extractor into staging. */
export async function unpackTarball(p: Platform, tarball: string, staging: string): Promise<UnpackedRelease> {
  const xz = spawn('xz', ['-dc', '--', tarball], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  xz.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number>((resolve, reject) => {
    xz.on('error', (e) =>
      reject(
        (e as NodeJS.ErrnoException).code === 'ENOENT'
          ? new InputError("'xz' is not installed on this runner: install xz-utils (apt-get install xz-utils).")
          : e,
      ),
    );
    xz.on('close', (code) => resolve(code ?? 1));
  });
  let contents;
  try {
    contents = await extractRelease(xz.stdout, staging);
  } catch (e) {
    xz.kill();
    await exited.catch(() => undefined);
    throw e;
  }
  const code = await exited;
  if (code !== 0) throw new Error(`xz could not decompress ${tarball}: ${stderr.trim()}`);
  const nix = base(contents.nixStorePath);
  if (!nix || !contents.storePaths.includes(nix))
    throw new InputError(`${path.basename(tarball)} is not a Nix release tarball: no nix store path found in it.`);
  const release: UnpackedRelease = {
    dir: staging,
    storePaths: contents.storePaths,
    reginfo: contents.reginfo,
    nix,
    cacert: base(contents.cacertStorePath),
  };
  await writeRelease(release);
  p.log('debug', `Unpacked ${release.storePaths.length} store paths into ${staging}`);
  return release;
}

/** Saves what is needed to install again from this directory (the tool cache keeps it). */
async function writeRelease(r: UnpackedRelease): Promise<void> {
  await writeFile(path.join(r.dir, '.reginfo'), r.reginfo);
  await writeFile(path.join(r.dir, META), JSON.stringify({ storePaths: r.storePaths, nix: r.nix, cacert: r.cacert }));
}

export async function readRelease(dir: string): Promise<UnpackedRelease> {
  const meta = JSON.parse(await readFile(path.join(dir, META), 'utf8')) as Omit<UnpackedRelease, 'dir' | 'reginfo'>;
  return { ...meta, dir, reginfo: await readFile(path.join(dir, '.reginfo'), 'utf8') };
}

export interface InstalledRelease {
  nixStorePath: string;
  /** Store paths this run moved in (the others were already there). */
  added: string[];
}

/** Moves the staged paths into the store and registers them; rolls back on failure. */
export async function installRelease(p: Platform, r: UnpackedRelease, createdRoot: boolean): Promise<InstalledRelease> {
  const added: string[] = [];
  try {
    await mkdir(STORE, { recursive: true, mode: 0o755 });
    await mkdir(path.join(NIX_ROOT, 'var/nix/profiles'), { recursive: true, mode: 0o755 });
    for (const name of r.storePaths) {
      const dst = path.join(STORE, name);
      if (existsSync(dst)) continue;
      await rename(path.join(r.dir, 'store', name), dst);
      added.push(name);
    }
    // Store paths are immutable; make them read-only as Nix itself would. Registration does not read modes, so both
    // run at once.
    const nixBin = path.join(STORE, r.nix, 'bin');
    await Promise.all([
      added.length ? run(p, 'chmod', ['-R', 'a-w', ...added.map((n) => path.join(STORE, n))]) : undefined,
      run(p, path.join(nixBin, 'nix-store'), ['--load-db'], { input: r.reginfo }),
    ]);
    const pkgs = [r.nix, ...(r.cacert ? [r.cacert] : [])].map((n) => path.join(STORE, n));
    // The profile is built by Nix's builtin buildenv: no network, no build users, no sandbox needed for symlinks.
    await run(p, path.join(nixBin, 'nix-env'), [
      ...['--option', 'substituters', '', '--option', 'sandbox', 'false', '--option', 'build-users-group', ''],
      ...['--profile', DEFAULT_PROFILE, '--install', ...pkgs],
    ]);
    return { nixStorePath: path.join(STORE, r.nix), added };
  } catch (e) {
    await rollback(p, added, createdRoot);
    throw e;
  }
}

export async function rollback(p: Platform, added: string[], createdRoot: boolean): Promise<void> {
  try {
    const targets = createdRoot ? [NIX_ROOT] : added.map((n) => path.join(STORE, n));
    if (targets.length === 0) return;
    // Read-only directories block removal for non-root users.
    await run(p, 'chmod', ['-R', 'u+w', ...targets], { allowFailure: true });
    for (const t of targets) await rm(t, { recursive: true, force: true });
    p.log(
      'info',
      createdRoot
        ? `Removed ${NIX_ROOT} after the failed install.`
        : `Removed ${added.length} store paths added by the failed install.`,
    );
  } catch (e) {
    p.log('warning', `Rollback was incomplete: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export async function removeStaging(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true });
  } catch {
    // Read-only directories (a release copied from the tool cache keeps the store's modes) block removal.
    await chmod(dir, 0o755).catch(() => undefined);
    await run(undefined, 'chmod', ['-R', 'u+w', dir], { allowFailure: true }).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}
