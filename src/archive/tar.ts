/**
 * A streaming tar reader without dependencies. The Nix release tarball is read through it today and docker-archive
 * images (DESIGN.md, OCI) later, whose layers can be hundreds of MB: bodies are therefore handed out as zero-copy
 * slices of the incoming chunks and never gathered in memory. Only metadata records (GNU long names, pax headers)
 * are buffered, and those are capped.
 *
 * Formats: v7, ustar (prefix + name), GNU (typeflags 'L'/'K', base-256 numbers), pax ('x' per entry; 'g' global
 * headers are skipped because nothing we read relies on them).
 */

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';

export interface TarEntry {
  /** As stored (after long-name/pax overrides); directories lose their trailing slash. Not sanitised: see safe-path. */
  path: string;
  type: TarEntryType;
  /** The raw typeflag character ('0', '5', '3', ...), so callers can say which kind of 'other' they refuse. */
  typeflag: string;
  mode: number;
  size: number;
  /** Seconds since the epoch (pax may make it fractional). */
  mtime: number;
  uid: number;
  gid: number;
  linkname: string;
  /** Byte offset of the entry's header (of its first metadata header when it has some), for error messages. */
  offset: number;
  /** Read at most once, before asking for the next entry; an unread body is skipped. */
  body: AsyncIterable<Buffer>;
}

const BLOCK = 512;
const ZERO_BLOCK = Buffer.alloc(BLOCK);
const EMPTY = Buffer.alloc(0);
/** Long names and pax records are buffered; real ones are a few KiB, so anything this big is hostile or broken. */
const MAX_META = 8 * 1024 * 1024;

const padding = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;

/** Pulls bytes from the source iterator, tracking the archive offset; hands out slices without copying. */
class ByteReader {
  offset = 0;
  private chunk: Buffer = EMPTY;
  private pos = 0;
  private ended = false;

  constructor(private readonly it: AsyncIterator<unknown> | Iterator<unknown>) {}

  /** Up to `max` bytes from the current chunk, or null at end of input. */
  async some(max: number): Promise<Buffer | null> {
    while (this.pos >= this.chunk.length) {
      if (this.ended) return null;
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        return null;
      }
      this.chunk = toBuffer(r.value);
      this.pos = 0;
    }
    const n = Math.min(max, this.chunk.length - this.pos);
    const out = this.chunk.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.offset += n;
    return out;
  }

  /** Exactly `n` bytes; shorter only when the input ends first. Copies only when `n` spans chunks. */
  async exact(n: number): Promise<Buffer> {
    const first = await this.some(n);
    if (!first || first.length === n) return first ?? EMPTY;
    const parts = [first];
    let got = first.length;
    for (let b; got < n && (b = await this.some(n - got)); got += b.length) parts.push(b);
    return Buffer.concat(parts, got);
  }

  /** Discards up to `n` bytes; returns how many were actually there. */
  async skip(n: number): Promise<number> {
    let left = n;
    for (let b; left > 0 && (b = await this.some(left));) left -= b.length;
    return n - left;
  }

  /** Reads to the end so a producer piping into us (xz, nix build) can finish writing and exit. */
  async drain(): Promise<void> {
    while (await this.some(Number.MAX_SAFE_INTEGER));
  }

  /** Stops the source (destroys a stream) when we stop early. */
  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.it.return?.();
  }
}

function toBuffer(v: unknown): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new TypeError('tar: the source must yield Buffers (a stream with an encoding set yields strings)');
}

function cstring(b: Buffer, start: number, end: number): string {
  const nul = b.indexOf(0, start);
  return b.toString('utf8', start, nul >= 0 && nul < end ? nul : end);
}

/** Octal ASCII, or GNU base-256 (high bit set, big-endian two's complement) for values that do not fit. */
export function parseNumeric(b: Buffer, start: number, len: number): number {
  const first = b[start] ?? 0;
  if (first & 0x80) {
    let v = BigInt(first & 0x7f);
    for (let i = start + 1; i < start + len; i++) v = (v << 8n) | BigInt(b[i] ?? 0);
    if (first & 0x40) v -= 1n << BigInt(len * 8 - 1); // sign bit (0xff prefix): negative, e.g. pre-1970 mtimes
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw new Error('out of range');
    return Number(v);
  }
  let i = start;
  const end = start + len;
  while (i < end && b[i] === 0x20) i++;
  let v = 0;
  for (; i < end; i++) {
    const c = b[i] ?? 0;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) throw new Error(`bad octal digit 0x${c.toString(16)}`);
    v = v * 8 + (c - 0x30);
  }
  return v;
}

interface Header {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
}

function corrupt(offset: number, why: string): Error {
  return new Error(`tar: corrupt header at offset ${offset}: ${why}`);
}

function parseHeader(b: Buffer, offset: number): Header {
  // The checksum is the byte sum with its own field read as spaces; some old writers summed signed bytes.
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const v = i >= 148 && i < 156 ? 0x20 : (b[i] ?? 0);
    unsigned += v;
    signed += v > 127 ? v - 256 : v;
  }
  const num = (start: number, len: number, field: string): number => {
    try {
      return parseNumeric(b, start, len);
    } catch (e) {
      throw corrupt(offset, `${field}: ${(e as Error).message}`);
    }
  };
  const sum = num(148, 8, 'checksum');
  if (sum !== unsigned && sum !== signed) throw corrupt(offset, `checksum ${sum} does not match ${unsigned}`);
  let name = cstring(b, 0, 100);
  // POSIX ustar splits long names into prefix + name; GNU's "ustar  " magic reuses those bytes for other fields.
  if (b.toString('latin1', 257, 263) === 'ustar\0') {
    const prefix = cstring(b, 345, 500);
    if (prefix) name = `${prefix}/${name}`;
  }
  return {
    name,
    mode: num(100, 8, 'mode'),
    uid: num(108, 8, 'uid'),
    gid: num(116, 8, 'gid'),
    size: num(124, 12, 'size'),
    mtime: num(136, 12, 'mtime'),
    typeflag: String.fromCharCode(b[156] ?? 0),
    linkname: cstring(b, 157, 257),
  };
}

/** pax records are `<len> <key>=<value>\n`, the length counting bytes of the whole record. */
function parsePax(buf: Buffer, offset: number): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < buf.length && buf[i] !== 0) {
    const sp = buf.indexOf(0x20, i);
    const len = sp > i ? Number(buf.toString('latin1', i, sp)) : NaN;
    if (!Number.isSafeInteger(len) || len <= sp - i || i + len > buf.length || buf[i + len - 1] !== 0x0a) {
      throw corrupt(offset, `malformed pax record at byte ${i}`);
    }
    const rec = buf.subarray(sp + 1, i + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw corrupt(offset, `pax record without '=' at byte ${i}`);
    out.set(rec.toString('utf8', 0, eq), rec.toString('utf8', eq + 1));
    i += len;
  }
  return out;
}

function entryType(flag: string, name: string): TarEntryType {
  switch (flag) {
    case '0':
    case '\0':
    case '7': // contiguous file: a regular file everywhere that matters
      return name.endsWith('/') ? 'directory' : 'file'; // v7 archives mark directories only by the slash
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '5':
      return 'directory';
    default:
      return 'other';
  }
}

function paxNumber(pax: Map<string, string>, key: string, fallback: number, offset: number, int: boolean): number {
  const raw = pax.get(key);
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || (int && (!Number.isSafeInteger(v) || v < 0))) throw corrupt(offset, `pax ${key}=${raw}`);
  return v;
}

interface BodyState {
  path: string;
  offset: number;
  remaining: number;
  started: boolean;
  stale: boolean;
}

const truncatedBody = (st: BodyState) =>
  new Error(`tar: archive ends inside the body of '${st.path}' (header at offset ${st.offset})`);

async function* bodyChunks(r: ByteReader, st: BodyState): AsyncGenerator<Buffer> {
  if (st.started) throw new Error(`tar: the body of '${st.path}' can be read only once`);
  st.started = true;
  while (st.remaining > 0 || st.stale) {
    if (st.stale) throw new Error(`tar: the body of '${st.path}' was read after moving to the next entry`);
    const b = await r.some(st.remaining);
    if (!b) throw truncatedBody(st);
    st.remaining -= b.length;
    yield b;
  }
}

/** Sync iterables are accepted too, so a Buffer already in memory can be read as `[buf]`. */
export type TarSource = AsyncIterable<Buffer> | Iterable<Buffer> | NodeJS.ReadableStream;

function iteratorOf(source: TarSource): AsyncIterator<unknown> | Iterator<unknown> {
  const s = source as Partial<AsyncIterable<unknown> & Iterable<unknown>>;
  const asyncIt = s[Symbol.asyncIterator];
  if (asyncIt) return asyncIt.call(s);
  const syncIt = s[Symbol.iterator];
  if (syncIt) return syncIt.call(s);
  throw new TypeError('tar: the source must be a stream or an (async) iterable of Buffers');
}

/**
 * Yields the entries of a tar stream in order. The consumer must read or ignore each entry's body before asking for
 * the next one; whatever is left of it is skipped then. Ends at the zero-block end marker or, tolerated, at a clean
 * EOF between entries; throws on a bad checksum or a truncated entry, naming the offset.
 */
export async function* readTar(source: TarSource): AsyncGenerator<TarEntry> {
  const r = new ByteReader(iteratorOf(source));
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax: Map<string, string> | undefined;
  let metaOffset: number | undefined;
  try {
    for (;;) {
      const at = r.offset;
      const block = await r.exact(BLOCK);
      if (block.length === 0) return;
      if (block.length < BLOCK) throw new Error(`tar: archive ends inside the header at offset ${at}`);
      if (block.equals(ZERO_BLOCK)) {
        // The end marker: its second block and the record padding follow; GNU tar also stops at a lone zero block.
        await r.drain();
        return;
      }
      const h = parseHeader(block, at);
      if ('LKxg'.includes(h.typeflag)) {
        if (h.size > MAX_META) throw corrupt(at, `'${h.typeflag}' record of ${h.size} bytes is too large`);
        const data = await r.exact(h.size);
        if (data.length < h.size) throw new Error(`tar: archive ends inside the header at offset ${at}`);
        await r.skip(padding(h.size));
        metaOffset ??= at;
        if (h.typeflag === 'L') longName = cstring(data, 0, data.length);
        else if (h.typeflag === 'K') longLink = cstring(data, 0, data.length);
        else if (h.typeflag === 'x') pax = parsePax(data, at);
        continue;
      }
      const offset = metaOffset ?? at;
      let path = pax?.get('path') || longName || h.name;
      const type = entryType(h.typeflag, path);
      if (type === 'directory' && path.length > 1) path = path.replace(/\/+$/, '') || '/';
      const p = pax ?? new Map<string, string>();
      const size = paxNumber(p, 'size', h.size, at, true);
      const st: BodyState = { path, offset, remaining: size, started: false, stale: false };
      yield {
        path,
        type,
        typeflag: h.typeflag,
        mode: h.mode,
        size,
        mtime: paxNumber(p, 'mtime', h.mtime, at, false),
        uid: paxNumber(p, 'uid', h.uid, at, true),
        gid: paxNumber(p, 'gid', h.gid, at, true),
        linkname: p.get('linkpath') || longLink || h.linkname,
        offset,
        body: { [Symbol.asyncIterator]: () => bodyChunks(r, st) },
      };
      longName = longLink = pax = metaOffset = undefined;
      // The rest of an unread body is skipped now; reading it later must fail rather than end early.
      st.stale = st.remaining > 0;
      const left = st.remaining;
      st.remaining = 0;
      if ((await r.skip(left)) < left) throw truncatedBody(st);
      await r.skip(padding(size)); // a missing final padding is sloppy but harmless
    }
  } finally {
    await r.close();
  }
}
