/**
 * Cuts a layer's raw stream into the fixed-size blocks that compress.ts compresses independently. Block boundaries
 * depend only on the bytes and the block size, never on how the source chunked its reads. Each read is seen once, by
 * `onRead` (the diff_id hash), then copied into a pooled block buffer (compress-pool.ts); a read that holds a whole
 * block is cut without copying. A layer readable by position (RawRange) is read straight into the pooled buffers.
 */
import type { BufferPool } from './compress-pool.js';
import type { RawRange } from './types.js';

export interface RawBlock {
  bytes: Buffer;
  /** Gives the block's buffer back for reuse: call once nothing reads `bytes` any more. */
  release(): void;
}

export class BlockCutter {
  private rest: Buffer | undefined;
  private ended = false;
  private cut = 0;

  constructor(
    private readonly source: AsyncIterator<unknown> | RawRange,
    private readonly size: number,
    private readonly buffers: BufferPool,
    private readonly onRead: (chunk: Buffer) => void,
  ) {}

  /**
   * The next block, or undefined at the end. An empty stream still gives one empty block: a zero-byte blob is not
   * valid gzip or zstd, an empty member or frame is. `stopped` is asked after every read: true drops the block.
   */
  async next(stopped: () => boolean): Promise<RawBlock | undefined> {
    if (!('next' in this.source)) return this.fromRange(this.source, stopped);
    const source = this.source;
    const { size } = this;
    if (this.rest && this.rest.length >= size) return this.whole(size);
    let buffer: Buffer | undefined;
    let filled = 0;
    const drop = () => {
      if (buffer) this.buffers.give(buffer);
      return undefined;
    };
    if (this.rest) {
      buffer = this.buffers.take(size);
      filled = this.rest.copy(buffer, 0);
      this.rest = undefined;
    }
    while (filled < size && !this.ended) {
      const next = await source.next();
      if (stopped()) return drop();
      if (next.done) {
        this.ended = true;
        break;
      }
      const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as Uint8Array);
      if (chunk.length === 0) continue;
      this.onRead(chunk);
      if (filled === 0 && chunk.length >= size) {
        this.rest = chunk;
        return this.whole(size);
      }
      buffer ??= this.buffers.take(size);
      const n = chunk.copy(buffer, filled);
      filled += n;
      if (n < chunk.length) this.rest = chunk.subarray(n);
    }
    if (filled === 0 && this.cut > 0) return drop();
    this.cut++;
    if (!buffer) return { bytes: Buffer.alloc(0), release: () => undefined };
    const held = buffer;
    return { bytes: held.subarray(0, filled), release: () => this.buffers.give(held) };
  }

  /** One block read by position into a pooled buffer. */
  private async fromRange(range: RawRange, stopped: () => boolean): Promise<RawBlock | undefined> {
    const at = this.cut * this.size;
    if (this.ended) return undefined;
    const n = Math.min(this.size, range.size - at);
    const buffer = this.buffers.take(this.size);
    let got: number;
    try {
      got = n > 0 ? await range.read(buffer, 0, n, at) : 0;
    } catch (e) {
      this.buffers.give(buffer);
      throw e;
    }
    if (stopped() || got < n) {
      this.buffers.give(buffer);
      if (got < n) throw new Error(`the layer ended after ${at + got} of its ${range.size} bytes`);
      return undefined;
    }
    const bytes = buffer.subarray(0, n);
    if (n > 0) this.onRead(bytes);
    this.cut++;
    if (at + n >= range.size) this.ended = true;
    return { bytes, release: () => this.buffers.give(buffer) };
  }

  /** A block that is a slice of one read: nothing to copy, nothing to give back. */
  private whole(size: number): RawBlock {
    const chunk = this.rest as Buffer;
    this.rest = chunk.length > size ? chunk.subarray(size) : undefined;
    this.cut++;
    return { bytes: chunk.subarray(0, size), release: () => undefined };
  }

  /** Whether the stream has ended and every byte is in a block already. */
  get done(): boolean {
    return this.ended && !this.rest;
  }
}
