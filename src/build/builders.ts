/**
 * CONTRACT STUB (owned by the remote-builder work): `builders` (Nix machine specs) and `builders-ssh-key` (a secret:
 * written 0600, never on argv, removed in the post step).
 */
import type { Platform } from '../platform/types.js';

export interface BuildersOptions {
  /** The `builders` input: machine specs, `;`- or newline-separated; '' for none. */
  builders: string;
  /** The `builders-ssh-key` input (a private key); '' for none. */
  sshKey: string;
  /** Per-job scratch directory for the key and ssh config. */
  temp: string;
}

export interface BuildersSetup {
  /** Added to every build command, e.g. `--option builders ...`. */
  extraArgs: string[];
  /** Environment for the nix processes (e.g. NIX_SSHOPTS). */
  env: Record<string, string>;
}

export async function setupBuilders(platform: Platform, opts: BuildersOptions): Promise<BuildersSetup> {
  void platform;
  void opts;
  return Promise.resolve({ extraArgs: [], env: {} });
}

/** Post step: removes the key and anything else setupBuilders wrote. Never throws. */
export async function cleanupBuilders(platform: Platform): Promise<void> {
  void platform;
  return Promise.resolve();
}
