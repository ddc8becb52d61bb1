/**
 * The image readers on images built by real Nix (host Nix 2.8, private store in a private mount namespace): every
 * layer is read and hashed, and the hashes must be the configs' rootfs.diff_ids; the streamed image runs its script;
 * the nix2container layers are rebuilt from the store paths and must match image.json, except in n2cBad where the
 * mismatch must come out of verifyDiffId naming the layer. skopeo cross-checks what it can read.
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { Readable } from 'node:stream';
import { InputError } from '../../src/errors.js';
import { openImage, type OpenImageOptions } from '../../src/oci/image/detect.js';
import { verifyDiffId } from '../../src/oci/image/nix2container.js';
import type { Digest, ImageConfig, ImageSource, SourceLayer } from '../../src/oci/types.js';
import { REPO_ROOT } from '../harness/runner-core.mjs';
import { requireCommand } from '../support/fixtures.js';
import { buildFixtureImages, type FixtureImages } from '../support/images.mjs';

let img: FixtureImages;

async function sha(chunks: AsyncIterable<Buffer>): Promise<Digest> {
  const h = createHash('sha256');
  for await (const c of chunks) h.update(c);
  return `sha256:${h.digest('hex')}`;
}

interface Seen {
  layers: SourceLayer[];
  /** Hash of each layer's uncompressed tar (undefined for sameAs references). */
  diffIds: (Digest | undefined)[];
  config: ImageConfig;
  order: number[];
  format: ImageSource['format'];
}

/** Reads every layer as a pusher would (streaming, hashing), checking blob digests on the way. */
async function readImage(path: string, opts: OpenImageOptions = {}): Promise<Seen> {
  const src = await openImage(path, opts);
  const layers: SourceLayer[] = [];
  const diffIds: (Digest | undefined)[] = [];
  try {
    for await (const l of src.layers()) {
      layers.push(l);
      if (l.raw) diffIds.push(await sha(l.raw));
      else if (l.blob) {
        const h = createHash('sha256');
        const gunzip = createGunzip();
        const tee = async function* () {
          for await (const c of l.blob!.open()) {
            h.update(c);
            yield c;
          }
        };
        const diff = sha(Readable.from(tee()).pipe(gunzip));
        diffIds.push(await diff);
        expect(`sha256:${h.digest('hex')}`).toBe(l.digest);
      } else diffIds.push(undefined);
    }
    const { config, order } = await src.finish();
    return { layers, diffIds, config, order, format: src.format };
  } finally {
    await src.close();
  }
}

/** The invariant of every format: the layers the order points at hash to the config's diff_ids. */
function consistent(s: Seen): void {
  expect(s.order.map((i) => s.diffIds[s.layers[i]?.sameAs ?? i])).toEqual(s.config.diffIds);
  for (const [i, l] of s.layers.entries()) if (l.diffId && s.diffIds[i]) expect(s.diffIds[i]).toBe(l.diffId);
}

function skopeoConfig(ref: string): { rootfs: { diff_ids: string[] } } {
  const r = spawnSync('skopeo', ['inspect', '--config', ref], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`skopeo inspect ${ref}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

beforeAll(async () => {
  requireCommand('/usr/bin/unshare', 'util-linux');
  requireCommand('/usr/bin/nix', 'nix-bin');
  requireCommand('/usr/bin/zstd', 'zstd');
  img = await buildFixtureImages(join(REPO_ROOT, '.flake-ci-test', 'oci-images'));
}, 300_000);

describe('image readers on Nix-built images', () => {
  it('reads the buildImage-style docker archive, plain and gzip, with identical results', async () => {
    const plain = await readImage(img.archive);
    expect(plain.format).toBe('docker-archive');
    expect(plain.layers).toHaveLength(3);
    expect(plain.layers.every((l) => l.diffId === undefined)).toBe(true); // legacy ids are not diff_ids
    consistent(plain);
    const gz = await readImage(img.archiveGz);
    consistent(gz);
    expect(gz.config.raw.equals(plain.config.raw)).toBe(true);
    expect(skopeoConfig(`docker-archive:${img.archive}`).rootfs.diff_ids).toEqual(plain.config.diffIds);
  });

  it('runs the streamLayeredImage-style script and reads its stdout in one pass', async () => {
    const s = await readImage(img.stream);
    expect(s.format).toBe('docker-archive-stream');
    expect(s.layers.map((l) => l.diffId)).toEqual(s.config.diffIds); // named by diff_id, known before reading
    consistent(s);
    const plain = await readImage(img.archive);
    expect(s.config.raw.equals(plain.config.raw)).toBe(true);
  });

  it('reads the zstd-compressed layered archive', async () => {
    const z = await readImage(img.archiveZstd);
    expect(z.format).toBe('docker-archive');
    expect(z.layers.every((l) => l.diffId)).toBe(true);
    consistent(z);
  });

  it('rebuilds the nix2container layers from the store paths with the digests of image.json', async () => {
    const n = await readImage(img.n2c, { root: img.storeRoot });
    expect(n.format).toBe('nix2container');
    expect(n.layers).toHaveLength(4);
    for (const [i, l] of n.layers.entries()) verifyDiffId(l, n.diffIds[i] as Digest);
    expect(n.layers.map((l) => l.diffId)).toEqual(n.config.diffIds);
    consistent(n);
    expect(n.layers[3]?.blob?.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
  });

  it('reports n2cBad through verifyDiffId, naming the layer and its store path', async () => {
    const n = await readImage(img.n2cBad, { root: img.storeRoot });
    const bad = n.layers.findIndex((l, i) => l.diffId !== n.diffIds[i]);
    expect(bad).toBe(1);
    let err: unknown;
    try {
      for (const [i, l] of n.layers.entries()) verifyDiffId(l, n.diffIds[i] as Digest);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    const msg = String(err);
    expect(msg).toMatch(/layer 1 \(\/nix\/store\/[0-9a-z]{32}-data\)/);
    expect(msg).toContain(n.layers[1]?.diffId);
    expect(msg).toContain(n.diffIds[1]);
  });

  it('reads the OCI layout for the platform asked for, and asks when there are several', async () => {
    await expect(openImage(img.ociLayout)).rejects.toThrow(/holds 2 images \(linux\/amd64, linux\/arm64\/v8\)/);
    const amd = await readImage(img.ociLayout, { platform: { os: 'linux', architecture: 'amd64' } });
    expect(amd.format).toBe('oci-layout');
    expect(amd.layers).toHaveLength(3);
    consistent(amd);
    expect(amd.config.raw.equals((await readImage(img.archive)).config.raw)).toBe(true);
    const arm = await readImage(img.ociLayout, { platform: { os: 'linux', architecture: 'arm64' } });
    expect(arm.config).toMatchObject({ architecture: 'arm64', variant: 'v8' });
    consistent(arm);
    expect(skopeoConfig(`oci:${img.ociLayout}:amd64`).rootfs.diff_ids).toEqual(amd.config.diffIds);
  });
});
