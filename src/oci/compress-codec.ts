/**
 * One-block codecs for the layer pipeline (compress.ts) and the layer media types. Each block is compressed on its
 * own into a complete gzip member or zstd frame, so blocks can be compressed concurrently and simply concatenated:
 * RFC 1952 allows several members in one gzip file (Go's gzip.Reader, which containerd uses, reads them by default)
 * and RFC 8878 allows several frames in one zstd stream.
 */
import * as zlib from 'node:zlib';
import { InputError } from '../errors.js';
import { MEDIA, type Compression } from './types.js';

/**
 * Level 1. Measured on a 50 MB tar of /usr (binaries, Python, Perl) in 1 MiB blocks, one core: level 1 92 MB/s to
 * 44.8% of the input, level 4 76 MB/s to 42.4%, level 6 41 MB/s to 41.2%. Level 6 costs 2.3x the CPU for 8% fewer
 * bytes; on CI runners with a few cores the push is bound by compression long before the network, and a re-push skips
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

export type BlockCodec = (block: Buffer) => Promise<Buffer>;

// Byte 9 of a gzip header is the OS that wrote it, and zlib fills it from its build (3 on Unix, 19 on macOS, 10 on
// Windows). It is not covered by any checksum; pinning it to 3 keeps a layer's digest the same on every runner OS.
const GZIP_OS_OFFSET = 9;
const GZIP_OS_UNIX = 3;

// zlib's async API runs each step on the libuv threadpool; a larger output chunk means fewer round trips to the main
// thread per block (16 KiB by default would be ~20 trips per MiB).
const ZLIB_OUTPUT_CHUNK = 256 * 1024;

const SAMPLE = 16 * 1024;
const SAMPLES = 4;
// Random bytes measure ~7.989 bits per byte in a 16 KiB sample (the estimate is biased low by ~0.011); text ~4.5,
// machine code ~6, and compressed formats (gzip, zstd, JPEG, PNG, jar, wheel) 7.97-7.99.
const RANDOM_ENTROPY = 7.97;

/**
 * Whether every one of a few samples spread over the block looks random (order-0 entropy above RANDOM_ENTROPY).
 * Already-compressed files make up much of many images, and deflate gains nothing on them while it spends as long as
 * on text: zlib -1 ran at 61 MiB/s on random bytes here against 172 MiB/s on /usr files, and level 0 (stored) at
 * 1.2 GiB/s. Such blocks are therefore stored, as the Go compressor skopeo uses also skips incompressible input. A
 * periodic random pattern would compress yet be stored; that costs size, never correctness. Only the block's bytes
 * decide, so digests stay deterministic. ~0.1 ms per 1 MiB block.
 */
export function looksIncompressible(block: Buffer): boolean {
  if (block.length < SAMPLES * SAMPLE) return false;
  const counts = new Uint32Array(256);
  const step = Math.floor((block.length - SAMPLE) / (SAMPLES - 1));
  for (let s = 0; s < SAMPLES; s++) {
    counts.fill(0);
    const start = s * step;
    for (let i = start; i < start + SAMPLE; i++) counts[block[i] as number]!++;
    let entropy = 0;
    for (const c of counts) if (c) entropy -= (c / SAMPLE) * Math.log2(c / SAMPLE);
    if (entropy < RANDOM_ENTROPY) return false;
  }
  return true;
}

function gzipCodec(level: number): BlockCodec {
  const opts: zlib.ZlibOptions = { level, chunkSize: ZLIB_OUTPUT_CHUNK };
  const stored: zlib.ZlibOptions = { level: 0, chunkSize: ZLIB_OUTPUT_CHUNK };
  return (block) =>
    new Promise((resolve, reject) =>
      zlib.gzip(block, level > 0 && looksIncompressible(block) ? stored : opts, (err, out) => {
        if (err) return reject(err);
        out[GZIP_OS_OFFSET] = GZIP_OS_UNIX;
        resolve(out);
      }),
    );
}

function zstdCodec(level: number): BlockCodec {
  // Older Node has no zstd in zlib; the action runs on node24, which has it, so this is a clear error rather than a
  // crash on other runtimes.
  if (typeof zlib.zstdCompress !== 'function')
    throw new InputError(
      `compression: zstd needs Node.js 22.15 or later (this is ${process.version}); use 'compression: gzip'.`,
    );
  const { ZSTD_c_compressionLevel, ZSTD_c_checksumFlag } = zlib.constants;
  return (block) =>
    new Promise((resolve, reject) =>
      zlib.zstdCompress(
        block,
        {
          chunkSize: ZLIB_OUTPUT_CHUNK,
          // The frame header then states its content size (decoders can size buffers) and each frame carries a
          // checksum of its content, as the zstd CLI writes by default; both are fixed by the input, so still
          // deterministic.
          pledgedSrcSize: block.length,
          params: { [ZSTD_c_compressionLevel]: level, [ZSTD_c_checksumFlag]: 1 },
        },
        (err, out) => (err ? reject(err) : resolve(out)),
      ),
    );
}

/** The codec compressing one raw block into one complete gzip member / zstd frame. */
export function blockCodec(compression: Exclude<Compression, 'none'>, level: number): BlockCodec {
  return compression === 'gzip' ? gzipCodec(level) : zstdCodec(level);
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
