/**
 * Everything that differs between operating systems sits behind HostSupport, so macOS (the /nix volume on APFS) can
 * be added later as one more implementation. Today only Linux is supported; others fail clearly, not halfway.
 */
import { existsSync, readFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import type { RunnerContext } from '../platform/types.js';

export interface HostSupport {
  /** Nix system double, e.g. x86_64-linux. */
  system: string;
  /** Whether systemd manages services here (then the daemon is a systemd unit). */
  hasSystemd(): boolean;
  /** Throws an InputError when the host cannot take a Nix install (e.g. SELinux enforcing). */
  checkInstallable(): void;
}

const ARCHES: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };

class LinuxHost implements HostSupport {
  constructor(
    readonly system: string,
    private readonly selinuxEnforce = '/sys/fs/selinux/enforce',
  ) {}
  hasSystemd(): boolean {
    return existsSync('/run/systemd/system');
  }
  checkInstallable(): void {
    let enforce = '';
    try {
      enforce = readFileSync(this.selinuxEnforce, 'utf8').trim();
    } catch {
      return; // no SELinux
    }
    if (enforce === '1')
      throw new InputError(
        'SELinux is enforcing on this runner; the Nix store cannot be labelled by this installer. ' +
          "Use 'source: existing' with a Nix installed by the system's package manager, or set SELinux to permissive.",
      );
  }
}

export function hostSupport(
  runner: Pick<RunnerContext, 'os' | 'arch'>,
  probes: { selinuxEnforce?: string } = {},
): HostSupport {
  if (runner.os === 'darwin')
    throw new InputError(
      'macOS is not supported yet by flake-ci install-nix (it needs a /nix APFS volume; planned). Use a Linux runner.',
    );
  if (runner.os !== 'linux')
    throw new InputError(`Unsupported operating system '${runner.os}': flake-ci installs Nix on Linux.`);
  const arch = ARCHES[runner.arch];
  if (!arch)
    throw new InputError(`Unsupported CPU architecture '${runner.arch}': Nix releases exist for x64 and arm64 Linux.`);
  return new LinuxHost(`${arch}-linux`, probes.selinuxEnforce);
}
