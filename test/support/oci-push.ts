/**
 * Shared by the oci-push end-to-end tests: the fixture images, running the dist bundle the way the GitHub runner
 * does, and the independent cross-check of every push with skopeo: inspect the reference, copy it back into an OCI
 * layout, decompress every layer and compare its sha256 with the config's diff_ids and with the fixture's own layers.
 */
import { expect } from '@jest/globals';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { REPO_ROOT, runActionInNamespace, runStep, shellQuote, type StepResult } from '../harness/github-runner.js';
import { buildFixtureImages, type FixtureImages } from './images.mjs';

export const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
export const FIXTURE_FLAKE = join(REPO_ROOT, 'test/fixtures/images');

export interface Fixtures extends FixtureImages {
  /** diff_ids of the three layers every docker-archive / OCI layout fixture shares, in image order. */
  layers: string[];
  /** diff_ids image.json states for the nix2container fixture. */
  n2cLayers: string[];
}

export async function fixtures(): Promise<Fixtures> {
  const img = await buildFixtureImages(join(REPO_ROOT, '.flake-ci-test', 'oci-images'));
  const store = join(img.storeRoot, 'nix/store');
  const layersDir = readdirSync(store).find((n) => /^[a-z0-9]{32}-layers$/.test(n));
  if (!layersDir) throw new Error(`no -layers store path in ${store}`);
  const layers = [1, 2, 3].map((i) => sha256(readFileSync(join(store, layersDir, `layer${i}.tar`))));
  const n2c = JSON.parse(readFileSync(img.n2c, 'utf8')) as { layers: { diff_ids: string }[] };
  return { ...img, layers, n2cLayers: n2c.layers.map((l) => l.diff_ids) };
}

let snapshot: string | undefined;

/**
 * A private copy of dist/oci-push, taken once per test file: `npm run build` starts with `rm -rf dist`, so a build in
 * another terminal would otherwise fail the steps of a run in progress. Waits (up to a minute) for a build under way
 * to finish: each entry's package.json is written after its index.js. Removed by removeDistSnapshot().
 */
export async function distSnapshot(): Promise<string> {
  if (snapshot) return snapshot;
  const entry = join(REPO_ROOT, 'dist', 'oci-push');
  for (let waited = 0; !existsSync(join(entry, 'package.json')); waited += 500) {
    if (waited > 60_000) throw new Error(`${entry} is missing: run 'npm run build'`);
    await new Promise((r) => setTimeout(r, 500));
  }
  const root = mkdtempSync(join(tmpdir(), 'flake-ci-oci-dist-'));
  cpSync(entry, join(root, 'dist', 'oci-push'), { recursive: true });
  snapshot = root;
  return root;
}

export function removeDistSnapshot(): void {
  if (snapshot) rmSync(snapshot, { recursive: true, force: true });
  snapshot = undefined;
}

export interface PushOptions {
  env?: Record<string, string>;
  /** nix2container: run in a private mount namespace with this copy of the store bind-mounted on /nix. */
  storeRoot?: string;
  /** Extra setup lines for the namespace (implies one). */
  setup?: string[];
}

/** One oci-push step, run as the GitHub runner runs it: fresh RUNNER_TEMP, HOME and file commands every time. */
export async function push(inputs: Record<string, string>, opts: PushOptions = {}): Promise<StepResult> {
  const distRoot = join(await distSnapshot(), 'dist');
  if (!opts.storeRoot && !opts.setup) return runStep({ action: 'oci-push', distRoot, inputs, env: opts.env });
  const setup = opts.setup ?? ['mkdir -p /nix', `mount --bind ${shellQuote(`${opts.storeRoot}/nix`)} /nix`];
  const r = await runActionInNamespace({ action: 'oci-push', distRoot, inputs, env: opts.env }, { setup });
  return r.main;
}

export interface Totals {
  layers: number;
  uploaded: number;
  mounted: number;
  skipped: number;
  bytes: number;
}

interface Metadata {
  digest: string;
  refs: string[];
  repositories: {
    registry: string;
    repository: string;
    tags: string[];
    images: { platform: string; digest: string; totals: Totals; layers: { action: string; bytes: number }[] }[];
  }[];
}

export function metadata(r: StepResult): Metadata {
  return JSON.parse(r.outputs.metadata ?? 'null') as Metadata;
}

/** The totals of one repository (`registry/repository`) in the metadata output. */
export function totalsOf(r: StepResult, repo: string): Totals {
  const found = metadata(r).repositories.find((x) => `${x.registry}/${x.repository}` === repo);
  if (!found) throw new Error(`${repo} is not in the metadata: ${r.outputs.metadata}`);
  return (found.images[0] as { totals: Totals }).totals;
}

/** The step succeeded; otherwise the test fails showing its log. */
export function ok(r: StepResult): void {
  expect({ ok: r.ok, log: r.ok ? '' : r.log }).toEqual({ ok: true, log: '' });
}

/** What the runner prints after masking, minus the `::add-mask::` commands themselves (which carry the secret). */
export function printed(r: StepResult): string {
  return (r.stdout + r.stderr).replace(/^::add-mask::.*$/gm, '');
}

export interface SkopeoCreds {
  user: string;
  password: string;
}

const credsArgs = (flag: string, c?: SkopeoCreds) => (c ? [flag, `${c.user}:${c.password}`] : []);

// Never the Sync variants: the token servers of token-auth registries run in this process and must stay responsive.
const run = promisify(execFile);

export async function skopeoInspect(
  ref: string,
  creds?: SkopeoCreds,
  extra: string[] = [],
): Promise<Record<string, unknown>> {
  const args = ['inspect', '--tls-verify=false', ...credsArgs('--creds', creds), ...extra, `docker://${ref}`];
  const { stdout } = await run('skopeo', args, { encoding: 'utf8', timeout: 60_000 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

/** Whether the reference exists (skopeo can read its manifest). */
export async function exists(ref: string, creds?: SkopeoCreds): Promise<boolean> {
  try {
    await skopeoInspect(ref, creds, ['--raw']);
    return true;
  } catch {
    return false;
  }
}

function decompress(mediaType: string, blob: Buffer): Buffer {
  if (mediaType.endsWith('+gzip') || mediaType.endsWith('.tar.gzip')) return zlib.gunzipSync(blob);
  if (mediaType.endsWith('+zstd')) return zlib.zstdDecompressSync(blob);
  return blob;
}

export interface Verified {
  digest: string;
  diffIds: string[];
  /** Layer media types of the pushed manifest ([] for an index). */
  mediaTypes: string[];
  platform: string;
}

/**
 * skopeo inspects `ref` and copies it into an OCI layout; every layer must decompress to bytes whose sha256 is the
 * config's diff_id at its position, and those must be `expected` (the fixture's layers).
 */
export async function verify(
  ref: string,
  expected: string[],
  creds?: SkopeoCreds,
  extra: string[] = [],
): Promise<Verified> {
  const inspect = await skopeoInspect(ref, creds, extra);
  // The manifest as pushed (the copy below may convert media types or compress); an index has no layers.
  const pushed = (await skopeoInspect(ref, creds, ['--raw'])) as { layers?: { mediaType: string }[] };
  const dir = mkdtempSync(join(tmpdir(), 'flake-ci-oci-verify-'));
  try {
    await run(
      'skopeo',
      [
        'copy',
        '--quiet',
        '--src-tls-verify=false',
        ...credsArgs('--src-creds', creds),
        ...extra,
        `docker://${ref}`,
        `oci:${dir}:x`,
      ],
      { timeout: 120_000 },
    );
    const blob = (d: string) => readFileSync(join(dir, 'blobs', 'sha256', d.replace(/^sha256:/, '')));
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const manifest = JSON.parse(blob((index.manifests[0] as { digest: string }).digest).toString()) as {
      config: { digest: string };
      layers: { digest: string; mediaType: string }[];
    };
    const config = JSON.parse(blob(manifest.config.digest).toString()) as {
      architecture: string;
      os: string;
      variant?: string;
      rootfs: { diff_ids: string[] };
    };
    const contents = manifest.layers.map((l) => sha256(decompress(l.mediaType, blob(l.digest))));
    expect(contents).toEqual(config.rootfs.diff_ids);
    expect(contents).toEqual(expected);
    expect(inspect.Layers).toHaveLength(expected.length);
    return {
      digest: inspect.Digest as string,
      diffIds: contents,
      mediaTypes: (pushed.layers ?? []).map((l) => l.mediaType),
      platform: [config.os, config.architecture, config.variant].filter(Boolean).join('/'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
