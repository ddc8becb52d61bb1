/**
 * docker-archive images (`docker save`, nixpkgs dockerTools) read in ONE pass over the tar stream: a layer's bytes
 * are handed to the pusher straight from the tar entry, so nothing is copied to disk or held in memory; only small
 * metadata files (manifest.json, the config, repositories) are buffered. Layouts:
 * - streamLayeredImage / buildLayeredImage: `<diff_id hex>/layer.tar` (no other files in that directory), then
 *   `<hex>.json` (config), then `manifest.json` last: the directory name is the layer's diff_id, known up front.
 * - buildImage and classic `docker save`: `<id>/VERSION`, `<id>/json`, `<id>/layer.tar` with an id that is NOT a
 *   diff_id; name-sorted archives put VERSION and json before layer.tar, which is how the two are told apart.
 * - skopeo: `<diff_id hex>.tar` at the top. Docker >= 25: `blobs/sha256/<hex>` (a tar, or gzip/zstd blob).
 * - Identical layers saved once, the others as symlinks or hard links to it: yielded with `sameAs`.
 */
import { posix } from 'node:path';
import { InputError } from '../../errors.js';
import { parseNumeric, readTar, type TarEntry, type TarSource } from '../../archive/tar.js';
import { MEDIA, type Digest, type ImageConfig, type ImageSource, type SourceLayer } from '../types.js';
import { rangeChunks } from '../raw-range.js';
import type { ArchiveFile } from './file-source.js';

export interface DockerArchiveOptions {
  format?: 'docker-archive' | 'docker-archive-stream';
  /** What the user gave (a path), for messages. */
  label: string;
  /** Awaited once the tar has ended (a producer's exit status is checked here). */
  onEnd?: () => Promise<void>;
  /** Turns a read error into the error to report (e.g. the producer's own failure rather than "truncated tar"). */
  onError?: (e: unknown) => Promise<unknown>;
  /** Releases the source (kills a producer) when the caller stops early. */
  close?: () => Promise<void>;
  /** The archive when it is a plain file being read: plain layer entries are then read by position (file-source.ts). */
  file?: ArchiveFile;
}

/** Metadata files are small; anything larger is refused rather than buffered. */
const MAX_SMALL = 16 * 1024 * 1024;
const HEX64 = /^[0-9a-f]{64}$/;

const norm = (p: string): string => posix.normalize(p.replace(/^\/+/, '')).replace(/^(\.\/)+/, '');

export function looksLikeTarHeader(b: Buffer): boolean {
  if (b.length < 512) return false;
  if (b.subarray(0, 512).every((x) => x === 0)) return true; // an empty layer is just the end marker
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : (b[i] as number);
  try {
    return parseNumeric(b, 148, 8) === sum;
  } catch {
    return false;
  }
}

function compressedType(b: Buffer): string | undefined {
  if (b[0] === 0x1f && b[1] === 0x8b) return MEDIA.ociLayerGzip;
  if (b.readUInt32BE(0) === 0x28b52ffd) return MEDIA.ociLayerZstd;
  return undefined;
}

/** Reads up to `n` bytes of a body, returning them and an iterable for the rest (the peeked bytes first). */
async function peek(body: AsyncIterable<Buffer>, n: number): Promise<{ head: Buffer; all: AsyncIterable<Buffer> }> {
  const it = body[Symbol.asyncIterator]();
  const parts: Buffer[] = [];
  let got = 0;
  let ended = false;
  while (got < n) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    parts.push(r.value);
    got += r.value.length;
  }
  const head = Buffer.concat(parts);
  async function* all(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    if (ended) return;
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
  }
  return { head, all: all() };
}

async function gather(body: AsyncIterable<Buffer>, path: string, label: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const c of body) {
    size += c.length;
    if (size > MAX_SMALL) throw new InputError(`${label}: '${path}' is larger than ${MAX_SMALL} bytes`);
    parts.push(c);
  }
  return Buffer.concat(parts);
}

interface ManifestEntry {
  Config: string;
  Layers: string[];
  RepoTags?: string[] | null;
}

function parseJson(buf: Buffer, what: string): unknown {
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw new InputError(`${what} is not valid JSON (${(e as Error).message}); the image archive is corrupt`);
  }
}

export function parseImageConfig(raw: Buffer, what: string): ImageConfig {
  const c = parseJson(raw, what) as Record<string, unknown> | null;
  const rootfs = (c?.rootfs ?? {}) as { diff_ids?: unknown };
  const ids = rootfs.diff_ids;
  if (!c || typeof c.architecture !== 'string' || typeof c.os !== 'string' || !Array.isArray(ids))
    throw new InputError(`${what} is not an image config (architecture, os and rootfs.diff_ids are required)`);
  const config: ImageConfig = { raw, architecture: c.architecture, os: c.os, diffIds: ids.map(String) };
  if (typeof c.variant === 'string' && c.variant) config.variant = c.variant;
  return config;
}

/**
 * Reads a docker-archive tar stream (already decompressed) as an ImageSource. A layer's `raw` IS the tar entry: read
 * it (or skip() it) before asking layers() for the next one, and call finish() once layers() is exhausted.
 */
export function readDockerArchive(source: TarSource, opts: DockerArchiveOptions): ImageSource {
  const { label } = opts;
  const byPath = new Map<string, number>(); // layer entry path -> index of the layer holding its bytes
  const pendingLinks = new Map<string, string>(); // link path -> target path not seen yet (docker 25 symlinks)
  const small = new Map<string, Buffer>();
  const legacyDirs = new Set<string>();
  const named: { index: number; diffId: Digest }[] = [];
  let count = 0;
  let ended = false;

  async function* run(): AsyncGenerator<SourceLayer> {
    try {
      for await (const e of readTar(source)) {
        const path = norm(e.path);
        if (e.type === 'directory' || path === '' || path === '.') continue;
        const dir = posix.dirname(path);
        const base = posix.basename(path);
        const isLayerName =
          (base === 'layer.tar' && dir !== '.' && !dir.includes('/')) ||
          (dir === '.' && /^[0-9a-f]{64}\.tar$/.test(base)) ||
          (dir === 'blobs/sha256' && HEX64.test(base));
        if (dir !== '.' && !dir.includes('/') && (base === 'json' || base === 'VERSION')) legacyDirs.add(dir);
        if ((e.type === 'symlink' || e.type === 'hardlink') && isLayerName) {
          const target = norm(e.type === 'symlink' ? posix.join(dir, e.linkname) : e.linkname);
          const at = byPath.get(target);
          if (at === undefined) {
            pendingLinks.set(path, target);
            continue;
          }
          byPath.set(path, at);
          yield { index: count++, name: path, sameAs: at, skip: async () => {} };
          continue;
        }
        if (e.type !== 'file') continue;
        if (!isLayerName) {
          if (base.endsWith('.json') || base === 'repositories' || base === 'oci-layout')
            small.set(path, await gather(e.body, path, label));
          continue;
        }
        const layer = await layerOf(e, path, dir, base);
        if (!layer) continue;
        byPath.set(path, layer.index);
        yield layer;
      }
    } catch (err) {
      throw opts.onError ? await opts.onError(err) : err;
    }
    await opts.onEnd?.();
    ended = true;
  }

  /** A layer body fails inside the pusher's read, not in our loop: its errors get the same translation. */
  async function* guarded(body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    try {
      yield* body;
    } catch (err) {
      throw opts.onError ? await opts.onError(err) : err;
    }
  }

  async function layerOf(e: TarEntry, path: string, dir: string, base: string): Promise<SourceLayer | undefined> {
    let body: AsyncIterable<Buffer> = e.body;
    let started = false;
    let diffId: Digest | undefined;
    let blob: SourceLayer['blob'];
    if (dir === 'blobs/sha256') {
      // Docker >= 25 stores configs and manifests among the layers: look at the first bytes to tell them apart.
      const { head, all } = await peek(e.body, 512);
      const mediaType = head.length >= 4 ? compressedType(head) : undefined;
      if (!mediaType && !looksLikeTarHeader(head)) {
        if (e.size <= MAX_SMALL) small.set(path, await gather(all, path, label));
        return undefined;
      }
      body = guarded(all);
      if (mediaType)
        blob = {
          mediaType,
          open: () => {
            started = true;
            return body;
          },
        };
      else diffId = `sha256:${base}`;
    } else if (dir === '.') diffId = `sha256:${base.slice(0, 64)}`;
    else if (HEX64.test(dir) && !legacyDirs.has(dir)) diffId = `sha256:${dir}`;
    if (body === e.body) body = guarded(e.body);
    // Read by position when it can be: the tar reader then skips the body without reading it (file-source.ts).
    const range = blob || dir === 'blobs/sha256' ? undefined : await opts.file?.lend(e);
    const index = count++;
    if (diffId) named.push({ index, diffId });
    const raw = blob
      ? undefined
      : range
        ? { [Symbol.asyncIterator]: () => rangeChunks(range) }
        : {
            [Symbol.asyncIterator]: () => {
              started = true;
              return body[Symbol.asyncIterator]();
            },
          };
    const skip = async () => {
      if (started || range) return;
      started = true;
      for await (const _ of body); // drains now, so the next entry is reachable
    };
    const layer: SourceLayer = { index, name: path, size: e.size, skip };
    if (range) layer.range = range;
    if (diffId) layer.diffId = diffId;
    if (blob) {
      layer.blob = blob;
      layer.digest = `sha256:${base}`;
    } else layer.raw = raw;
    return layer;
  }

  const gen = run();
  let iterated = false;

  async function finish(): Promise<{ config: ImageConfig; order: number[] }> {
    // Whatever the caller did not read is skipped, so finish() also works after a partial iteration.
    if (!ended) for await (const l of { [Symbol.asyncIterator]: () => gen }) await l.skip();
    if (!ended) throw new Error(`${label}: the image stream was closed before its end, so its config is unknown`);
    const manifestRaw = small.get('manifest.json');
    if (!manifestRaw)
      throw new InputError(
        `${label} has no manifest.json, so it is not a docker-archive image oci-push can read (an archive from ` +
          'docker save before Docker 1.10, or a plain tar?); build the image with nixpkgs dockerTools or nix2container',
      );
    const manifest = parseJson(manifestRaw, `${label}: manifest.json`) as ManifestEntry[];
    if (!Array.isArray(manifest) || manifest.length !== 1 || typeof manifest[0]?.Config !== 'string')
      throw new InputError(`${label}: manifest.json must describe exactly one image (it has ${manifest?.length ?? 0})`);
    const entry = manifest[0];
    const configRaw = small.get(norm(entry.Config));
    if (!configRaw) throw new InputError(`${label}: the config '${entry.Config}' named by manifest.json is missing`);
    const config = parseImageConfig(configRaw, `${label}: ${entry.Config}`);
    const order = (entry.Layers ?? []).map((p) => {
      const path = norm(p);
      const at = byPath.get(path) ?? byPath.get(pendingLinks.get(path) ?? '');
      if (at === undefined) throw new InputError(`${label}: manifest.json lists the layer '${p}', which is missing`);
      return at;
    });
    if (order.length !== config.diffIds.length)
      throw new InputError(
        `${label}: manifest.json lists ${order.length} layers but the config has ${config.diffIds.length} diff_ids`,
      );
    for (const { index, diffId } of named) {
      const pos = order.indexOf(index);
      if (pos >= 0 && config.diffIds[pos] !== diffId)
        throw new InputError(
          `${label}: the layer named ${diffId} is listed in the config as ${config.diffIds[pos]}; the archive is corrupt`,
        );
    }
    return { config, order };
  }

  return {
    format: opts.format ?? 'docker-archive',
    layers: () => {
      if (iterated) throw new Error('docker-archive: layers() can be iterated only once (the source is a stream)');
      iterated = true;
      return { [Symbol.asyncIterator]: () => gen };
    },
    finish,
    close: async () => {
      await gen.return(undefined);
      await opts.close?.();
    },
  };
}
