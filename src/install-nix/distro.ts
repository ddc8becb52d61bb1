/** The distro source: the distribution's own Nix package, for runners that reach only a distro mirror. */
import { existsSync } from 'node:fs';
import { InputError } from '../errors.js';
import type { Platform } from '../platform/types.js';
import { findExistingNix, type ExistingNix } from './existing.js';
import type { Privilege } from './privilege.js';

export async function installFromDistro(p: Platform, priv: Privilege): Promise<ExistingNix> {
  if (!existsSync('/usr/bin/apt-get'))
    throw new InputError("source: distro supports apt (Debian, Ubuntu) only; use 'source: tarball' on this runner.");
  // Fresh runners often have unattended-upgrades holding the dpkg lock for a while: wait for it, do not fail.
  const args = ['DEBIAN_FRONTEND=noninteractive', 'apt-get', '-o', 'DPkg::Lock::Timeout=180', 'install', '-y'];
  args.push('--no-install-recommends', 'nix-bin');
  await priv.run(p, 'source: distro', 'env', args, { stream: 'debug' });
  const nix = await findExistingNix(p);
  if (!nix) throw new Error('apt-get installed nix-bin, but no nix binary was found afterwards.');
  p.log('warning', `Installed the distribution's Nix ${nix.version}; it may be older than current releases.`);
  return nix;
}
