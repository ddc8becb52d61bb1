/**
 * An uncompressed docker-archive file read two ways at once: in order, by the tar reader, for the headers and the
 * small files; and by position, for the layers. A layer stored as one plain tar entry is one range of the file, which
 * the layer pipeline reads straight into its own block buffers (RawRange): no read buffer is allocated for it and
 * nothing is copied, and a layer the push skips is not read at all. Its range is lent out: when the in-order reading
 * reaches it, the tar reader gets views of zeros, which it skips as the body of an entry nobody reads.
 *
 * Only entries whose single header is confirmed at the offset the tar reader names are lent; anything else (pax or GNU
 * long-name records, a body past the end of the file) is read in order as before.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { parseNumeric, type TarEntry } from '../../archive/tar.js';
import type { RawRange } from '../types.js';

/** In-order reads: 1 MiB, as detect.ts reads archives (few round trips through the busy threadpool). */
const READ_CHUNK = 1 << 20;
const BLOCK = 512;
let zeros: Buffer | undefined;

export class ArchiveFile implements AsyncIterable<Buffer> {
  /** Lent ranges [start, end), in file order (entries are found in order). */
  private readonly lent: Array<{ start: number; end: number }> = [];
  private iterated = false;

  private constructor(
    private readonly fh: FileHandle,
    readonly size: number,
  ) {}

  static async open(path: string): Promise<ArchiveFile> {
    const fh = await open(path, 'r');
    try {
      return new ArchiveFile(fh, (await fh.stat()).size);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Reads `length` bytes at `position` into `into` at `offset`; fewer only at the end of the file. */
  async readAt(into: Buffer, offset: number, length: number, position: number): Promise<number> {
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.fh.read(into, offset + got, length - got, position + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got;
  }

  /**
   * The body of a plain file entry as a RawRange, its bytes then skipped by the in-order reading; undefined when
   * the entry is not one plain header followed by its body within the file.
   */
  async lend(e: TarEntry): Promise<RawRange | undefined> {
    const start = e.offset + BLOCK;
    const end = start + e.size;
    const last = this.lent[this.lent.length - 1];
    if (e.type !== 'file' || end > this.size || (last && start < last.end)) return undefined;
    const header = Buffer.alloc(BLOCK);
    if ((await this.readAt(header, 0, BLOCK, e.offset)) < BLOCK || !plainHeader(header, e.size)) return undefined;
    this.lent.push({ start, end });
    return {
      size: e.size,
      read: (into, offset, length, at) => {
        if (at < 0 || at + length > e.size) throw new RangeError(`read of ${length} bytes at ${at} outside the layer`);
        return this.readAt(into, offset, length, start + at);
      },
    };
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    if (this.iterated) throw new Error('ArchiveFile: the in-order reading can happen only once');
    this.iterated = true;
    let pos = 0;
    while (pos < this.size) {
      // Ranges lent before this position are behind us for good.
      while (this.lent.length > 0 && (this.lent[0] as { end: number }).end <= pos) this.lent.shift();
      const next = this.lent[0];
      if (next && next.start <= pos) {
        const n = Math.min(READ_CHUNK, next.end - pos);
        pos += n;
        zeros ??= Buffer.alloc(READ_CHUNK); // never written; the tar reader only counts these bytes
        yield zeros.subarray(0, n);
        continue;
      }
      // Stop a read at the next lent range: its bytes are the layer pipeline's to read.
      const want = Math.min(READ_CHUNK, this.size - pos, next ? next.start - pos : Infinity);
      const buf = Buffer.allocUnsafeSlow(want);
      const got = await this.readAt(buf, 0, want, pos);
      if (got === 0) return; // the file shrank: the tar reader reports the truncation
      pos += got;
      yield got < want ? buf.subarray(0, got) : buf;
    }
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/** Whether `b` is a valid tar header of a regular file of `size` bytes (so no metadata record came before it). */
function plainHeader(b: Buffer, size: number): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (b[i] as number);
  try {
    return parseNumeric(b, 148, 8) === sum && (b[156] === 0x30 || b[156] === 0) && parseNumeric(b, 124, 12) === size;
  } catch {
    return false;
  }
}
