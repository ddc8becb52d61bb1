// Helpers shared by the layer-pipeline tests (oci-compress*.test.ts): sample layer bytes, running the pipeline to the
// end, system tools on stdin, and splitting a gzip stream into its members.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { compressLayer, type CompressOptions } from '../../../src/oci/compress.js';
import { rng } from './tar-fixtures.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** Half text, half noise: compressible like a real layer, and never one repeated pattern. */
export function sample(bytes: number, seed: number): Buffer {
  const next = rng(seed);
  const out = Buffer.alloc(bytes);
  for (let i = 0; i < bytes;) {
    const run = Math.min(bytes - i, 1 + Math.floor(next() * 4096));
    if (next() < 0.5) for (let j = 0; j < run; j++) out[i + j] = Math.floor(next() * 256);
    else out.write(`line ${i} of a layer: /nix/store/${seed}-${i}\n`.repeat(run).slice(0, run), i, 'latin1');
    i += run;
  }
  return out;
}

export async function* once(buf: Buffer): AsyncGenerator<Buffer> {
  yield buf;
}

/** Runs compressLayer to the end: its output joined and as emitted, its result and its stats. */
export async function collect(raw: AsyncIterable<Buffer>, opts: CompressOptions) {
  const layer = compressLayer(raw, opts);
  const parts: Buffer[] = [];
  for await (const c of layer.chunks) parts.push(c);
  return { out: Buffer.concat(parts), parts, result: await layer.result, stats: layer.stats };
}

/** Runs a system tool with `input` on stdin; returns stdout, failing the test with its stderr. */
export function tool(cmd: string, args: string[], input: Buffer): Buffer {
  const r = spawnSync(cmd, args, { input, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr?.toString()}`);
  return r.stdout;
}

/** The gzip members of a stream, split where Python's zlib says each one ends. */
export function members(gz: Buffer): Buffer[] {
  const script =
    'import sys,zlib\nd=sys.stdin.buffer.read()\nwhile d:\n o=zlib.decompressobj(31); o.decompress(d); print(len(d)-len(o.unused_data)); d=o.unused_data';
  const sizes = tool('python3', ['-c', script], gz).toString().trim().split('\n').map(Number);
  let at = 0;
  return sizes.map((n) => gz.subarray(at, (at += n)));
}

export const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
/** Small blocks and a few jobs: many blocks per test layer. */
export const small: Pick<CompressOptions, 'chunkSize' | 'parallelism'> = { chunkSize: 64 * KiB, parallelism: 3 };
