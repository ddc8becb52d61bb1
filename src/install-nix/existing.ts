/**
 * Finds a Nix that is already installed. PATH alone is not enough: a fresh job's PATH often lacks the profile
 * (self-hosted runners, GitLab images with Nix), so the usual profile locations are checked first.
 */
import { accessSync, constants, existsSync, realpathSync } from 'node:fs';
import * as path from 'node:path';
import { run } from '../exec.js';
import { formatVersion, parseNixVersion } from '../nix/version.js';
import type { Platform } from '../platform/types.js';

export interface ExistingNix {
  /** The nix binary as found (a profile path, not resolved, so it survives upgrades). */
  nix: string;
  binDir: string;
  version: string;
  /** A daemon socket exists: the installation is multi-user. */
  daemon: boolean;
}

export const DEFAULT_PROFILE = '/nix/var/nix/profiles/default';
export const DAEMON_SOCKET = '/nix/var/nix/daemon-socket/socket';

function candidates(p: Platform): string[] {
  const home = p.env('HOME');
  const user = p.env('USER');
  const list = [
    `${DEFAULT_PROFILE}/bin/nix`,
    home ? `${home}/.nix-profile/bin/nix` : '',
    home ? `${home}/.local/state/nix/profile/bin/nix` : '',
    user ? `/nix/var/nix/profiles/per-user/${user}/profile/bin/nix` : '',
    '/run/current-system/sw/bin/nix',
    '/usr/local/bin/nix',
    '/usr/bin/nix',
  ];
  for (const dir of (p.env('PATH') ?? '').split(':')) if (dir) list.push(path.join(dir, 'nix'));
  return list.filter((c) => c !== '');
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The Nix version from `nix --version` (for Determinate Nix, the Nix release it is based on, not its own). */
export function parseVersionLine(out: string): string | undefined {
  try {
    return formatVersion(parseNixVersion(out));
  } catch {
    return undefined;
  }
}

export async function findExistingNix(p: Platform): Promise<ExistingNix | undefined> {
  const seen = new Set<string>();
  for (const nix of candidates(p)) {
    if (!executable(nix)) continue;
    let real: string;
    try {
      real = realpathSync(nix);
    } catch {
      continue;
    }
    if (seen.has(real)) continue;
    seen.add(real);
    const res = await run(p, nix, ['--version'], { allowFailure: true }).catch(() => undefined);
    const version = res && res.exitCode === 0 ? parseVersionLine(res.stdout) : undefined;
    if (!version) {
      p.log('warning', `Found ${nix} but '${nix} --version' failed; skipping it.`);
      continue;
    }
    return { nix, binDir: path.dirname(nix), version, daemon: existsSync(DAEMON_SOCKET) };
  }
  return undefined;
}
