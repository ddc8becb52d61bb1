// Shared by the benchmarks and scripts/demo.mjs: fixtures, a tiny HTTP server, the namespace runner, /usr/bin/time.
// It lives in bench/lib/ so bench/run.mjs, which runs every bench/*.mjs, does not mistake it for a benchmark.
import { spawn } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createReadStream } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { REPO_ROOT } from '../../test/harness/runner-core.mjs';

export { REPO_ROOT };
export const CACHE = process.env.FLAKE_CI_TEST_CACHE || '/var/cache/flake-ci';
export const RELEASE_DIR = join(CACHE, 'release');
export const TARBALL_NAME = 'nix-2.34.8-x86_64-linux.tar.xz';
export const TARBALL = join(RELEASE_DIR, TARBALL_NAME);
export const TIME = '/usr/bin/time';
const RUN_ACTION_CLI = join(REPO_ROOT, 'test/harness/run-action.mjs');

/** Fails loudly, naming the Debian package, rather than printing numbers that silently lack a column. */
export function requireCommand(file, pkg) {
  if (!existsSync(file)) throw new Error(`${file} is missing: apt-get install ${pkg}`);
}

export function requireBenchTools() {
  requireCommand(TIME, 'time');
  requireCommand('/usr/bin/unshare', 'util-linux');
  requireCommand('/usr/bin/xz', 'xz-utils');
  if (!existsSync(TARBALL))
    throw new Error(`${TARBALL} is missing: run 'bash .ci/setup' (or test/setup/nix-fixtures.sh)`);
  if (process.getuid?.() !== 0) throw new Error('benchmarks need root (private mount namespaces, tmpfs /nix)');
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
export const secs = (ms) => (ms / 1000).toFixed(2);
export const mib = (kb) => (kb === undefined ? '?' : `${(kb / 1024).toFixed(0)} MiB`);

/** The one line format bench/run.mjs collects into its summary (TESTING.md, Benchmarks). */
export function report(name, oursMs, baseMs, extra = '') {
  const ratio = (oursMs / baseMs).toFixed(2);
  console.log(
    `${name}: ours ${secs(oursMs)} s, baseline ${secs(baseMs)} s, ratio ${ratio}${extra ? ` (${extra})` : ''}`,
  );
}

/** Serves one directory on 127.0.0.1, in process, so the download is real HTTP without leaving the machine. */
export async function serveDirectory(root) {
  const server = createServer((req, res) => {
    // URL parsing already resolves `..`; the prefix check is the belt to those braces.
    const file = join(root, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    if (!file.startsWith(`${root}/`) || !existsSync(file) || !statSync(file).isFile())
      return res.writeHead(404).end('not found');
    res.writeHead(200, { 'content-length': statSync(file).size });
    createReadStream(file).pipe(res);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** A scratch directory inside the repository (.flake-ci-test/ is git-ignored), as the harness uses. */
export function scratchDir(prefix) {
  const base = join(REPO_ROOT, '.flake-ci-test');
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, prefix));
}

/**
 * A private copy of dist/ for the harness's `distRoot`: `npm run build` starts with `rm -rf dist`, so a build in
 * another terminal would otherwise fail runs in the middle of a benchmark. Waits (up to a minute) for a build in
 * progress to finish: each entry's package.json is written after its index.js.
 */
export async function snapshotDist(scratch) {
  const dist = join(REPO_ROOT, 'dist');
  const entries = readdirSync(join(REPO_ROOT, 'src/entrypoints')).map((f) => f.replace(/\.ts$/, ''));
  for (let waited = 0; !entries.every((e) => existsSync(join(dist, e, 'package.json'))); waited += 500) {
    if (waited > 60_000) throw new Error(`${dist} is incomplete: run 'npm run build'`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const copy = join(scratch, 'dist');
  cpSync(dist, copy, { recursive: true });
  return copy;
}

export const shellQuote = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

/**
 * The integration test's isolation: a private copy of /etc (nix.conf, useradd stay inside) and a fresh tmpfs on
 * /nix. On a host without /nix, `mkdir -p` leaves an empty mount point behind (as the tests do); nothing is ever
 * written into the host's /nix or /etc.
 */
export function isolation(scratch) {
  const etc = join(mkdtempSync(join(scratch, 'etc-')), 'etc');
  return [
    `cp -a /etc ${shellQuote(etc)}`,
    `mount --bind ${shellQuote(etc)} /etc`,
    'mkdir -p /nix',
    'mount -t tmpfs tmpfs /nix',
  ];
}

/** Spawns and collects stdout and stderr together (for error messages). */
export function spawnCollect(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output: out }));
  });
}

/**
 * runActionInNamespace (test/harness/github-runner.ts) for plain JS: main, `steps`, post, all in ONE private mount
 * namespace after the `setup` lines. With `timeFile`, every node step runs under `/usr/bin/time -v -a -o timeFile`
 * (through a wrapper given as the harness's `node`), so main's peak RSS is the first record in that file.
 */
export async function runInNamespace(spec, setup, { timeFile } = {}) {
  const exchange = scratchDir('ns-');
  try {
    const specFile = join(exchange, 'spec.json');
    const resultFile = join(exchange, 'result.json');
    if (timeFile) {
      const wrapper = join(exchange, 'node-timed');
      const line = `exec ${TIME} -v -a -o ${shellQuote(timeFile)} ${shellQuote(process.execPath)} "$@"`;
      // bash, not sh: dash drops variables whose names are not shell identifiers, such as INPUT_TARBALL-URL.
      writeFileSync(wrapper, `#!/bin/bash\n${line}\n`);
      chmodSync(wrapper, 0o755);
      spec = { ...spec, node: wrapper };
    }
    writeFileSync(specFile, JSON.stringify(spec));
    // "$@" carries node, the CLI and the file names, so the shell never parses them.
    const script = ['set -e', ...setup, 'exec "$@"'].join('\n');
    const args = ['-m', '--propagation', 'private', '--', '/bin/sh', '-c', script, 'sh'];
    const proc = await spawnCollect('unshare', [...args, process.execPath, RUN_ACTION_CLI, specFile, resultFile]);
    const result = existsSync(resultFile) ? JSON.parse(readFileSync(resultFile, 'utf8')) : { error: 'no result' };
    if (result.error) throw new Error(`namespace run failed (exit ${proc.code}): ${result.error}\n${proc.output}`);
    return result;
  } finally {
    rmSync(exchange, { recursive: true, force: true });
  }
}

/** Runs a bash script in a private mount namespace; returns its wall time from inside (setup excluded). */
export async function timeInNamespace(setup, command, timeFile) {
  const timed = `s=$EPOCHREALTIME; ${TIME} -v -o ${shellQuote(timeFile)} bash -c ${shellQuote(command)}; e=$EPOCHREALTIME`;
  const script = ['set -e', ...setup, timed, 'echo "elapsed $s $e"'].join('\n');
  const r = await spawnCollect('unshare', ['-m', '--propagation', 'private', '--', '/bin/bash', '-c', script]);
  const m = /^elapsed (\S+) (\S+)$/m.exec(r.output);
  if (r.code !== 0 || !m) throw new Error(`baseline failed (exit ${r.code}):\n${r.output}`);
  return (Number(m[2]) - Number(m[1])) * 1000;
}

/** Peak RSS in KiB of each record in a `/usr/bin/time -v` file (wait4: the largest of the process and its children). */
export function peakRss(timeFile) {
  if (!existsSync(timeFile)) return [];
  return [...readFileSync(timeFile, 'utf8').matchAll(/Maximum resident set size \(kbytes\): (\d+)/g)].map((m) =>
    Number(m[1]),
  );
}
