/**
 * Streaming NAR (Nix ARchive) reading, for restoring store paths without a temporary copy: the parser is a generator
 * that a `Pump` feeds with chunks as they arrive (from the decompressor), and that hands file contents to a sink as
 * slices of those chunks. Every byte the parser consumes goes into the caller's hash, so one pass writes the files
 * and computes the NAR hash that is then checked against the narinfo.
 *
 * The format (Nix's archive.cc): strings are a u64 (little endian) length, the bytes, zero padding to 8;
 * `nix-archive-1`, then a node: `( type regular [executable ""] contents <u64 size> <bytes> )`,
 * `( type symlink target <str> )` or `( type directory (entry ( name <str> node <node> ))* )`, entry names sorted,
 * unique, never empty, `.`, `..`, or holding `/` or NUL. Anything else is refused, so a hostile archive cannot write
 * outside the path it is restored to.
 */

/** What a parser asks the pump for: exactly n bytes, or a slice of at most `stream` bytes (at least one). */
export type Want = number | { stream: number };
export type Parser<T = void> = Generator<Want, T, Buffer>;

/** Feeds chunks to a parser. A parser that finishes leaves the rest of the data in `leftover`. */
export class Pump {
  private pending: Buffer[] = [];
  private avail = 0;
  private want: Want | undefined;
  done = false;

  constructor(private readonly gen: Parser<unknown>) {
    this.advance(undefined);
  }

  private advance(input: Buffer | undefined): void {
    const r = this.gen.next(input as Buffer);
    if (r.done) {
      this.done = true;
      this.want = undefined;
    } else {
      if (typeof r.value === 'number' && !(r.value > 0)) throw new Error(`parser asked for ${r.value} bytes`);
      this.want = r.value;
    }
  }

  /** Bytes received but not consumed (after the parser finished, what followed its data). */
  get leftover(): number {
    return this.avail;
  }

  push(chunk: Buffer): void {
    if (chunk.length > 0) {
      this.pending.push(chunk);
      this.avail += chunk.length;
    }
    while (!this.done && this.avail > 0) {
      const w = this.want as Want;
      if (typeof w === 'number') {
        if (this.avail < w) return;
        this.advance(this.take(w));
      } else {
        this.advance(this.take(Math.min(w.stream, (this.pending[0] as Buffer).length)));
      }
    }
  }

  private take(n: number): Buffer {
    const first = this.pending[0] as Buffer;
    this.avail -= n;
    if (first.length > n) {
      this.pending[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.pending.shift();
      return first;
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.pending[0] as Buffer;
      const k = Math.min(c.length, n - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) this.pending.shift();
      else this.pending[0] = c.subarray(k);
    }
    return out;
  }
}

export class NarError extends Error {
  override readonly name = 'NarError';
}

/** Where a NAR's contents go; paths are relative to the root (`[]` is the root itself), names raw bytes. */
export interface NarSink {
  directory(rel: readonly Buffer[]): void;
  /** After the directory's last entry (so its mode and time can be fixed). */
  directoryDone(rel: readonly Buffer[]): void;
  file(rel: readonly Buffer[], executable: boolean, size: number): { write(piece: Buffer): void; done(): void };
  symlink(rel: readonly Buffer[], target: Buffer): void;
}

const MAX_NAME = 255;
const MAX_TARGET = 4095;
const MAX_DEPTH = 256;

/** What every consumed byte goes to: a node:crypto Hash, or anything with `update`. */
export interface ByteSink {
  update(data: Buffer): unknown;
}

interface Ctx {
  hash: ByteSink;
  size: number;
  sink: NarSink | undefined;
}

function* raw(ctx: Ctx, n: number): Parser<Buffer> {
  const b = yield n;
  ctx.hash.update(b);
  ctx.size += n;
  return b;
}

function* u64(ctx: Ctx): Parser<number> {
  const b = yield* raw(ctx, 8);
  const v = b.readBigUInt64LE(0);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new NarError('a NAR length is out of range');
  return Number(v);
}

function* padding(ctx: Ctx, len: number): Parser {
  const pad = (8 - (len % 8)) % 8;
  if (pad === 0) return;
  const b = yield* raw(ctx, pad);
  if (b.some((x) => x !== 0)) throw new NarError('non-zero NAR padding');
}

function* bytes(ctx: Ctx, max: number): Parser<Buffer> {
  const len = yield* u64(ctx);
  if (len > max) throw new NarError(`a NAR string is ${len} bytes long, at most ${max} expected`);
  if (len === 0) return Buffer.alloc(0);
  const padded = (len + 7) & ~7;
  const b = yield* raw(ctx, padded);
  if (b.subarray(len).some((x) => x !== 0)) throw new NarError('non-zero NAR padding');
  // A copy: the pump's chunk may be reused once this parser step returns.
  return Buffer.from(b.subarray(0, len));
}

function* token(ctx: Ctx): Parser<string> {
  return (yield* bytes(ctx, 64)).toString('latin1');
}

function* expect(ctx: Ctx, want: string): Parser {
  const got = yield* token(ctx);
  if (got !== want) throw new NarError(`expected '${want}' in the NAR, found '${got.slice(0, 20)}'`);
}

function validName(name: Buffer): boolean {
  if (name.length === 0 || name.includes(0x2f) || name.includes(0)) return false;
  const s = name.toString('latin1');
  return s !== '.' && s !== '..';
}

function* node(ctx: Ctx, rel: Buffer[]): Parser {
  if (rel.length > MAX_DEPTH) throw new NarError('the NAR nests directories too deeply');
  yield* expect(ctx, '(');
  yield* expect(ctx, 'type');
  const type = yield* token(ctx);
  if (type === 'regular') {
    let tag = yield* token(ctx);
    let executable = false;
    if (tag === 'executable') {
      executable = true;
      yield* expect(ctx, '');
      tag = yield* token(ctx);
    }
    if (tag !== 'contents') throw new NarError(`expected 'contents' in the NAR, found '${tag.slice(0, 20)}'`);
    const size = yield* u64(ctx);
    const out = ctx.sink?.file(rel, executable, size);
    let left = size;
    while (left > 0) {
      const piece = yield { stream: left };
      ctx.hash.update(piece);
      out?.write(piece);
      left -= piece.length;
    }
    ctx.size += size;
    yield* padding(ctx, size);
    out?.done();
    yield* expect(ctx, ')');
  } else if (type === 'symlink') {
    yield* expect(ctx, 'target');
    const target = yield* bytes(ctx, MAX_TARGET);
    if (target.length === 0 || target.includes(0)) throw new NarError('a NAR symlink has an invalid target');
    ctx.sink?.symlink(rel, target);
    yield* expect(ctx, ')');
  } else if (type === 'directory') {
    ctx.sink?.directory(rel);
    let previous: Buffer | undefined;
    for (;;) {
      const tag = yield* token(ctx);
      if (tag === ')') break;
      if (tag !== 'entry') throw new NarError(`expected 'entry' in the NAR, found '${tag.slice(0, 20)}'`);
      yield* expect(ctx, '(');
      yield* expect(ctx, 'name');
      const name = yield* bytes(ctx, MAX_NAME);
      if (!validName(name)) throw new NarError('a NAR entry has an invalid name');
      if (previous && Buffer.compare(previous, name) >= 0) throw new NarError('NAR entries are not sorted');
      previous = name;
      yield* expect(ctx, 'node');
      yield* node(ctx, [...rel, name]);
      yield* expect(ctx, ')');
    }
    ctx.sink?.directoryDone(rel);
  } else {
    throw new NarError(`unknown NAR node type '${type.slice(0, 20)}'`);
  }
}

/**
 * Parses one NAR, handing its contents to `sink` (none: parse and hash only) and every byte to `hash`. Returns the
 * NAR's size in bytes. Throws NarError on anything malformed.
 */
export function* readNar(sink: NarSink | undefined, hash: ByteSink): Parser<number> {
  const ctx: Ctx = { hash, size: 0, sink };
  yield* expect(ctx, 'nix-archive-1');
  yield* node(ctx, []);
  return ctx.size;
}

const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

/** Nix's base-32 (`nix-hash --to-base32`): the digest's bits from the end, 5 at a time. */
export function toNix32(digest: Buffer): string {
  const len = Math.ceil((digest.length * 8) / 5);
  let s = '';
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    const c = ((digest[i] as number) >> j) | (i + 1 < digest.length ? (digest[i + 1] as number) << (8 - j) : 0);
    s += NIX32[c & 0x1f];
  }
  return s;
}

export function fromNix32(s: string, size: number): Buffer | undefined {
  if (s.length !== Math.ceil((size * 8) / 5)) return undefined;
  const out = Buffer.alloc(size);
  for (let n = 0; n < s.length; n++) {
    const digit = NIX32.indexOf(s[s.length - n - 1] as string);
    if (digit < 0) return undefined;
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    out[i] = (out[i] as number) | ((digit << j) & 0xff);
    const carry = digit >> (8 - j);
    if (i + 1 < size) out[i + 1] = (out[i + 1] as number) | carry;
    else if (carry !== 0) return undefined;
  }
  return out;
}

/** A sha256 NAR hash as narinfos and path-info print it (`sha256:<nix32|hex|base64>` or SRI `sha256-<base64>`). */
export function parseSha256(text: string): Buffer | undefined {
  const m = /^sha256[:-](.+)$/.exec(text.trim());
  if (!m) return undefined;
  const v = m[1] as string;
  if (text.trim()[6] === '-' || v.length === 44) {
    const b = Buffer.from(v, 'base64');
    return b.length === 32 ? b : undefined;
  }
  if (/^[0-9a-f]{64}$/.test(v)) return Buffer.from(v, 'hex');
  return fromNix32(v, 32);
}
