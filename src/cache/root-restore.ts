/**
 * Restoring into a store behind nix-daemon as root, through `sudo -n`. On GitHub's runners the job's user is not
 * root and install-nix sets up a multi-user store: the restore cannot write the store itself and imports through
 * `nix copy` (import-pipeline.ts), 1.2 s against 0.75 s for the direct way on the 800-path benchmark. The same
 * runners give that user password-less sudo, so the github backend's restore then runs in a root process started
 * with `sudo -n` (never a prompt: no sudo, or one that wants a password, keeps the `nix copy` way), which writes the
 * checked NARs straight into the store and registers them with `nix-store --load-db`, as a root job does. The `sudo`
 * input decides where it is tried: `auto` on GitHub-hosted runners only, `always` wherever `sudo -n` works, `never`.
 *
 * The root process is this same bundle with ROOT_RESTORE_FLAG; everything else, secrets included (the runtime token
 * that the cache lookups need), travels as JSON on its stdin, never in argv, and sudo starts it with a clean
 * environment. It answers with JSON lines on stdout (log lines, then the result); it writes nothing under the job's
 * directories, so nothing root-owned is left there. A time limit of the step reaches it as SIGTERM (sudo relays it),
 * and it then removes what it wrote and had not registered, as the restore in this process does.
 */
import { execFile, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { InputError, TransientError, errorMessage } from '../errors.js';
import { findOnPath } from '../exec.js';
import type { NixCommand } from '../nix/command.js';
import type { NixVersion } from '../nix/version.js';
import type { LogLevel, Platform } from '../platform/types.js';
import type { RestoreRequest, RestoreResult } from './backend.js';
import type { GitHubMemo } from './github-backend.js';
import type { SUDO_MODES } from './inputs.js';
import { localStoreFor, storeSetting } from './local-store.js';

export const ROOT_RESTORE_FLAG = '--flake-ci-restore-as-root';

/** The root process itself failed (not the restore it ran): the restore can still be done the other way. */
export class RootProcessFailed extends TransientError {}
/** Marks our protocol lines on the root process's stdout (a library might print something else there). */
export const LINE_MARK = 'flake-ci-root-restore ';

/** What the job's environment gives the root process (sudo starts it with a clean one). */
export const PASSED_ENV = [
  'ACTIONS_CACHE_MODE',
  'ACTIONS_CACHE_SERVICE_V2',
  'ACTIONS_CACHE_URL',
  'ACTIONS_RESULTS_URL',
  'ACTIONS_RUNTIME_TOKEN',
  'GITHUB_SERVER_URL',
  'PATH',
];

export interface RootRequest {
  env: Record<string, string>;
  nixBin: string;
  nixVersion: NixVersion;
  req: Pick<RestoreRequest, 'primaryKey' | 'restoreKeys' | 'trustedPublicKeys' | 'trustSource'>;
}

/** One protocol line from the root process. */
export type RootLine =
  | { log: [LogLevel, string] }
  | { result: Omit<RestoreResult, 'validAfter'> & { validAfter?: string[] }; restoredHashes?: string }
  | { error: { message: string; kind: 'input' | 'transient' | 'other' } };

const SUDO_CHECK_MS = 5000;

/** `sudo -n true` succeeds: sudo is there and needs no password. */
function sudoWorks(sudo: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(sudo, ['-n', 'true'], { timeout: SUDO_CHECK_MS }, (err) => resolve(!err));
  });
}

export type SudoMode = (typeof SUDO_MODES)[number];

/**
 * Whether this restore should run as root: the `sudo` input allows it here, not root already, a store this process
 * cannot write but root could (the default store, reached through the daemon), and a password-less `sudo`.
 */
export async function rootRestoreUsable(
  p: Platform,
  nix: NixCommand,
  mode: SudoMode,
  uid = process.getuid?.(),
): Promise<boolean> {
  // Linux only: that is where it is tested (a macOS store volume would likely work the same, but unproven).
  if (uid === undefined || uid === 0 || process.platform !== 'linux') return false;
  // `auto` asks sudo only on GitHub-hosted runners, whose sudo needs no password: elsewhere a user without sudo
  // rights would have its attempt logged, and mailed to root, as an incident.
  if (mode === 'never' || (mode === 'auto' && !p.runner.hosted)) return false;
  if (p.env('NIX_STORE_DIR') || p.env('NIX_STATE_DIR')) return false;
  const sudo = findOnPath('sudo', p.env('PATH'));
  // Both asked at once: the answer needs both, and the restore wants the store setting anyway (it is kept).
  const [store, sudoOk] = await Promise.all([
    storeSetting(nix).catch(() => undefined),
    sudo === undefined ? false : sudoWorks(sudo),
  ]);
  if (store === undefined || !['', 'auto', 'daemon', 'local'].includes(store)) return false;
  if (localStoreFor(store, (k) => p.env(k), uid) !== undefined) return false; // writable already
  return sudoOk;
}

/** Runs the github backend's restore in a root process (see the file comment); its result, as if run here. */
export async function restoreAsRoot(p: Platform, nix: NixCommand, req: RestoreRequest): Promise<RestoreResult> {
  const sudo = findOnPath('sudo', p.env('PATH')) ?? 'sudo';
  const script = process.argv[1] as string;
  const env: Record<string, string> = {};
  for (const k of PASSED_ENV) {
    const v = p.env(k);
    if (v !== undefined) env[k] = v;
  }
  const request: RootRequest = {
    env,
    nixBin: nix.bin,
    nixVersion: nix.version,
    req: {
      primaryKey: req.primaryKey,
      restoreKeys: req.restoreKeys,
      trustedPublicKeys: req.trustedPublicKeys,
      trustSource: req.trustSource,
    },
  };
  p.log('debug', `Restoring as root through ${sudo} -n (the store is the daemon's).`);
  const child = spawn(sudo, ['-n', '--', process.execPath, script, ROOT_RESTORE_FLAG], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stop = () => child.kill('SIGTERM');
  req.signal?.addEventListener('abort', stop, { once: true });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  child.stdin.on('error', () => undefined); // it died before reading: reported by its exit
  child.stdin.end(JSON.stringify(request));
  let answer: Extract<RootLine, { result: unknown }> | undefined;
  let failure: Extract<RootLine, { error: unknown }>['error'] | undefined;
  let pending = '';
  const onLine = (line: string) => {
    if (!line.startsWith(LINE_MARK)) {
      if (line.trim() !== '') p.log('debug', `(root) ${line}`);
      return;
    }
    let msg: RootLine;
    try {
      msg = JSON.parse(line.slice(LINE_MARK.length)) as RootLine;
    } catch {
      p.log('debug', `(root, unreadable) ${line.slice(0, 200)}`);
      return;
    }
    if ('log' in msg) p.log(msg.log[0], msg.log[1]);
    else if ('result' in msg) answer = msg;
    else failure = msg.error;
  };
  child.stdout.on('data', (d: Buffer) => {
    pending += d.toString();
    const lines = pending.split('\n');
    pending = lines.pop() as string;
    for (const l of lines) onLine(l);
  });
  const code = await new Promise<number | null>((resolve) => {
    child.on('error', () => resolve(null));
    child.on('close', (c) => resolve(c));
  });
  req.signal?.removeEventListener('abort', stop);
  if (pending) onLine(pending);
  req.signal?.throwIfAborted();
  if (failure) {
    if (failure.kind === 'input') throw new InputError(failure.message);
    if (failure.kind === 'transient') throw new TransientError(failure.message);
    throw new Error(failure.message);
  }
  if (!answer || code !== 0)
    throw new RootProcessFailed(`the restore as root ended without a result (exit ${code}): ${stderr.trim()}`);
  const { result, restoredHashes } = answer;
  const memo = result.memo as GitHubMemo | undefined;
  if (memo && restoredHashes !== undefined) {
    memo.restoredList = path.join(req.tempDir, 'restored.hashes');
    await writeFile(memo.restoredList, restoredHashes);
  }
  return { ...result, memo, validAfter: result.validAfter ? new Set(result.validAfter) : undefined };
}

/** The message of an error for the parent, with its class. */
export function errorLine(e: unknown): RootLine {
  const kind = e instanceof InputError ? 'input' : e instanceof TransientError ? 'transient' : 'other';
  return { error: { message: errorMessage(e), kind } };
}
