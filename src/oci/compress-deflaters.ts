/**
 * gzip members from reused zlib streams. A zlib stream holds ~400 KiB of native state (memLevel 9), which Node
 * reports to V8 as external memory: a fresh stream per member made V8 run a garbage collection every ~20 members of a
 * push, and those ran on the main thread inside zlib's write calls (~0.3 s of its ~0.9 s on a 350 MB push). A stream
 * is therefore kept per job in flight and reset between members (deflateReset: the next member starts with a fresh
 * header and dictionary, byte for byte what a new stream writes).
 *
 * The output comes as slices of the stream's output buffers, so one member may arrive in two pieces and several
 * members share a buffer: nothing is copied to join them. That is safe for compressed members, whose bytes do not
 * depend on the room left in the output buffer, but zlib sizes stored blocks by that room, so stored members are
 * written here instead (storedMember), with sizes that depend only on the input.
 */
import * as zlib from 'node:zlib';
import type { MemberArenas } from './compress-arena.js';

/**
 * zlib's hash table has 2^(memLevel + 7) entries: 9 (the largest) instead of the default 8 found longer matches
 * sooner and ran gzip -1 ~9% faster on a 280 MiB tar of /usr files here, for the same size.
 */
const MEM_LEVEL = 9;
/** Output buffer size: members (~1/3 MiB compressed, 1 MiB stored) are packed into these one after the other. */
const OUTPUT_CHUNK = 1 << 20;
/** Idle streams kept per level; more are made when more jobs run at once, and dropped when they finish. */
const KEEP = 16;

// Byte 9 of a gzip header is the OS that wrote it, and zlib fills it from its build (3 on Unix, 19 on macOS, 10 on
// Windows). It is not covered by any checksum; pinning it to 3 keeps a layer's digest the same on every runner OS.
const GZIP_OS_OFFSET = 9;
const GZIP_OS_UNIX = 3;

// Every zlib stream has reset() (zlib's deflateReset); Node's typings list it only for deflate and inflate.
type Resettable = zlib.Gzip & zlib.ZlibReset;

interface Deflater {
  stream: Resettable;
  /** The pieces of the member being written. */
  out: Buffer[];
  failed?: unknown;
}

const idle = new Map<number, Deflater[]>();

/** Slices that follow each other in one output buffer become one view of it (the write and the flush each give one). */
function joinAdjacent(pieces: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  for (const p of pieces) {
    const last = out[out.length - 1];
    if (last && last.buffer === p.buffer && last.byteOffset + last.length === p.byteOffset)
      out[out.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + p.length);
    else out.push(p);
  }
  return out;
}

function make(level: number): Deflater {
  const d: Deflater = {
    stream: zlib.createGzip({ level, memLevel: MEM_LEVEL, chunkSize: OUTPUT_CHUNK }) as Resettable,
    out: [],
  };
  d.stream.on('data', (c: Buffer) => d.out.push(c));
  d.stream.on('error', (e) => (d.failed = e));
  return d;
}

/** Stored deflate blocks hold at most this many bytes (RFC 1951, 3.2.4). */
const MAX_STORED = 65535;

/**
 * A gzip member holding `part` in stored deflate blocks of 65535 bytes (the last one shorter, or one empty block for
 * no input), as zlib's level 0 writes them given room enough: a copy of the bytes with 5 bytes of framing per block,
 * the header zlib writes for level 0 (XFL 4, OS pinned as above) and the CRC-32 and size trailer. Written into memory
 * from `arenas` when given (compress-arena.ts).
 */
export function storedMember(part: Buffer, arenas?: MemberArenas): Buffer {
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
 * One complete gzip member holding `part`, at `level` (0 stores, into `arenas` when given). Resolves with its bytes,
 * in one or two pieces.
 */
export async function gzipMember(part: Buffer, level: number, arenas?: MemberArenas): Promise<Buffer[]> {
  if (level === 0) return [storedMember(part, arenas)];
  return deflateMember(part, level);
}

function deflateMember(part: Buffer, level: number): Promise<Buffer[]> {
  const d = idle.get(level)?.pop() ?? make(level);
  return new Promise<Buffer[]>((resolve, reject) => {
    d.stream.write(part);
    d.stream.flush(zlib.constants.Z_FINISH, () => {
      const out = d.out;
      d.out = [];
      if (d.failed || out.length === 0) {
        d.stream.destroy();
        return reject(d.failed ?? new Error('zlib produced no output for a gzip member'));
      }
      (out[0] as Buffer)[GZIP_OS_OFFSET] = GZIP_OS_UNIX;
      const pieces = joinAdjacent(out);
      d.stream.reset();
      const list = idle.get(level) ?? [];
      idle.set(level, list);
      if (list.length < KEEP) list.push(d);
      else d.stream.destroy();
      resolve(pieces);
    });
  });
}
