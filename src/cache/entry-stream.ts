/**
 * Reading a GitHub cache entry as a stream: the download URL from the cache service (v2, the twirp call
 * @actions/cache makes), then one HTTP GET whose body goes through the decompressor straight to the caller, chunk by
 * chunk (with curl and zstd at hand, curl-fetch.ts does the GET, and node only sees the decompressed bytes). No
 * archive file, no extraction directory: the caller (restore-stream.ts) writes the NARs into the store as they
 * arrive, while the next bytes download.
 *
 * Compatibility with entries that @actions/cache saved rests on two things this file mirrors: the entry "version"
 * (sha256 of the path strings, the compression method and the library's salt: a different version is a miss), and the
 * archive (tar, zstd when a `zstd` binary is on PATH, else gzip). The format is also told by the first bytes, so a
 * wrong guess is an error, never a misread. Decompression runs in a `zstd -d` process (about twice as fast as
 * node:zlib's zstd here, and on another core); gzip in node:zlib.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { createGunzip, type Gunzip } from 'node:zlib';
import { TransientError } from '../errors.js';
import { findOnPath } from '../exec.js';
import type { Platform } from '../platform/types.js';

export type Compression = 'zstd-without-long' | 'gzip';
/** @actions/cache's `versionSalt` (internal/cacheUtils.js). */
const VERSION_SALT = '1.0';
const SERVICE = 'github.actions.results.api.v1.CacheService';

/** The entry version @actions/cache computes for `paths` (getCacheVersion, not on Windows). */
export function cacheVersion(paths: readonly string[], compression: Compression): string {
  return createHash('sha256')
    .update([...paths, compression, VERSION_SALT].join('|'))
    .digest('hex');
}

/** The `zstd` executable on PATH, if any: @actions/cache compresses with zstd exactly when there is one. */
export const findZstd = (pathVar: string | undefined) => findOnPath('zstd', pathVar);

/**
 * Whether restores may bypass @actions/cache's download-then-extract: only against the v2 service (not GHES, which
 * speaks v1) and when the runner's cache mode allows reads; otherwise the library's own restore is used.
 */
export function canStream(p: Platform): boolean {
  const host = (() => {
    try {
      return new URL(p.env('GITHUB_SERVER_URL') || 'https://github.com').hostname.toUpperCase();
    } catch {
      return '';
    }
  })();
  const ghes = host !== 'GITHUB.COM' && !host.endsWith('.GHE.COM') && !host.endsWith('.LOCALHOST');
  const mode = (p.env('ACTIONS_CACHE_MODE') ?? '').trim().toLowerCase();
  return !ghes && Boolean(p.env('ACTIONS_CACHE_SERVICE_V2')) && ['', 'read', 'write'].includes(mode);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), reject(signal.reason as Error)), { once: true });
  });

function request(url: string, opts: http.RequestOptions, body?: string): Promise<http.IncomingMessage> {
  const u = new URL(url);
  const client = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(u, { timeout: 60_000, ...opts }, resolve);
    req.on('timeout', () => req.destroy(new Error('no answer within 60 s')));
    req.on('error', reject);
    req.end(body);
  });
}

async function readText(res: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export interface Lookup {
  matchedKey: string;
  url: string;
}

/**
 * GetCacheEntryDownloadURL, retried like @actions/cache does (502/503/504/500, 5 attempts, 3 s then x1.5); refused
 * connections are not retried (the service is down: fail open quickly). Undefined on a miss or a read denial.
 */
export async function lookupEntry(
  p: Platform,
  req: { key: string; restoreKeys: string[]; version: string },
  signal?: AbortSignal,
): Promise<Lookup | undefined> {
  const base = p.env('ACTIONS_RESULTS_URL') ?? '';
  const url = new URL(`/twirp/${SERVICE}/GetCacheEntryDownloadURL`, base).href;
  const body = JSON.stringify({ key: req.key, restore_keys: req.restoreKeys, version: req.version });
  const headers = {
    'Content-Type': 'application/json',
    Authorization: `Bearer ${p.env('ACTIONS_RUNTIME_TOKEN') ?? ''}`,
    'User-Agent': 'flake-ci',
  };
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    let why: string;
    try {
      const res = await request(url, { method: 'POST', headers, signal }, body);
      const text = await readText(res);
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) {
        const answer = JSON.parse(text) as { ok?: boolean; signed_download_url?: string; matched_key?: string };
        if (!answer.ok || !answer.signed_download_url || !answer.matched_key) return undefined;
        return { matchedKey: answer.matched_key, url: answer.signed_download_url };
      }
      const msg = (() => {
        try {
          return String((JSON.parse(text) as { msg?: unknown }).msg ?? '');
        } catch {
          return '';
        }
      })();
      if (msg.startsWith('cache read denied')) {
        p.log('info', `The cache service denied reading: ${msg}; restoring nothing.`);
        return undefined;
      }
      why = `the cache service answered ${status}${msg ? `: ${msg}` : ''}`;
      if (![500, 502, 503, 504].includes(status)) throw new TransientError(why);
    } catch (e) {
      if (e instanceof TransientError || signal?.aborted) throw e;
      const code = (e as NodeJS.ErrnoException).code ?? '';
      why = `the cache service could not be reached: ${(e as Error).message}`;
      if (code === 'ECONNREFUSED' || code === 'ENOTFOUND') throw new TransientError(why);
    }
    if (attempt >= 5) throw new TransientError(`${why} (after ${attempt} attempts)`);
    const min = 3000 * 1.5 ** (attempt - 1);
    p.log('info', `Looking up the cache entry failed (${why}); retrying in ${Math.round(min / 1000)} s.`);
    await sleep(attempt === 1 ? min : min + Math.random() * min * 0.5, signal);
  }
}

/**
 * GETs `url` and yields its body from byte `from` on; a connection that breaks is resumed from where it stopped
 * (Range), up to 4 times. The total is checked against Content-Length, so a short body is an error, not a truncated
 * entry.
 */
export async function* download(url: string, signal?: AbortSignal, from = 0): AsyncGenerator<Buffer> {
  let offset = from;
  let total: number | undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      const headers: Record<string, string> = { 'User-Agent': 'flake-ci' };
      if (offset > 0) headers.Range = `bytes=${offset}-`;
      const res = await request(url, { headers, signal });
      const status = res.statusCode ?? 0;
      if (status !== 200 && status !== 206) {
        res.resume();
        const err = new TransientError(`the cache entry download answered ${status}`);
        if (status < 500 && status !== 429 && status !== 408) throw Object.assign(err, { final: true });
        throw err;
      }
      let skip = 0;
      if (status === 200) {
        skip = offset; // the server ignored the range: drop what we already have
        total = Number(res.headers['content-length'] ?? NaN);
      } else if (total === undefined) {
        total = Number(/\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''))?.[1] ?? NaN);
      }
      for await (const c of res) {
        let chunk = c as Buffer;
        if (skip > 0) {
          const k = Math.min(skip, chunk.length);
          skip -= k;
          chunk = chunk.subarray(k);
          if (chunk.length === 0) continue;
        }
        offset += chunk.length;
        yield chunk;
      }
      if (!res.complete) throw new TransientError('the cache entry download was cut off');
      if (Number.isFinite(total) && offset !== total)
        throw new TransientError(`the cache entry download ended after ${offset} of ${total} bytes`);
      return;
    } catch (e) {
      if (signal?.aborted || (e as { final?: boolean }).final || attempt >= 5) {
        if (e instanceof TransientError || signal?.aborted) throw e;
        throw new TransientError(`downloading the cache entry failed: ${(e as Error).message}`);
      }
      await sleep(500 * attempt, signal);
    }
  }
}

/** What stops a decompressing pipeline, and the consumer's first error (which wins over what it caused). */
export interface DrainState {
  stop: boolean;
  consumeError?: unknown;
}

/**
 * Hands each decompressed chunk of `source` to `consume`, waiting when it returns a promise (it asked to wait before
 * reading on). A consume error is kept in `state` and ends the drain; after `state.stop` chunks are only discarded.
 */
export async function drainTo(
  source: AsyncIterable<unknown>,
  consume: (chunk: Buffer) => void | Promise<void>,
  state: DrainState,
): Promise<void> {
  for await (const chunk of source) {
    if (state.stop) continue;
    try {
      const wait = consume(chunk as Buffer);
      if (wait) await wait;
    } catch (e) {
      state.consumeError = e;
      throw e;
    }
  }
}

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

/**
 * Decompresses `input` (zstd or gzip, told by its magic bytes) and hands each chunk to `consume`, which may throw to
 * stop everything. Resolves with the compressed byte count once the decompressor confirmed the whole stream (zstd
 * checks its frame checksum at the end).
 */
export async function decompressTo(
  input: AsyncIterable<Buffer>,
  zstd: string | undefined,
  consume: (chunk: Buffer) => void | Promise<void>,
  signal?: AbortSignal,
): Promise<number> {
  const it = input[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) throw new TransientError('the cache entry is empty');
  const head = first.value;
  let bytes = head.length;
  const isZstd = head.subarray(0, 4).equals(ZSTD_MAGIC);
  if (!isZstd && !head.subarray(0, 2).equals(GZIP_MAGIC))
    throw new TransientError('the cache entry is neither zstd nor gzip data');
  if (isZstd && !zstd) throw new TransientError('the cache entry is zstd-compressed and there is no zstd on PATH');

  let stderr = '';
  const child = isZstd
    ? spawn(zstd as string, ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'], signal })
    : undefined;
  const gunzip: Gunzip | undefined = isZstd ? undefined : createGunzip();
  const sink = (child?.stdin ?? gunzip) as NodeJS.WritableStream;
  const source = (child?.stdout ?? gunzip) as NodeJS.ReadableStream;
  child?.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const exited = child ? new Promise<number | null>((r) => child.on('close', (code) => r(code))) : undefined;
  child?.on('error', () => undefined); // reported through `exited` and the pipes

  const state: DrainState = { stop: false };
  const write = (b: Buffer) =>
    new Promise<void>((resolve, reject) => {
      if (sink.write(b)) return resolve();
      const done = () => (sink.removeListener('error', reject), resolve());
      sink.once('drain', done);
      sink.once('error', reject);
    });
  const feed = (async () => {
    await write(head);
    for (let r = await it.next(); !r.done && !state.stop; r = await it.next()) {
      bytes += r.value.length;
      await write(r.value);
    }
    sink.end();
  })();
  const drain = drainTo(source, consume, state);
  // Whichever fails first decides; the other is abandoned, never left to reject unhandled.
  feed.catch(() => undefined);
  drain.catch(() => undefined);
  try {
    await Promise.all([feed, drain]);
    const code = exited ? await exited : 0;
    if (code !== 0) throw new TransientError(`zstd could not decompress the cache entry: ${stderr.trim() || code}`);
    return bytes;
  } catch (e) {
    state.stop = true;
    child?.kill('SIGKILL');
    gunzip?.destroy();
    void it.return?.(undefined)?.catch(() => undefined);
    if (state.consumeError !== undefined || e instanceof TransientError || signal?.aborted)
      throw state.consumeError ?? e;
    if (exited) await exited;
    const why = stderr.trim() || (e as Error).message;
    throw new TransientError(`the cache entry could not be decompressed: ${why}`);
  }
}
