/**
 * Concurrency limits for the layer pipeline (compress.ts): a small semaphore, and the pool that caps compressions in
 * flight across every layer of a push, so parallel uploads do not multiply the jobs queued for the compression threads.
 */
import { availableParallelism } from 'node:os';
import { MemberArenas } from './compress-arena.js';

/** A counting semaphore. Waiters are woken in order; `wakeAll` tears down one pipeline's private limits. */
export class Semaphore {
  private waiters: Array<() => void> = [];
  private held = 0;
  private peak = 0;
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    while (this.free === 0) await new Promise<void>((r) => this.waiters.push(r));
    this.free--;
    this.held++;
    if (this.held > this.peak) this.peak = this.held;
  }
  release(): void {
    this.free++;
    this.held--;
    this.waiters.shift()?.();
  }
  /** Only for a semaphore no one else shares: lets every waiter through so a stopped pipeline can unwind. */
  wakeAll(): void {
    this.free = Number.MAX_SAFE_INTEGER;
    for (const w of this.waiters.splice(0)) w();
  }
  /** Permits held now. */
  get inUse(): number {
    return this.held;
  }
  /** Most permits ever held at once (tests check limits with it). */
  get peakHeld(): number {
    return this.peak;
  }
}

/**
 * Raw block buffers kept for reuse. A layer's blocks are copied into these as the source's reads arrive, instead of
 * into a fresh buffer per block: a push then allocates a few dozen MiB instead of the image's size again, which spared
 * V8 most of the full collections that external memory triggers (one per ~64 MiB allocated) and the kernel the page
 * faults of fresh memory. A block is given back once its compression has finished with it.
 */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  /** `keep`: buffers kept per size; more may be out at once, the extra ones are simply dropped on return. */
  constructor(private readonly keep: number) {}
  take(size: number): Buffer {
    // Shared memory: the deflate workers read a block where it is instead of getting a copy (deflate-workers.ts).
    return this.free.get(size)?.pop() ?? Buffer.from(new SharedArrayBuffer(size));
  }
  /** Buffers of this size kept for reuse now. */
  idle(size: number): number {
    return this.free.get(size)?.length ?? 0;
  }
  give(buffer: Buffer): void {
    const list = this.free.get(buffer.length) ?? [];
    this.free.set(buffer.length, list);
    if (list.length < this.keep) list.push(buffer);
  }
}

/**
 * Cores + 2, at most 16: a finished block needs the main thread (hashing, the next read) before its thread gets
 * another, so with exactly one job per core the cores idle in between; the extra jobs wait in line at the deflate
 * workers (one per core, deflate-workers.ts) or the libuv threadpool (zstd). Measured on 2 cores, 1 MiB blocks, with
 * zlib's gzip -1: 1.4x one core with 2 jobs, 1.8x with 4. The cap bounds memory on big machines, where each job holds
 * a block.
 */
export function defaultParallelism(): number {
  return Math.min(availableParallelism() + 2, 16);
}

/** Shared by the layers of one push: at most `size` blocks compress at once, whichever layers they belong to. */
export class CompressionPool extends Semaphore {
  /** Raw block buffers shared by the layers in flight (each holds up to its parallelism + 1 blocks). */
  readonly buffers: BufferPool;
  /**
   * Where gzip members are written, a lane per layer. Their consumer hands them back (`members.giveBack`) once done
   * with them; see compress-arena.ts.
   */
  readonly members = new MemberArenas();
  constructor(readonly size = defaultParallelism()) {
    super(size);
    this.buffers = new BufferPool(2 * size + 2);
  }
}
