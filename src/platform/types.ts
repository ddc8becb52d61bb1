/**
 * The Platform interface: everything an action may do to the outside world (inputs, outputs, state, env, logs,
 * annotations, summary, secrets). Actions are `run(platform)` and never touch process.env, stdout or @actions/core.
 */

export type PlatformName = 'github' | 'gitlab' | 'test';

export type LogLevel = 'debug' | 'info' | 'notice' | 'warning' | 'error';

/** Where an annotation points. Paths are relative to the workspace. */
export interface Annotation {
  title?: string;
  file?: string;
  startLine?: number;
  endLine?: number;
  startColumn?: number;
  endColumn?: number;
}

/** Facts about the machine and job the action runs in, read once by the platform from its environment. */
export interface RunnerContext {
  os: NodeJS.Platform;
  arch: string;
  /** Per-job scratch directory (RUNNER_TEMP on GitHub, a directory under the build dir on GitLab). */
  temp: string;
  /** Directory for @actions/tool-cache style caches (RUNNER_TOOL_CACHE on GitHub); '' when there is none. */
  toolCache: string;
  /** The checked-out project (GITHUB_WORKSPACE, CI_PROJECT_DIR). */
  workspace: string;
  /** True on GitHub-hosted runners (ephemeral VMs where we are free to install system-wide). */
  hosted: boolean;
  /** https://github.com, a GHES URL, or the GitLab instance URL. */
  serverUrl: string;
  /** owner/name on GitHub, group/project on GitLab. */
  repository: string;
  sha: string;
  debug: boolean;
}

export interface Platform {
  readonly name: PlatformName;
  readonly runner: RunnerContext;

  /** Raw input value, trimmed; '' when unset. Typed parsing lives in inputs.ts. */
  getInput(name: string): string;
  /** Raw multi-line input, lines kept (for extra-conf and similar). */
  getMultilineInput(name: string): string;
  /** Environment of the job, read-only (for detection, e.g. HOME, USER, PATH). */
  env(name: string): string | undefined;

  setOutput(name: string, value: string): void;
  /** State for the post phase. Values are strings on the wire; state.ts gives a typed layer. Never a secret. */
  setState(name: string, value: string): void;
  getState(name: string): string;
  /** Exported for later steps and for this process. */
  exportVariable(name: string, value: string): void;
  /** Prepended to PATH for later steps and for this process. */
  addPath(dir: string): void;
  /** Registers a secret: masked on GitHub, redacted from everything the GitLab platform prints. */
  setSecret(value: string): void;

  log(level: LogLevel, message: string, annotation?: Annotation): void;
  /** Runs fn inside a collapsible group (GitHub ::group::, GitLab section). */
  group<T>(title: string, fn: () => Promise<T>): Promise<T>;
  /** Appends Markdown to the job summary. */
  appendSummary(markdown: string): Promise<void>;
  /** Marks the step failed; the caller returns afterwards. */
  setFailed(message: string): void;
  /** Flushes reports (GitLab dotenv, Code Quality, summary) at the end of a phase. */
  finish(): Promise<void>;
}
