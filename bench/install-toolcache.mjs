// The second install on the same (self-hosted) runner: one install from the tarball fills RUNNER_TOOL_CACHE, then
// fresh-/nix installs copy the unpacked release from there instead of downloading and decompressing it. Against
// `cp -a` of the same cached directory into a tmpfs, the floor for "copy it into /nix". The .sha256 beside the
// tarball is still fetched each time (the cache key includes the checksum), as on a runner without tarball-sha256.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as b from './lib/common.mjs';

const REPS = Number(process.env.BENCH_REPS) || 5;
const GOAL_S = 1;

b.requireBenchTools();
const scratch = b.scratchDir('bench-toolcache-');
const server = await b.serveDirectory(b.RELEASE_DIR);
try {
  const distRoot = await b.snapshotDist(scratch);
  const toolCache = join(scratch, 'tool-cache');
  const install = async (i) => {
    const timeFile = join(scratch, `ours-${i}.time`);
    const r = await b.runInNamespace(
      {
        action: 'install-nix',
        distRoot,
        inputs: { source: 'tarball', 'tarball-url': `${server.url}/${b.TARBALL_NAME}`, kvm: 'false' },
        dirs: { toolCache },
      },
      b.isolation(scratch),
      { timeFile },
    );
    if (!r.main.ok) throw new Error(`install failed:\n${r.main.log}`);
    return { ms: r.main.durationMs, rss: b.peakRss(timeFile)[0], source: r.main.outputs.source };
  };

  const first = await install('warm');
  if (first.source !== 'tarball') throw new Error(`the first install should use the tarball, not ${first.source}`);
  const ours = [];
  for (let i = 0; i < REPS; i++) ours.push(await install(i));
  const wrong = ours.find((r) => r.source !== 'tool-cache');
  if (wrong) throw new Error(`a second install used ${wrong.source}, not the tool cache`);

  // @actions/tool-cache layout: <cache>/nix/<version>/<arch>, completed by an <arch>.complete marker.
  const versions = join(toolCache, 'nix');
  const [version] = readdirSync(versions);
  const arch = readdirSync(join(versions, version)).find((f) => !f.endsWith('.complete'));
  const cached = join(versions, version, arch);
  const cpTime = join(scratch, 'baseline.time');
  const copy = () =>
    b.timeInNamespace(
      ['mkdir -p /nix', 'mount -t tmpfs tmpfs /nix', 'mkdir /nix/x'],
      `cp -a ${b.shellQuote(`${cached}/.`)} /nix/x`,
      cpTime,
    );
  await copy();
  const base = [];
  for (let i = 0; i < REPS; i++) base.push({ ms: await copy(), rss: b.peakRss(cpTime)[0] });

  const oursMs = b.median(ours.map((r) => r.ms));
  const baseMs = b.median(base.map((r) => r.ms));
  const mem = `peak RSS ours ${b.mib(Math.max(...ours.map((r) => r.rss)))}, baseline ${b.mib(Math.max(...base.map((r) => r.rss)))}`;
  const goal = `goal <= ${GOAL_S} s: ${oursMs <= GOAL_S * 1000 ? 'met' : 'NOT met'}`;
  b.report('install-toolcache', oursMs, baseMs, `median of ${REPS}; ${goal}; ${mem}`);
  console.log(
    `  runs ours: ${ours.map((r) => b.secs(r.ms)).join(' ')} s (first, from the tarball: ${b.secs(first.ms)} s); baseline: ${base.map((r) => b.secs(r.ms)).join(' ')} s`,
  );
} finally {
  await server.close();
  rmSync(scratch, { recursive: true, force: true });
}
