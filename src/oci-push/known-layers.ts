/**
 * What the registries already hold, learned before any layer is read: the manifests and configs behind the target
 * tags and the `cache-from` references give, for each diff_id (the hash of the uncompressed layer, which the source
 * often states up front), the blob that holds that layer compressed the way this push would. A fresh runner can then
 * skip an unchanged layer without reading or compressing it, where a blob cache on disk (skopeo's) would be gone.
 *
 * Only blobs whose media type matches the chosen compression count: a gzip blob is no use to a zstd push. Missing
 * tags and repositories are normal (a first push); other problems reading a `cache-from` reference are warnings,
 * while an authentication failure on a target is fatal here already, with the registry and scope in its message.
 */
import { InputError, errorMessage } from '../errors.js';
import type { RegistryClient } from '../oci/registry/client.js';
import { MEDIA, type Compression, type Digest } from '../oci/types.js';
import type { LogLevel } from '../platform/types.js';

export interface KnownBlob {
  digest: Digest;
  size: number;
  /** Repositories (`registry/repository`) whose manifests list it: mount sources. */
  seenIn: Set<string>;
}

/** diff_id -> the blob holding that layer with the push's compression. */
export type KnownLayers = Map<Digest, KnownBlob>;

export interface KnownSource {
  client: RegistryClient;
  registry: string;
  repository: string;
  /** Tag or digest. */
  reference: string;
  /** A target tag (auth failures are fatal) or a cache-from reference (everything is a warning). */
  target: boolean;
}

const DOCKER_LAYER_TAR = 'application/vnd.docker.image.rootfs.diff.tar';

/** Layer media types holding the same bytes a push with `compression` would send. */
export function compatibleMediaTypes(compression: Compression): Set<string> {
  if (compression === 'gzip') return new Set([MEDIA.ociLayerGzip, MEDIA.dockerLayerGzip]);
  if (compression === 'zstd') return new Set([MEDIA.ociLayerZstd]);
  return new Set([MEDIA.ociLayerTar, DOCKER_LAYER_TAR]);
}

export const MANIFEST_TYPES = [MEDIA.ociManifest, MEDIA.dockerManifest, MEDIA.ociIndex, MEDIA.dockerList];
const INDEX_TYPES: string[] = [MEDIA.ociIndex, MEDIA.dockerList];
/** Per reference: an index for many platforms is read only this far. */
const MAX_CHILDREN = 16;
const MAX_CONFIG = 4 << 20;

interface Manifest {
  config?: { digest?: string };
  layers?: { mediaType?: string; digest?: string; size?: number }[];
  manifests?: { mediaType?: string; digest?: string }[];
}

function parse(body: Buffer): Manifest {
  const v = JSON.parse(body.toString('utf8')) as unknown;
  if (typeof v !== 'object' || v === null) throw new Error('not a JSON object');
  return v as Manifest;
}

/** Reads one image manifest and its config into `known`. */
async function learnImage(
  src: KnownSource,
  manifest: Manifest,
  accept: Set<string>,
  known: KnownLayers,
): Promise<number> {
  const configDigest = manifest.config?.digest;
  const layers = manifest.layers ?? [];
  if (!configDigest || layers.length === 0) return 0;
  const config = JSON.parse((await src.client.getBlob(src.repository, configDigest, MAX_CONFIG)).toString('utf8')) as {
    rootfs?: { diff_ids?: unknown };
  };
  const diffIds = config.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.length !== layers.length) return 0;
  let learned = 0;
  for (const [i, l] of layers.entries()) {
    const diffId = diffIds[i];
    if (typeof diffId !== 'string' || !l.digest || typeof l.size !== 'number' || !accept.has(l.mediaType ?? ''))
      continue;
    const at = `${src.registry}/${src.repository}`;
    const entry = known.get(diffId);
    if (entry && entry.digest === l.digest) entry.seenIn.add(at);
    else if (!entry) known.set(diffId, { digest: l.digest, size: l.size, seenIn: new Set([at]) });
    learned++;
  }
  return learned;
}

async function learnOne(src: KnownSource, accept: Set<string>, known: KnownLayers): Promise<number> {
  const top = await src.client.getManifest(src.repository, src.reference, MANIFEST_TYPES);
  if (!top) return 0;
  const m = parse(top.body);
  if (!INDEX_TYPES.includes(top.mediaType)) return learnImage(src, m, accept, known);
  let learned = 0;
  for (const child of (m.manifests ?? []).slice(0, MAX_CHILDREN)) {
    if (!child.digest || INDEX_TYPES.includes(child.mediaType ?? '')) continue;
    const got = await src.client.getManifest(src.repository, child.digest, MANIFEST_TYPES);
    if (got) learned += await learnImage(src, parse(got.body), accept, known);
  }
  return learned;
}

/** Where the lookup reports: a push asks while the image builds, and shows the lines in their own group later. */
export type LogSink = (level: LogLevel, message: string) => void;

/** Reads every source (in parallel) and returns the diff_id map; see the module comment for failures. */
export async function learnKnownLayers(
  log: LogSink,
  sources: KnownSource[],
  compression: Compression,
): Promise<KnownLayers> {
  const known: KnownLayers = new Map();
  const accept = compatibleMediaTypes(compression);
  await Promise.all(
    sources.map(async (src) => {
      const name = `${src.registry}/${src.repository}:${src.reference}`;
      try {
        const n = await learnOne(src, accept, known);
        log('debug', `${name}: ${n} layers learned`);
      } catch (e) {
        if (src.target && e instanceof InputError) throw e;
        log('warning', `Could not read ${name} to find layers the registry already has: ${errorMessage(e)}`);
      }
    }),
  );
  return known;
}
