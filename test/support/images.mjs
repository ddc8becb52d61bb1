// Builds the image fixtures of test/fixtures/images with the host's Nix 2.8 into a PRIVATE store (a tmpfs /nix in
// a private mount namespace, so the host's /nix is never written), then copies them out, once: the result is cached
// in outDir under a key of the fixture sources and reused until they change. Plain JS so benchmarks can use it too.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const FIXTURE = resolve(dirname(fileURLToPath(import.meta.url)), '../fixtures/images');

/** The packages of the fixture flake this helper builds, with their derivation names (nix build --json does not
 * keep the order of its arguments, so outputs are recognised by name). */
export const FIXTURE_IMAGES = {
  archive: 'archive',
  archiveGz: 'archive.tar.gz',
  archiveZstd: 'archive.tar.zst',
  stream: 'stream',
  n2c: 'image.json',
  n2cBad: 'image-bad.json',
  ociLayout: 'oci-layout',
};

const NIX_CONF = [
  'build-users-group =',
  'sandbox = false',
  'substituters =',
  'experimental-features = nix-command flakes',
  '',
].join('\n');

function sourceKey() {
  const h = createHash('sha256');
  for (const f of readdirSync(FIXTURE).sort())
    h.update(f)
      .update('\0')
      .update(readFileSync(join(FIXTURE, f)));
  return h.digest('hex');
}

function run(cmd, args, timeoutMs) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => out.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, output: Buffer.concat(out).toString('utf8') });
    });
  });
}

/**
 * Returns the path of each fixture image (FIXTURE_IMAGES) plus `storeRoot`: a copy of the private store
 * (`<storeRoot>/nix/store/...`), which nix2container images need since image.json names store paths.
 */
export async function buildFixtureImages(outDir) {
  const key = sourceKey();
  const index = join(outDir, 'images.json');
  if (existsSync(index)) {
    const cached = JSON.parse(readFileSync(index, 'utf8'));
    if (cached.key === key) return cached.paths;
  }
  const work = `${outDir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'nixconf'), { recursive: true });
  writeFileSync(join(work, 'nixconf', 'nix.conf'), NIX_CONF);
  // Inside the namespace: a fresh /nix, the build (its JSON names the outputs), and a copy of the whole store, all
  // before the namespace and its tmpfs go away. Paths travel as arguments, never as shell text.
  const script = [
    'set -e',
    'mkdir -p /nix',
    'mount -t tmpfs -o mode=0755 tmpfs /nix',
    'work=$1 flake=$2',
    'shift 2',
    'export NIX_CONF_DIR="$work/nixconf" NIX_USER_CONF_FILES="$work/nixconf/nix.conf"',
    'export HOME="$work/home" XDG_CACHE_HOME="$work/cache"',
    'nix build --no-link --json "$@" > "$work/build.json"',
    'mkdir -p "$work/root/nix"',
    'cp -a /nix/store "$work/root/nix/"',
  ].join('\n');
  const attrs = Object.keys(FIXTURE_IMAGES).map((a) => `path:${FIXTURE}#${a}`);
  const args = ['-m', '--propagation', 'private', '--', '/bin/sh', '-c', script, 'sh', work, FIXTURE, ...attrs];
  const r = await run('unshare', args, 300_000);
  if (r.code !== 0) throw new Error(`building the image fixtures failed (exit ${r.code}):\n${r.output}`);
  const built = JSON.parse(readFileSync(join(work, 'build.json'), 'utf8'));
  const outs = (Array.isArray(built) ? built : []).map((b) => b?.outputs?.out).filter(Boolean);
  const paths = { storeRoot: join(outDir, 'root') };
  for (const [attr, name] of Object.entries(FIXTURE_IMAGES)) {
    const out = outs.find((o) => o.replace(/^\/nix\/store\/[^-]+-/, '') === name);
    if (!out) throw new Error(`nix build --json did not report ${attr} (${name}): ${JSON.stringify(built)}`);
    // Dereferenced copies: the images hold no store symlinks, and a copy outlives the private store.
    cpSync(join(work, 'root', out), join(work, attr), { recursive: true, dereference: true });
    paths[attr] = join(outDir, attr);
    paths[`${attr}StorePath`] = out;
  }
  for (const d of ['home', 'cache', 'nixconf']) rmSync(join(work, d), { recursive: true, force: true });
  writeFileSync(join(work, 'images.json'), JSON.stringify({ key, paths }, null, 2));
  rmSync(outDir, { recursive: true, force: true });
  renameSync(work, outDir);
  return paths;
}
