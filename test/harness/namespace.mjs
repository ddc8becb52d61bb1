// Running an action (main, `run:` steps, post) inside ONE private mount namespace, plus the isolation every
// install test, benchmark and the demo use. Plain JS so benchmarks and scripts share it with the TypeScript tests.
import { spawn } from 'node:child_process';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { DEFAULT_TIMEOUT_MS, REPO_ROOT } from './runner-core.mjs';

const RUN_ACTION_CLI = join(REPO_ROOT, 'test/harness/run-action.mjs');

export const shellQuote = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

/** A scratch directory inside the repository (.flake-ci-test/ is git-ignored), so a tmpfs over /tmp cannot hide it. */
export function scratchDir(prefix) {
  const base = join(REPO_ROOT, '.flake-ci-test');
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, prefix));
}

/**
 * Setup lines for a fresh /nix (tmpfs) and a private copy of /etc (nix.conf, useradd stay inside), so nothing is
 * ever written into the host's /nix or /etc. On a host without /nix, `mkdir -p` leaves an empty mount point.
 */
export function isolationSetup(scratch, extra = []) {
  const etc = join(mkdtempSync(join(scratch, 'etc-')), 'etc');
  return [
    // Files that vanish while copying (a package install, useradd's lock files) are not worth failing over.
    `cp -a /etc ${shellQuote(etc)} 2>/dev/null || test -f ${shellQuote(`${etc}/passwd`)}`,
    `mount --bind ${shellQuote(etc)} /etc`,
    'mkdir -p /nix',
    // 0755 like a real /nix: a tmpfs defaults to 1777, which the daemon rightly refuses.
    'mount -t tmpfs -o mode=0755 tmpfs /nix',
    ...extra,
  ];
}

/**
 * Setup lines starting `nix-daemon` from `bin` (a multi-user store, as install-nix sets up on GitHub's runners) and
 * waiting for its socket; the job then talks to it with NIX_REMOTE=daemon. The daemon is stopped once the runner
 * process has exited (the setup shell `exec`s into it, so it keeps the shell's PID).
 */
export function daemonSetup(bin) {
  const daemon = shellQuote(join(bin, 'nix-daemon'));
  return [
    `(${daemon} >/dev/null 2>&1 & d=$!; (while kill -0 $$ 2>/dev/null; do sleep 0.2; done; kill $d) >/dev/null 2>&1 &)`,
    'for i in $(seq 100); do test -S /nix/var/nix/daemon-socket/socket && break; sleep 0.05; done',
    'test -S /nix/var/nix/daemon-socket/socket',
  ];
}

/** The uid of the `runner` user that runnerUserSetup adds. */
export const RUNNER_UID = 1001;

/** Setup lines adding a `runner` user to the namespace's private /etc, with password-less sudo when `sudo`. */
export function runnerUserSetup(sudo) {
  return [
    `useradd -u ${RUNNER_UID} -U -M -s /bin/sh runner`,
    ...(sudo
      ? [
          `echo 'runner ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/flake-ci-test`,
          'chmod 0440 /etc/sudoers.d/flake-ci-test',
        ]
      : []),
  ];
}

/**
 * Writes `<dir>/node-as-runner`, a `node` for the harness that runs each step's bundle as the `runner` user (as
 * GitHub's runner runs jobs as a non-root user): it hands that user the runner's directories and drops root.
 */
export function writeRunnerNode(dir) {
  const file = join(dir, 'node-as-runner');
  const script = [
    '#!/bin/bash',
    'set -e',
    'for d in "$RUNNER_TEMP" "$HOME" "$GITHUB_WORKSPACE"; do',
    '  p=$d; while [ "$p" != / ]; do chmod o+x "$p"; p=$(dirname "$p"); done',
    'done',
    `chown -R ${RUNNER_UID}:${RUNNER_UID} "$RUNNER_TEMP" "$HOME"`,
    `exec setpriv --reuid=${RUNNER_UID} --regid=${RUNNER_UID} --clear-groups -- ${shellQuote(process.execPath)} "$@"`,
    '',
  ];
  writeFileSync(file, script.join('\n'), { mode: 0o755 });
  return file;
}

/** Spawns in its own process group (a timeout kills unshare, the shell, node and the step together). */
export function spawnCollect(cmd, args, timeoutMs, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const chunks = [];
    child.stdout.on('data', (d) => chunks.push(d));
    child.stderr.on('data', (d) => chunks.push(d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
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

/** gitlab-ci-local's job logs under `project` (its `.gitlab-ci-local/output/<job>.log`), by job name. */
export function gitlabCiLocalLogs(project) {
  const outDir = join(project, '.gitlab-ci-local/output');
  const logs = {};
  for (const f of existsSync(outDir) ? readdirSync(outDir) : [])
    logs[f.replace(/\.log$/, '')] = readFileSync(join(outDir, f), 'utf8');
  return logs;
}

/**
 * Runs main, `steps` and post inside ONE private mount namespace after the `setup` lines. The spec travels through
 * a JSON file; only `setup` (test code) is shell text. Needs root.
 */
export async function runActionInNamespace(spec, opts = {}) {
  const exchange = scratchDir('ns-');
  const specFile = join(exchange, 'spec.json');
  const resultFile = join(exchange, 'result.json');
  try {
    writeFileSync(specFile, JSON.stringify(spec));
    // "$@" carries node, the CLI and the two file names as arguments, so none of them is parsed by the shell.
    const script = ['set -e', ...(opts.setup ?? []), 'exec "$@"'].join('\n');
    const args = ['-m', '--propagation', 'private', '--', '/bin/sh', '-c', script, 'sh'];
    args.push(process.execPath, RUN_ACTION_CLI, specFile, resultFile);
    const timeoutMs = opts.timeoutMs ?? 2 * (spec.timeoutMs ?? DEFAULT_TIMEOUT_MS) + 60_000;
    const proc = await spawnCollect('unshare', args, timeoutMs);
    const result = existsSync(resultFile) ? JSON.parse(readFileSync(resultFile, 'utf8')) : undefined;
    if (!result || typeof result !== 'object' || 'error' in result) {
      const why = result && typeof result === 'object' && 'error' in result ? String(result.error) : 'no result';
      throw new Error(
        `namespace run failed (exit ${proc.code}${proc.timedOut ? ', timed out' : ''}): ${why}\n${proc.output}`,
      );
    }
    return result;
  } finally {
    rmSync(exchange, { recursive: true, force: true });
  }
}

/** A real HTTP server on 127.0.0.1 serving a directory, counting requests per path (for "was it downloaded?"). */
export async function serveDirectory(root) {
  const requests = new Map();
  const server = createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.set(rel, (requests.get(rel) ?? 0) + 1);
    // URL parsing already resolves `..`; the prefix check is the belt to those braces.
    const file = join(root, rel);
    if (!file.startsWith(`${root}/`) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-length': statSync(file).size });
    createReadStream(file).pipe(res);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
