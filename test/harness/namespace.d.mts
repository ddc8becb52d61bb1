// Types for namespace.mjs (plain JS, shared with bench/ and scripts/).
import type { ActionOptions, ActionResult } from './github-runner.js';

export interface NamespaceOptions {
  /** Shell lines run first inside the namespace (e.g. `mount -t tmpfs tmpfs /nix`); test code only; `set -e`. */
  setup?: string[];
  /** For the whole namespace run; default twice the step timeout plus a minute. */
  timeoutMs?: number;
}
export interface StaticServer {
  url: string;
  requests: Map<string, number>;
  close(): Promise<void>;
}
export declare function shellQuote(s: string): string;
export declare function scratchDir(prefix: string): string;
export declare function isolationSetup(scratch: string, extra?: string[]): string[];
export declare function daemonSetup(bin: string): string[];
export declare const RUNNER_UID: number;
export declare function runnerUserSetup(sudo: boolean): string[];
export declare function writeRunnerNode(dir: string): string;
export interface Collected {
  code: number | null;
  timedOut: boolean;
  /** stdout and stderr, interleaved as they came. */
  output: string;
}
/** Spawns in its own process group, collecting its output; the whole group is killed after `timeoutMs`. */
export declare function spawnCollect(
  cmd: string,
  args: string[],
  timeoutMs: number,
  opts?: { cwd?: string; env?: Record<string, string> },
): Promise<Collected>;
/** gitlab-ci-local's job logs under `project`, by job name. */
export declare function gitlabCiLocalLogs(project: string): Record<string, string>;
export declare function runActionInNamespace(spec: ActionOptions, opts?: NamespaceOptions): Promise<ActionResult>;
export declare function serveDirectory(root: string): Promise<StaticServer>;
