/**
 * One-block codecs for the layer pipeline (compress.ts) and the layer media types. Each block is compressed on its
 * own into complete gzip members (one per run of compressible or incompressible bytes: compress-entropy.ts) or one
 * zstd frame, so blocks can be compressed concurrently and simply concatenated:
 * RFC 1952 allows several members in one gzip file (Go's gzip.Reader, which containerd uses, reads them by default)
 * and RFC 8878 allows several frames in one zstd stream.
 */
import * as zlib from 'node:zlib';
import { InputError } from '../errors.js';
import type { ArenaLane } from './compress-arena.js';
import { gzipMember } from './compress-deflaters.js';
import { entropyRuns } from './compress-entropy.js';
import { MEDIA, type Compression } from './types.js';

/**
 * Level 1. Measured with the deflate workers' libdeflate on 50 MB of a tar of /usr (binaries, Python) in 1 MiB
 * blocks, one core, Node 24: level 1 158 MB/s to 40.7% of the input, level 4 101 MB/s to 38.7%, level 6 71 MB/s to
 * 37.7% (zlib: 113 MB/s to 41.9% at level 1, 51 MB/s to 38.4% at 6). Level 6 costs 2.2x the CPU for 7% fewer bytes;
 * on CI runners with a few cores the push is bound by compression long before the network, and a re-push skips
 * unchanged layers anyway, so the fast level wins. Users who pay for pulls more than pushes set `compression-level`.
 */
export const DEFAULT_GZIP_LEVEL = 1;
/** zstd's own default: already faster than gzip -1 and smaller than gzip -6. */
export const DEFAULT_ZSTD_LEVEL = 3;

/** Inclusive level ranges the codecs accept (gzip 0 stores; zstd above 19 needs "ultra" windows we do not set). */
export const LEVELS: Record<Exclude<Compression, 'none'>, { min: number; max: number; fallback: number }> = {
  gzip: { min: 0, max: 9, fallback: DEFAULT_GZIP_LEVEL },
  zstd: { min: 1, max: 19, fallback: DEFAULT_ZSTD_LEVEL },
};

/** The level to use, validated; `input` names the setting in the error (the action input, or the option). */
export function resolveLevel(
  compression: Compression,
  level: number | undefined,
  input = "Input 'compression-level'",
): number {
  if (compression === 'none') return 0;
  const range = LEVELS[compression];
  if (level === undefined) return range.fallback;
  if (!Number.isInteger(level) || level < range.min || level > range.max)
    throw new InputError(
      `${input} for ${compression} must be a whole number from ${range.min} to ${range.max}; got '${level}'.`,
    );
  return level;
}

/** Compresses one raw block into complete gzip members / one zstd frame, in order, one buffer each. */
export type BlockCodec = (block: Buffer) => Promise<Buffer[]>;

/**
 * Room for a whole zstd frame in one output buffer: above zstd's worst case (ZSTD_compressBound: the input, about
 * 1/256 of it more, and a few dozen bytes for small inputs).
 */
const outputRoom = (n: number): number => n + (n >> 7) + (n >> 9) + 1024;

/**
 * The output buffer for the next zstd block of a layer, sized from how well its blocks compressed so far. zlib's
 * zstd streams allocate their own output buffer, so this decides the memory a push allocates: room for the worst case would
 * allocate the image's raw size again (and V8 runs a full collection per ~20 MiB of it). A guess that is too small
 * costs one more threadpool round trip and a join; the bytes produced are the same either way.
 */
class OutputSizer {
  private ratio = 1;
  next(n: number): number {
    return Math.min(outputRoom(n), Math.ceil(n * Math.min(1, this.ratio * 1.25)) + 16 * 1024);
  }
  saw(n: number, out: number): void {
    if (n >= 4096) this.ratio = out / n;
  }
}

/** One complete member or frame; resolves with one buffer (joined only when the output outgrew the first). */
function compressOnce(stream: zlib.ZstdCompress, block: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    stream.on('data', (c: Buffer) => out.push(c));
    stream.on('error', reject);
    stream.on('end', () => resolve(out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out)));
    stream.end(block);
  });
}

function gzipCodec(level: number, arenas?: ArenaLane): BlockCodec {
  return async (block) => {
    if (level === 0) return [await gzipMember(block, 0, arenas)];
    // One member per run (compress-entropy.ts), one after the other: the block holds one compression permit.
    const out: Buffer[] = [];
    for (const run of entropyRuns(block))
      out.push(await gzipMember(block.subarray(run.start, run.end), run.stored ? 0 : level, arenas));
    return out;
  };
}

function zstdCodec(level: number): BlockCodec {
  // Older Node has no zstd in zlib; the action runs on node24, which has it, so this is a clear error rather than a
  // crash on other runtimes.
  if (typeof zlib.createZstdCompress !== 'function')
    throw new InputError(
      `compression: zstd needs Node.js 22.15 or later (this is ${process.version}); use 'compression: gzip'.`,
    );
  const { ZSTD_c_compressionLevel, ZSTD_c_checksumFlag } = zlib.constants;
  const sizer = new OutputSizer();
  return async (block) => {
    const out = await compressOnce(
      zlib.createZstdCompress({
        chunkSize: sizer.next(block.length),
        // The frame header then states its content size (decoders can size buffers) and each frame carries a
        // checksum of its content, as the zstd CLI writes by default; both are fixed by the input, so still
        // deterministic.
        pledgedSrcSize: block.length,
        params: { [ZSTD_c_compressionLevel]: level, [ZSTD_c_checksumFlag]: 1 },
      }),
      block,
    );
    sizer.saw(block.length, out.length);
    return [out];
  };
}

/** The codec compressing one raw block into gzip members (into `arenas` when given) / one zstd frame. */
export function blockCodec(compression: Exclude<Compression, 'none'>, level: number, arenas?: ArenaLane): BlockCodec {
  return compression === 'gzip' ? gzipCodec(level, arenas) : zstdCodec(level);
}

/**
 * The layer media type for a compression in a manifest format. The Docker image manifest v2 schema 2 specifies layers as
 * gzipped tars only (DESIGN.md), so anything else there is the user's to fix, named in the message.
 */
export function mediaTypeFor(compression: Compression, manifestFormat: 'oci' | 'docker'): string {
  if (manifestFormat === 'docker') {
    if (compression === 'gzip') return MEDIA.dockerLayerGzip;
    throw new InputError(
      `Docker schema 2 manifests allow only gzip layers, but compression is '${compression}'. Use 'compression: gzip' or 'manifest-format: oci'.`,
    );
  }
  if (compression === 'gzip') return MEDIA.ociLayerGzip;
  if (compression === 'zstd') return MEDIA.ociLayerZstd;
  return MEDIA.ociLayerTar;
}
