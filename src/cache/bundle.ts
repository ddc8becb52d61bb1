/**
 * The content of a GitHub cache entry: ONE file, `flake-ci-nix-store.bundle`, that @actions/cache tars and compresses
 * (zstd) like any other path. It holds a header (the entry's manifest and the narinfo of every path, as Nix wrote and
 * signed it) followed by the uncompressed NARs, in dependency order:
 *
 *   "flake-ci-nar-bundle-1\n"  u64le header length  header (JSON)  NAR  NAR  ...
 *
 * Uncompressed because the archive is compressed as a whole anyway: compressing each NAR first would only spend CPU
 * twice, on save and on restore. Header first, so a restore that reads the entry as a stream knows every path, its
 * hash and its signatures before the first NAR byte arrives, and can write each NAR straight into the store
 * (restore-stream.ts). NARs delimit themselves, so no offsets are needed.
 *
 * Also here: the few lines of tar reading that find the bundle in @actions/cache's archive (GNU tar `--posix`: pax
 * extended headers may precede the file's own header), as a parser for the same Pump.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { readNar, type NarSink, type Parser } from './nar.js';
import { isPlaceholder, isSafeNarUrl, parseNarinfo, readNarinfos, type Narinfo } from './narinfo.js';
import { copyOrder } from './path-args.js';

export const BUNDLE_FILE = 'flake-ci-nix-store.bundle';
export const BUNDLE_MAGIC = Buffer.from('flake-ci-nar-bundle-1\n');
export const FORMAT = 2;
/** Headers larger than this are refused: about 200,000 narinfos, far beyond any job's output. */
const MAX_HEADER = 256 * 1024 * 1024;

export interface BundleHeader {
  format: number;
  key: string;
  /** Exact keys of the entries this one builds on, newest first. */
  parents: string[];
  /** Narinfo texts, in the order of the NARs that follow. */
  narinfos: string[];
}

export class BundleError extends Error {
  override readonly name = 'BundleError';
}

const keyOk = (k: unknown) => typeof k === 'string' && k !== '' && k.length <= 512 && !/[,\s]/.test(k);

export function parseHeader(text: string): BundleHeader {
  let h: Partial<BundleHeader>;
  try {
    h = JSON.parse(text) as Partial<BundleHeader>;
  } catch {
    throw new BundleError('the bundle header is not JSON');
  }
  if (h.format !== FORMAT) throw new BundleError(`the bundle has format ${String(h.format)}, not ${FORMAT}`);
  if (!keyOk(h.key) || !Array.isArray(h.parents) || !h.parents.every(keyOk))
    throw new BundleError('the bundle header has no valid key and parents');
  if (!Array.isArray(h.narinfos) || !h.narinfos.every((n) => typeof n === 'string'))
    throw new BundleError('the bundle header has no narinfo list');
  return { format: FORMAT, key: h.key as string, parents: h.parents, narinfos: h.narinfos };
}

/**
 * Writes the bundle of the binary cache `dir` (written by `nix copy ...?compression=none`) to `file`. Returns the
 * number of paths. Placeholder narinfos and narinfos whose NAR is missing or compressed are left out.
 */
export async function writeBundle(
  file: string,
  dir: string,
  manifest: { key: string; parents: string[] },
): Promise<number> {
  const found = (await readNarinfos(dir)).filter(
    (n) => !isPlaceholder(n.info) && n.info.compression === 'none' && isSafeNarUrl(n.info.url),
  );
  const byPath = new Map(found.map((n) => [n.info.storePath, n]));
  const ordered = copyOrder(byPath.keys(), (p) => byPath.get(p)?.info.references ?? []).map(
    (p) => byPath.get(p) as (typeof found)[number],
  );
  const texts = await Promise.all(ordered.map((n) => readFile(n.file, 'utf8')));
  const header: BundleHeader = { format: FORMAT, ...manifest, narinfos: texts };
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const out = openSync(file, 'wx', 0o600);
  try {
    writeSync(out, BUNDLE_MAGIC);
    writeSync(out, len);
    writeSync(out, json);
    const buf = Buffer.allocUnsafe(1 << 20);
    for (const n of ordered) {
      const input = openSync(path.join(dir, n.info.url), 'r');
      try {
        let copied = 0;
        for (let got; (got = readSync(input, buf, 0, buf.length, null)) > 0; copied += got) {
          writeSync(out, buf, 0, got);
        }
        if (copied !== n.info.narSize)
          throw new Error(`${n.info.url} has ${copied} bytes, its narinfo says ${n.info.narSize}`);
      } finally {
        closeSync(input);
      }
    }
  } finally {
    closeSync(out);
  }
  return ordered.length;
}

/** What the reader reports to: the header once, then for each NAR where to write it and what it hashed to. */
export interface BundleHandler {
  header(header: BundleHeader, infos: Narinfo[]): void;
  /** Where NAR `i` goes: unpacked into `sink`, and/or its raw bytes to `raw`; neither: read and hash only. */
  begin(i: number): { sink?: NarSink; raw?: (piece: Buffer) => void };
  end(i: number, sha256: Buffer, size: number): void;
}

/** Reads a whole bundle; throws BundleError / NarError on anything malformed (the stream is then unusable). */
export function* readBundle(handler: BundleHandler): Parser {
  const magic = yield BUNDLE_MAGIC.length;
  if (!magic.equals(BUNDLE_MAGIC)) throw new BundleError('not a flake-ci bundle (another tool wrote this entry?)');
  const len = Number((yield 8).readBigUInt64LE(0));
  if (len <= 0 || len > MAX_HEADER) throw new BundleError(`the bundle header length ${len} is out of range`);
  const header = parseHeader((yield len).toString('utf8'));
  const infos = header.narinfos.map((t, i) => {
    try {
      return parseNarinfo(t, `narinfo ${i} of the bundle`);
    } catch (e) {
      throw new BundleError((e as Error).message);
    }
  });
  handler.header(header, infos);
  for (let i = 0; i < infos.length; i++) {
    const hash = createHash('sha256');
    const { sink, raw } = handler.begin(i);
    const tee = raw ? { update: (b: Buffer) => (hash.update(b), raw(b)) } : hash;
    const size = yield* readNar(sink, tee);
    handler.end(i, hash.digest(), size);
  }
}

function octal(field: Buffer): number {
  // GNU base-256 for values that do not fit the octal field.
  if (((field[0] as number) & 0x80) !== 0) {
    let v = 0;
    for (let i = 1; i < field.length; i++) v = v * 256 + (field[i] as number);
    return v;
  }
  const s = field.toString('latin1').replace(/\0.*$/s, '').trim();
  return s === '' ? 0 : parseInt(s, 8);
}

function cstring(field: Buffer): string {
  const end = field.indexOf(0);
  return field.toString('utf8', 0, end === -1 ? field.length : end);
}

/** pax records: `<len> <key>=<value>\n`. */
function paxRecords(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    const len = parseInt(data.toString('latin1', at, space), 10);
    if (space < 0 || !(len > 0)) break;
    const rec = data.toString('utf8', space + 1, at + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    at += len;
  }
  return out;
}

/**
 * Reads a tar stream and hands the contents of each regular file to what `onFile` returns for it (undefined:
 * skipped). Stops at the end-of-archive block; what follows (padding) is left to the pump.
 */
export function* readTar(
  onFile: (name: string, size: number) => ((piece: Buffer) => void) | undefined,
  onFileEnd: (name: string) => void,
): Parser {
  let pax = new Map<string, string>();
  let longName: string | undefined;
  for (;;) {
    const block = yield 512;
    if (block.every((b) => b === 0)) return;
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    if (sum !== octal(block.subarray(148, 156))) throw new BundleError('the cache archive is not a valid tar');
    const type = String.fromCharCode(block[156] as number);
    const size = Number(pax.get('size') ?? octal(block.subarray(124, 136)));
    const prefix = block.toString('latin1', 257, 263).startsWith('ustar') ? cstring(block.subarray(345, 500)) : '';
    const own = cstring(block.subarray(0, 100));
    const name = pax.get('path') ?? longName ?? (prefix ? `${prefix}/${own}` : own);
    const padded = Math.ceil(size / 512) * 512;
    if (type === 'x' || type === 'L') {
      if (size > 1 << 20) throw new BundleError('a tar extended header is too large');
      const data = (yield padded).subarray(0, size);
      if (type === 'x') pax = paxRecords(data);
      else longName = cstring(data);
      continue;
    }
    const sink = type === '0' || type === '\0' ? onFile(name.replace(/^(\.\/)+/, ''), size) : undefined;
    let left = size;
    while (left > 0) {
      const piece = yield { stream: left };
      sink?.(piece);
      left -= piece.length;
    }
    if (sink) onFileEnd(name);
    if (padded > size) yield padded - size;
    pax = new Map();
    longName = undefined;
  }
}
