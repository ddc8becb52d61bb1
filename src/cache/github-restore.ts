/**
 * Restore for the `github` backend: the newest entry matching the key (then the restore-keys), then each parent it
 * names by its exact key, each read as a stream (entry-stream.ts) and written into the store as it arrives
 * (restore-stream.ts); everything is registered once at the end. While the first entry is looked up, the store is
 * listed and its location found, in parallel.
 *
 * On GHES (cache service v1) or a cache mode the stream does not handle, @actions/cache restores the archive to disk
 * and the bundle is read from there, through the same code.
 */
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { errorMessage, TransientError } from '../errors.js';
import type { NixCommand } from '../nix/command.js';
import type { Platform } from '../platform/types.js';
import { restoreEntry } from './actions-cache-glue.js';
import type { RestoreRequest } from './backend.js';
import { BUNDLE_FILE, BundleError, readBundle, readTar, type BundleHeader } from './bundle.js';
import { curlDecompressTo, usableCurl } from './curl-fetch.js';
import { findOnPath } from '../exec.js';
import { canStream, cacheVersion, decompressTo, download, findZstd, lookupEntry } from './entry-stream.js';
import { localStoreFor, storeSetting } from './local-store.js';
import { Pump } from './nar.js';
import { StreamRestore, type StreamRestoreResult } from './restore-stream.js';
import { snapshotStore } from './snapshot.js';

/** Decompressed bytes kept in memory at most while the store listing is still running. */
const MAX_QUEUED = 64 * 1024 * 1024;

export interface FetchedEntry {
  key: string;
  bytes: number;
  header: BundleHeader;
}

/** Thrown when an entry holds no bundle of ours (another tool's entry under our key?): nothing was written. */
export class NotABundle extends Error {
  override readonly name = 'NotABundle';
}

export class GitHubRestore {
  private session: StreamRestore | undefined;
  private readonly ready: Promise<StreamRestore>;
  private readonly zstd: string | undefined;
  /** curl, when there is one recent enough (asked while the first entry is looked up). */
  private readonly curl: Promise<string | undefined>;
  private readonly version: string;
  readonly streaming: boolean;

  constructor(
    private readonly p: Platform,
    nix: NixCommand,
    private readonly scratch: string,
    req: Pick<RestoreRequest, 'trustedPublicKeys' | 'trustSource'>,
    private readonly signal?: AbortSignal,
  ) {
    this.zstd = findZstd(p.env('PATH'));
    this.streaming = canStream(p);
    const curl = this.zstd && this.streaming ? findOnPath('curl', p.env('PATH')) : undefined;
    this.curl = curl
      ? usableCurl(curl).then((ok) => {
          if (!ok) p.log('debug', `${curl} is older than 7.63 or does not run: downloading in node.`);
          return ok ? curl : undefined;
        })
      : Promise.resolve(undefined);
    this.version = cacheVersion([BUNDLE_FILE], this.zstd ? 'zstd-without-long' : 'gzip');
    // Started now, awaited when the first NAR arrives: the listing and the store's location overlap the lookup.
    this.ready = (async () => {
      const [valid, local] = await Promise.all([
        snapshotStore(nix),
        storeSetting(nix).then(
          (s) => localStoreFor(s, (k) => p.env(k)),
          (e: unknown) => {
            p.log('debug', `Could not read the store setting (${errorMessage(e)}); importing through Nix.`);
            return undefined;
          },
        ),
      ]);
      const s = new StreamRestore(nix, valid, local, path.join(scratch, 'binary-cache'), {
        trustedPublicKeys: req.trustedPublicKeys,
        trustSource: req.trustSource,
      });
      this.session = s;
      p.log('debug', s.direct ? 'Restoring straight into the local store.' : 'Restoring through Nix (nix copy).');
      return s;
    })();
    this.ready.catch(() => undefined);
  }

  /** One entry: undefined on a miss (or an inexact match when `exact`). */
  async fetch(key: string, restoreKeys: string[], exact: boolean): Promise<FetchedEntry | undefined> {
    let header: BundleHeader | undefined;
    let found = false;
    let source: AsyncIterable<Buffer> | undefined;
    let url: string | undefined;
    let matched: string;
    let bytes = 0;
    if (this.streaming) {
      const hit = await lookupEntry(this.p, { key, restoreKeys, version: this.version }, this.signal);
      if (!hit || (exact && hit.matchedKey !== key)) return undefined;
      matched = hit.matchedKey;
      url = hit.url;
    } else {
      const ws = await mkdtemp(path.join(this.scratch, 'entry-'));
      await mkdir(ws, { recursive: true });
      const got = await restoreEntry(ws, BUNDLE_FILE, key, restoreKeys);
      if (got.failure !== undefined)
        throw new TransientError(`the cache entry for ${key} was not restored: ${got.failure}`);
      if (got.key === undefined || (exact && got.key !== key)) return undefined;
      matched = got.key;
      bytes = got.bytes;
      source = createReadStream(path.join(ws, BUNDLE_FILE)) as AsyncIterable<Buffer>;
    }
    // The download starts before the store listing is in (a nix process still running): what arrives meanwhile is
    // kept in memory, up to MAX_QUEUED, and unpacked once the session is ready.
    const queued: Buffer[] = [];
    let queuedBytes = 0;
    let tar: Pump | undefined;
    let flushed: () => void = () => undefined;
    const whenFlushed = new Promise<void>((resolve) => (flushed = resolve));
    const consume = (c: Buffer): void | Promise<void> => {
      if (tar) return tar.push(c);
      queued.push(c);
      queuedBytes += c.length;
      if (queuedBytes > MAX_QUEUED) return whenFlushed;
    };
    const stopped = new AbortController();
    const signal = this.signal ? AbortSignal.any([this.signal, stopped.signal]) : stopped.signal;
    const downloaded = this.streaming ? this.download(url as string, consume, signal) : undefined;
    downloaded?.catch(() => undefined); // awaited below, unless the session fails first
    const session = await this.ready.catch((e: unknown) => {
      stopped.abort(e);
      throw e;
    });
    // Released whatever happens next: the stream stops either way then (its signal is aborted on a failure).
    setImmediate(flushed);
    const bundle = new Pump(readBundle(session.handler((h) => (header = h))));
    const feed = (piece: Buffer) => {
      if (bundle.done) throw new BundleError('the bundle has data after its last NAR');
      bundle.push(piece);
    };
    try {
      if (downloaded) {
        const pump = new Pump(
          readTar(
            (name) => (name === BUNDLE_FILE && !found ? ((found = true), feed) : undefined),
            () => undefined,
          ),
        );
        for (const c of queued.splice(0)) pump.push(c);
        tar = pump;
        flushed();
        bytes = await downloaded;
      } else {
        for await (const chunk of source as AsyncIterable<Buffer>) feed(chunk);
      }
    } catch (e) {
      stopped.abort(e);
      if (e instanceof BundleError && header === undefined) throw new NotABundle(e.message);
      throw e;
    }
    if (!found && this.streaming) throw new NotABundle(`the entry holds no ${BUNDLE_FILE}`);
    if (!bundle.done || header === undefined) throw new TransientError('the cache entry ended in the middle of a NAR');
    return { key: matched, bytes, header };
  }

  /** Downloads and decompresses `url`, handing each decompressed chunk to `consume`; the compressed byte count. */
  private async download(url: string, consume: (c: Buffer) => void | Promise<void>, signal: AbortSignal) {
    const { zstd } = this;
    const curl = await this.curl;
    if (!curl || !zstd) return decompressTo(download(url, signal), zstd, consume, signal);
    return curlDecompressTo(url, { curl, zstd }, consume, signal, (why, at) =>
      this.p.log('debug', `${why}; downloading the rest from byte ${at} in node.`),
    );
  }

  /** Registers what the entries held (see restore-stream.ts). */
  async finish(): Promise<StreamRestoreResult | undefined> {
    if (!this.session) return undefined;
    return this.session.finish(this.signal);
  }

  /** Removes whatever was written and not registered. */
  abort(): void {
    this.session?.abort();
  }
}

export async function withScratch<T>(dir: string, fn: (scratch: string) => Promise<T>): Promise<T> {
  const scratch = await mkdtemp(path.join(dir, 'restore-'));
  try {
    return await fn(scratch);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
