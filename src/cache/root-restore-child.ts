/**
 * The root side of root-restore.ts: reads the request on stdin, runs the github backend's restore with a platform
 * that only relays log lines, and answers on stdout. Its scratch directory is its own (under the system's temp
 * directory) and is removed before it exits: nothing root-owned is left in the job's directories.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { NixCommand } from '../nix/command.js';
import type { Annotation, LogLevel, Platform, RunnerContext } from '../platform/types.js';
import { githubBackend, type GitHubMemo } from './github-backend.js';
import { errorLine, LINE_MARK, ROOT_RESTORE_FLAG, type RootLine, type RootRequest } from './root-restore.js';

/** Whether this process is the root side (its argv carries the flag restoreAsRoot gives it). */
export function isRootRestore(argv: readonly string[]): boolean {
  return argv.includes(ROOT_RESTORE_FLAG);
}

function emit(line: RootLine): Promise<void> {
  return new Promise((resolve) => process.stdout.write(`${LINE_MARK}${JSON.stringify(line)}\n`, () => resolve()));
}

/** Only logs make sense here; anything that would change the step (outputs, state, env) is the parent's. */
class RelayPlatform implements Platform {
  readonly name = 'github' as const;
  readonly runner: RunnerContext;
  constructor(temp: string) {
    this.runner = {
      os: process.platform,
      arch: process.arch,
      temp,
      toolCache: '',
      workspace: temp,
      hosted: false,
      serverUrl: process.env.GITHUB_SERVER_URL ?? 'https://github.com',
      repository: '',
      sha: '',
      debug: true,
    };
  }
  getInput(): string {
    return '';
  }
  getMultilineInput(): string {
    return '';
  }
  env(name: string): string | undefined {
    return process.env[name];
  }
  private refuse(what: string): never {
    throw new Error(`${what} is not available in the restore as root`);
  }
  setOutput(): void {
    this.refuse('setOutput');
  }
  setState(): void {
    this.refuse('setState');
  }
  getState(): string {
    return this.refuse('getState');
  }
  exportVariable(): void {
    this.refuse('exportVariable');
  }
  addPath(): void {
    this.refuse('addPath');
  }
  setSecret(): void {
    // The parent registered the job's secrets already; it prints what is relayed.
  }
  log(level: LogLevel, message: string, _annotation?: Annotation): void {
    void emit({ log: [level, message] });
  }
  group<T>(_title: string, fn: () => Promise<T>): Promise<T> {
    return fn();
  }
  appendSummary(): Promise<void> {
    return this.refuse('appendSummary');
  }
  setFailed(message: string): void {
    void emit({ error: { message, kind: 'other' } });
  }
  async finish(): Promise<void> {}
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The root process's whole life; sets the exit code (1 after an error, which it reported on stdout). */
export async function rootRestoreMain(): Promise<void> {
  const stopped = new AbortController();
  process.on('SIGTERM', () => stopped.abort(new Error('the restore as root was stopped at its time limit')));
  let tempDir: string | undefined;
  try {
    const request = JSON.parse(await readStdin()) as RootRequest;
    for (const [k, v] of Object.entries(request.env)) process.env[k] = v;
    tempDir = await mkdtemp(path.join(os.tmpdir(), 'flake-ci-root-restore-'));
    const p = new RelayPlatform(tempDir);
    const nix = new NixCommand({ bin: request.nixBin, version: request.nixVersion, platform: p });
    const r = await githubBackend.restore(p, nix, { ...request.req, tempDir, signal: stopped.signal });
    const memo = r.memo as GitHubMemo | undefined;
    const restoredHashes = memo?.restoredList ? await readFile(memo.restoredList, 'utf8') : undefined;
    await emit({
      result: {
        ...r,
        memo: memo ? { ...memo, restoredList: undefined } : undefined,
        validAfter: r.validAfter ? [...r.validAfter] : undefined,
      },
      restoredHashes,
    });
  } catch (e) {
    await emit(errorLine(e));
    process.exitCode = 1;
  } finally {
    if (tempDir) await rm(tempDir, { recursive: true, force: true });
  }
}
