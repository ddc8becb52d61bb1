/**
 * The single-pass layer pipeline: hash the raw tar (diff_id), compress it, hash the compressed bytes (blob digest)
 * and hand the compressed chunks to the uploader as they are produced, with no temporary file and bounded memory.
 *
 * To use every core on one layer, the raw stream is cut into fixed-size blocks (1 MiB by default, compress-blocks.ts)
 * that are compressed independently and concurrently on other threads, then emitted in order as concatenated
 * gzip members / zstd frames (compress-codec.ts). Block boundaries depend only on the bytes and `chunkSize`, never on
 * how the source happened to chunk its reads, so the same layer and options give the same digest on every run. Each
 * byte is hashed once on each side: the raw bytes as they are read, the compressed ones as they are handed over (the
 * upload takes that digest instead of hashing again).
 *
 * Backpressure: a block takes one of `parallelism + 1` slots from the moment its raw bytes are read until the
 * consumer asks for the chunk after it, so the bytes held are at most about (parallelism + 1) x chunkSize plus the
 * tail of one source read, however slow the consumer (`stats` measures this). Nothing runs until `chunks` is iterated;
 * `result` settles when the iteration ends: resolved after the last chunk, rejected if the source or a codec fails or
 * the consumer stops early (the source is then closed).
 */
import { createHash, type Hash } from 'node:crypto';
import { InputError } from '../errors.js';
import { blockCodec, resolveLevel, type BlockCodec } from './compress-codec.js';
import { BlockCutter } from './compress-blocks.js';
import { BufferPool, defaultParallelism, Semaphore, type CompressionPool } from './compress-pool.js';
import { isRawRange, rangeChunks } from './raw-range.js';
import type { Compression, Digest, RawRange } from './types.js';

export { DEFAULT_GZIP_LEVEL, DEFAULT_ZSTD_LEVEL, mediaTypeFor } from './compress-codec.js';
export { BufferPool, CompressionPool, defaultParallelism } from './compress-pool.js';

export const DEFAULT_CHUNK_SIZE = 1024 * 1024;

export interface CompressOptions {
  compression: Compression;
  /** gzip 0-9 (default 1), zstd 1-19 (default 3); ignored for `none`. */
  level?: number;
  /** Raw bytes per independently compressed block (default 1 MiB). Part of the output: changing it changes digests. */
  chunkSize?: number;
  /** Blocks of this layer compressed at once (default: cores + 2, at most 16). Does not change the output. */
  parallelism?: number;
  /**
   * Shared across the layers of a push so that parallel uploads do not multiply compressions in flight: a block
   * compresses only with a permit from both its layer's `parallelism` and the pool. Does not change the output.
   */
  pool?: CompressionPool;
}

export interface CompressResult {
  /** sha256 of the raw tar: the layer's diff_id in the image config. */
  diffId: Digest;
  /** sha256 of the bytes yielded by `chunks`: the blob digest in the manifest. */
  digest: Digest;
  /** Bytes yielded by `chunks`. */
  size: number;
  /** Bytes read from the raw stream. */
  rawSize: number;
}

/** Memory accounting measured inside the pipeline (for tests and debug logs). */
export interface PipelineStats {
  /** Raw and compressed bytes read or produced and not yet taken back by the consumer's next pull. */
  readonly buffered: number;
  readonly peakBuffered: number;
  /** (parallelism + 1) x chunkSize: what `buffered` stays under, give or take the tail of one source read. */
  readonly bound: number;
}

export interface CompressedLayer {
  /**
   * Iterate once: the compressed stream in order. A gzip block gives a few members (compress-codec.ts), one chunk
   * each; zstd gives one frame per block; `none` the source's chunks.
   */
  chunks: AsyncIterable<Buffer>;
  result: Promise<CompressResult>;
  /**
   * Settles once every raw byte has been read and compressed, however the layer ends: what is left is only handing
   * the output to the consumer (a scheduler can start the next layer's CPU work then). Never rejects.
   */
  compressed: Promise<void>;
  stats: PipelineStats;
}

const sha256 = (h: Hash): Digest => `sha256:${h.digest('hex')}`;

class Counter implements PipelineStats {
  buffered = 0;
  peakBuffered = 0;
  constructor(readonly bound: number) {}
  add(n: number): void {
    this.buffered += n;
    if (this.buffered > this.peakBuffered) this.peakBuffered = this.buffered;
  }
}

function options(opts: CompressOptions): { chunkSize: number; parallelism: number; level: number } {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const parallelism = opts.parallelism ?? defaultParallelism();
  if (!['gzip', 'zstd', 'none'].includes(opts.compression))
    throw new InputError(`compression must be gzip, zstd or none; got '${String(opts.compression)}'.`);
  if (!Number.isInteger(chunkSize) || chunkSize < 64 * 1024 || chunkSize > 256 * 1024 * 1024)
    throw new InputError(`chunkSize must be a whole number of bytes from 64 KiB to 256 MiB; got ${chunkSize}.`);
  if (!Number.isInteger(parallelism) || parallelism < 1 || parallelism > 256)
    throw new InputError(`parallelism must be a whole number from 1 to 256; got ${parallelism}.`);
  return { chunkSize, parallelism, level: resolveLevel(opts.compression, opts.level, "Option 'level'") };
}

/**
 * Wires up the pipeline for one layer; see the module comment. `raw` is the tar as a stream, or readable by position
 * (read straight into the block buffers). Throws InputError on bad options, before any I/O.
 */
export function compressLayer(raw: AsyncIterable<Buffer> | RawRange, opts: CompressOptions): CompressedLayer {
  const { chunkSize, parallelism, level } = options(opts);
  const stats = new Counter((parallelism + 1) * chunkSize);
  let settle!: Settle;
  const result = new Promise<CompressResult>((resolve, reject) => (settle = { resolve, reject, compressed: () => {} }));
  const compressed = new Promise<void>((resolve) => (settle.compressed = resolve));
  // A consumer that stops early usually has its own error to report; this keeps `result` from being unhandled.
  result.catch(() => undefined);
  // This layer's own arenas (compress-arena.ts), done with once its last block is compressed.
  const lane = opts.compression === 'gzip' ? opts.pool?.members.lane() : undefined;
  if (lane) void compressed.then(() => lane.close());
  const codec = opts.compression === 'none' ? undefined : blockCodec(opts.compression, level, lane);
  let iterated = false;
  const chunks: AsyncIterable<Buffer> = {
    [Symbol.asyncIterator]() {
      if (iterated) throw new Error('compressLayer: chunks can be iterated only once');
      iterated = true;
      const gen = codec
        ? blocks(raw, codec, { chunkSize, parallelism, pool: opts.pool }, stats, settle)
        : passThrough(isRawRange(raw) ? rangeChunks(raw) : raw, stats, settle);
      return gen[Symbol.asyncIterator]();
    },
  };
  return { chunks, result, compressed, stats };
}

type Settle = { resolve: (r: CompressResult) => void; reject: (e: unknown) => void; compressed: () => void };

const EARLY_STOP = 'compressLayer: the consumer stopped before the end of the layer';

async function* passThrough(raw: AsyncIterable<Buffer>, stats: Counter, settle: Settle): AsyncGenerator<Buffer> {
  const hash = createHash('sha256');
  let size = 0;
  let finished = false;
  try {
    for await (const chunk of raw) {
      hash.update(chunk);
      size += chunk.length;
      stats.add(chunk.length);
      yield chunk;
      stats.add(-chunk.length);
    }
    finished = true;
    const digest = sha256(hash);
    settle.resolve({ diffId: digest, digest, size, rawSize: size });
  } catch (e) {
    finished = true;
    settle.reject(e);
    throw e;
  } finally {
    // `for await` has already closed the source when the consumer returned early; only `result` is left to settle.
    if (!finished) settle.reject(new Error(EARLY_STOP));
    settle.compressed();
  }
}

interface Limits {
  chunkSize: number;
  parallelism: number;
  pool?: CompressionPool;
}

async function* blocks(
  raw: AsyncIterable<Buffer> | RawRange,
  codec: BlockCodec,
  { chunkSize, parallelism, pool }: Limits,
  stats: Counter,
  settle: Settle,
): AsyncGenerator<Buffer> {
  const source = isRawRange(raw) ? raw : raw[Symbol.asyncIterator]();
  // Blocks held (read, compressing, compressed or with the consumer) and blocks compressing: see the module comment.
  const slots = new Semaphore(parallelism + 1);
  const compressing = new Semaphore(parallelism);
  const queue: Array<Promise<Buffer[]>> = [];
  // Compressions not finished yet; with the producer done and none left, the layer needs no more CPU.
  let pending = 0;
  let produced = false;
  const checkCompressed = () => {
    if (produced && pending === 0) settle.compressed();
  };
  const rawHash = createHash('sha256');
  let rawSize = 0;
  let producing = true;
  let stopped = false;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };

  // Reads the source and starts one compression per block, waiting for a free slot before reading more.
  const cutter = new BlockCutter(source, chunkSize, pool?.buffers ?? new BufferPool(parallelism + 1), (chunk) => {
    rawHash.update(chunk);
    rawSize += chunk.length;
    stats.add(chunk.length);
  });
  const produce = async () => {
    while (!stopped) {
      await slots.acquire();
      if (stopped) break;
      const block = await cutter.next(() => stopped);
      if (!block) break;
      await compressing.acquire();
      await pool?.acquire();
      if (stopped) {
        // The pool is shared: give its permit back rather than leave it to a teardown.
        pool?.release();
        break;
      }
      const { length } = block.bytes;
      pending++;
      const job = codec(block.bytes)
        .finally(() => {
          block.release();
          pool?.release();
          compressing.release();
          pending--;
          checkCompressed();
        })
        .then((out) => {
          stats.add(out.reduce((n, b) => n + b.length, 0) - length);
          return out;
        });
      job.catch(() => undefined); // awaited in order by the consumer; this only keeps it from being unhandled meanwhile
      queue.push(job);
      notify();
      if (cutter.done) break;
    }
  };

  let started = false;
  let succeeded = false;
  const blobHash = createHash('sha256');
  let size = 0;
  try {
    for (;;) {
      if (!started) {
        started = true;
        produce()
          .then(
            () => {
              producing = false;
              notify();
            },
            (error: unknown) => {
              producing = false;
              failure = { error };
              notify();
            },
          )
          .finally(() => {
            produced = true;
            checkCompressed();
          });
      }
      while (queue.length === 0 && producing && !failure) await new Promise<void>((r) => (wake = r));
      // A failed source is reported at once, without first sending the blocks already compressed.
      if (failure) throw failure.error;
      const job = queue.shift();
      if (!job) break;
      for (const out of await job) {
        blobHash.update(out);
        size += out.length;
        yield out;
        stats.add(-out.length);
      }
      slots.release();
    }
    succeeded = true;
    settle.resolve({ diffId: sha256(rawHash), digest: sha256(blobHash), size, rawSize });
  } catch (e) {
    settle.reject(e);
    throw e;
  } finally {
    if (!succeeded) {
      settle.reject(new Error(EARLY_STOP)); // no-op when already rejected with the real error
      settle.compressed(); // nothing more will be compressed for this layer
      stopped = true;
      slots.wakeAll();
      compressing.wakeAll();
      // Closing the source lets a reader release its file or child process. Not awaited: a source stuck in a read
      // would otherwise hold up the consumer's own error; its close error is not the one to report either.
      if (!isRawRange(source)) source.return?.()?.catch(() => undefined);
    }
  }
}
