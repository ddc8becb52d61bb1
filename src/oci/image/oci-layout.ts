/**
 * An OCI image layout directory (image-spec image-layout.md): `oci-layout`, `index.json`, `blobs/<alg>/<hex>`.
 * index.json leads to one image manifest, directly or through nested indexes (docker and skopeo write both); with
 * several platforms the caller names one. Layers are sent as the blobs they are (already compressed), their diff_ids
 * taken from the config so a push can skip what the registry has without reading them.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../errors.js';
import { MEDIA, type Descriptor, type ImageSource, type Platform, type SourceLayer } from '../types.js';
import { parseImageConfig } from './docker-archive.js';

export interface OciLayoutOptions {
  /** Required when index.json offers several platforms. */
  platform?: Platform;
}

const INDEX_TYPES: readonly string[] = [MEDIA.ociIndex, MEDIA.dockerList];
const MANIFEST_TYPES: readonly string[] = [MEDIA.ociManifest, MEDIA.dockerManifest];
/** Indexes and manifests are small; a huge one is a broken layout, not something to load. */
const MAX_JSON = 16 * 1024 * 1024;

/** The file of a blob; the digest is checked first so a crafted one cannot name a path outside the layout. */
export function blobPath(dir: string, digest: string): string {
  const m = /^(sha256|sha512):([0-9a-f]{64,128})$/.exec(digest);
  if (!m) throw new InputError(`${dir}: '${digest}' is not a digest this layout can hold`);
  return join(dir, 'blobs', m[1] as string, m[2] as string);
}

async function readBlob(dir: string, digest: string, what: string): Promise<Buffer> {
  const file = blobPath(dir, digest);
  const st = await stat(file).catch(() => undefined);
  if (!st?.isFile()) throw new InputError(`${dir}: the ${what} blob ${digest} is missing from blobs/`);
  if (st.size > MAX_JSON) throw new InputError(`${dir}: the ${what} blob ${digest} is too large (${st.size} bytes)`);
  return readFile(file);
}

function json(buf: Buffer, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(buf.toString('utf8'));
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new InputError(`${what} is not a JSON object; the OCI layout is corrupt`);
}

const platformText = (p?: Platform) => (p ? `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}` : '?');

function matches(p: Platform | undefined, want: Platform): boolean {
  return (
    !!p && p.os === want.os && p.architecture === want.architecture && (!want.variant || p.variant === want.variant)
  );
}

/** The manifests index.json leads to (nested indexes flattened), for choosing and for messages. */
export async function ociLayoutManifests(dir: string): Promise<Descriptor[]> {
  const index = json(await readFile(join(dir, 'index.json')), `${dir}/index.json`);
  const out: Descriptor[] = [];
  const visit = async (descs: unknown, depth: number): Promise<void> => {
    if (!Array.isArray(descs)) throw new InputError(`${dir}: an index has no 'manifests' array`);
    for (const d of descs as Descriptor[]) {
      if (INDEX_TYPES.includes(d.mediaType) && depth < 4) {
        await visit(json(await readBlob(dir, d.digest, 'index'), `${dir}: index ${d.digest}`).manifests, depth + 1);
      } else if (MANIFEST_TYPES.includes(d.mediaType)) {
        // Attestation manifests (buildkit's "unknown/unknown") are not images to push.
        if (d.platform?.os !== 'unknown') out.push(d);
      }
    }
  };
  await visit(index.manifests, 0);
  return out;
}

export async function openOciLayout(dir: string, opts: OciLayoutOptions = {}): Promise<ImageSource> {
  const all = await ociLayoutManifests(dir);
  const want = opts.platform;
  // A lone manifest without a platform in index.json is taken as it is (its config says what it is).
  const chosen = want ? all.filter((d) => (d.platform ? matches(d.platform, want) : all.length === 1)) : all;
  if (chosen.length !== 1) {
    const offered = all.map((d) => platformText(d.platform)).join(', ') || 'none';
    throw new InputError(
      want
        ? `${dir}: no single image for platform ${platformText(want)} in index.json (it offers: ${offered})`
        : `${dir}: index.json holds ${all.length} images (${offered}); name the platform to push`,
    );
  }
  const desc = chosen[0] as Descriptor;
  const manifest = json(await readBlob(dir, desc.digest, 'manifest'), `${dir}: manifest ${desc.digest}`);
  const cfgDesc = manifest.config as Descriptor | undefined;
  const layerDescs = manifest.layers as Descriptor[] | undefined;
  if (!cfgDesc?.digest || !Array.isArray(layerDescs))
    throw new InputError(`${dir}: manifest ${desc.digest} has no config or layers`);
  const config = parseImageConfig(await readBlob(dir, cfgDesc.digest, 'config'), `${dir}: config ${cfgDesc.digest}`);
  if (config.diffIds.length !== layerDescs.length)
    throw new InputError(
      `${dir}: the manifest has ${layerDescs.length} layers but the config lists ${config.diffIds.length}`,
    );
  for (const l of layerDescs) {
    const st = await stat(blobPath(dir, l.digest)).catch(() => undefined);
    if (!st?.isFile()) throw new InputError(`${dir}: the layer blob ${l.digest} is missing from blobs/`);
  }
  return {
    format: 'oci-layout',
    async *layers(): AsyncGenerator<SourceLayer> {
      for (const [index, l] of layerDescs.entries()) {
        const file = blobPath(dir, l.digest);
        yield {
          index,
          name: `blobs/${l.digest.replace(':', '/')}`,
          diffId: config.diffIds[index],
          digest: l.digest,
          size: l.size,
          blob: { mediaType: l.mediaType, open: () => createReadStream(file) },
          skip: async () => {},
        };
      }
    },
    finish: async () => ({ config, order: layerDescs.map((_, i) => i) }),
    close: async () => {},
  };
}
