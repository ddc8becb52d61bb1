/**
 * nix2container's image.json (types/types.go Image): `version`, `image-config` (the OCI config's `config` section),
 * `layers[]` of {digest, size, diff_ids, paths[{path, options}], mediatype, layer-path?, History?}, `arch`, `created`.
 * Layers without `layer-path` are rebuilt from their store paths (nix2container-tar.ts) and streamed as `raw`; a
 * layer with `layer-path` (compressed or non-reproducible layers, base-image layers) is sent as the blob it names.
 * The config is built here the way nix2container's GetConfigBlob does: os linux, the image's arch, its config, and
 * rootfs.diff_ids in layer order.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { InputError } from '../../errors.js';
import { MEDIA, type Digest, type ImageConfig, type ImageSource, type SourceLayer } from '../types.js';
import { nix2containerLayerTar, type LayerTarOptions, type Nix2containerPath } from './nix2container-tar.js';

export interface Nix2containerLayer {
  digest: string;
  size: number;
  diff_ids: string;
  paths?: Nix2containerPath[] | null;
  mediatype: string;
  'layer-path'?: string;
  History?: Record<string, unknown>;
}

export interface Nix2containerImage {
  version?: number;
  'image-config'?: Record<string, unknown> | null;
  layers: Nix2containerLayer[] | null;
  arch?: string;
  created?: string | null;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** True when parsed JSON has image.json's shape (what detection relies on: content, not the file name). */
export function isNix2containerImage(v: unknown): v is Nix2containerImage {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  const layersOk = o.layers === null || Array.isArray(o.layers);
  return layersOk && ('image-config' in o || ('version' in o && 'layers' in o));
}

function validate(img: Nix2containerImage, file: string): Nix2containerLayer[] {
  const layers = img.layers ?? [];
  layers.forEach((l, i) => {
    if (typeof l !== 'object' || l === null) throw new InputError(`${file}: layer ${i} is not an object`);
    for (const k of ['digest', 'diff_ids'] as const)
      if (typeof l[k] !== 'string' || !DIGEST.test(l[k]))
        throw new InputError(`${file}: layer ${i} has no valid '${k}' (${String(l[k])}); rebuild the image`);
    if (!l['layer-path'] && !(l.paths && l.paths.length > 0))
      throw new InputError(`${file}: layer ${i} has neither 'paths' nor 'layer-path'`);
  });
  return layers;
}

/** The config JSON, in the key order Go's json.Marshal of image-spec v1.Image gives. */
function buildConfig(img: Nix2containerImage, layers: Nix2containerLayer[]): ImageConfig {
  const arch = img.arch || 'amd64';
  const diffIds = layers.map((l) => l.diff_ids);
  const cfg: Record<string, unknown> = {};
  if (img.created && !img.created.startsWith('0001-01-01')) cfg.created = img.created;
  cfg.architecture = arch;
  cfg.os = 'linux';
  if (img['image-config'] && Object.keys(img['image-config']).length > 0) cfg.config = img['image-config'];
  cfg.rootfs = { type: 'layers', diff_ids: diffIds };
  const history = layers.map((l) => l.History).filter((h) => h && Object.keys(h).length > 0);
  if (history.length > 0) cfg.history = history;
  return { raw: Buffer.from(JSON.stringify(cfg)), architecture: arch, os: 'linux', diffIds };
}

/** How a layer is named in messages: its index and store paths. */
export function layerLabel(index: number, l: Pick<Nix2containerLayer, 'paths' | 'layer-path'>): string {
  const what = l['layer-path'] ?? (l.paths ?? []).map((p) => p.path).join(', ');
  return `layer ${index} (${what})`;
}

export type Nix2containerOptions = LayerTarOptions;

/** Reads image.json (already parsed by the caller when `parsed` is given). */
export async function openNix2container(
  file: string,
  opts: Nix2containerOptions = {},
  parsed?: unknown,
): Promise<ImageSource> {
  const json = parsed ?? JSON.parse(await readFile(file, 'utf8'));
  if (!isNix2containerImage(json)) throw new InputError(`${file} is JSON but not a nix2container image.json`);
  const layers = validate(json, file);
  const config = buildConfig(json, layers);
  const onDisk = (p: string) => (opts.root && isAbsolute(p) ? join(opts.root, p) : p);
  for (const [i, l] of layers.entries()) {
    const lp = l['layer-path'];
    if (lp && !(await stat(onDisk(lp)).catch(() => undefined))?.isFile())
      throw new InputError(`${file}: ${layerLabel(i, l)} names a layer-path that does not exist; rebuild the image`);
  }
  return {
    format: 'nix2container',
    async *layers(): AsyncGenerator<SourceLayer> {
      for (const [index, l] of layers.entries()) {
        const name = layerLabel(index, l);
        const base = { index, name, diffId: l.diff_ids as Digest, digest: l.digest as Digest, size: l.size };
        const lp = l['layer-path'];
        if (lp) {
          const blob = { mediaType: l.mediatype || MEDIA.ociLayerTar, open: () => createReadStream(onDisk(lp)) };
          yield { ...base, blob, skip: async () => {} };
        } else {
          const raw = nix2containerLayerTar(l.paths ?? [], opts, `${file}: ${name}`);
          // Nothing is read until `raw` is iterated, so skipping costs nothing.
          yield { ...base, raw, skip: async () => {} };
        }
      }
    },
    finish: async () => ({ config, order: layers.map((_, i) => i) }),
    close: async () => {},
  };
}

/**
 * Throws an InputError naming the layer (index and store paths) when the diff_id the pusher computed while streaming
 * `layer.raw` is not the one the source stated. THE PUSHER MUST CALL THIS for every raw layer with a `diffId` before
 * any manifest or tag is written: image.json's digest is what the config and manifest promise, so a layer produced
 * differently (store paths changed, or a nix2container convention we do not reproduce) would otherwise be tagged as
 * an image whose layers do not match its config.
 */
export function verifyDiffId(layer: Pick<SourceLayer, 'index' | 'name' | 'diffId'>, computed: Digest): void {
  if (!layer.diffId || layer.diffId === computed) return;
  throw new InputError(
    `${layer.name}: the source says its diff_id is ${layer.diffId} but the layer produced hashes to ${computed}. ` +
      'The store paths changed since the image was built, or the image was built by a nix2container version whose ' +
      'tar conventions oci-push does not reproduce; rebuild the image (nix build) and push again. Nothing was tagged.',
  );
}
