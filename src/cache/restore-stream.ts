/**
 * Restoring bundles (bundle.ts) as they stream in. Two ways, chosen once per restore:
 *
 * - direct (a local store we may write, local-store.ts, and either trusted keys or a trusted source): each NAR is
 *   unpacked straight into the store while its sha256 is computed in the same pass; a path is written only when its
 *   narinfo carries a valid signature by a trusted key (or the source is trusted), and kept only when the NAR hash and
 *   size match that narinfo: on a mismatch what was written is removed and nothing of that path is registered. At
 *   the end, paths whose references can be had are registered with ONE `nix-store --load-db`; signatures are then
 *   copied onto them (`nix store copy-sigs`), since `--load-db` records none. Nothing is registered before every
 *   entry has been read in full, and a stream that fails removes everything it wrote.
 * - through Nix (a daemon or remote store, a relocated store, or a source neither signed nor trusted): the NARs
 *   become a binary cache directory and binary-cache.ts imports it with `nix copy`, which checks what Nix checks.
 */
import { mkdirSync, openSync, closeSync, writeSync, writeFileSync, lstatSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import * as path from 'node:path';
import type { NixCommand } from '../nix/command.js';
import { ImportError, importBinaryCache, type ImportResult } from './binary-cache.js';
import type { BundleHandler, BundleHeader } from './bundle.js';
import { ImportPipeline } from './import-pipeline.js';
import { STORE_DIR, StoreSink, reginfoRecord, removeTree, type LocalStore } from './local-store.js';
import { parseSha256, toNix32 } from './nar.js';
import { narinfoFileName, type Narinfo } from './narinfo.js';
import { copyOrder, pathArgRuns, PATHS_PER_CALL } from './path-args.js';
import { fileStoreUrl, fingerprint, publicKeyObjects, signedByAny } from './signing.js';
import { snapshotStore } from './snapshot.js';

export interface StreamRestoreOptions {
  trustedPublicKeys: readonly string[];
  trustSource: boolean;
  /** Realise references missing from both the entries and the store from the configured substituters. */
  fetchMissingReferences?: boolean;
}

export interface StreamRestoreResult extends ImportResult {
  /** Every valid path after the restore, when known without asking Nix again (direct mode). */
  validAfter?: Set<string>;
}

interface Verified {
  info: Narinfo;
  hex: string;
}

export class StreamRestore {
  readonly direct: boolean;
  private readonly keys;
  private readonly seen = new Set<string>();
  /** Written into the store and not registered yet (removed on failure). */
  private readonly written = new Set<string>();
  private readonly verified = new Map<string, Verified>();
  private readonly refused: Array<{ path: string; reason: string }> = [];
  private readonly available = new Set<string>();
  private sink: StoreSink | undefined;
  private rawFd: number | undefined;
  /** Through Nix: imports what has arrived while the rest downloads (import-pipeline.ts). */
  private readonly pipeline: ImportPipeline | undefined;

  constructor(
    private readonly nix: NixCommand,
    private valid: Set<string>,
    private readonly local: LocalStore | undefined,
    /** Scratch directory for the through-Nix way (a binary cache). */
    private readonly cacheDir: string,
    private readonly opts: StreamRestoreOptions,
  ) {
    this.keys = publicKeyObjects(opts.trustedPublicKeys);
    this.direct = local !== undefined && (this.keys.size > 0 || opts.trustSource);
    if (!this.direct) {
      mkdirSync(path.join(cacheDir, 'nar'), { recursive: true });
      const trust = { trustedPublicKeys: opts.trustedPublicKeys, trustSource: opts.trustSource };
      this.pipeline = new ImportPipeline(nix, cacheDir, trust, valid, (m) => nix.platform?.log('debug', m));
    }
  }

  private target(p: string): string {
    return path.join((this.local as LocalStore).realStoreDir, path.posix.basename(p));
  }

  /** The handler for one entry's bundle; `onHeader` gets its manifest before any NAR. */
  handler(onHeader: (h: BundleHeader) => void): BundleHandler {
    let infos: Narinfo[] = [];
    let current: { path: string; skip: boolean } | undefined;
    return {
      header: (h, parsed) => {
        onHeader(h);
        infos = parsed;
        for (const i of parsed) this.available.add(i.storePath);
      },
      begin: (i) => {
        const info = infos[i] as Narinfo;
        const p = info.storePath;
        const skip = this.seen.has(p) || this.valid.has(p);
        this.seen.add(p);
        current = { path: p, skip };
        if (skip) return {};
        if (!this.direct) {
          this.rawFd = openSync(path.join(this.cacheDir, 'nar', `${i}-${narinfoFileName(p)}.nar`), 'w');
          const fd = this.rawFd;
          return { raw: (b: Buffer) => void writeSync(fd, b) };
        }
        if (path.posix.dirname(p) !== STORE_DIR || !/^[0-9a-z]{32}-[A-Za-z0-9+\-._?=]+$/.test(path.posix.basename(p))) {
          this.refuse(current, `it is not a store path under ${STORE_DIR}`);
          return {};
        }
        if (this.keys.size > 0 && !this.signed(info)) {
          this.refuse(current, 'it has no valid signature by a trusted key');
          return {};
        }
        const target = this.target(p);
        if (exists(target)) removeTree(target); // an invalid leftover: Nix would delete it before substituting too
        this.written.add(p);
        this.sink = new StoreSink(target);
        return { sink: this.sink };
      },
      end: (i, sha256, size) => {
        const info = infos[i] as Narinfo;
        const cur = current as { path: string; skip: boolean };
        this.sink = undefined;
        if (cur.skip) return;
        const expected = parseSha256(info.narHash);
        const ok = expected?.equals(sha256) === true && size === info.narSize;
        if (!this.direct) {
          closeSync(this.rawFd as number);
          this.rawFd = undefined;
          if (ok) {
            this.writeNarinfo(i, info);
            this.pipeline?.add(info.storePath, info.references);
          } else this.refused.push({ path: cur.path, reason: 'its NAR does not match the hash in its narinfo' });
          return;
        }
        if (!ok) {
          removeTree(this.target(cur.path));
          this.written.delete(cur.path);
          this.refuse(cur, 'its NAR does not match the hash and size in its narinfo');
          return;
        }
        this.verified.set(cur.path, { info, hex: sha256.toString('hex') });
      },
    };
  }

  private refuse(cur: { path: string; skip: boolean }, reason: string): void {
    cur.skip = true;
    this.refused.push({ path: cur.path, reason });
  }

  private signed(info: Narinfo): boolean {
    const hash = parseSha256(info.narHash);
    return hash !== undefined && signedByAny(fingerprint(info, toNix32(hash)), info.sigs, this.keys);
  }

  /** The narinfo as Nix wrote it, pointing at the uncompressed NAR we wrote (URL and compression are not signed). */
  private writeNarinfo(i: number, info: Narinfo): void {
    const name = narinfoFileName(info.storePath);
    const text = [
      `StorePath: ${info.storePath}`,
      `URL: nar/${i}-${name}.nar`,
      'Compression: none',
      `NarHash: ${info.narHash}`,
      `NarSize: ${info.narSize}`,
      `References: ${info.references.map((r) => path.posix.basename(r)).join(' ')}`,
      ...(info.deriver ? [`Deriver: ${path.posix.basename(info.deriver)}`] : []),
      ...info.sigs.map((s) => `Sig: ${s}`),
      ...(info.ca ? [`CA: ${info.ca}`] : []),
    ];
    writeFileSync(path.join(this.cacheDir, name), `${text.join('\n')}\n`);
  }

  /** Removes what was written and not registered (after a failure or a time limit); safe to call twice. */
  abort(): void {
    this.pipeline?.stop();
    this.sink?.close();
    if (this.rawFd !== undefined) closeSync(this.rawFd);
    this.rawFd = undefined;
    for (const p of this.written) removeTree(this.target(p));
    this.written.clear();
  }

  /** Registers what was verified (see the file comment); throws ImportError when some paths were refused. */
  async finish(signal?: AbortSignal): Promise<StreamRestoreResult> {
    // An entry that failed part-way (a lost parent) may have left a NAR half-written: never registered.
    this.sink?.close();
    if (this.rawFd !== undefined) closeSync(this.rawFd);
    this.rawFd = undefined;
    for (const p of this.written) {
      if (this.verified.has(p)) continue;
      removeTree(this.target(p));
      this.written.delete(p);
    }
    if (!this.direct) {
      await this.pipeline?.drain();
      signal?.throwIfAborted();
      if (this.pipeline?.complete) {
        const res = this.outcome(this.pipeline.imported, []);
        if (this.refused.length > 0) throw refusedError(this.refused, res);
        return res;
      }
      const final = await importBinaryCache(this.nix, this.cacheDir, this.opts);
      // What the pipeline imported, the final import found already valid: it counts as imported here.
      const late = new Set(final.imported);
      const early = (this.pipeline?.imported ?? []).filter((p) => !late.has(p));
      const res = {
        ...final,
        alreadyValid: final.alreadyValid - early.length,
        imported: [...early, ...final.imported],
      };
      if (this.refused.length > 0) throw refusedError(this.refused, { ...res, skipped: [...res.skipped] });
      return res;
    }
    const todo = [...this.verified.keys()];
    const refs = (p: string) => this.verified.get(p)?.info.references ?? [];
    const external = new Set<string>();
    for (const p of todo) for (const r of refs(p)) if (!this.verified.has(r) && !this.valid.has(r)) external.add(r);
    const fetchable = [...external].filter((r) => !r.endsWith('.drv'));
    if (fetchable.length > 0 && this.opts.fetchMissingReferences !== false) {
      // Derivations cannot be substituted (realising one builds it); --keep-going: get what can be had.
      for (let i = 0; i < fetchable.length; i += PATHS_PER_CALL)
        await this.nix.runStore(['--realise', '--keep-going', ...fetchable.slice(i, i + PATHS_PER_CALL)], {
          allowFailure: true,
        });
      this.valid = await snapshotStore(this.nix);
    }
    signal?.throwIfAborted();
    const importable: string[] = [];
    const ok = new Set<string>();
    const skipped: ImportResult['skipped'] = [];
    for (const p of copyOrder(todo, refs)) {
      const missing = refs(p).find((r) => r !== p && !this.valid.has(r) && !ok.has(r));
      if (missing === undefined) {
        ok.add(p);
        importable.push(p);
      } else {
        skipped.push({ path: p, reason: `it references ${missing}, which is neither in the cache nor available` });
        removeTree(this.target(p));
        this.written.delete(p);
      }
    }
    const reginfo = importable
      .map((p) => {
        const v = this.verified.get(p) as Verified;
        return reginfoRecord({ path: p, narHashHex: v.hex, ...v.info });
      })
      .join('');
    if (importable.length > 0) await this.nix.runStore(['--load-db'], { input: reginfo });
    for (const p of importable) this.written.delete(p);
    await this.copySignatures(importable);
    const result: StreamRestoreResult = {
      ...this.outcome(importable, skipped),
      validAfter: new Set([...this.valid, ...importable]),
    };
    if (this.refused.length > 0) throw refusedError(this.refused, result);
    return result;
  }

  private outcome(imported: string[], skipped: ImportResult['skipped']): ImportResult {
    const alreadyValid = [...this.available].filter((p) => this.valid.has(p)).length;
    return { available: this.available.size, alreadyValid, imported, skipped };
  }

  /** `--load-db` records no signatures: `nix store copy-sigs` reads them from the narinfos we were given. */
  private async copySignatures(paths: string[]): Promise<void> {
    const signed = paths.filter((p) => (this.verified.get(p)?.info.sigs.length ?? 0) > 0);
    if (signed.length === 0) return;
    await mkdir(this.cacheDir, { recursive: true });
    const dir = await mkdtemp(path.join(this.cacheDir, 'sigs-'));
    try {
      writeFileSync(path.join(dir, 'nix-cache-info'), `StoreDir: ${STORE_DIR}\n`);
      for (const p of signed) {
        const { info } = this.verified.get(p) as Verified;
        const text = [
          `StorePath: ${p}`,
          `URL: nar/none`,
          'Compression: none',
          `NarHash: ${info.narHash}`,
          `NarSize: ${info.narSize}`,
          `References: ${info.references.map((r) => path.posix.basename(r)).join(' ')}`,
          ...info.sigs.map((s) => `Sig: ${s}`),
        ];
        writeFileSync(path.join(dir, narinfoFileName(p)), `${text.join('\n')}\n`);
      }
      for (const args of pathArgRuns(signed))
        await this.nix.run(['store', 'copy-sigs', '--substituter', fileStoreUrl(dir), ...args]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

function refusedError(refused: Array<{ path: string; reason: string }>, result: ImportResult): ImportError {
  const first = refused[0] as { path: string; reason: string };
  return new ImportError(
    `${refused.length} cached paths were refused (${first.path}: ${first.reason}` +
      `${refused.length > 1 ? ', and others' : ''}); ${result.imported.length} were imported`,
    { ...result, skipped: [...result.skipped, ...refused] },
  );
}

function exists(p: string): boolean {
  // No exception for the usual answer (nothing there): building one costs more than the lstat.
  return lstatSync(p, { throwIfNoEntry: false }) !== undefined;
}
