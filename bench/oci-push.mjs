// oci-push against `skopeo copy docker-archive:... docker://...` on the same image and a local docker-registry:
// - first push of a 20-layer ~350 MB docker-archive to an empty registry (goal: ratio <= 0.8);
// - re-push of the same image from a fresh state to a registry that already has it (goal: ratio <= 0.2). Ours runs
//   with fresh runner directories (HOME, RUNNER_TEMP); skopeo with a fresh blob-info cache, which as root lives in
//   /var/lib/containers/cache (a tmpfs there, in a private mount namespace, plus a fresh HOME);
// - peak RSS pushing a 2 GB image (goal: <= 200 MiB), with skopeo's time and RSS alongside.
// Ours is the step's wall time as the harness records it (node start to exit), skopeo's the command's; both runs of
// a pair see the same machine, interleaved. Each side's CPU time (user + system, from /usr/bin/time) is printed too:
// on a shared machine the wall times move with other load, the CPU times much less, and the push is CPU-bound on
// small runners. Run alone with `npm run bench -- oci-push` (BENCH_REPS, default 3).
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runStep } from '../test/harness/runner-core.mjs';
import { startRegistry } from '../test/support/registry.mjs';
import * as b from './lib/common.mjs';
import { generateArchive } from './lib/oci-image.mjs';

const REPS = Number(process.env.BENCH_REPS) || 3;
// For tuning: BENCH_OCI_NODE_OPTIONS (say `--cpu-prof --cpu-prof-dir=DIR`) goes to our steps' node.
const NODE_OPTIONS = process.env.BENCH_OCI_NODE_OPTIONS;
// BENCH_OCI_ONLY=350 skips the 2 GB image.
const ONLY_350 = process.env.BENCH_OCI_ONLY === '350';
const MiB = 1 << 20;

/** User + system seconds of the first record in a `/usr/bin/time -v` file. */
function cpuSeconds(timeFile) {
  if (!existsSync(timeFile)) return NaN;
  const text = readFileSync(timeFile, 'utf8');
  const field = (name) => Number(new RegExp(`${name} time \\(seconds\\): ([\\d.]+)`).exec(text)?.[1]);
  return field('User') + field('System');
}

b.requireCommand(b.TIME, 'time');
b.requireCommand('/usr/bin/skopeo', 'skopeo');
b.requireCommand('/usr/bin/unshare', 'util-linux');
if (process.getuid?.() !== 0) throw new Error('the benchmark needs root (a private mount namespace for skopeo)');

const scratch = b.scratchDir('bench-oci-');
try {
  const distRoot = await b.snapshotDist(scratch);
  // `node` for the harness: the step under /usr/bin/time, its record in the file the step's env names.
  const node = join(scratch, 'node-timed');
  writeFileSync(node, `#!/bin/bash\nexec ${b.TIME} -v -o "$BENCH_TIME_FILE" ${b.shellQuote(process.execPath)} "$@"\n`);
  chmodSync(node, 0o755);
  let run = 0;

  const ours = async (image, registry, tag) => {
    const timeFile = join(scratch, `ours-${run++}.time`);
    const r = await runStep({
      action: 'oci-push',
      distRoot,
      node,
      env: { BENCH_TIME_FILE: timeFile, ...(NODE_OPTIONS ? { NODE_OPTIONS } : {}) },
      inputs: { image, tags: `${registry.host}/bench/ours:${tag}` },
    });
    if (!r.ok) throw new Error(`oci-push failed:\n${r.log}`);
    const totals = JSON.parse(r.outputs.metadata).repositories[0].images[0].totals;
    return { ms: r.durationMs, cpu: cpuSeconds(timeFile), rss: b.peakRss(timeFile)[0], totals };
  };

  const skopeo = async (image, registry, tag) => {
    const timeFile = join(scratch, `skopeo-${run++}.time`);
    const home = join(scratch, `home-${run}`);
    mkdirSync(home);
    const setup = [
      'mkdir -p /var/lib/containers',
      'mount -t tmpfs tmpfs /var/lib/containers',
      `export HOME=${b.shellQuote(home)}`,
    ];
    const dest = `docker://${registry.host}/bench/skopeo:${tag}`;
    const ms = await b.timeInNamespace(
      setup,
      `skopeo copy -q --dest-tls-verify=false docker-archive:${b.shellQuote(image)} ${b.shellQuote(dest)}`,
      timeFile,
    );
    return { ms, cpu: cpuSeconds(timeFile), rss: b.peakRss(timeFile)[0] };
  };

  const withRegistry = async (fn) => {
    const registry = await startRegistry();
    try {
      return await fn(registry);
    } finally {
      await registry.stop();
    }
  };

  const image = join(scratch, 'image-350.tar');
  const gen = generateArchive(image, { layers: 20, layerBytes: Math.round(17.5 * MiB), seed: 1 });
  console.log(`  image: ${(gen.size / MiB).toFixed(0)} MiB, 20 layers (/usr files and pseudo-random bytes)`);

  // One unmeasured pair: page cache, node's compile cache, skopeo's binary.
  await withRegistry(async (r) => {
    await ours(image, r, 'warmup');
    await skopeo(image, r, 'warmup');
  });

  const first = { ours: [], base: [] };
  const again = { ours: [], base: [] };
  for (let i = 0; i < REPS; i++) {
    // A fresh registry per pair: the first push really is a first push.
    await withRegistry(async (r) => {
      first.ours.push(await ours(image, r, 'v1'));
      first.base.push(await skopeo(image, r, 'v1'));
      // Re-push: the registry has both images now; each side starts from fresh local state.
      const o = await ours(image, r, 'v1');
      if (o.totals.skipped !== 20 || o.totals.bytes !== 0) throw new Error(`re-push sent layers: ${JSON.stringify(o)}`);
      again.ours.push(o);
      again.base.push(await skopeo(image, r, 'v1'));
    });
  }
  const line = (name, runs, goal) => {
    const oursMs = b.median(runs.ours.map((x) => x.ms));
    const baseMs = b.median(runs.base.map((x) => x.ms));
    const mem = `peak RSS ours ${b.mib(Math.max(...runs.ours.map((x) => x.rss)))}, skopeo ${b.mib(Math.max(...runs.base.map((x) => x.rss)))}`;
    const cpu = `CPU ours ${b.median(runs.ours.map((x) => x.cpu)).toFixed(2)} s, skopeo ${b.median(runs.base.map((x) => x.cpu)).toFixed(2)} s`;
    b.report(name, oursMs, baseMs, `median of ${REPS}; goal ratio <= ${goal}; ${cpu}; ${mem}`);
    const each = (xs) => xs.map((x) => `${b.secs(x.ms)}/${x.cpu.toFixed(2)}`).join(' ');
    console.log(`  runs (wall/CPU s) ours: ${each(runs.ours)}; skopeo: ${each(runs.base)}`);
  };
  line('oci-push-first', first, 0.8);
  line('oci-push-repush', again, 0.2);
  rmSync(image, { force: true });

  if (!ONLY_350) {
    // 2 GB: one run each (minutes of CPU); the number that matters is ours' peak RSS.
    const big = join(scratch, 'image-2g.tar');
    const bigGen = generateArchive(big, { layers: 20, layerBytes: 100 * MiB, seed: 2 });
    const o = await withRegistry((r) => ours(big, r, 'big'));
    const s = await withRegistry((r) => skopeo(big, r, 'big'));
    b.report(
      'oci-push-2g',
      o.ms,
      s.ms,
      `${(bigGen.size / MiB).toFixed(0)} MiB image, one run; CPU ours ${o.cpu.toFixed(1)} s, skopeo ${s.cpu.toFixed(1)} s; ` +
        `peak RSS ours ${b.mib(o.rss)} (goal <= 200 MiB), skopeo ${b.mib(s.rss)}`,
    );
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
