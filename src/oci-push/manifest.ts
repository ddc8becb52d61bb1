/**
 * The last steps of a push, in the order that keeps tags safe: the config blob, then the manifest BY DIGEST in every
 * target repository, and only when all of those exist, the tags. Until the first tag is written nothing a user pulls
 * by tag has changed, so any failure before that point leaves every tag where it was.
 */
import { createHash } from 'node:crypto';
import { InputError } from '../errors.js';
import { MEDIA, type Descriptor, type Digest, type ImageConfig, type Platform as OciPlatform } from '../oci/types.js';
import type { Platform } from '../platform/types.js';
import type { ManifestFormat } from './inputs.js';
import type { BlobPlacer } from './placer.js';
import { formatPlatform } from './references.js';
import type { Repo } from './targets.js';

const sha256 = (b: Buffer): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** The config with `platform` written in when it says otherwise (the bytes stay as they are when it agrees). */
export function withPlatform(config: ImageConfig, want: OciPlatform | undefined): ImageConfig {
  if (!want) return config;
  const same = config.os === want.os && config.architecture === want.architecture && config.variant === want.variant;
  if (same) return config;
  const json = JSON.parse(config.raw.toString('utf8')) as Record<string, unknown>;
  json.architecture = want.architecture;
  json.os = want.os;
  if (want.variant) json.variant = want.variant;
  else delete json.variant;
  const out: ImageConfig = { ...config, raw: Buffer.from(JSON.stringify(json)), ...want };
  if (!want.variant) delete out.variant;
  return out;
}

export function configPlatform(c: Pick<ImageConfig, 'os' | 'architecture' | 'variant'>): OciPlatform {
  return c.variant
    ? { os: c.os, architecture: c.architecture, variant: c.variant }
    : { os: c.os, architecture: c.architecture };
}

/** The config's own `created`, for the annotation (annotations.ts decides whether it is a real time). */
export function configCreated(config: ImageConfig): string | undefined {
  const created = (JSON.parse(config.raw.toString('utf8')) as { created?: unknown }).created;
  return typeof created === 'string' ? created : undefined;
}

export interface ConfigUpload {
  digest: Digest;
  size: number;
  action: 'uploaded' | 'skipped';
}

/** The config blob into every target (HEAD first: it is small, so no mounts). */
export async function uploadConfig(placer: BlobPlacer, raw: Buffer): Promise<ConfigUpload> {
  const digest = sha256(raw);
  let uploaded = false;
  // Settled everywhere before a failure is reported: no upload is left running behind the error.
  const results = await Promise.allSettled(
    placer.targets.map(async (r) => {
      if ((await placer.has(r, digest)) !== undefined) return;
      await r.client.uploadBlob(r.repository, [raw], { expectedDigest: digest });
      uploaded = true;
    }),
  );
  const failed = results.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (failed) throw failed.reason;
  return { digest, size: raw.length, action: uploaded ? 'uploaded' : 'skipped' };
}

export interface BuiltManifest {
  body: Buffer;
  mediaType: string;
  digest: Digest;
}

export function imageManifest(
  format: ManifestFormat,
  config: { digest: Digest; size: number },
  layers: Descriptor[],
  annotations: Record<string, string>,
): BuiltManifest {
  const docker = format === 'docker';
  const mediaType = docker ? MEDIA.dockerManifest : MEDIA.ociManifest;
  const manifest: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType,
    config: { mediaType: docker ? MEDIA.dockerConfig : MEDIA.ociConfig, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  // Docker schema 2 has no annotations (inputs.ts refuses user annotations with it; the defaults are dropped).
  if (!docker && Object.keys(annotations).length > 0) manifest.annotations = annotations;
  const body = Buffer.from(JSON.stringify(manifest));
  return { body, mediaType, digest: sha256(body) };
}

export function imageIndex(
  format: ManifestFormat,
  manifests: (Descriptor & { platform: OciPlatform })[],
  annotations: Record<string, string>,
): BuiltManifest {
  const docker = format === 'docker';
  const seen = new Set<string>();
  for (const m of manifests) {
    const key = formatPlatform(m.platform);
    if (seen.has(key))
      throw new InputError(`Input 'sources' has two images for ${key}; an index holds one image per platform.`);
    seen.add(key);
    if (docker && m.mediaType !== MEDIA.dockerManifest)
      throw new InputError(
        `A Docker manifest list can only hold Docker schema 2 manifests, but the ${key} image is ${m.mediaType}: use 'manifest-format: oci', or push the platform images with 'manifest-format: docker'.`,
      );
  }
  const mediaType = docker ? MEDIA.dockerList : MEDIA.ociIndex;
  const index: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType,
    manifests: manifests.map((m) => ({ mediaType: m.mediaType, digest: m.digest, size: m.size, platform: m.platform })),
  };
  if (!docker && Object.keys(annotations).length > 0) index.annotations = annotations;
  const body = Buffer.from(JSON.stringify(index));
  return { body, mediaType, digest: sha256(body) };
}

/** PUT by digest everywhere, then the tags: see the module comment. */
export async function publish(p: Platform, repos: Repo[], m: BuiltManifest): Promise<void> {
  await Promise.all(repos.map((r) => r.client.putManifest(r.repository, m.digest, m.body, m.mediaType)));
  p.log('info', `Pushed ${m.digest} to ${repos.map((r) => r.key).join(', ')}; tagging.`);
  for (const r of repos)
    for (const tag of r.tags) {
      await r.client.putManifest(r.repository, tag, m.body, m.mediaType);
      p.log('info', `Tagged ${r.key}:${tag}`);
    }
}
