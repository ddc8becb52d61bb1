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
import { canStream, cacheVersion, decompressTo, download, findZstd, lookupEntry } from './entry-stream.js';
import { localStoreFor, storeSetting } from './local-store.js';
import { Pump } from './nar.js';
import { StreamRestore, type StreamRestoreResult } from './restore-stream.js';
import { snapshotStore } from './snapshot.js';

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
    this.version = cacheVersion([BUNDLE_FILE], this.zstd ? 'zstd-without-long' : 'gzip');
    this.streaming = canStream(p);
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
    let matched: string;
    let bytes = 0;
    if (this.streaming) {
      const hit = await lookupEntry(this.p, { key, restoreKeys, version: this.version }, this.signal);
      if (!hit || (exact && hit.matchedKey !== key)) return undefined;
      matched = hit.matchedKey;
      source = download(hit.url, this.signal);
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
    const session = await this.ready;
    const bundle = new Pump(readBundle(session.handler((h) => (header = h))));
    const feed = (piece: Buffer) => {
      if (bundle.done) throw new BundleError('the bundle has data after its last NAR');
      bundle.push(piece);
    };
    try {
      if (this.streaming) {
        const tar = new Pump(
          readTar(
            (name) => (name === BUNDLE_FILE && !found ? ((found = true), feed) : undefined),
            () => undefined,
          ),
        );
        bytes = await decompressTo(source, this.zstd, (c) => tar.push(c), this.signal);
      } else {
        for await (const chunk of source) feed(chunk);
      }
    } catch (e) {
      if (e instanceof BundleError && header === undefined) throw new NotABundle(e.message);
      throw e;
    }
    if (!found && this.streaming) throw new NotABundle(`the entry holds no ${BUNDLE_FILE}`);
    if (!bundle.done || header === undefined) throw new TransientError('the cache entry ended in the middle of a NAR');
    return { key: matched, bytes, header };
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
