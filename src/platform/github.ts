/**
 * The GitHub Actions platform: the only module that imports @actions/core (DESIGN.md), so the runner's file
 * commands, masking and job summary are used exactly as GitHub documents them.
 */
import * as core from '@actions/core';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Annotation, LogLevel, Platform, RunnerContext } from './types.js';

function context(env: NodeJS.ProcessEnv): RunnerContext {
  const temp = env.RUNNER_TEMP || os.tmpdir();
  return {
    os: process.platform,
    arch: process.arch,
    temp,
    toolCache: env.RUNNER_TOOL_CACHE || path.join(temp, 'tool-cache'),
    workspace: env.GITHUB_WORKSPACE || process.cwd(),
    hosted: env.RUNNER_ENVIRONMENT === 'github-hosted',
    serverUrl: env.GITHUB_SERVER_URL || 'https://github.com',
    repository: env.GITHUB_REPOSITORY || '',
    sha: env.GITHUB_SHA || '',
    debug: env.RUNNER_DEBUG === '1',
  };
}

function props(a?: Annotation): core.AnnotationProperties | undefined {
  if (!a) return undefined;
  return {
    title: a.title,
    file: a.file,
    startLine: a.startLine,
    endLine: a.endLine,
    startColumn: a.startColumn,
    endColumn: a.endColumn,
  };
}

export class GitHubPlatform implements Platform {
  readonly name = 'github' as const;
  readonly runner: RunnerContext;

  constructor(private readonly environment: NodeJS.ProcessEnv = process.env) {
    this.runner = context(environment);
  }

  getInput(name: string): string {
    return core.getInput(name);
  }
  getMultilineInput(name: string): string {
    return core.getInput(name, { trimWhitespace: false });
  }
  env(name: string): string | undefined {
    return this.environment[name];
  }
  setOutput(name: string, value: string): void {
    core.setOutput(name, value);
  }
  setState(name: string, value: string): void {
    core.saveState(name, value);
  }
  getState(name: string): string {
    return core.getState(name);
  }
  exportVariable(name: string, value: string): void {
    core.exportVariable(name, value);
  }
  addPath(dir: string): void {
    core.addPath(dir);
  }
  setSecret(value: string): void {
    core.setSecret(value);
  }
  log(level: LogLevel, message: string, annotation?: Annotation): void {
    switch (level) {
      case 'debug':
        return core.debug(message);
      case 'info':
        return core.info(message);
      case 'notice':
        return core.notice(message, props(annotation));
      case 'warning':
        return core.warning(message, props(annotation));
      case 'error':
        return core.error(message, props(annotation));
    }
  }
  group<T>(title: string, fn: () => Promise<T>): Promise<T> {
    return core.group(title, fn);
  }
  async appendSummary(markdown: string): Promise<void> {
    if (!this.environment.GITHUB_STEP_SUMMARY) return;
    await core.summary.addRaw(markdown, true).write();
  }
  setFailed(message: string): void {
    core.setFailed(message);
  }
  async finish(): Promise<void> {}
}
