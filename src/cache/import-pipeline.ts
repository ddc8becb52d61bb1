/**
 * Importing through Nix while the entry is still downloading. A store this process cannot write itself (a daemon
 * store, what install-nix sets up on GitHub's runners, where the job's user is not root) gets its paths through
 * `nix copy` from the binary cache directory the stream writes (restore-stream.ts). Run once at the end, that copy
 * only starts after the last byte arrived: on the 800-path benchmark the download took 0.65 s and the copy 0.5 s after
 * it. Here each path whose NAR has been checked is queued, and a `nix copy` of everything queued starts whenever none
 * is running, so Nix imports the first paths while the rest still download. When every path went through it, that is
 * all; otherwise the final import (binary-cache.ts' importBinaryCache, which skips what is already valid) does the
 * rest.
 *
 * A path is queued only when each of its references is already valid, already handed to Nix, or in the same batch:
 * bundles list NARs in dependency order, so that holds for everything but paths whose references come from elsewhere
 * (upstream substituters), which are left to the final import and its handling of missing references. A batch that
 * fails stops the pipeline; the final import then tries what is left and reports what Nix refused.
 */
import { errorMessage } from '../errors.js';
import type { NixCommand } from '../nix/command.js';
import { copyFromBinaryCache, type ImportOptions } from './binary-cache.js';

/** The first batch waits for this many paths (or the end of the stream): one `nix copy` costs ~50 ms to start. */
const FIRST_BATCH = 32;

export class ImportPipeline {
  private queue: string[] = [];
  /** Handed to `nix copy` (imported, or being imported). */
  private readonly handed = new Set<string>();
  private running: Promise<void> | undefined;
  private batches = 0;
  private deferred = 0;
  private failed = false;
  /** Paths of the batches Nix imported without an error. */
  readonly imported: string[] = [];
  private stopped = false;

  constructor(
    private readonly nix: NixCommand,
    private readonly dir: string,
    private readonly opts: ImportOptions,
    private readonly valid: ReadonlySet<string>,
    private readonly debug: (message: string) => void = () => undefined,
  ) {}

  /** A path whose NAR and narinfo are in the directory, checked. Its references come first (dependency order). */
  add(path: string, references: readonly string[]): void {
    if (this.stopped) {
      this.deferred++; // the final import's
      return;
    }
    const ok = references.every((r) => r === path || this.valid.has(r) || this.handed.has(r) || this.queued(r));
    if (ok) this.queue.push(path);
    else this.deferred++;
    this.kick(false);
  }

  private queued(p: string): boolean {
    return this.queue.includes(p);
  }

  private kick(last: boolean): void {
    if (this.running || this.stopped || this.queue.length === 0) return;
    if (!last && this.batches === 0 && this.queue.length < FIRST_BATCH) return;
    const batch = this.queue;
    this.queue = [];
    for (const p of batch) this.handed.add(p);
    this.batches++;
    this.running = copyFromBinaryCache(this.nix, this.dir, batch, this.opts)
      .then(() => void this.imported.push(...batch))
      .catch((e: unknown) => {
        this.stopped = true;
        this.failed = true;
        this.debug(
          `Importing ${batch.length} paths while downloading failed (${errorMessage(e)}); the rest at the end.`,
        );
      })
      .finally(() => {
        this.running = undefined;
        this.kick(false);
      });
  }

  /** Hands over what is still queued, waits for every batch, and stops; the caller's final import does the rest. */
  async drain(): Promise<void> {
    this.kick(true);
    while (this.running) await this.running;
    this.stopped = true;
  }

  /** No batch starts after this (one running finishes by itself: it only imports checked paths). */
  stop(): void {
    this.stopped = true;
  }

  /** After drain: every path added was imported, so no final import is needed. */
  get complete(): boolean {
    return !this.failed && this.deferred === 0 && this.queue.length === 0;
  }

  /** How many `nix copy` runs it started. */
  get started(): number {
    return this.batches;
  }
}
