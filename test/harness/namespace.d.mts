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
export declare function runActionInNamespace(spec: ActionOptions, opts?: NamespaceOptions): Promise<ActionResult>;
export declare function serveDirectory(root: string): Promise<StaticServer>;
