/**
 * Push mode: learn what the registries have (known-layers.ts), push the layers (layers.ts), then the config, the
 * manifest by digest in every repository and only then the tags (manifest.ts).
 *
 * The registries are asked while the image is still being built and opened: on a real network the lookup (token
 * exchanges, a manifest and a config per reference) costs several round trips, which would otherwise come before the
 * first layer is read. Its log lines wait for its own group, so they do not land inside the build's.
 *
 * A layer whose upload cannot be resumed from memory (the registry kept part of a cut-off chunk, or refused a mount
 * after the upload) needs its bytes again, and a tar stream cannot be rewound. The whole pass then starts over with
 * the image opened afresh, for at most MAX_PASSES passes: every layer already pushed is remembered with its digest,
 * so the next pass finds it with a HEAD and skips it without reading or compressing it again.
 */
import { errorMessage } from '../errors.js';
import { CompressionPool } from '../oci/compress.js';
import { openImage } from '../oci/image/detect.js';
import { LayerRereadNeeded } from '../oci/registry/upload.js';
import type { Descriptor, ImageConfig, ImageSource, LayerReport } from '../oci/types.js';
import type { LogLevel, Platform } from '../platform/types.js';
import { annotationContext, imageAnnotations } from './annotations.js';
import type { PushInputs } from './inputs.js';
import { learnKnownLayers, type KnownLayers, type KnownSource } from './known-layers.js';
import { pushLayers, type Carried, type LayerContext, type PassResult } from './layers.js';
import { configCreated, configPlatform, imageManifest, publish, uploadConfig, withPlatform } from './manifest.js';
import { BlobPlacer } from './placer.js';
import type { PushReport } from './report.js';
import type { Registries, Repo } from './targets.js';

const MAX_PASSES = 3;

/** The target tags and the cache-from references, each read for the layers behind it. */
function knownSources(registries: Registries, targets: Repo[], inputs: PushInputs): KnownSource[] {
  const out: KnownSource[] = [];
  for (const r of targets)
    for (const tag of r.tags)
      out.push({ client: r.client, registry: r.registry, repository: r.repository, reference: tag, target: true });
  for (const ref of inputs.cacheFrom)
    out.push({
      client: registries.client(ref.registry),
      registry: ref.registry,
      repository: ref.repository,
      reference: (ref.digest ?? ref.tag) as string,
      target: false,
    });
  return out;
}

const open = (imagePath: string, inputs: PushInputs): Promise<ImageSource> =>
  openImage(imagePath, inputs.platform ? { platform: inputs.platform } : {});

/** `opened`: the first pass's source, opened while the registries were being asked. */
async function onePass(
  ctx: LayerContext,
  imagePath: string,
  inputs: PushInputs,
  opened?: Promise<ImageSource>,
): Promise<PassResult> {
  const src = await (opened ?? open(imagePath, inputs));
  try {
    ctx.p.log('info', `${imagePath}: ${src.format} image`);
    return await pushLayers(ctx, src, imagePath);
  } finally {
    await src.close().catch((e: unknown) => ctx.p.log('debug', `closing the image: ${errorMessage(e)}`));
  }
}

/** The lookup of known layers, started at once; its log lines are held until `shown` opens its group. */
function startLearning(p: Platform, sources: KnownSource[], compression: PushInputs['compression']) {
  const held: [LogLevel, string][] = [];
  let live = false;
  const learning = learnKnownLayers(
    (level, message) => (live ? p.log(level, message) : held.push([level, message])),
    sources,
    compression,
  );
  learning.catch(() => undefined); // awaited in `shown`; the build may fail first
  const shown = (): Promise<KnownLayers> =>
    p.group('Layers the registries already have', async () => {
      live = true;
      for (const [level, message] of held.splice(0)) p.log(level, message);
      const k = await learning;
      p.log('info', `${k.size} layers known from the target tags and cache-from`);
      return k;
    });
  return shown;
}

/** `image`: the image's path, or its build still running (the registries are asked meanwhile). */
export async function pushImage(
  p: Platform,
  inputs: PushInputs,
  registries: Registries,
  image: string | Promise<string>,
): Promise<PushReport> {
  const targets = registries.targets(inputs.tags);
  const placer = new BlobPlacer(targets);
  const knownLayers = startLearning(p, knownSources(registries, targets, inputs), inputs.compression);
  const imagePath = await image;
  const started = Date.now();
  const opened = open(imagePath, inputs);
  opened.catch(() => undefined); // awaited by the first pass, or closed below
  let known: KnownLayers;
  try {
    known = await knownLayers();
  } catch (e) {
    await opened.then((src) => src.close()).catch(() => undefined);
    throw e;
  }
  // Their HEADs run while the image is opened and its first layer read.
  placer.prefetch([...known.values()].map((k) => k.digest).slice(0, 256));

  const carry = new Map<string, Carried>();
  // Shared by every layer of the push: parallel uploads must not multiply the compressions in flight.
  // The config blob goes up as soon as the source has it, alongside the last layers' uploads.
  let configUpload: ReturnType<typeof uploadConfig> | undefined;
  const sendConfig = (c: ImageConfig) => {
    if (!configUpload) {
      const up = uploadConfig(placer, withPlatform(c, inputs.platform).raw);
      // Awaited after the layers; one that failed early is tried again then rather than failing the push.
      up.catch(() => configUpload === up && (configUpload = undefined));
      configUpload = up;
    }
    return configUpload;
  };
  const ctx: LayerContext = {
    p,
    inputs,
    placer,
    known,
    pool: new CompressionPool(),
    carry,
    onConfig: (c) => void sendConfig(c),
  };
  let pass: PassResult | undefined;
  for (let attempt = 1; !pass; attempt++) {
    try {
      const first = attempt === 1 ? opened : undefined;
      pass = await p.group(attempt === 1 ? 'Layers' : `Layers, pass ${attempt}`, () =>
        onePass(ctx, imagePath, inputs, first),
      );
    } catch (e) {
      if (!(e instanceof LayerRereadNeeded) || attempt >= MAX_PASSES) {
        // Nothing is left running behind the error: the step ends when it is reported.
        await configUpload?.catch(() => undefined);
        throw e;
      }
      p.log('warning', `${errorMessage(e)}; reading the image again (${carry.size} layers already pushed)`);
      await (targets[0] as Repo).client.pause(e, attempt - 1);
    }
  }

  const config = withPlatform(pass.config, inputs.platform);
  const configUp = await sendConfig(pass.config);
  const layers: Descriptor[] = pass.order.map((i) => {
    const d = pass.done[i] as NonNullable<(typeof pass.done)[number]>;
    return { mediaType: d.mediaType, digest: d.digest, size: d.size };
  });
  const annotations = imageAnnotations(annotationContext(p, configCreated(config)), inputs.annotations);
  const manifest = imageManifest(inputs.manifestFormat, configUp, layers, annotations);
  // Tags last: nothing above changed one.
  await publish(p, targets, manifest);

  const platform = configPlatform(config);
  return {
    mode: 'push',
    digest: manifest.digest,
    mediaType: manifest.mediaType,
    seconds: (Date.now() - started) / 1000,
    repositories: targets.map((r) => {
      const seen = new Set<string>();
      return {
        registry: r.registry,
        repository: r.repository,
        tags: r.tags,
        images: [
          {
            platform,
            digest: manifest.digest,
            mediaType: manifest.mediaType,
            config: configUp,
            layers: pass.order.map((i): LayerReport => {
              const d = pass.done[i] as NonNullable<(typeof pass.done)[number]>;
              // A blob listed twice (identical layers) is sent once: the second is already there.
              const first = !seen.has(d.digest);
              seen.add(d.digest);
              const pl = first ? d.placed.get(r.key) : undefined;
              return {
                digest: d.digest,
                diffId: d.diffId ?? (pass.config.diffIds[pass.order.indexOf(i)] as string),
                size: d.size,
                action: pl?.action ?? 'skipped',
                bytes: pl?.bytes ?? 0,
                seconds: pl?.seconds ?? 0,
              };
            }),
          },
        ],
      };
    }),
  };
}
