/**
 * CONTRACT STUB (owned by the lint work): flake.lock lint. nixpkgs inputs older than `maxAgeDays`, on a branch that
 * is not a supported release channel (src/build/lint/channels data file), or not owned by NixOS. Findings are
 * annotations on flake.lock lines: warnings, or errors in strict mode. No network access.
 */
import type { Platform } from '../../platform/types.js';

export type LintMode = 'off' | 'warn' | 'strict';

export interface LintFinding {
  /** The flake.lock node name, e.g. `nixpkgs` or `nixpkgs_2`. */
  input: string;
  kind: 'stale' | 'unsupported-branch' | 'not-nixos-owner';
  message: string;
  /** 1-based line in flake.lock the annotation points at. */
  line: number;
}

export interface LintOptions {
  /** Absolute path of flake.lock (a missing file is no finding). */
  lockFile: string;
  /** The path annotations name, relative to the workspace. */
  relPath: string;
  maxAgeDays: number;
  mode: LintMode;
  now?: Date;
}

export interface LintResult {
  findings: LintFinding[];
  /** True in strict mode when there is any finding. */
  failed: boolean;
}

export async function lintFlakeLock(platform: Platform, opts: LintOptions): Promise<LintResult> {
  void platform;
  void opts;
  return Promise.resolve({ findings: [], failed: false });
}
