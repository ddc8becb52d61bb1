/**
 * OCI image layouts: a single image, several platforms (direct and through a nested index, as docker and skopeo
 * write them), attestation manifests ignored, and the errors for missing blobs and hostile digests.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { InputError } from '../../src/errors.js';
import { blobPath, ociLayoutManifests, openOciLayout } from '../../src/oci/image/oci-layout.js';
import { MEDIA, type Descriptor, type Platform, type SourceLayer } from '../../src/oci/types.js';
import { readAll } from './helpers/tar-fixtures.js';

const digest = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let scratch: string;

/** Writes a blob into the layout and returns its descriptor. */
function put(dir: string, mediaType: string, body: Buffer | string, extra: Partial<Descriptor> = {}): Descriptor {
  const b = Buffer.from(body);
  const d = digest(b);
  fs.mkdirSync(join(dir, 'blobs/sha256'), { recursive: true });
  fs.writeFileSync(join(dir, 'blobs/sha256', d.slice(7)), b);
  return { mediaType, digest: d, size: b.length, ...extra };
}

function image(dir: string, platform: Platform, layerCount: number): Descriptor {
  const raws = Array.from({ length: layerCount }, (_, i) =>
    Buffer.alloc(1024 * (i + 1), `${platform.architecture}${i}`),
  );
  const layers = raws.map((r) => put(dir, MEDIA.ociLayerGzip, gzipSync(r)));
  const cfg = { ...platform, rootfs: { type: 'layers', diff_ids: raws.map(digest) } };
  const config = put(dir, MEDIA.ociConfig, JSON.stringify(cfg));
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config, layers });
  return put(dir, MEDIA.ociManifest, manifest, { platform });
}

function layout(name: string, manifests: Descriptor[]): string {
  const dir = join(scratch, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  fs.writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests }));
  return dir;
}

const amd64 = { os: 'linux', architecture: 'amd64' };
const arm64 = { os: 'linux', architecture: 'arm64', variant: 'v8' };

beforeAll(() => {
  scratch = fs.mkdtempSync(join(tmpdir(), 'oci-layout-'));
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

describe('OCI layout reader', () => {
  it('reads a single image: blobs as they are, diff_ids from the config', async () => {
    const dir = join(scratch, 'single');
    const m = image(dir, amd64, 2);
    layout('single', [{ ...m, platform: undefined }]);
    const src = await openOciLayout(dir);
    const got: SourceLayer[] = [];
    for await (const l of src.layers()) got.push(l);
    const { config, order } = await src.finish();
    expect(order).toEqual([0, 1]);
    expect(got.map((l) => l.diffId)).toEqual(config.diffIds);
    for (const l of got) {
      expect(l.raw).toBeUndefined();
      expect(l.blob?.mediaType).toBe(MEDIA.ociLayerGzip);
      expect(digest(await readAll(l.blob!.open()))).toBe(l.digest);
    }
    expect(config).toMatchObject({ architecture: 'amd64', os: 'linux' });
    // A platform asked for is accepted for a lone manifest without one in index.json.
    await expect(openOciLayout(dir, { platform: amd64 })).resolves.toBeDefined();
  });

  it('picks the platform from direct or nested indexes and ignores attestations', async () => {
    const dir = join(scratch, 'multi');
    const a = image(dir, amd64, 1);
    const b = image(dir, arm64, 2);
    const attestation = put(dir, MEDIA.ociManifest, '{}', { platform: { os: 'unknown', architecture: 'unknown' } });
    const nested = put(dir, MEDIA.ociIndex, JSON.stringify({ schemaVersion: 2, manifests: [a, b, attestation] }));
    layout('multi', [nested]);
    expect((await ociLayoutManifests(dir)).map((d) => d.platform?.architecture)).toEqual(['amd64', 'arm64']);
    await expect(openOciLayout(dir)).rejects.toThrow(
      /holds 2 images \(linux\/amd64, linux\/arm64\/v8\); name the platform/,
    );
    const src = await openOciLayout(dir, { platform: { os: 'linux', architecture: 'arm64' } });
    const { config } = await src.finish();
    expect(config).toMatchObject({ architecture: 'arm64', variant: 'v8', diffIds: expect.any(Array) });
    expect(config.diffIds).toHaveLength(2);
    await expect(openOciLayout(dir, { platform: { os: 'linux', architecture: 's390x' } })).rejects.toThrow(
      /no single image for platform linux\/s390x/,
    );
  });

  it('names missing blobs and refuses digests that are not digests', async () => {
    const dir = join(scratch, 'broken');
    const m = image(dir, amd64, 1);
    layout('broken', [m]);
    const manifest = JSON.parse(fs.readFileSync(blobPath(dir, m.digest), 'utf8'));
    fs.rmSync(blobPath(dir, manifest.layers[0].digest));
    await expect(openOciLayout(dir)).rejects.toThrow(/layer blob sha256:[0-9a-f]{64} is missing/);
    layout('hostile', [{ ...m, digest: 'sha256:../../../etc/passwd' }]);
    const e = await openOciLayout(join(scratch, 'hostile')).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InputError);
    expect(String(e)).toContain('is not a digest');
  });
});
