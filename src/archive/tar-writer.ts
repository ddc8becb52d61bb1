/**
 * A streaming, deterministic tar writer. Its bytes are those of Go's archive/tar Writer when the header's Format is
 * left unset, because nix2container (nix/tar.go) writes its layers with that writer and states their sha256 in
 * image.json: to push such a layer we have to reproduce the exact bytes, not just an equivalent archive.
 *
 * What that means (Go's writer.go / format.go / strconv.go):
 * - USTAR when every field fits: ASCII names, name <= 100 bytes or splittable into prefix (<= 155) + name (<= 100),
 *   link name <= 100, user/group names <= 32, numbers in octal fields.
 * - Otherwise PAX: an 'x' header named `<dir>/PaxHeaders.0/<base>` carrying only the records that did not fit, sorted
 *   by key, then a ustar-magic header whose strings are the ASCII characters of the values, truncated.
 * - Numbers are zero-padded octal with a NUL; the checksum is 6 digits, NUL, space; devmajor/devminor are written as
 *   zeros in entry headers and left empty in the 'x' header. Access and change times are never written.
 * - The archive ends with two zero blocks and no padding to a 10 KiB record (GNU tar pads; Go does not).
 */

export type TarWriteType = 'file' | 'directory' | 'symlink' | 'hardlink';

export interface TarWriteHeader {
  name: string;
  type: TarWriteType;
  /** Permission bits plus setuid/setgid/sticky; no file type bits (Go's FileInfoHeader writes none). */
  mode: number;
  /** Body length for files; ignored (0) for the other types. */
  size?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  /** Integer seconds since the epoch; default 0. */
  mtime?: number;
  linkname?: string;
  /** Extra PAX records such as `SCHILY.xattr.*`; like Go, any makes the entry PAX. Basic keys are ignored. */
  pax?: Record<string, string>;
}

export interface TarWriteEntry {
  header: TarWriteHeader;
  /** The body of a file: exactly `header.size` bytes. */
  body?: AsyncIterable<Buffer> | Iterable<Buffer>;
}

const BLOCK = 512;
const NAME = 100;
const PREFIX = 155;
/** Go refuses a PAX record block larger than this (maxSpecialFileSize). */
const MAX_PAX = 1 << 20;
export const TAR_END = Buffer.alloc(2 * BLOCK);
const TYPEFLAG: Record<TarWriteType, string> = { file: '0', hardlink: '1', symlink: '2', directory: '5' };
const BASIC_KEYS = new Set(['path', 'linkpath', 'size', 'uid', 'gid', 'uname', 'gname', 'mtime', 'atime', 'ctime']);

export const tarPadding = (size: number): Buffer => Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);

/** Go's isASCII (NUL counts as ASCII) and toASCII (drops NUL and everything >= 0x80). */
function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}
const toAscii = (s: string): string => [...s].filter((c) => (c.codePointAt(0) as number) < 0x80 && c !== '\0').join('');
const fitsOctal = (len: number, x: number): boolean => x >= 0 && (len >= 22 || x < 2 ** ((len - 1) * 3));

/** Go's splitUSTARPath: the split point is the last '/' that leaves both halves within their fields. */
function splitUstar(name: string): [string, string] | undefined {
  if (name.length <= NAME || !isAscii(name)) return undefined;
  let length = name.length;
  if (length > PREFIX + 1) length = PREFIX + 1;
  else if (name[length - 1] === '/') length--;
  const i = name.lastIndexOf('/', length - 1);
  const nlen = name.length - i - 1;
  if (i <= 0 || nlen > NAME || nlen === 0 || i > PREFIX) return undefined;
  return [name.slice(0, i), name.slice(i + 1)];
}

/** Go's formatter.formatString, including its fix for a slash left last in a truncated field. */
function putString(b: Buffer, off: number, len: number, s: string): void {
  const v = Buffer.from(s, 'utf8');
  v.copy(b, off, 0, Math.min(len, v.length));
  if (v.length < len) b[off + v.length] = 0;
  if (v.length > len && b[off + len - 1] === 0x2f) {
    const n = v
      .subarray(0, len - 1)
      .toString('latin1')
      .replace(/\/+$/, '').length;
    b[off + n] = 0;
  }
}

/** Go's formatter.formatOctal: zero-padded, NUL-terminated; a value that does not fit becomes 0. */
function putOctal(b: Buffer, off: number, len: number, x: number): void {
  const s = (fitsOctal(len, x) ? x : 0).toString(8);
  putString(b, off, len, s.padStart(len - 1, '0'));
}

function finishBlock(b: Buffer): Buffer {
  b.write('ustar\x0000', 257, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  putOctal(b, 148, 7, sum);
  b[155] = 0x20;
  return b;
}

/** Go's formatPAXRecord: `<len> key=value\n`, the length counting its own digits. */
export function paxRecord(key: string, value: string): string {
  let size = Buffer.byteLength(key) + Buffer.byteLength(value) + 3;
  size += String(size).length;
  let rec = `${size} ${key}=${value}\n`;
  if (Buffer.byteLength(rec) !== size) rec = `${Buffer.byteLength(rec)} ${key}=${value}\n`;
  return rec;
}

interface Fields {
  name: string;
  prefix: string;
  linkname: string;
  uname: string;
  gname: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
}

function block(f: Fields, devNumbers: boolean): Buffer {
  const b = Buffer.alloc(BLOCK);
  putString(b, 0, 100, f.name);
  putOctal(b, 100, 8, f.mode);
  putOctal(b, 108, 8, f.uid);
  putOctal(b, 116, 8, f.gid);
  putOctal(b, 124, 12, f.size);
  putOctal(b, 136, 12, f.mtime);
  b.write(f.typeflag, 156, 'latin1');
  putString(b, 157, 100, f.linkname);
  putString(b, 265, 32, f.uname);
  putString(b, 297, 32, f.gname);
  if (devNumbers) {
    putOctal(b, 329, 8, 0);
    putOctal(b, 337, 8, 0);
  }
  if (f.prefix) putString(b, 345, PREFIX, f.prefix);
  return finishBlock(b);
}

/** Go's path.Clean: no empty, `.` or resolvable `..` components, no trailing slash; `.` when nothing is left. */
export function cleanPath(p: string): string {
  const rooted = p.startsWith('/');
  const out: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c !== '..') out.push(c);
    else if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
    else if (!rooted) out.push(c);
  }
  return (rooted ? '/' : '') + out.join('/') || '.';
}

/** Go's path.Join: empty elements are ignored, the result is cleaned, and nothing at all gives ''. */
export function joinPath(...parts: string[]): string {
  const kept = parts.filter((p) => p !== '');
  return kept.length === 0 ? '' : cleanPath(kept.join('/'));
}

/** `dir/PaxHeaders.0/base` as Go's path.Join(path.Split(name)) gives it, ASCII and at most 100 bytes. */
function paxHeaderName(name: string): string {
  const slash = name.lastIndexOf('/');
  const joined = joinPath(name.slice(0, slash + 1), 'PaxHeaders.0', name.slice(slash + 1));
  return toAscii(joined).slice(0, NAME).replace(/\/+$/, '');
}

/** The header block(s) of one entry: an optional PAX extended header (with its data) and the entry header. */
export function tarHeader(h: TarWriteHeader): Buffer {
  const size = h.type === 'file' ? (h.size ?? 0) : 0;
  const f: Fields = {
    name: h.name,
    prefix: '',
    linkname: h.linkname ?? '',
    uname: h.uname ?? '',
    gname: h.gname ?? '',
    mode: h.mode,
    uid: h.uid ?? 0,
    gid: h.gid ?? 0,
    size,
    mtime: h.mtime ?? 0,
    typeflag: TYPEFLAG[h.type],
  };
  for (const [k, v] of Object.entries({ name: f.name, linkname: f.linkname, uname: f.uname, gname: f.gname }))
    if (v.includes('\0')) throw new Error(`tar: NUL byte in the ${k} of '${h.name}'`);
  if (!fitsOctal(8, f.mode)) throw new Error(`tar: mode ${f.mode} of '${h.name}' does not fit`);

  const pax = new Map<string, string>();
  let ustar = true;
  const str = (key: string, v: string, max: number, splittable = false) => {
    if (isAscii(v) && Buffer.byteLength(v) <= max) return;
    pax.set(key, v);
    if (!splittable || !splitUstar(v)) ustar = false;
  };
  str('path', f.name, NAME, true);
  str('linkpath', f.linkname, NAME);
  str('uname', f.uname, 32);
  str('gname', f.gname, 32);
  const num = (key: string, v: number, len: number) => {
    // mtime alone may be negative (pre-1970): it then goes to PAX like any value octal cannot hold.
    if (!Number.isSafeInteger(v) || (v < 0 && key !== 'mtime')) throw new Error(`tar: bad ${key} ${v} of '${h.name}'`);
    if (fitsOctal(len, v)) return;
    pax.set(key, String(v));
    ustar = false;
  };
  num('uid', f.uid, 8);
  num('gid', f.gid, 8);
  num('size', f.size, 12);
  num('mtime', f.mtime, 12);
  const extra = Object.entries(h.pax ?? {});
  if (extra.length > 0) ustar = false;
  for (const [k, v] of extra) if (!pax.has(k) && !BASIC_KEYS.has(k) && !k.startsWith('GNU.sparse')) pax.set(k, v);

  if (ustar) {
    const split = splitUstar(f.name);
    if (split) [f.prefix, f.name] = split;
    return block(f, true);
  }
  const keys = [...pax.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const data = Buffer.from(keys.map((k) => paxRecord(k, pax.get(k) as string)).join(''), 'utf8');
  if (data.length > MAX_PAX) throw new Error(`tar: PAX records of '${h.name}' exceed ${MAX_PAX} bytes`);
  const ext = Buffer.alloc(BLOCK);
  putString(ext, 0, 100, paxHeaderName(h.name));
  putOctal(ext, 100, 8, 0);
  putOctal(ext, 108, 8, 0);
  putOctal(ext, 116, 8, 0);
  putOctal(ext, 124, 12, data.length);
  putOctal(ext, 136, 12, 0);
  ext.write('x', 156, 'latin1');
  finishBlock(ext);
  const main = block(
    {
      ...f,
      name: toAscii(f.name),
      linkname: toAscii(f.linkname),
      uname: toAscii(f.uname),
      gname: toAscii(f.gname),
    },
    true,
  );
  return Buffer.concat([ext, data, tarPadding(data.length), main]);
}

/**
 * Streams an archive: header, body (checked against the declared size: a file that changed while we read it must not
 * produce a silently different layer), padding, and the end marker. Bodies are passed through, never gathered.
 */
export async function* writeTar(
  entries: AsyncIterable<TarWriteEntry> | Iterable<TarWriteEntry>,
): AsyncGenerator<Buffer> {
  for await (const { header, body } of entries) {
    yield tarHeader(header);
    if (header.type !== 'file') continue;
    const size = header.size ?? 0;
    let got = 0;
    if (body) {
      for await (const chunk of body) {
        got += chunk.length;
        if (got > size) break;
        yield chunk;
      }
    }
    if (got !== size)
      throw new Error(`tar: '${header.name}' has ${got > size ? 'more' : 'fewer'} bytes than its size ${size}`);
    const pad = tarPadding(size);
    if (pad.length > 0) yield pad;
  }
  yield TAR_END;
}
