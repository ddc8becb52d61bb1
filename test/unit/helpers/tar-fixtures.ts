/**
 * Fixtures for the tar and release-tarball tests: archives come from the real GNU tar where it can make them, and
 * from crafted headers for what it refuses to write (absolute names, '..', base-256 sizes, lone 'g' headers).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';

/** Runs GNU tar with an argument array and returns stdout (the archive when writing to `-f -`). */
export function gnuTar(args: string[]): Buffer {
  const r = spawnSync('tar', args, { maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`tar ${args.join(' ')} failed: ${r.stderr?.toString()}`);
  return r.stdout;
}

/** A deterministic PRNG (mulberry32) so failures with random chunking can be replayed by seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Feeds `buf` in random chunk sizes between 1 and `max` bytes, awaiting between chunks like a real stream. */
export async function* chunked(buf: Buffer, seed: number, max = 1000): AsyncGenerator<Buffer> {
  const rand = rng(seed);
  for (let i = 0; i < buf.length;) {
    const n = 1 + Math.floor(rand() * max);
    yield buf.subarray(i, i + n);
    i += n;
    await Promise.resolve();
  }
}

export async function readAll(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

export interface HeaderSpec {
  name: string;
  type?: string;
  size?: number;
  mode?: number;
  linkname?: string;
  /** Raw bytes for the size field (e.g. base-256), overriding `size` in the header only. */
  sizeField?: Buffer;
}

function octal(n: number, len: number): string {
  return n.toString(8).padStart(len - 1, '0') + '\0';
}

/** A POSIX ustar header with a correct checksum. */
export function header(h: HeaderSpec): Buffer {
  const b = Buffer.alloc(512);
  b.write(h.name, 0, 100, 'utf8');
  b.write(octal(h.mode ?? 0o644, 8), 100, 'latin1');
  b.write(octal(0, 8), 108, 'latin1');
  b.write(octal(0, 8), 116, 'latin1');
  if (h.sizeField) h.sizeField.copy(b, 124);
  else b.write(octal(h.size ?? 0, 12), 124, 'latin1');
  b.write(octal(0, 12), 136, 'latin1');
  b.write(h.type ?? '0', 156, 'latin1');
  b.write(h.linkname ?? '', 157, 100, 'utf8');
  b.write('ustar\x0000', 257, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(octal(sum, 7) + ' ', 148, 'latin1');
  return b;
}

export interface CraftEntry extends Omit<HeaderSpec, 'size'> {
  body?: Buffer | string;
}

/** A whole archive from crafted headers, bodies padded to 512 bytes, with the two-zero-block end marker. */
export function craftTar(entries: CraftEntry[], endMarker = true): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const body = typeof e.body === 'string' ? Buffer.from(e.body) : (e.body ?? Buffer.alloc(0));
    out.push(header({ ...e, size: body.length }), body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  if (endMarker) out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

/** A pax record `<len> key=value\n`, whose length counts itself. */
export function paxRecord(key: string, value: string): string {
  const rest = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(rest) + 1;
  while (String(len).length + Buffer.byteLength(rest) !== len) len++;
  return `${len}${rest}`;
}

const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

/** A valid-looking store path basename: 32 nix-base32 characters derived from `name`, a dash, the name. */
export function storeName(name: string): string {
  const digest = createHash('sha256').update(name).digest();
  let hash = '';
  for (let i = 0; i < 32; i++) hash += NIX32[(digest[i] ?? 0) % 32];
  return `${hash}-${name}`;
}

export interface TreeNode {
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  /** sha256 of a file's content, or a symlink's target. */
  content?: string;
  ino: number;
}

/** Every path below `root` (relative, sorted) with what the tests compare. */
export function walkTree(root: string): Map<string, TreeNode> {
  const out = new Map<string, TreeNode>();
  const visit = (rel: string) => {
    for (const name of fs.readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(join(root, r));
      const mode = st.mode & 0o7777;
      if (st.isSymbolicLink())
        out.set(r, { type: 'symlink', mode: 0, content: fs.readlinkSync(join(root, r)), ino: st.ino });
      else if (st.isDirectory()) {
        out.set(r, { type: 'directory', mode, ino: st.ino });
        visit(r);
      } else if (!st.isFile()) {
        out.set(r, { type: 'file', mode, content: `special ${st.mode.toString(8)}`, ino: st.ino }); // never read a fifo
      } else {
        const content = createHash('sha256')
          .update(fs.readFileSync(join(root, r)))
          .digest('hex');
        out.set(r, { type: 'file', mode, content, ino: st.ino });
      }
    }
  };
  visit('');
  return out;
}

/** Writes files (string content), executables, directories and symlinks from a compact spec. */
export function writeTree(
  root: string,
  spec: Record<string, string | { link: string } | { mode: number; body?: string | Buffer }>,
): void {
  for (const [rel, v] of Object.entries(spec)) {
    const abs = join(root, rel);
    fs.mkdirSync(join(abs, '..'), { recursive: true });
    if (typeof v === 'string') fs.writeFileSync(abs, v);
    else if ('link' in v) fs.symlinkSync(v.link, abs);
    else if (v.body === undefined) fs.mkdirSync(abs, { recursive: true, mode: v.mode });
    else fs.writeFileSync(abs, v.body, { mode: v.mode });
    if (typeof v !== 'string' && 'mode' in v) fs.chmodSync(abs, v.mode);
  }
}
