/**
 * CONTRACT STUB (owned by the matrix work): `mode: matrix`. Evaluates (no build), packs attributes into shards by
 * system, required features and expected cost, and emits a GitHub matrix (output `matrix`) or, on GitLab, a child
 * pipeline YAML for `trigger: include: artifact:`.
 */
import type { NixCommand } from '../../nix/command.js';
import type { Platform } from '../../platform/types.js';
import type { BuildEngineOptions } from '../engine.js';

export interface MatrixOptions {
  /** At most this many shards (1-256). */
  maxShards: number;
  /** The `runner-map` input as given (system / system+features -> runner labels); '' for the defaults. */
  runnerMap: string;
  /** Where the GitLab child pipeline YAML is written (GitLab only). */
  childPipelinePath: string;
  /** Inputs passed on to every shard job (flake, skip-cached, retries, ...), kebab-case names. */
  passInputs: Record<string, string>;
}

export interface MatrixPlanResult {
  shards: number;
  attributes: number;
  evalErrors: number;
}

/** Sets outputs `matrix` (and `child-pipeline` on GitLab) and returns counts; evaluation errors fail the step. */
export async function runMatrixMode(
  platform: Platform,
  nix: NixCommand,
  engine: BuildEngineOptions,
  opts: MatrixOptions,
): Promise<MatrixPlanResult> {
  void platform;
  void nix;
  void engine;
  void opts;
  return Promise.reject(new Error('matrix mode not implemented yet'));
}
