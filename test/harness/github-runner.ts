/**
 * GitHub runner harness for integration tests: runs dist bundles exactly as the runner does (see runner-core.mjs for
 * the mechanics and TESTING.md for why). This module is the typed API; the logic lives in plain JS so that
 * run-action.mjs can reuse it inside a private mount namespace.
 */
import * as core from './runner-core.mjs';

export type AnnotationLevel = 'error' | 'warning' | 'notice';

export interface ParsedAnnotation {
  level: AnnotationLevel;
  message: string;
  file?: string;
  line?: number;
  endLine?: number;
  column?: number;
  endColumn?: number;
  title?: string;
}

export interface ParsedCommands {
  annotations: ParsedAnnotation[];
  /** Messages of `::error` commands: what @actions/core setFailed prints (plus any other error annotation). */
  failed: string[];
  /** Values registered with `::add-mask::`. */
  masks: string[];
  debug: string[];
}

export interface RunnerDirs {
  /** Scratch root holding the directories below unless they were given explicitly. */
  workDir: string;
  temp: string;
  toolCache: string;
  workspace: string;
  home: string;
}

export interface StepOptions {
  /** Name of an action under actions/ ... */
  action?: string;
  /** ... or an explicit directory holding action.yml (e.g. a fixture). */
  actionDir?: string;
  step?: 'main' | 'post';
  /** Re-roots runs.main/post paths of the form `.../dist/<rest>` at `<distRoot>/<rest>`. Default: the repo's dist/. */
  distRoot?: string;
  /** Runs `<distRoot>/<entry>/index.js` instead of the file action.yml names (action.yml still gives defaults). */
  entry?: string;
  /** The `with:` map; undeclared names are passed too, with a runner warning, as the runner does. */
  inputs?: Record<string, string | number | boolean>;
  /** The job's environment on top of a clean base (PATH, HOME, GITHUB_*, RUNNER_*). Not process.env. */
  env?: Record<string, string>;
  /** What `${{ github.token }}` evaluates to in input defaults; '' when absent. */
  token?: string;
  /** STATE_<name> variables (the post step gets main's state from runAction). */
  state?: Record<string, string>;
  /** GITHUB_ENV entries written by earlier steps; they override `env`, as on the runner. */
  exportedEnv?: Record<string, string>;
  /** GITHUB_PATH entries written by earlier steps, in write order; prepended to PATH most recent first. */
  addedPath?: string[];
  /** Scratch root; default a fresh temporary directory, removed afterwards unless keepWorkDir. */
  workDir?: string;
  keepWorkDir?: boolean;
  dirs?: Partial<Omit<RunnerDirs, 'workDir'>>;
  /** Sets RUNNER_DEBUG=1. */
  debug?: boolean;
  /** Per step; the process group is killed (SIGTERM, then SIGKILL) when it expires. Default 10 minutes. */
  timeoutMs?: number;
  /** Node binary; default process.execPath (Node 24 under npm). */
  node?: string;
}

export type ActionOptions = Omit<StepOptions, 'step' | 'entry' | 'state'> & {
  /** Shell commands run between main and post like `run:` steps (bash -e, main's env and PATH applied). */
  steps?: string[];
};

export interface ShellStepResult {
  command: string;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

export interface StepResult extends ParsedCommands {
  step: 'main' | 'post';
  script: string;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** exit 0 and no timeout: what the runner calls success. */
  ok: boolean;
  durationMs: number;
  stdout: string;
  stderr: string;
  /** stdout + stderr with registered masks replaced by `***`, as the runner's log shows it. */
  log: string;
  outputs: Record<string, string>;
  state: Record<string, string>;
  /** GITHUB_ENV entries. */
  env: Record<string, string>;
  /** GITHUB_PATH entries in write order. */
  path: string[];
  summary: string;
  /** What the runner itself would have warned about (unexpected inputs, NODE_OPTIONS in GITHUB_ENV, summary size). */
  runnerWarnings: string[];
  dirs: RunnerDirs;
}

export interface ActionResult {
  main: StepResult;
  /** Results of `steps`, in order. */
  steps?: ShellStepResult[];
  /** Absent when action.yml has no post, or post-if excluded it. */
  post?: StepResult;
}

export const REPO_ROOT: string = core.REPO_ROOT;
export const DEFAULT_TIMEOUT_MS: number = core.DEFAULT_TIMEOUT_MS;
export const inputEnvName: (name: string) => string = core.inputEnvName;
export const parseKeyValueFile = core.parseKeyValueFile;
export const parseWorkflowCommands = core.parseWorkflowCommands;

/** Runs one step (default main) of an action. */
export function runStep(opts: StepOptions): Promise<StepResult> {
  return core.runStep(opts);
}

/** Runs main, then post when action.yml has one, passing state, exported env and PATH along like the runner. */
export function runAction(opts: ActionOptions): Promise<ActionResult> {
  return core.runAction(opts);
}

/** Quotes a string for /bin/sh, for building setup lines from paths. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export { runActionInNamespace, isolationSetup, serveDirectory, type NamespaceOptions } from './namespace.mjs';
