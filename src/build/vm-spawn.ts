/**
 * Spawning a program with its output going straight to a file (a VM test's log or driver run can be large, so it is
 * never held in memory) and a hard deadline: exec.ts has neither. The child leads its own process group so that at
 * the deadline everything it started (a test driver's QEMU) is stopped with it.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { errorMessage } from '../errors.js';

export interface SpawnToFileOptions {
  env: Record<string, string>;
  cwd?: string;
  /** stdout goes here (truncated first). */
  out: string;
  /** stderr into `out` too; otherwise its last lines are returned. */
  stderrToOut?: boolean;
  timeoutMs: number;
}

export interface SpawnToFileResult {
  /** null when killed by a signal or never started. */
  exitCode: number | null;
  timedOut: boolean;
  /** The last lines of stderr when it was not sent to `out`. */
  stderr: string;
  /** Set when the program could not be started. */
  error?: string;
}

const STDERR_KEEP = 8 * 1024;
/** After SIGTERM at the deadline, how long the group gets before SIGKILL, and how long we then still wait. */
const TERM_GRACE_MS = 5000;
const KILL_GRACE_MS = 2000;

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal); // the group we created with `detached`
  } catch {
    // Already gone.
  }
}

export function spawnToFile(
  file: string,
  args: readonly string[],
  opts: SpawnToFileOptions,
): Promise<SpawnToFileResult> {
  const fd = openSync(opts.out, 'w');
  return new Promise((resolve) => {
    let stderr = '';
    let done = false;
    let timedOut = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (r: Omit<SpawnToFileResult, 'stderr' | 'timedOut'>) => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      resolve({ ...r, stderr, timedOut });
    };
    let child;
    try {
      child = spawn(file, [...args], {
        cwd: opts.cwd,
        env: opts.env,
        detached: true,
        stdio: ['ignore', fd, opts.stderrToOut ? fd : 'pipe'],
      });
    } catch (e) {
      closeSync(fd);
      finish({ exitCode: null, error: errorMessage(e) });
      return;
    }
    closeSync(fd); // the child has its own copy
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-STDERR_KEEP);
    });
    child.on('error', (e) => finish({ exitCode: null, error: errorMessage(e) }));
    child.on('close', (code) => finish({ exitCode: code }));
    const pid = child.pid;
    timers.push(
      setTimeout(() => {
        timedOut = true;
        killGroup(pid, 'SIGTERM');
        timers.push(
          setTimeout(() => {
            killGroup(pid, 'SIGKILL');
            // A process stuck in the kernel may never close its pipes: stop waiting for it.
            timers.push(setTimeout(() => finish({ exitCode: null }), KILL_GRACE_MS).unref());
          }, TERM_GRACE_MS).unref(),
        );
      }, opts.timeoutMs),
    );
  });
}

/** The environment NixCommand gives its commands: the job's, plus the installation's variables. */
export function nixEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  return Object.assign(env, extra);
}
