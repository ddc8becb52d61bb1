/**
 * The body of a deflate worker thread (deflate-workers.ts starts it from this function's source text). It therefore
 * uses nothing but its parameters and globals: no imports at run time, no helpers from other modules, nothing
 * TypeScript would have to emit code for.
 *
 * Each message asks for one complete gzip member of `length` bytes at `offset` in `input`, to be written at the start
 * of `output`: shared memory the main thread keeps (a pooled block read in place, a copy, memory lent for the output).
 * The reply gives the member's size.
 */
import type * as Threads from 'node:worker_threads';
import type * as Zlib from 'node:zlib';

/** What wasm/deflate.c exports (addresses and sizes are offsets and lengths in `memory`). */
export interface DeflateExports {
  memory: WebAssembly.Memory;
  alloc(n: number): number;
  compressor(level: number): number;
  bound(compressor: number, n: number): number;
  deflate(compressor: number, input: number, n: number, output: number, avail: number): number;
}

export interface DeflateJob {
  id: number;
  input: SharedArrayBuffer;
  offset: number;
  length: number;
  level: number;
  output: SharedArrayBuffer;
}

export type DeflateReply = { id: number; size: number } | { id: number; error: string };

export function deflateWorker(threads: typeof Threads, zlib: typeof Zlib): void {
  const port = threads.parentPort as Threads.MessagePort;
  const module = (threads.workerData as { module: WebAssembly.Module }).module;
  const lib = new WebAssembly.Instance(module, {}).exports as unknown as DeflateExports;
  const compressors = new Map<number, number>();
  // One input and one output area, replaced by larger ones when a larger part comes (see wasm/deflate.c).
  let input = 0;
  let inputRoom = 0;
  let output = 0;
  let outputRoom = 0;

  /** Writes the member into `job.output`; returns its size. */
  const member = (job: DeflateJob): number => {
    let c = compressors.get(job.level);
    if (c === undefined) {
      c = lib.compressor(job.level);
      if (c === 0) throw new Error(`no compressor for level ${job.level}`);
      compressors.set(job.level, c);
    }
    const bound = lib.bound(c, job.length);
    // At least 64 KiB each, so that there are areas (not address 0) even for an empty part.
    if (input === 0 || job.length > inputRoom) {
      inputRoom = Math.max(job.length, 65536);
      input = lib.alloc(inputRoom);
    }
    if (output === 0 || bound > outputRoom) {
      outputRoom = Math.max(bound, 65536);
      output = lib.alloc(outputRoom);
    }
    if (input === 0 || output === 0) throw new Error(`out of memory for a part of ${job.length} bytes`);
    const raw = new Uint8Array(job.input, job.offset, job.length);
    // The memory may have grown since the last view of it: views are taken after every alloc.
    new Uint8Array(lib.memory.buffer, input, job.length).set(raw);
    const n = lib.deflate(c, input, job.length, output, bound);
    if (n === 0 && job.length > 0) throw new Error('the compressed part did not fit its bound');
    if (10 + n + 8 > job.output.byteLength)
      throw new Error(`a member of ${10 + n + 8} bytes does not fit the ${job.output.byteLength} bytes lent for it`);
    const bytes = new Uint8Array(job.output, 0, 10 + n + 8);
    // The header zlib writes: no name or time; XFL 4 for the fastest level, 2 for the best; OS 3 (Unix) on every
    // platform, so that a layer's digest does not depend on the runner's OS.
    bytes.set([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, job.level === 1 ? 4 : job.level === 9 ? 2 : 0, 3]);
    bytes.set(new Uint8Array(lib.memory.buffer, output, n), 10);
    const trailer = new DataView(job.output, 10 + n, 8);
    trailer.setUint32(0, zlib.crc32(raw), true);
    trailer.setUint32(4, job.length >>> 0, true);
    return 10 + n + 8;
  };

  port.on('message', (job: DeflateJob) => {
    let reply: DeflateReply;
    try {
      reply = { id: job.id, size: member(job) };
    } catch (e) {
      reply = { id: job.id, error: e instanceof Error ? e.message : String(e) };
    }
    port.postMessage(reply);
  });
}
