/** Reading a RawRange (types.ts) as a stream, for consumers that keep the buffers they are given. */
import type { RawRange } from './types.js';

const PIECE = 1 << 20;

/** The range's bytes in fresh 1 MiB buffers, in order; fails if the range ends early. */
export async function* rangeChunks(range: RawRange): AsyncGenerator<Buffer> {
  for (let at = 0; at < range.size;) {
    const buf = Buffer.allocUnsafeSlow(Math.min(PIECE, range.size - at));
    const got = await range.read(buf, 0, buf.length, at);
    if (got < buf.length) throw new Error(`the layer ended after ${at + got} of its ${range.size} bytes`);
    at += got;
    yield buf;
  }
}

export function isRawRange(v: unknown): v is RawRange {
  return typeof (v as RawRange | undefined)?.read === 'function' && typeof (v as RawRange).size === 'number';
}
