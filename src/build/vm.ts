/**
 * CONTRACT STUB (owned by the VM-test work): NixOS VM tests (derivations requiring `nixos-test`). Before they are
 * built, KVM must be usable (install-nix's probe, never the device node's mere presence), else they are refused with
 * a clear message unless emulation is allowed. Failed VM tests keep their logs (and screenshots) as artifacts.
 */
import type { Platform } from '../platform/types.js';
import type { BuildPreparation, PreparedTarget } from './engine.js';
import type { AttrResult } from './results.js';

export interface VmOptions {
  allowEmulation: boolean;
}

export function isVmTest(features: readonly string[]): boolean {
  return features.includes('nixos-test');
}

/** The engine's prepareBuild hook for VM tests. */
export async function prepareVmTests(
  platform: Platform,
  targets: readonly PreparedTarget[],
  opts: VmOptions,
): Promise<BuildPreparation> {
  void platform;
  void targets;
  void opts;
  return Promise.resolve({});
}

export interface VmArtifact {
  attr: string;
  /** Files kept for this VM test (log, screenshots), absolute paths under the artifact directory. */
  files: string[];
}

/** Keeps what failed VM tests left behind under `dir`; returns what was kept, for the summary. */
export async function collectVmArtifacts(
  platform: Platform,
  results: readonly AttrResult[],
  dir: string,
): Promise<VmArtifact[]> {
  void platform;
  void results;
  void dir;
  return Promise.resolve([]);
}
