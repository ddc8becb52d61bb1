// actions/cache (github backend) on a generated closure of ~800 store paths / ~120 MB, with Nix 2.34, against the
// cache service double (twirp + Azurite on 127.0.0.1), each job in a fresh tmpfs /nix:
// - restore (the whole main step: node start, entry lookup, download streamed through zstd and unpacked straight
//   into the store with every NAR hash checked, one `nix-store --load-db`, store listing) against `zstd -d | tar -x`
//   of the same paths plus `nix-store --load-db` (registration in the Nix database), run alternately with ours so both
//   see the same load on a shared machine; CPU seconds (user + system) of both sides are printed too (ours excludes
//   the blob server's, Azurite's, which serves the download);
// - the post step when nothing is new (goal <= 0.5 s, no upload), and after adding 10 paths (uploads only those);
// - cache-nix-action's approach on the same data: the whole /nix as one @actions/cache entry, saved and restored.
// The runner's temp directory (where @actions/cache puts the archive and we unpack the entry) is a tmpfs too, like
// /nix: both sides then work in memory, as they would both work on the same disk on a hosted runner.
// The closure is built once and kept in .flake-ci-test/bench-cache-data/ (tarball + reginfo). `node bench/cache.mjs`.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { daemonSetup, runnerUserSetup, writeRunnerNode } from '../test/harness/namespace.mjs';
import { startCacheService } from '../test/support/actions-cache-service.mjs';
import * as b from './lib/common.mjs';

const REPS = Number(process.env.BENCH_REPS) || 5;
// For tuning: BENCH_CACHE_ONLY=restore runs just the restore comparison; BENCH_CACHE_NODE_OPTIONS (say
// `--cpu-prof --cpu-prof-dir=DIR`) goes to the restore jobs' node; BENCH_CACHE_LOG=DIR keeps their main step's log.
const ONLY_RESTORE = process.env.BENCH_CACHE_ONLY === 'restore';
const NODE_OPTIONS = process.env.BENCH_CACHE_NODE_OPTIONS;
const LOG_DIR = process.env.BENCH_CACHE_LOG;
// BENCH_CACHE_COMPARE=DIR: another build's dist/ (say, before a change), whose restore runs alternate with ours.
const COMPARE = process.env.BENCH_CACHE_COMPARE;
const NIX = join(b.CACHE, 'nix-2.34.8', 'bin');
const CLIENT = join(b.REPO_ROOT, 'test/fixtures/actions-cache-client.mjs');
const CONF = `printf 'substituters =\\nsandbox = false\\nbuild-users-group =\\nexperimental-features = nix-command flakes\\n' > /etc/nix/nix.conf`;

// 800 paths of 50-250 KB (base64 of random bytes: compresses about 4:3, like typical binaries); each references up
// to three earlier ones, so the import order and closures are real work.
const GEN = `{ n ? 800, salt ? "bench" }:
let
  size = i: 50 + (i * 7919) - ((i * 7919) / 200) * 200;
  mk = i: derivation {
    name = "bench-\${toString i}"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin";
    args = [ "-c" "mkdir $out; head -c \${toString ((size i) * 768)} /dev/urandom | base64 -w 0 > $out/blob; echo \${salt} > $out/salt; for d in $deps; do echo $d >> $out/refs; done" ];
    deps = if i == 0 then [ ] else map (j: builtins.elemAt paths j) [ (i - 1) (i / 2) (i / 3) ];
  };
  paths = builtins.genList mk n;
in paths
`;

b.requireBenchTools();
if (!existsSync(join(NIX, 'nix'))) throw new Error(`${NIX}/nix is missing: run 'bash test/setup/nix-fixtures.sh'`);
const scratch = b.scratchDir('bench-cache-');
const data = join(
  b.REPO_ROOT,
  '.flake-ci-test',
  'bench-cache-data',
  createHash('sha256').update(GEN).digest('hex').slice(0, 12),
);
const closure = join(data, 'closure.tar.zst');
const reginfo = join(data, 'reginfo');
const q = b.shellQuote;
const TEMP = join(scratch, 'runner-temp');
const fresh = (extra = []) =>
  b.isolation(scratch, [
    'mkdir -p /etc/nix',
    CONF,
    `mkdir -p ${b.shellQuote(TEMP)}`,
    `mount -t tmpfs tmpfs ${b.shellQuote(TEMP)}`,
    ...extra,
  ]);
const unpack = `zstd -dc ${q(closure)} | tar -x -C / && ${q(NIX)}/nix-store --load-db < ${q(reginfo)}`;

/** User + system seconds of record `n` of a `/usr/bin/time -v` file (the process and its children). */
function cpuSecs(timeFile, n = 0) {
  const text = readFileSync(timeFile, 'utf8').split(/^(?=\tCommand being timed)/m)[n] ?? '';
  const get = (what) => Number(new RegExp(`${what} time \\(seconds\\): ([\\d.]+)`).exec(text)?.[1] ?? NaN);
  return get('User') + get('System');
}

/** Builds the closure once (about a minute) and keeps it as a tarball of the store paths plus their registration. */
async function prepare() {
  if (existsSync(closure) && existsSync(reginfo)) return;
  mkdirSync(data, { recursive: true });
  const gen = join(data, 'gen.nix');
  writeFileSync(gen, GEN);
  const tmp = `${closure}.tmp`;
  const script = [
    `out=$(${q(NIX)}/nix-build ${q(gen)} --no-out-link)`,
    `paths=$(${q(NIX)}/nix-store -qR $out)`,
    `${q(NIX)}/nix-store --dump-db $paths > ${q(reginfo)}`,
    `tar -C / -cf - $(for p in $paths; do echo "\${p#/}"; done) | zstd -T0 -3 -q > ${q(tmp)}`,
  ].join(' && ');
  const ms = await b.timeInNamespace(fresh(), script, join(scratch, 'prepare.time'));
  renameSync(tmp, closure);
  console.log(`  built the closure once in ${b.secs(ms)} s (kept in ${data})`);
}

await prepare();
// --dump-db records: path, NAR hash (hex), NAR size, deriver, reference count, references.
const lines = readFileSync(reginfo, 'utf8').split('\n');
const count = lines.filter((l, i) => l.startsWith('/nix/store/') && /^[0-9a-f]{64}$/.test(lines[i + 1] ?? '')).length;
const svc = await startCacheService({ rateLimit: null });
try {
  const distRoot = await b.snapshotDist(scratch);
  const env = (extra = {}) => {
    const e = { ...svc.env(), PATH: `${NIX}:/usr/bin:/bin`, ...extra };
    delete e.RUNNER_TEMP;
    return e;
  };
  const job = async (steps, timeFile, inputs = {}, extraEnv = {}, root = distRoot) => {
    const r = await b.runInNamespace(
      {
        action: 'cache',
        distRoot: root,
        inputs: { key: 'bench', strict: 'true', ...inputs },
        env: env(extraEnv),
        steps,
        dirs: { temp: TEMP },
      },
      fresh(),
      { timeFile },
    );
    if (!r.main.ok || !r.post?.ok || (r.steps ?? []).some((s) => s.exitCode !== 0))
      throw new Error(`cache job failed:\n${r.main.log}\n${JSON.stringify(r.steps)}\n${r.post?.log}`);
    return r;
  };
  const creates = () => svc.calls.filter((c) => c.method === 'CreateCacheEntry').length;

  // The first job "builds" the closure (unpacks it) and saves it: one entry for all the paths.
  const seed = await job([unpack]);
  const seedEntry = svc.entries()[0];
  // BENCH_CACHE_KEEP_ENTRY=FILE: a copy of the entry (@actions/cache's tar.zst), to replay restores without the rest.
  if (process.env.BENCH_CACHE_KEEP_ENTRY)
    writeFileSync(process.env.BENCH_CACHE_KEEP_ENTRY, Buffer.from(await svc.azurite.read(seedEntry.blobName)));
  console.log(
    `  first save: ${seed.post.outputs['paths-saved']} of ${count} paths in ${svc.entries().length} entry, ` +
      `${(seedEntry.sizeBytes / 1048576).toFixed(1)} MiB, ${b.secs(seed.post.durationMs)} s`,
  );

  // Restore (main) and an unchanged post step (nothing new), REPS times, each in a fresh /nix, alternating with the
  // baseline so that both see the same load.
  const restores = [];
  const compared = [];
  const idle = [];
  const base = [];
  const before = creates();
  const baseTime = join(scratch, 'baseline.time');
  for (let i = -1; i < REPS; i++) {
    const timeFile = join(scratch, `restore-${i}.time`);
    const r = await job([], timeFile, {}, NODE_OPTIONS ? { NODE_OPTIONS } : {});
    if (LOG_DIR) writeFileSync(join(LOG_DIR, `restore-${i + 1}.log`), r.main.log);
    if (r.main.outputs['paths-restored'] !== String(count))
      throw new Error(`restored ${r.main.outputs['paths-restored']} of ${count} paths`);
    const baseMs = await b.timeInNamespace(fresh(), unpack, baseTime);
    const other = COMPARE ? await job([], timeFile, {}, {}, COMPARE) : undefined;
    if (i < 0) continue; // warm-up: page cache, node's compile cache
    if (other) compared.push({ ms: other.main.durationMs, cpu: cpuSecs(timeFile, 2) });
    restores.push({ ms: r.main.durationMs, rss: b.peakRss(timeFile)[0], cpu: cpuSecs(timeFile) });
    idle.push(r.post.durationMs);
    base.push({ ms: baseMs, rss: b.peakRss(baseTime)[0], cpu: cpuSecs(baseTime) });
  }
  const idleUploads = creates() - before;
  const med = (xs) => b.median(xs);
  const oursMs = med(restores.map((r) => r.ms));
  const baseMs = med(base.map((r) => r.ms));
  const cpu = `CPU s ours ${med(restores.map((r) => r.cpu)).toFixed(2)}, baseline ${med(base.map((r) => r.cpu)).toFixed(2)}`;
  const mem = `${cpu}; peak RSS ours ${b.mib(Math.max(...restores.map((r) => r.rss)))}, baseline ${b.mib(Math.max(...base.map((r) => r.rss)))}`;
  const mibOf = (e) => `${(e.sizeBytes / 1048576).toFixed(1)} MiB`;
  b.report(
    'cache-restore',
    oursMs,
    baseMs,
    `${count} paths, ${mibOf(seedEntry)}; median of ${REPS}; goal ratio <= 1.3; ${mem}`,
  );
  console.log(
    `  restore runs ours: ${restores.map((r) => `${b.secs(r.ms)} (CPU ${r.cpu.toFixed(2)})`).join(' ')} s; ` +
      `baseline: ${base.map((r) => `${b.secs(r.ms)} (CPU ${r.cpu.toFixed(2)})`).join(' ')} s`,
  );
  if (compared.length > 0) {
    const ms = med(compared.map((r) => r.ms));
    b.report('cache-restore-compared', ms, baseMs, `${COMPARE}; CPU s ${med(compared.map((r) => r.cpu)).toFixed(2)}`);
    console.log(`  compared runs: ${compared.map((r) => `${b.secs(r.ms)} (CPU ${r.cpu.toFixed(2)})`).join(' ')} s`);
  }
  if (!ONLY_RESTORE) {
    // The same baseline fetching the tarball from the same Azurite first: what the transfer itself costs.
    await svc.azurite.write('baseline-closure', readFileSync(closure));
    const url = svc.azurite.sasUrl('baseline-closure', 'r');
    const fetched = `curl -sf ${q(url)} | zstd -dc | tar -x -C / && ${q(NIX)}/nix-store --load-db < ${q(reginfo)}`;
    const baseDl = [];
    for (let i = 0; i < REPS; i++) baseDl.push(await b.timeInNamespace(fresh(), fetched, baseTime));

    // 10 new paths on top of the restored closure: the post step uploads only those.
    const extra = join(scratch, 'extra.nix');
    writeFileSync(extra, GEN);
    const added = await job([`nix-build ${q(extra)} --arg n 10 --argstr salt extra --no-out-link`]);
    const addedEntry = svc.entries().at(-1);

    // cache-nix-action's way: the whole /nix (store and database) as one entry, through the same @actions/cache.
    const client = (op) => {
      const vars = Object.entries({ ...env(), GITHUB_WORKSPACE: '/', HOME: '/root', RUNNER_TEMP: TEMP }).map(
        ([k, v]) => `${k}=${q(v)}`,
      );
      return `cd / && env ${vars.join(' ')} ${q(process.execPath)} ${q(CLIENT)} ${op} whole-nix-${Date.now()} nix`;
    };
    const wholeSave = [];
    const wholeRestore = [];
    const wholeTime = join(scratch, 'whole.time');
    for (let i = 0; i < REPS; i++) {
      const saveCmd = client('save');
      const key = /whole-nix-\d+/.exec(saveCmd)[0];
      wholeSave.push(await b.timeInNamespace(fresh([unpack]), saveCmd, wholeTime));
      const restoreCmd = client('restore').replace(/whole-nix-\d+/, key);
      wholeRestore.push(
        await b.timeInNamespace(fresh(), `${restoreCmd} && test -s /nix/var/nix/db/db.sqlite`, wholeTime),
      );
    }
    const wholeEntry = svc.entries().at(-1);

    // A store behind a daemon (a multi-user install, as install-nix sets up on GitHub's runners), REPS restores that
    // must take the way `expect` names in the log; `spec` and `setup` add to the job's.
    const daemonRestores = async (what, expect, spec, setup) => {
      const ms = [];
      for (let i = 0; i < REPS; i++) {
        const r = await b.runInNamespace(
          {
            action: 'cache',
            distRoot,
            inputs: { key: 'bench', strict: 'true' },
            steps: [],
            dirs: { temp: TEMP },
            ...spec,
            env: env({ NIX_REMOTE: 'daemon', ...spec.env }),
          },
          fresh([...setup, ...daemonSetup(NIX)]),
        );
        if (!r.main.ok || Number(r.main.outputs['paths-restored']) < count || !expect.test(r.main.log))
          throw new Error(`${what} restore failed:\n${r.main.log}`);
        if (LOG_DIR) writeFileSync(join(LOG_DIR, `${what}-restore-${i + 1}.log`), r.main.log);
        ms.push(r.main.durationMs);
      }
      return ms;
    };
    // Root through the daemon: the restore cannot write the store itself and imports through Nix (`nix copy`).
    const viaDaemon = await daemonRestores('daemon', /through Nix/, {}, []);
    // A non-root user with password-less sudo on a GitHub-hosted runner: restored as root through `sudo -n`.
    const viaSudo = await daemonRestores(
      'sudo',
      /Restoring as root/,
      { node: writeRunnerNode(scratch), env: { RUNNER_ENVIRONMENT: 'github-hosted' } },
      runnerUserSetup(true),
    );

    b.report(
      'cache-restore-vs-download-unpack',
      oursMs,
      med(baseDl),
      'baseline: curl from the same Azurite | zstd -d | tar -x + load-db',
    );
    b.report(
      'cache-restore-daemon-store',
      med(viaDaemon),
      baseMs,
      'a store behind nix-daemon (multi-user): imported through `nix copy`; baseline as cache-restore',
    );
    b.report(
      'cache-restore-daemon-sudo',
      med(viaSudo),
      baseMs,
      'the same store, job run by a non-root user with password-less sudo: restored as root; baseline as cache-restore',
    );
    b.report(
      'cache-restore-vs-whole-nix',
      oursMs,
      med(wholeRestore),
      `whole /nix via @actions/cache, ${mibOf(wholeEntry)}`,
    );
    b.report(
      'cache-save-nothing-new',
      med(idle),
      med(wholeSave),
      `goal <= 0.5 s; ${idleUploads} uploads in ${REPS + 1} jobs; baseline: whole /nix saved again`,
    );
    b.report(
      'cache-save-10-new',
      added.post.durationMs,
      med(wholeSave),
      `${added.post.outputs['paths-saved']} paths uploaded, ${(addedEntry.sizeBytes / 1024).toFixed(0)} KiB in 1 entry; ` +
        `baseline re-uploads ${mibOf(wholeEntry)}`,
    );
    console.log(`  whole-/nix restore runs: ${wholeRestore.map(b.secs).join(' ')} s`);
    const ours = svc.entries().filter((e) => e.key.startsWith('bench-')).length;
    console.log(`  cache entries created by our jobs: ${ours} (${2 + REPS} jobs; first save + 10-path save)`);
  }
} finally {
  await svc.stop();
  rmSync(scratch, { recursive: true, force: true });
}
