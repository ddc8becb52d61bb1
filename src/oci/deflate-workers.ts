/**
 * gzip compression on worker threads running libdeflate as WebAssembly (wasm/deflate.c, built into deflate-wasm.ts).
 *
 * Why not Node's zlib: measured on the benchmark image's compressible blocks (1 MiB each, Node 24, 2 cores),
 * libdeflate's level 1 in WebAssembly compresses 205 MiB/s on one core against zlib level 1's 136 MiB/s, to 3.4% fewer
 * bytes; on two workers it took 1.55 s of CPU where zlib on the threadpool took 2.1 s for the same 256 blocks. And the
 * bytes are the same on every platform: no CPU-specific code path decides them.
 *
 * WebAssembly runs on the thread that calls it, so the compression runs on one worker per core. Blocks read into
 * pooled SharedArrayBuffers (compress-pool.ts) are read by the worker in place; any other bytes are copied once into
 * shared memory kept for it. Workers start on first use, hold the process open only while they have work, and stay for the next
 * push in the same process. (Starting them before the registry lookup gained nothing measurable on a first push and
 * would cost a re-push that compresses nothing two threads' start-up.)
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { BufferPool } from './compress-pool.js';
import { DEFLATE_WASM } from './deflate-wasm.js';
import { deflateWorker, type DeflateJob, type DeflateReply } from './deflate-worker.js';

interface Pending {
  resolve: (size: number) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  jobs: Map<number, Pending>;
}

/**
 * Room for the member of `n` bytes: libdeflate's bound (n plus 5 bytes per 5000 begun, deflate_compress.c) and the
 * 18 bytes of gzip header and trailer, with some to spare.
 */
export const memberRoom = (n: number): number => n + (n >> 9) + 64;

/** Memory is lent in sizes of at least this part's: the usual 1 MiB blocks and their runs then share one size. */
const LEND_MIN = 1 << 20;

/**
 * At most this many workers, whatever the core count: each costs about 12 MiB of RSS (a Node isolate of its own) and
 * its WebAssembly memory (2-3 MiB at level 1, one input and one output area and the compressor).
 */
const MAX_WORKERS = 16;

export class DeflateWorkers {
  private readonly slots: Slot[] = [];
  private module: WebAssembly.Module | undefined;
  private nextId = 0;
  /** Shared memory for the workers' input and output (compress-pool.ts), by size: reused, a few per worker. */
  private readonly spare: BufferPool;

  constructor(private readonly size = Math.min(availableParallelism(), MAX_WORKERS)) {
    this.spare = new BufferPool(2 * size);
  }

  /**
   * One complete gzip member holding `part`, compressed at `level` (1-12), in a buffer from `into` (given the member's
   * size; a fresh one by default).
   */
  async member(
    part: Uint8Array,
    level: number,
    into: (size: number) => Buffer = (n) => Buffer.allocUnsafe(n),
  ): Promise<Buffer> {
    // Bytes that are not in shared memory (pooled blocks are) are first copied into shared memory kept here: handing
    // the worker a fresh buffer instead would leave it holding each one until its own, rare, garbage collections.
    const shared = part.buffer instanceof SharedArrayBuffer;
    const staged = shared ? undefined : this.spare.take(Math.max(part.length, LEND_MIN));
    staged?.set(part);
    // The worker writes the member into shared memory lent for the job, and it is copied from there into `into`'s
    // buffer: members then end up packed where the caller wants them (reusable arenas), and neither thread allocates
    // a buffer per member.
    const output = this.spare.take(memberRoom(Math.max(part.length, LEND_MIN)));
    try {
      const size = await this.run({
        id: this.nextId++,
        // BufferPool's buffers are whole SharedArrayBuffers.
        input: (staged ?? part).buffer as SharedArrayBuffer,
        offset: staged ? 0 : part.byteOffset,
        length: part.length,
        level,
        output: output.buffer as SharedArrayBuffer,
      });
      const out = into(size);
      output.copy(out, 0, 0, size);
      return out;
    } finally {
      // The job is over either way: its worker answered, or is gone.
      this.spare.give(output);
      if (staged) this.spare.give(staged);
    }
  }

  private run(job: DeflateJob): Promise<number> {
    const slot = this.pick();
    return new Promise<number>((resolve, reject) => {
      if (slot.jobs.size === 0) slot.worker.ref();
      slot.jobs.set(job.id, { resolve, reject });
      slot.worker.postMessage(job);
    });
  }

  /** Workers running now. */
  get running(): number {
    return this.slots.length;
  }

  /** Stops every worker; jobs still in flight fail. */
  async close(): Promise<void> {
    await Promise.all(this.slots.splice(0).map((s) => s.worker.terminate()));
  }

  /** The worker with the fewest jobs, starting another while some are busy and there is room for more. */
  private pick(): Slot {
    let best: Slot | undefined;
    for (const s of this.slots) if (!best || s.jobs.size < best.jobs.size) best = s;
    if (best && (best.jobs.size === 0 || this.slots.length >= this.size)) return best;
    return this.spawn();
  }

  private spawn(): Slot {
    this.module ??= new WebAssembly.Module(Buffer.from(DEFLATE_WASM, 'base64'));
    const worker = new Worker(`(${deflateWorker.toString()})(require('node:worker_threads'), require('node:zlib'))`, {
      eval: true,
      workerData: { module: this.module },
    });
    worker.unref();
    const slot: Slot = { worker, jobs: new Map() };
    this.slots.push(slot);
    const fail = (error: Error) => {
      const at = this.slots.indexOf(slot);
      if (at >= 0) this.slots.splice(at, 1);
      for (const p of slot.jobs.values()) p.reject(error);
      slot.jobs.clear();
    };
    worker.on('message', (reply: DeflateReply) => {
      const p = slot.jobs.get(reply.id);
      if (!p) return;
      slot.jobs.delete(reply.id);
      if (slot.jobs.size === 0) worker.unref();
      if ('error' in reply) p.reject(new Error(`gzip compression failed: ${reply.error}`));
      else p.resolve(reply.size);
    });
    worker.on('error', (e) => fail(new Error(`a gzip compression worker failed: ${e.message}`)));
    worker.on('exit', (code) => fail(new Error(`a gzip compression worker stopped (exit code ${code})`)));
    return slot;
  }
}

let shared: DeflateWorkers | undefined;

/** The process's workers, made on first use. */
export function deflateWorkers(): DeflateWorkers {
  shared ??= new DeflateWorkers();
  return shared;
}
