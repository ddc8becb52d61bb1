/**
 * One pass over the image's layers. Per layer, cheapest first: a blob every target already has, or can mount, under
 * a digest known before reading (from an earlier pass, the source itself, or the diff_id map of known-layers.ts) is
 * skipped without reading a byte; otherwise the layer is read once, compressed in the same pass (compress.ts) and
 * streamed to the targets (placer.ts).
 *
 * Up to `concurrency` layers are in flight. A docker-archive (file or script output) is one tar stream, so the next
 * layer can only be reached once this one has been read to its end; its upload's tail, the PUT and the mounts still
 * overlap the next layer's reading. An archive file's plain layers are read by position instead, so the next one is
 * reached at once. Layers of nix2container and OCI layouts are independent and run side by side.
 */
import { InputError } from '../errors.js';
import { mediaTypeFor, type CompressionPool } from '../oci/compress.js';
import { verifyDiffId } from '../oci/image/detect.js';
import { LayerRereadNeeded } from '../oci/registry/upload.js';
import { MEDIA, type Digest, type ImageConfig, type ImageSource, type SourceLayer } from '../oci/types.js';
import type { Platform } from '../platform/types.js';
import type { PushInputs } from './inputs.js';
import type { KnownLayers } from './known-layers.js';
import { LayerSlots } from './layer-slots.js';
import type { BlobPlacer, Placements } from './placer.js';
import { compressLayer } from '../oci/compress.js';

/** A layer pushed in an earlier pass of the same push, by `index:name`: the source is the same, so are its bytes. */
export interface Carried {
  diffId: Digest;
  digest: Digest;
  size: number;
  mediaType: string;
}

export interface LayerDone {
  layer: SourceLayer;
  /** What the layer hashed to (raw layers) or what the source states (blobs, skipped layers). */
  diffId?: Digest;
  digest: Digest;
  size: number;
  mediaType: string;
  placed: Placements;
}

export interface LayerContext {
  p: Platform;
  inputs: Pick<PushInputs, 'compression' | 'compressionLevel' | 'manifestFormat' | 'concurrency'>;
  placer: BlobPlacer;
  known: KnownLayers;
  pool: CompressionPool;
  carry: Map<string, Carried>;
  /** Told the image config as soon as the source has it, while the last layers may still be uploading. */
  onConfig?: (config: ImageConfig) => void;
}

const carryKey = (l: SourceLayer) => `${l.index}:${l.name}`;

/** A blob's media type as the manifest format names it. */
function blobMediaType(l: SourceLayer, mediaType: string, format: PushInputs['manifestFormat']): string {
  const gzip = mediaType === MEDIA.ociLayerGzip || mediaType === MEDIA.dockerLayerGzip;
  if (format === 'oci') return mediaType === MEDIA.dockerLayerGzip ? MEDIA.ociLayerGzip : mediaType;
  if (gzip) return MEDIA.dockerLayerGzip;
  throw new InputError(
    `${l.name} is a ${mediaType} blob, which a Docker schema 2 manifest cannot hold; use 'manifest-format: oci'.`,
  );
}

/** Calls `onEnd` once the stream has been read to its end (or abandoned): the next tar entry is then reachable. */
async function* tracked(body: AsyncIterable<Buffer>, onEnd: () => void): AsyncGenerator<Buffer> {
  try {
    yield* body;
  } finally {
    onEnd();
  }
}

interface Candidate {
  digest: Digest;
  size?: number;
  mediaType: string;
  seenIn: Iterable<string>;
}

/** `read`: the source may go on to the next layer. `compressed`: this one needs no more CPU (layer-slots.ts). */
interface Progress {
  read(): void;
  compressed(): void;
}

async function handleLayer(
  ctx: LayerContext,
  l: SourceLayer,
  progress: Progress,
  sequential: boolean,
): Promise<LayerDone> {
  const readDone = progress.read;
  const { inputs, placer } = ctx;
  const started = Date.now();
  const chosen = mediaTypeFor(inputs.compression, inputs.manifestFormat);
  const ownType = l.blob && blobMediaType(l, l.blob.mediaType, inputs.manifestFormat);
  const carried = ctx.carry.get(carryKey(l));
  const candidates: Candidate[] = [];
  if (carried) candidates.push({ ...carried, seenIn: [] });
  if (l.blob && l.digest) candidates.push({ digest: l.digest, size: l.size, mediaType: ownType as string, seenIn: [] });
  // Uncompressed pushes send the tar as it is: its digest is the diff_id.
  if (!l.blob && l.diffId && inputs.compression === 'none')
    candidates.push({ digest: l.diffId, size: l.size, mediaType: chosen, seenIn: [] });
  const known = l.diffId ? ctx.known.get(l.diffId) : undefined;
  if (known) candidates.push({ ...known, mediaType: chosen });

  let firstMissing: { candidate: Candidate; placed: Placements; missing: typeof placer.targets } | undefined;
  for (const c of candidates) {
    const r = await placer.place(c.digest, c.seenIn, started);
    if (r.missing.length === 0) {
      await l.skip();
      readDone();
      const size = r.size ?? c.size ?? 0;
      return {
        layer: l,
        diffId: carried?.diffId ?? l.diffId,
        digest: c.digest,
        size,
        mediaType: c.mediaType,
        placed: r.placed,
      };
    }
    firstMissing ??= { candidate: c, placed: r.placed, missing: r.missing };
  }

  if (l.blob) {
    progress.compressed(); // sent as it is
    // The blob's own digest is the first candidate: send it only where it is missing.
    const own = firstMissing?.candidate.digest === l.digest ? firstMissing : undefined;
    const targets = own?.missing ?? placer.targets;
    let up = await placer.upload(targets, tracked(l.blob.open(), readDone), started, { expected: l.digest });
    const placed = new Map([...(own?.placed ?? []), ...up.placed]);
    // A refused mount: a blob file can simply be read again, for those repositories alone; a tar entry cannot.
    if (up.unmounted.length > 0 && sequential)
      throw new LayerRereadNeeded(`${l.name} could not be mounted into ${up.unmounted.map((r) => r.key).join(', ')}`);
    if (up.unmounted.length > 0) {
      up = await placer.upload(up.unmounted, l.blob.open(), started, { expected: l.digest });
      for (const [k, v] of up.placed) placed.set(k, v);
    }
    return { layer: l, diffId: l.diffId, digest: up.digest, size: up.size, mediaType: ownType as string, placed };
  }
  if (!l.raw) throw new Error(`${l.name}: the image reader gave neither bytes nor a blob`);

  // Our compression is deterministic, so a layer from an earlier pass needs sending only where it is missing.
  const again = carried && firstMissing?.candidate.digest === carried.digest ? firstMissing : undefined;
  // A layer readable by position does not hold up the tar stream: the next layer can be reached at once.
  if (l.range) readDone();
  const layer = compressLayer(l.range ?? tracked(l.raw, readDone), {
    compression: inputs.compression,
    level: inputs.compression === 'none' ? undefined : inputs.compressionLevel,
    pool: ctx.pool,
  });
  void layer.compressed.then(progress.compressed);
  // The compressor hashes what it yields: that is the blob digest, not computed a second time by the uploads.
  const up = await placer.upload(again?.missing ?? placer.targets, layer.chunks, started, {
    source: async () => (await layer.result).digest,
    // Stored members come from the pool's arenas; acknowledged ones are reused (compress-arena.ts).
    sent: (parts) => ctx.pool.members.giveBack(parts),
  });
  const result = await layer.result;
  // Before any manifest or tag: a layer that is not what the source promised must stop the push here.
  verifyDiffId(l, result.diffId);
  if (again && up.digest !== again.candidate.digest)
    throw new Error(`${l.name} compressed to ${up.digest} this time but ${again.candidate.digest} before`);
  ctx.carry.set(carryKey(l), { diffId: result.diffId, digest: up.digest, size: up.size, mediaType: chosen });
  if (up.unmounted.length > 0)
    throw new LayerRereadNeeded(
      `${l.name} was uploaded but could not be mounted into ${up.unmounted.map((r) => r.key).join(', ')}; ` +
        'the layer must be read again to upload it there',
    );
  const placed = new Map([...(again?.placed ?? []), ...up.placed]);
  return { layer: l, diffId: result.diffId, digest: up.digest, size: up.size, mediaType: chosen, placed };
}

export interface PassResult {
  config: ImageConfig;
  order: number[];
  /** By source index; `sameAs` layers point at the layer holding their bytes. */
  done: LayerDone[];
}

/** Runs every layer (see the module comment), then reads the config and checks the diff_ids against it. */
export async function pushLayers(ctx: LayerContext, src: ImageSource, label: string): Promise<PassResult> {
  const done: LayerDone[] = [];
  const sameAs: SourceLayer[] = [];
  const sequential = src.format === 'docker-archive' || src.format === 'docker-archive-stream';
  // One tar stream: one layer reads while the previous one finishes its upload. More reading at once would add no
  // speed, only memory (each holds its compression blocks and upload chunks): 2 instead of 4 took ~15 MiB off the
  // peak RSS of a 2 GB push. The rest of `concurrency` goes to layers past their compression (layer-slots.ts).
  const c = ctx.inputs.concurrency;
  const work = sequential ? Math.min(2, c) : Math.ceil(c / 2);
  const slots = new LayerSlots(work, c - work);
  const tasks: Promise<void>[] = [];
  let failure: { error: unknown } | undefined;
  const it = src.layers()[Symbol.asyncIterator]();
  while (!failure) {
    const next = await it.next();
    // A layer that failed may have released the stream just before its error was recorded: check again.
    if (next.done || failure) break;
    const l = next.value;
    if (l.sameAs !== undefined) {
      sameAs.push(l);
      continue;
    }
    const slot = await slots.enter();
    let readDone!: () => void;
    const read = new Promise<void>((r) => (readDone = r));
    const task = handleLayer(ctx, l, { read: readDone, compressed: slot.compressed }, sequential)
      .then(
        (d) => {
          done[l.index] = d;
          logLayer(ctx.p, d);
        },
        (error: unknown) => void (failure ??= { error }),
      )
      .finally(() => {
        readDone();
        slot.leave();
      });
    tasks.push(task);
    if (sequential) await read;
  }
  // Every layer has been reached (the last ones may still be uploading): the config can be read, and sent, meanwhile.
  const finishing = failure ? undefined : src.finish();
  finishing?.then(
    (f) => void ctx.onConfig?.(f.config),
    () => undefined,
  );
  await Promise.all(tasks);
  if (failure) throw failure.error;
  const { config, order } = await (finishing as NonNullable<typeof finishing>);
  for (const l of sameAs) {
    const held = done[l.sameAs as number];
    if (!held) throw new Error(`${l.name} refers to layer ${l.sameAs}, which was not pushed`);
    done[l.index] = { ...held, layer: l, placed: new Map() };
  }
  order.forEach((index, pos) => {
    const d = done[index];
    if (!d) throw new Error(`${label}: layer ${index} of the image order was not pushed`);
    const want = config.diffIds[pos];
    if (d.diffId && d.diffId !== want)
      throw new InputError(
        `${label}: diff_id mismatch: layer ${pos + 1} (${d.layer.name}) hashes to ${d.diffId}, but the image config ` +
          `lists ${want} for it. The image is inconsistent: rebuild it. Nothing was tagged.`,
      );
  });
  return { config, order, done };
}

function logLayer(p: Platform, d: LayerDone): void {
  const by = new Map<string, string[]>();
  for (const [repo, pl] of d.placed) by.set(pl.action, [...(by.get(pl.action) ?? []), repo]);
  const what = [...by].map(([action, repos]) => `${action} (${repos.join(', ')})`).join('; ');
  p.log('info', `${d.layer.name}: ${d.digest} ${d.size} bytes: ${what}`);
}
