/**
 * gzip members: compressed ones from the deflate workers (deflate-workers.ts), stored ones (incompressible runs)
 * written here, with the sizes zlib's level 0 gives them; both into reusable arenas when given (compress-arena.ts).
 */
import * as zlib from 'node:zlib';
import type { ArenaLane } from './compress-arena.js';
import { deflateWorkers } from './deflate-workers.js';

// Byte 9 of a gzip header is the OS that wrote it; not covered by any checksum, it is pinned to 3 (Unix) so that a
// layer's digest is the same on every runner OS.
const GZIP_OS_UNIX = 3;

/** Stored deflate blocks hold at most this many bytes (RFC 1951, 3.2.4). */
const MAX_STORED = 65535;

/**
 * A gzip member holding `part` in stored deflate blocks of 65535 bytes (the last one shorter, or one empty block for
 * no input), as zlib's level 0 writes them given room enough: a copy of the bytes with 5 bytes of framing per block,
 * the header zlib writes for level 0 (XFL 4, OS pinned as above) and the CRC-32 and size trailer. Written into memory
 * from `arenas` when given (compress-arena.ts).
 */
export function storedMember(part: Buffer, arenas?: ArenaLane): Buffer {
  const blocks = Math.max(1, Math.ceil(part.length / MAX_STORED));
  const size = 10 + 5 * blocks + part.length + 8;
  const out = arenas ? arenas.take(size) : Buffer.allocUnsafe(size);
  out.set([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, GZIP_OS_UNIX], 0);
  let at = 10;
  for (let b = 0, from = 0; b < blocks; b++, from += MAX_STORED) {
    const n = Math.min(MAX_STORED, part.length - from);
    out[at] = b === blocks - 1 ? 1 : 0; // BFINAL, BTYPE 00
    out.writeUInt16LE(n, at + 1);
    out.writeUInt16LE(~n & 0xffff, at + 3);
    part.copy(out, at + 5, from, from + n);
    at += 5 + n;
  }
  out.writeUInt32LE(zlib.crc32(part), at);
  out.writeUInt32LE(part.length >>> 0, at + 4);
  return out;
}

/**
 * One complete gzip member holding `part`, at `level` (0 stores, into `arenas` when given; others are compressed by
 * the deflate workers). Resolves with its bytes.
 */
export async function gzipMember(part: Buffer, level: number, arenas?: ArenaLane): Promise<Buffer> {
  if (level === 0) return storedMember(part, arenas);
  return deflateWorkers().member(part, level, arenas && ((n) => arenas.take(n)));
}
