// actions/build against bare Nix (issue 3's benchmark): a flake with 200 trivial checks and 10 that each take ~1 s.
// - build: the dist/build bundle (select, evaluate each attribute, build with --keep-going, attribute, write
//   results JSON, JUnit and the summary) against `nix build --keep-going --no-link` of the same 210 attributes, with
//   the same settings (so the same max-jobs). Every repetition uses new derivations (a nonce in the flake), so both
//   really build everything. Goal <= 1.05x.
// - cached: the bundle with skip-cached on attributes whose outputs are all valid already. Goal <= 2 s.
// Each Nix version gets its own chroot store under the scratch directory; the host /nix is never touched.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runStep } from '../test/harness/runner-core.mjs';
import * as b from './lib/common.mjs';

const REPS = Number(process.env.BENCH_REPS) || 3;
const GOAL_RATIO = 1.05;
const GOAL_CACHED_S = 2;
const SYSTEM = 'x86_64-linux';
const TRIVIAL = 200;
const SLOW = 10;

// BENCH_BUILD_NIX=2.8 (or 2.34) runs one version only.
const VERSIONS = [
  { name: '2.8', bin: '/usr/bin' },
  { name: '2.34', bin: join(b.CACHE, 'nix-2.34.8', 'bin') },
].filter((v) => !process.env.BENCH_BUILD_NIX || v.name === process.env.BENCH_BUILD_NIX);

function flakeText(nonce) {
  const checks = [];
  for (let i = 1; i <= TRIVIAL; i++) checks.push(`    t${i} = mk "t${i}" "echo ok > $out";`);
  for (let i = 1; i <= SLOW; i++) checks.push(`    s${i} = mk "s${i}" "sleep 1; echo ok > $out";`);
  return [
    '{',
    '  outputs = { self }: let',
    '    mk = name: cmd: derivation {',
    `      inherit name; system = "${SYSTEM}"; builder = "/bin/sh"; args = [ "-c" cmd ];`,
    `      PATH = "/usr/bin:/bin"; nonce = "${nonce}";`,
    '    };',
    `  in { checks.${SYSTEM} = {`,
    ...checks,
    '  }; };',
    '}',
    '',
  ].join('\n');
}

const attrs = () => [
  ...Array.from({ length: TRIVIAL }, (_, i) => `.#checks.${SYSTEM}.t${i + 1}`),
  ...Array.from({ length: SLOW }, (_, i) => `.#checks.${SYSTEM}.s${i + 1}`),
];

function makeFlake(dir, nonce) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'flake.nix'), flakeText(nonce));
  // A git flake, as in a checkout; committed so Nix does not warn about a dirty tree.
  const git = (...args) =>
    execFileSync('git', ['-c', 'user.name=bench', '-c', 'user.email=bench@example.invalid', ...args], { cwd: dir });
  git('init', '-q');
  git('add', '-A');
  git('commit', '-q', '-m', 'bench');
}

function envFor(v, scratch) {
  const store = join(scratch, `store-${v.name}`);
  const home = join(scratch, `home-${v.name}`);
  mkdirSync(home, { recursive: true });
  const conf = [
    `store = ${store}`,
    'substituters =',
    'sandbox = false',
    `sandbox-paths = /bin /usr /lib /lib64`,
    'build-users-group =',
    'experimental-features = nix-command flakes',
    'require-sigs = false',
  ].join('\n');
  return {
    PATH: `${v.bin}:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOME: home,
    NIX_CONFIG: conf,
    XDG_CACHE_HOME: join(home, '.cache'),
  };
}

async function ours(distRoot, flake, env, extra = {}) {
  const started = Date.now();
  const r = await runStep({
    action: 'build',
    distRoot,
    env,
    dirs: { workspace: flake, home: env.HOME },
    inputs: { flake, 'github-token': '', lint: 'false', ...extra },
  });
  const ms = Date.now() - started;
  if (!r.ok) throw new Error(`actions/build failed:\n${r.log}`);
  return { ms, outputs: r.outputs };
}

function bare(v, flake, env) {
  const started = Date.now();
  execFileSync(join(v.bin, 'nix'), ['build', '--keep-going', '--no-link', ...attrs()], {
    cwd: flake,
    env,
    stdio: 'ignore',
  });
  return Date.now() - started;
}

const scratch = b.scratchDir('bench-build-');
try {
  const distRoot = await b.snapshotDist(scratch);
  for (const v of VERSIONS) {
    b.requireCommand(
      join(v.bin, 'nix'),
      v.name === '2.8' ? 'nix-bin' : 'the fixtures: bash test/setup/nix-fixtures.sh',
    );
    const env = envFor(v, scratch);
    const flake = join(scratch, `flake-${v.name}`);
    const oursMs = [];
    const baseMs = [];
    // A warm-up of each, so neither pays for first-time costs (store creation, the flake registry) in the numbers.
    makeFlake(flake, `warm-${v.name}`);
    await ours(distRoot, flake, env);
    makeFlake(flake, `warm2-${v.name}`);
    bare(v, flake, env);
    for (let i = 0; i < REPS; i++) {
      // Alternate who goes first, so neither always runs on a warmer machine.
      makeFlake(flake, `ours-${v.name}-${i}`);
      const o = await ours(distRoot, flake, env);
      if (o.outputs.built !== String(TRIVIAL + SLOW)) throw new Error(`built ${o.outputs.built}, expected 210`);
      oursMs.push(o.ms);
      makeFlake(flake, `bare-${v.name}-${i}`);
      baseMs.push(bare(v, flake, env));
    }
    const o = b.median(oursMs);
    const base = b.median(baseMs);
    b.report(`build-${v.name}`, o, base, `goal <= ${GOAL_RATIO}x: ${o / base <= GOAL_RATIO ? 'met' : 'NOT met'}`);

    // All cached: the last flake of ours is built; run it again with skip-cached.
    makeFlake(flake, `ours-${v.name}-${REPS - 1}`);
    const cached = [];
    const noop = [];
    for (let i = 0; i < REPS; i++) {
      const c = await ours(distRoot, flake, env, { 'skip-cached': 'true' });
      if (c.outputs.cached !== String(TRIVIAL + SLOW)) throw new Error(`cached ${c.outputs.cached}, expected 210`);
      cached.push(c.ms);
      noop.push(bare(v, flake, env));
    }
    const c = b.median(cached);
    b.report(
      `build-cached-${v.name}`,
      c,
      b.median(noop),
      `goal <= ${GOAL_CACHED_S} s: ${c <= GOAL_CACHED_S * 1000 ? 'met' : 'NOT met'}; baseline: bare nix build of the built set`,
    );
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
