/**
 * A Platform that records everything, for unit tests: no module mocks needed. Inputs and env are given up front;
 * outputs, state, logs, annotations and the summary are kept in plain fields for assertions.
 */
import * as os from 'node:os';
import type { Annotation, LogLevel, Platform, RunnerContext } from './types.js';

export interface RecordedLog {
  level: LogLevel;
  message: string;
  annotation?: Annotation;
}

export class RecordingPlatform implements Platform {
  readonly name = 'test' as const;
  readonly runner: RunnerContext;
  readonly outputs: Record<string, string> = {};
  readonly state: Record<string, string> = {};
  readonly exported: Record<string, string> = {};
  readonly paths: string[] = [];
  readonly secrets: string[] = [];
  readonly logs: RecordedLog[] = [];
  readonly groups: string[] = [];
  summary = '';
  failed: string | undefined;

  constructor(
    private readonly inputs: Record<string, string> = {},
    private readonly environment: Record<string, string | undefined> = {},
    runner: Partial<RunnerContext> = {},
  ) {
    const temp = runner.temp ?? os.tmpdir();
    this.runner = {
      os: 'linux',
      arch: 'x64',
      temp,
      toolCache: `${temp}/tool-cache`,
      workspace: temp,
      hosted: false,
      serverUrl: 'https://github.com',
      repository: 'owner/repo',
      sha: '0'.repeat(40),
      debug: false,
      ...runner,
    };
  }

  getInput(name: string): string {
    return (this.inputs[name] ?? '').trim();
  }
  getMultilineInput(name: string): string {
    return this.inputs[name] ?? '';
  }
  env(name: string): string | undefined {
    return this.environment[name];
  }
  setOutput(name: string, value: string): void {
    this.outputs[name] = value;
  }
  setState(name: string, value: string): void {
    this.state[name] = value;
  }
  getState(name: string): string {
    return this.state[name] ?? '';
  }
  exportVariable(name: string, value: string): void {
    this.exported[name] = value;
  }
  addPath(dir: string): void {
    this.paths.unshift(dir);
  }
  setSecret(value: string): void {
    this.secrets.push(value);
  }
  log(level: LogLevel, message: string, annotation?: Annotation): void {
    this.logs.push({ level, message, annotation });
  }
  async group<T>(title: string, fn: () => Promise<T>): Promise<T> {
    this.groups.push(title);
    return fn();
  }
  async appendSummary(markdown: string): Promise<void> {
    this.summary += markdown;
  }
  setFailed(message: string): void {
    this.failed = message;
  }
  async finish(): Promise<void> {}

  /** All log text, for "the secret never appears" assertions. */
  allText(): string {
    return [
      ...this.logs.map((l) => l.message),
      this.summary,
      ...Object.values(this.outputs),
      ...Object.values(this.state),
      ...Object.values(this.exported),
      this.failed ?? '',
    ].join('\n');
  }
}
