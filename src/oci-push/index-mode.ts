/**
 * Index mode: one multi-platform image index (or Docker manifest list) made of images earlier jobs pushed, e.g. one
 * per matrix leg. Each source is read from its registry; an index among the sources contributes all its images. The
 * platform comes from the `os/arch=` prefix or else the image's config. Every image must be in each target
 * repository before the index is: a source in another repository of the same registry is copied there by mounting
 * its blobs and putting its manifest; copying between registries is refused (push the images there first). Then the
 * index goes in by digest everywhere, and the tags last, as in push mode.
 */
import { InputError } from '../errors.js';
import { MEDIA, type Descriptor, type Digest, type LayerReport, type Platform as OciPlatform } from '../oci/types.js';
import type { Platform } from '../platform/types.js';
import { annotationContext, imageAnnotations } from './annotations.js';
import type { IndexSource, PushInputs } from './inputs.js';
import { MANIFEST_TYPES } from './known-layers.js';
import { imageIndex, publish } from './manifest.js';
import { formatReference } from './references.js';
import type { ImageReport, PushReport } from './report.js';
import type { Registries, Repo } from './targets.js';

const INDEX_TYPES: string[] = [MEDIA.ociIndex, MEDIA.dockerList];
const MAX_CONFIG = 4 << 20;

interface SourceImage {
  registry: string;
  repository: string;
  /** What the user wrote, for messages. */
  label: string;
  mediaType: string;
  digest: Digest;
  body: Buffer;
  platform: OciPlatform;
  config: Descriptor;
  layers: Descriptor[];
  diffIds: string[];
}

interface ImageManifest {
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

function platformOf(c: { os?: unknown; architecture?: unknown; variant?: unknown }, label: string): OciPlatform {
  if (typeof c.os !== 'string' || typeof c.architecture !== 'string')
    throw new InputError(
      `${label}: its config names no os/architecture; prefix the source with one, e.g. linux/amd64=`,
    );
  return typeof c.variant === 'string' && c.variant
    ? { os: c.os, architecture: c.architecture, variant: c.variant }
    : { os: c.os, architecture: c.architecture };
}

async function readSource(registries: Registries, src: IndexSource): Promise<SourceImage[]> {
  const { registry, repository } = src.ref;
  const label = formatReference(src.ref);
  const client = registries.client(registry);
  const top = await client.getManifest(repository, (src.ref.digest ?? src.ref.tag) as string, MANIFEST_TYPES);
  if (!top)
    throw new InputError(
      `Input 'sources' names ${label}, which ${registry} does not have (no such repository, tag or digest): ` +
        'push that image first, e.g. in the job whose refs output this lists.',
    );
  const entries: { mediaType: string; digest: Digest; body: Buffer; platform?: OciPlatform }[] = [];
  if (INDEX_TYPES.includes(top.mediaType)) {
    const idx = JSON.parse(top.body.toString('utf8')) as ImageManifest;
    for (const d of idx.manifests ?? []) {
      if (d.platform?.os === 'unknown') continue; // attestations
      const got = await client.getManifest(repository, d.digest, MANIFEST_TYPES);
      if (!got) throw new InputError(`${label}: the index lists ${d.digest}, which ${registry} does not have`);
      entries.push({ ...got, platform: src.platform ?? d.platform });
    }
  } else entries.push({ ...top, platform: src.platform });

  const out: SourceImage[] = [];
  for (const e of entries) {
    const m = JSON.parse(e.body.toString('utf8')) as ImageManifest;
    if (!m.config?.digest || !Array.isArray(m.layers))
      throw new InputError(`${label}: ${e.digest} is not an image manifest (${e.mediaType})`);
    const cfg = JSON.parse((await client.getBlob(repository, m.config.digest, MAX_CONFIG)).toString('utf8')) as {
      os?: unknown;
      architecture?: unknown;
      variant?: unknown;
      rootfs?: { diff_ids?: string[] };
    };
    out.push({
      registry,
      repository,
      label,
      mediaType: e.mediaType,
      digest: e.digest,
      body: e.body,
      platform: e.platform ?? platformOf(cfg, label),
      config: m.config,
      layers: m.layers,
      diffIds: cfg.rootfs?.diff_ids ?? [],
    });
  }
  return out;
}

/** Makes `img` available in `repo`: there already, or mounted blob by blob and its manifest put by digest. */
async function bring(repo: Repo, img: SourceImage): Promise<'skipped' | 'mounted'> {
  if (repo.registry === img.registry && repo.repository === img.repository) return 'skipped';
  if (repo.registry !== img.registry)
    throw new InputError(
      `Index mode cannot copy ${img.label} (${img.registry}) to ${repo.key}: images are not copied between ` +
        `registries. Push the ${img.platform.os}/${img.platform.architecture} image to ${repo.registry} first.`,
    );
  if (await repo.client.getManifest(repo.repository, img.digest, MANIFEST_TYPES)) return 'skipped';
  for (const blob of [img.config, ...img.layers]) {
    if ((await repo.client.hasBlob(repo.repository, blob.digest)) !== undefined) continue;
    if (!(await repo.client.mountBlob(repo.repository, blob.digest, img.repository)))
      throw new InputError(
        `${repo.registry} did not mount ${blob.digest} from ${img.repository} into ${repo.repository}: ` +
          `push the image to ${repo.key} first, or allow pulling from ${img.repository}.`,
      );
  }
  await repo.client.putManifest(repo.repository, img.digest, img.body, img.mediaType);
  return 'mounted';
}

export async function pushIndex(p: Platform, inputs: PushInputs, registries: Registries): Promise<PushReport> {
  const started = Date.now();
  const targets = registries.targets(inputs.tags);
  const images = (await Promise.all(inputs.sources.map((s) => readSource(registries, s)))).flat();
  const index = imageIndex(
    inputs.manifestFormat,
    images.map((i) => ({ mediaType: i.mediaType, digest: i.digest, size: i.body.length, platform: i.platform })),
    imageAnnotations(annotationContext(p), inputs.annotations),
  );
  const actions = new Map<string, 'skipped' | 'mounted'>();
  for (const r of targets) for (const img of images) actions.set(`${r.key} ${img.digest}`, await bring(r, img));
  await publish(p, targets, index);

  return {
    mode: 'index',
    digest: index.digest,
    mediaType: index.mediaType,
    seconds: (Date.now() - started) / 1000,
    repositories: targets.map((r) => ({
      registry: r.registry,
      repository: r.repository,
      tags: r.tags,
      images: images.map((img): ImageReport => {
        const action = actions.get(`${r.key} ${img.digest}`) ?? 'skipped';
        return {
          platform: img.platform,
          digest: img.digest,
          mediaType: img.mediaType,
          config: { digest: img.config.digest, size: img.config.size, action },
          layers: img.layers.map((l, i): LayerReport => ({
            digest: l.digest,
            diffId: img.diffIds[i] ?? '',
            size: l.size,
            action,
            bytes: 0,
            seconds: 0,
          })),
        };
      }),
    })),
  };
}
