// Shared by the benchmarks and scripts/demo.mjs: fixtures, a tiny HTTP server, the namespace runner, /usr/bin/time.
// It lives in bench/lib/ so bench/run.mjs, which runs every bench/*.mjs, does not mistake it for a benchmark.
import { chmodSync, cpSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../test/harness/runner-core.mjs';
import {
  isolationSetup as isolation,
  runActionInNamespace,
  scratchDir,
  serveDirectory,
  shellQuote,
  spawnCollect,
} from '../../test/harness/namespace.mjs';

export { isolation, scratchDir, serveDirectory, shellQuote };

export { REPO_ROOT };
export const CACHE = process.env.FLAKE_CI_TEST_CACHE || '/var/cache/flake-ci';
export const RELEASE_DIR = join(CACHE, 'release');
export const TARBALL_NAME = 'nix-2.34.8-x86_64-linux.tar.xz';
export const TARBALL = join(RELEASE_DIR, TARBALL_NAME);
export const TIME = '/usr/bin/time';

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

/** runActionInNamespace with, when `timeFile` is given, every node step under `/usr/bin/time -v -a -o timeFile` (a
 * wrapper given as the harness's `node`), so main's peak RSS is the first record in that file. */
export async function runInNamespace(spec, setup, { timeFile } = {}) {
  if (!timeFile) return runActionInNamespace(spec, { setup });
  const dir = scratchDir('timed-');
  try {
    const wrapper = join(dir, 'node-timed');
    const line = `exec ${TIME} -v -a -o ${shellQuote(timeFile)} ${shellQuote(process.execPath)} "$@"`;
    // bash, not sh: dash drops variables whose names are not shell identifiers, such as INPUT_TARBALL-URL.
    writeFileSync(wrapper, `#!/bin/bash\n${line}\n`);
    chmodSync(wrapper, 0o755);
    return await runActionInNamespace({ ...spec, node: wrapper }, { setup });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a bash script in a private mount namespace; returns its wall time from inside (setup excluded). */
export async function timeInNamespace(setup, command, timeFile) {
  const timed = `s=$EPOCHREALTIME; ${TIME} -v -o ${shellQuote(timeFile)} bash -c ${shellQuote(command)}; e=$EPOCHREALTIME`;
  const script = ['set -e', ...setup, timed, 'echo "elapsed $s $e"'].join('\n');
  const r = await spawnCollect('unshare', ['-m', '--propagation', 'private', '--', '/bin/bash', '-c', script], 600_000);
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
