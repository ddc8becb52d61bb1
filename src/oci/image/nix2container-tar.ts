/**
 * Rebuilds a nix2container layer tar from the store paths image.json lists, byte for byte, because image.json states
 * the layer's sha256 and nix2container itself builds the tar again at push time (nix/tar.go TarPaths). Conventions,
 * from github.com/nlewo/nix2container nix/tar.go, nix/graph.go, nix/utils.go and types/types.go:
 * - Every listed path is walked without following symlinks (filepath.Walk, Lstat); each file's destination is its
 *   path after `options.rewrite` (Go regexp ReplaceAll); a destination of "" is left out (its children are not);
 *   `options.ignoreDestination` drops a destination, and a directory's whole subtree with it.
 * - Destinations form one tree; missing parents (`/`, `/nix`, `/nix/store`) become directories with mode 0755. The
 *   tree is written depth-first, each directory's children sorted by name (bytes), so names are absolute
 *   (`/nix/store/<hash>-x/bin/y`) and the first entry of a store-path layer is `/`.
 * - Headers: uid/gid 0, uname/gname "root", mtime 1970-01-01T00:00:01Z; mode = permission bits plus
 *   setuid/setgid/sticky from the file system, 0777 for symlinks; `options.perms` entries whose regex matches the
 *   SOURCE path set uid, gid (0 when absent), uname/gname (when not empty), mode (octal) and orMode (octal, OR-ed).
 * - Hard links are not detected: every regular file is written with its content. `~nix~case~hack~N` suffixes are
 *   removed. Two sources for one destination must agree on type, mode and size, or the build fails.
 * Not supported (refused by name): `tar` sources and capabilities options of some nix2container versions.
 */
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { InputError } from '../../errors.js';
import { cleanPath, joinPath, writeTar, type TarWriteEntry, type TarWriteHeader } from '../../archive/tar-writer.js';
import { goRegExp, goReplaceAll } from './go-regexp.js';

export interface Nix2containerPerm {
  regex: string;
  mode?: string;
  orMode?: string;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
}

export interface Nix2containerPathOptions {
  rewrite?: { regex: string; repl: string };
  perms?: Nix2containerPerm[];
  ignoreDestination?: string;
}

export interface Nix2containerPath {
  path: string;
  options?: Nix2containerPathOptions | null;
  tar?: string;
}

export interface LayerTarOptions {
  /** Where the paths are on disk: `<root>/<path>` (a chroot store or a copy of one); default `/`. */
  root?: string;
  /** Base for relative paths (nix2container's own tests use them); default the process's directory. */
  cwd?: string;
}

/** Go's time.Date(1970, 1, 1, 0, 0, 1, 0, UTC): nix2container's fixed mtime. */
const MTIME = 1;
const CASE_HACK = '~nix~case~hack~';

interface Compiled {
  rewrite?: { re: RegExp; repl: string };
  perms: { re: RegExp; perm: Nix2containerPerm }[];
  ignore?: RegExp;
  key: string;
}

interface Source {
  srcPath: string;
  fsPath: string;
  kind: 'file' | 'directory' | 'symlink';
  mode: number;
  size: number;
  opts: Compiled;
}

interface Node {
  children: Map<string, Node>;
  src?: Source;
}

function compile(o: Nix2containerPathOptions | null | undefined, what: string): Compiled {
  for (const k of Object.keys(o ?? {}))
    if (!['rewrite', 'perms', 'ignoreDestination'].includes(k))
      throw new InputError(`${what}: the nix2container option '${k}' is not supported by oci-push`);
  const c: Compiled = { perms: [], key: JSON.stringify(o?.perms ?? null) };
  if (o?.rewrite?.regex) c.rewrite = { re: goRegExp(o.rewrite.regex, `${what} rewrite`, true), repl: o.rewrite.repl };
  for (const perm of o?.perms ?? []) c.perms.push({ re: goRegExp(perm.regex, `${what} perms`), perm });
  // An empty ignoreDestination means no filter (nix2container: compiling "" would match everything).
  if (o?.ignoreDestination) c.ignore = goRegExp(o.ignoreDestination, `${what} ignoreDestination`);
  return c;
}

/** nix2container unhacks every name: `name~nix~case~hack~N` (N >= 1) becomes `name`. */
function unhack(name: string): string {
  const parts = name.split(CASE_HACK);
  if (parts.length !== 2 || !/^[+-]?[0-9]+$/.test(parts[1] as string) || Number(parts[1]) < 1) return name;
  return parts[0] as string;
}

/** Go's splitPath: the cleaned path's components, `/` giving [""] and absolute paths a leading "". */
function splitPath(p: string): string[] {
  const parts = cleanPath(p).split('/');
  return parts.length === 2 && parts[0] === '' && parts[1] === '' ? [''] : parts;
}

function addToGraph(root: Node, dst: string, src: Source): void {
  let node = root;
  for (const part of splitPath(dst)) {
    let next = node.children.get(part);
    if (!next) node.children.set(part, (next = { children: new Map() }));
    node = next;
  }
  const old = node.src;
  if (old && (old.kind !== src.kind || old.mode !== src.mode || (src.kind === 'file' && old.size !== src.size)))
    throw new InputError(
      `nix2container layer: '${dst}' comes from both '${old.srcPath}' and '${src.srcPath}', which differ in type, ` +
        'mode or size; nix2container refuses this image too, so fix the image definition',
    );
  if (old && old.opts.key !== src.opts.key)
    throw new InputError(`nix2container layer: '${dst}' is added with different perms by '${src.srcPath}'`);
  node.src = src;
}

async function walk(root: Node, p: Nix2containerPath, opts: LayerTarOptions, what: string): Promise<void> {
  if (p.tar) throw new InputError(`${what}: tar sources ('tar': ${p.tar}) are not supported by oci-push`);
  const compiled = compile(p.options, what);
  const fsPathOf = (src: string) =>
    opts.root ? join(opts.root, src) : isAbsolute(src) ? src : resolve(opts.cwd ?? process.cwd(), src);
  const visit = async (srcPath: string): Promise<void> => {
    const fsPath = fsPathOf(srcPath);
    const st = await lstat(fsPath).catch((e: NodeJS.ErrnoException) => {
      throw new InputError(`${what}: cannot read '${srcPath}' (${e.code ?? e.message}); is it in the Nix store?`);
    });
    const kind = st.isFile() ? 'file' : st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : undefined;
    if (!kind) throw new InputError(`${what}: '${srcPath}' is not a file, directory or symlink`);
    const dst = compiled.rewrite ? goReplaceAll(compiled.rewrite.re, srcPath, compiled.rewrite.repl) : srcPath;
    if (dst !== '' && compiled.ignore?.test(dst)) return; // a directory takes its subtree with it
    if (dst !== '') {
      const mode = (st.mode & 0o7777) | 0;
      addToGraph(root, dst, { srcPath, fsPath, kind, mode, size: kind === 'file' ? st.size : 0, opts: compiled });
    }
    if (kind !== 'directory') return;
    const names = (await readdir(fsPath)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) await visit(joinPath(srcPath, name));
  };
  await visit(p.path);
}

/** Go's Sscanf("%o"): an optional sign and octal digits, the rest ignored. */
function scanOctal(s: string, what: string): number {
  const m = /^\s*([+-]?)([0-7]+)/.exec(s);
  if (!m) throw new InputError(`${what}: perms mode '${s}' is not octal`);
  return (m[1] === '-' ? -1 : 1) * parseInt(m[2] as string, 8);
}

async function header(dst: string, src: Source): Promise<TarWriteHeader> {
  const h: TarWriteHeader = { name: dst, type: src.kind, mode: src.mode, uid: 0, gid: 0, mtime: MTIME };
  h.uname = h.gname = 'root';
  if (src.kind === 'file') h.size = src.size;
  if (src.kind === 'symlink') {
    h.linkname = await readlink(src.fsPath);
    h.mode = 0o777; // nix2container issue #23: Linux symlink permissions whatever the host reports
  }
  for (const { re, perm } of src.opts.perms) {
    if (!re.test(src.srcPath)) continue;
    h.uid = perm.uid ?? 0;
    h.gid = perm.gid ?? 0;
    if (perm.uname) h.uname = perm.uname;
    if (perm.gname) h.gname = perm.gname;
    if (perm.mode) h.mode = scanOctal(perm.mode, src.srcPath);
    if (perm.orMode) {
      if (!/^[0-7]{1,4}$/.test(perm.orMode)) throw new InputError(`${src.srcPath}: invalid orMode '${perm.orMode}'`);
      h.mode |= parseInt(perm.orMode, 8);
    }
  }
  return h;
}

/** Go's sanitizeGraph + walkGraph: unhacked names, depth-first, each directory's children sorted by bytes. */
async function* entries(root: Node): AsyncGenerator<TarWriteEntry> {
  const children = (base: string, node: Node): [string, Node][] => {
    const sane = new Map<string, Node>();
    for (const [name, child] of node.children) {
      const final = unhack(name);
      if (sane.has(final)) throw new InputError(`nix2container layer: the name '${name}' collides once unhacked`);
      sane.set(final, child);
    }
    const keys = [...sane.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    return keys.map((k) => [k === '' ? '/' : joinPath(base, k), sane.get(k) as Node]);
  };
  // An explicit stack keeps deep trees off the call stack; children go on reversed so they come off in order.
  const stack = children('', root).reverse();
  while (stack.length > 0) {
    const [dst, node] = stack.pop() as [string, Node];
    const src = node.src;
    if (!src)
      yield { header: { name: dst, type: 'directory', mode: 0o755, uname: 'root', gname: 'root', mtime: MTIME } };
    else yield { header: await header(dst, src), body: src.kind === 'file' ? createReadStream(src.fsPath) : undefined };
    stack.push(...children(dst, node).reverse());
  }
}

/**
 * The layer tar of nix2container for `paths`, streamed. Nothing is read before the first chunk is asked for; the
 * tree of names is then built in memory (as nix2container does) and file contents stream from disk.
 */
export function nix2containerLayerTar(
  paths: Nix2containerPath[],
  opts: LayerTarOptions = {},
  what = 'layer',
): AsyncIterable<Buffer> {
  return {
    async *[Symbol.asyncIterator]() {
      const root: Node = { children: new Map() };
      for (const p of paths) await walk(root, p, opts, `${what} (${p.path})`);
      yield* writeTar(entries(root));
    },
  };
}
