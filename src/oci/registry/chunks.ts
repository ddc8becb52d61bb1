/**
 * Byte streams as upload chunks (upload.ts): re-sliced into chunks of a fixed size without copying, and the parts of a
 * chunk from a given byte on, for resending what a registry lacks.
 */
/** A stream of bytes; a plain array of Buffers works for small blobs already in memory (configs). */
export type ByteSource = AsyncIterable<Buffer> | Iterable<Buffer>;

/**
 * Re-slices a stream into groups of buffers of exactly `size` bytes together (the last group shorter), without joining
 * them: only a buffer that straddles two groups is cut, as two views of the same memory.
 */
export async function* chunkGroups(source: ByteSource, size: number): AsyncGenerator<Buffer[]> {
  let parts: Buffer[] = [];
  let held = 0;
  for await (let piece of source) {
    while (piece.length > 0) {
      const take = Math.min(piece.length, size - held);
      parts.push(take === piece.length ? piece : piece.subarray(0, take));
      held += take;
      piece = piece.subarray(take);
      if (held < size) continue;
      yield parts;
      parts = [];
      held = 0;
    }
  }
  if (held) yield parts;
}

/** Re-slices a stream into chunks of exactly `size` bytes (the last one shorter). */
export async function* fixedChunks(source: ByteSource, size: number): AsyncGenerator<Buffer> {
  for await (const g of chunkGroups(source, size)) yield g.length === 1 ? (g[0] as Buffer) : Buffer.concat(g);
}

export const lengthOf = (parts: Buffer[]): number => parts.reduce((n, b) => n + b.length, 0);

/** The parts from byte `from` on, as views of the same memory. */
export function partsFrom(parts: Buffer[], from: number): Buffer[] {
  const out: Buffer[] = [];
  let skip = from;
  for (const p of parts) {
    if (skip >= p.length) skip -= p.length;
    else {
      out.push(skip ? p.subarray(skip) : p);
      skip = 0;
    }
  }
  return out;
}
