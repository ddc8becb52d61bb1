// install-nix from the release tarball into a fresh tmpfs /nix, against `xz -dc | tar -x` of the same tarball.
// Ours is the main step's wall time as the harness records it (node start, download over local HTTP, sha256,
// unpack, load-db, profile, nix.conf); kvm: false because the KVM probe is not part of the install's cost (it is
// measured once on its own at the end). Run alone with `node bench/install-tarball.mjs`.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import * as b from './lib/common.mjs';

const REPS = Number(process.env.BENCH_REPS) || 5;
const GOAL = 1.3;

b.requireBenchTools();
const scratch = b.scratchDir('bench-tarball-');
const server = await b.serveDirectory(b.RELEASE_DIR);
try {
  const distRoot = await b.snapshotDist(scratch);
  const install = async (kvm, i) => {
    const timeFile = join(scratch, `ours-${kvm}-${i}.time`);
    const r = await b.runInNamespace(
      {
        action: 'install-nix',
        distRoot,
        inputs: { source: 'tarball', 'tarball-url': `${server.url}/${b.TARBALL_NAME}`, 'tool-cache': 'false', kvm },
      },
      b.isolation(scratch),
      { timeFile },
    );
    if (!r.main.ok) throw new Error(`install failed:\n${r.main.log}`);
    return { ms: r.main.durationMs, rss: b.peakRss(timeFile)[0], kvm: r.main.outputs.kvm };
  };

  // One unmeasured run of each side first: page cache, node's compile cache and the server warm up.
  await install('false', 'warmup');
  const ours = [];
  for (let i = 0; i < REPS; i++) ours.push(await install('false', i));

  const tarTime = join(scratch, 'baseline.time');
  const untar = () =>
    b.timeInNamespace(
      ['mkdir -p /nix', 'mount -t tmpfs tmpfs /nix', 'mkdir /nix/x'],
      `xz -dc ${b.shellQuote(b.TARBALL)} | tar -x -C /nix/x`,
      tarTime,
    );
  await untar();
  const base = [];
  for (let i = 0; i < REPS; i++) base.push({ ms: await untar(), rss: b.peakRss(tarTime)[0] });

  const oursMs = b.median(ours.map((r) => r.ms));
  const baseMs = b.median(base.map((r) => r.ms));
  const mem = `peak RSS ours ${b.mib(Math.max(...ours.map((r) => r.rss)))}, baseline ${b.mib(Math.max(...base.map((r) => r.rss)))}`;
  b.report('install-tarball', oursMs, baseMs, `median of ${REPS}, kvm false; goal ratio <= ${GOAL}; ${mem}`);
  console.log(
    `  runs ours: ${ours.map((r) => b.secs(r.ms)).join(' ')} s; baseline: ${base.map((r) => b.secs(r.ms)).join(' ')} s`,
  );

  // The probe runs a tiny guest (up to its 3 s deadline); report what it adds on top of the install.
  const withKvm = await install('true', 'kvm');
  console.log(
    `  kvm: true adds ${b.secs(withKvm.ms - oursMs)} s (one run: ${b.secs(withKvm.ms)} s, kvm output ${withKvm.kvm})`,
  );
} finally {
  await server.close();
  rmSync(scratch, { recursive: true, force: true });
}
