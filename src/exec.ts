/**
 * Spawning programs: always an argument array (untrusted strings never reach a shell), output captured and, when
 * asked, streamed line by line through the platform so GitLab redaction applies. @actions/exec runs with
 * `silent: true` because its own echo of the command line would bypass the platform.
 */
import * as actionsExec from '@actions/exec';
import { accessSync, constants } from 'node:fs';
import * as path from 'node:path';
import type { Platform } from './platform/types.js';

/** The executable `name` on a PATH value (absolute directories only: a relative entry depends on the cwd). */
export function findOnPath(name: string, pathVar: string | undefined): string | undefined {
  for (const dir of (pathVar ?? '').split(path.delimiter)) {
    if (!path.isAbsolute(dir)) continue;
    const file = path.join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Passed on stdin. */
  input?: Buffer | string;
  /** Stream output lines to the log at this level (default: not streamed). */
  stream?: 'info' | 'debug';
  /** Do not throw on a non-zero exit. */
  allowFailure?: boolean;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly command: string,
    readonly result: RunResult,
  ) {
    const tail = result.stderr.trim().split('\n').slice(-20).join('\n');
    super(`${command} exited with code ${result.exitCode}${tail ? `:\n${tail}` : ''}`);
  }
}

export async function run(
  platform: Platform | undefined,
  file: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const line = opts.stream && platform ? (l: string) => platform.log(opts.stream as 'info' | 'debug', l) : undefined;
  platform?.log('debug', `run: ${[file, ...args].map((a) => JSON.stringify(a)).join(' ')}`);
  const res = await actionsExec.getExecOutput(file, [...args], {
    cwd: opts.cwd,
    env: opts.env,
    input: typeof opts.input === 'string' ? Buffer.from(opts.input) : opts.input,
    silent: true,
    ignoreReturnCode: true,
    listeners: line ? { stdline: line, errline: line } : {},
  });
  const result = { exitCode: res.exitCode, stdout: res.stdout, stderr: res.stderr };
  if (result.exitCode !== 0 && !opts.allowFailure) throw new CommandError(file, result);
  return result;
}
