/**
 * GitHub runner harness for integration tests: runs dist bundles exactly as the runner does (see runner-core.mjs for
 * the mechanics and TESTING.md for why). This module is the typed API; the logic lives in plain JS so that
 * run-action.mjs can reuse it inside a private mount namespace.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
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

export interface NamespaceOptions {
  /** Shell lines run first inside the namespace (e.g. `mount -t tmpfs tmpfs /nix`); test code only; `set -e`. */
  setup?: string[];
  /** For the whole namespace run; default twice the step timeout plus a minute. */
  timeoutMs?: number;
}

const RUN_ACTION_CLI = join(core.REPO_ROOT, 'test/harness/run-action.mjs');

/**
 * Runs main and post inside ONE private mount namespace, so mounts made by `setup` (a tmpfs /nix, say) are seen by
 * both steps and vanish afterwards. The spec travels through a JSON file in .flake-ci-test/ (inside the repository,
 * so a setup line that mounts over /tmp cannot hide it); only `setup` is shell text. Needs root.
 */
export async function runActionInNamespace(spec: ActionOptions, opts: NamespaceOptions = {}): Promise<ActionResult> {
  const base = join(core.REPO_ROOT, '.flake-ci-test');
  mkdirSync(base, { recursive: true });
  const exchange = mkdtempSync(join(base, 'ns-'));
  const specFile = join(exchange, 'spec.json');
  const resultFile = join(exchange, 'result.json');
  try {
    writeFileSync(specFile, JSON.stringify(spec));
    // "$@" carries node, the CLI and the two file names as arguments, so none of them is parsed by the shell.
    const script = ['set -e', ...(opts.setup ?? []), 'exec "$@"'].join('\n');
    const args = ['-m', '--propagation', 'private', '--', '/bin/sh', '-c', script, 'sh'];
    args.push(spec.node ?? process.execPath, RUN_ACTION_CLI, specFile, resultFile);
    const timeoutMs = opts.timeoutMs ?? 2 * (spec.timeoutMs ?? core.DEFAULT_TIMEOUT_MS) + 60_000;
    const proc = await spawnCollect('unshare', args, timeoutMs);
    const result: unknown = existsSync(resultFile) ? JSON.parse(readFileSync(resultFile, 'utf8')) : undefined;
    if (!result || typeof result !== 'object' || 'error' in result) {
      const why = result && typeof result === 'object' && 'error' in result ? String(result.error) : 'no result';
      throw new Error(
        `namespace run failed (exit ${proc.code}${proc.timedOut ? ', timed out' : ''}): ${why}\n${proc.output}`,
      );
    }
    return result as ActionResult;
  } finally {
    rmSync(exchange, { recursive: true, force: true });
  }
}

interface Collected {
  code: number | null;
  timedOut: boolean;
  output: string;
}

function spawnCollect(cmd: string, args: string[], timeoutMs: number): Promise<Collected> {
  return new Promise((resolve, reject) => {
    // Own process group, so a timeout kills unshare, the shell, node and the step together.
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.stderr.on('data', (d: Buffer) => chunks.push(d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, timedOut, output: Buffer.concat(chunks).toString('utf8') });
    });
  });
}
