/**
 * Opens what `image` points at, recognised by its CONTENT (Nix output names say nothing reliable: `result`, or a
 * store path named after the image): an OCI layout directory, a streamLayeredImage script (`#!`), nix2container's
 * image.json, or a docker-archive tar, plain or gzip/zstd compressed (decompressed as it streams).
 */
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, pipeline } from 'node:stream';
import * as zlib from 'node:zlib';
import { InputError, errorMessage } from '../../errors.js';
import type { ImageSource } from '../types.js';
import { looksLikeTarHeader, readDockerArchive } from './docker-archive.js';
import { ArchiveFile } from './file-source.js';
import { isNix2containerImage, openNix2container } from './nix2container.js';
import type { LayerTarOptions } from './nix2container-tar.js';
import { openOciLayout, type OciLayoutOptions } from './oci-layout.js';

// One entry point for the pusher: open any image, and check rebuilt layers before anything is tagged.
export { verifyDiffId } from './nix2container.js';

export interface OpenImageOptions extends OciLayoutOptions, LayerTarOptions {
  /** Environment of a streamLayeredImage script; default this process's. */
  env?: NodeJS.ProcessEnv;
}

export type ImageKind =
  'oci-layout' | 'docker-archive' | 'docker-archive-gzip' | 'docker-archive-zstd' | 'stream-script' | 'nix2container';

export const SUPPORTED_FORMATS =
  'a docker-archive tar from dockerTools.buildImage or buildLayeredImage (uncompressed, gzip or zstd), the script ' +
  'of dockerTools.streamLayeredImage, the image.json of nix2container, or an OCI image layout directory';

/** image.json lists every store path of the image; even huge closures stay well below this. */
const MAX_IMAGE_JSON = 64 * 1024 * 1024;
const STDERR_TAIL = 8 * 1024;
/**
 * Read and decompress in 1 MiB pieces rather than the 64 KiB / 16 KiB defaults: file reads and zlib steps queue on the
 * libuv threadpool behind the layer compression jobs, so each one costs a wait; 16x fewer of them kept a 350 MB push
 * from stalling between blocks (and halved the main thread's read time).
 */
const READ_CHUNK = 1 << 20;

const unknown = (path: string, why: string) =>
  new InputError(`${path}: unknown image format (${why}). oci-push reads ${SUPPORTED_FORMATS}.`);

export async function detectImageKind(path: string): Promise<ImageKind> {
  const st = await stat(path).catch((e: NodeJS.ErrnoException) => {
    throw new InputError(`image '${path}' cannot be read (${e.code ?? e.message}); build it first or fix the path`);
  });
  if (st.isDirectory()) {
    const has = async (f: string) => (await stat(join(path, f)).catch(() => undefined))?.isFile() ?? false;
    if ((await has('oci-layout')) && (await has('index.json'))) return 'oci-layout';
    throw unknown(path, 'a directory without oci-layout and index.json');
  }
  if (!st.isFile()) throw unknown(path, 'neither a file nor a directory');
  const fh = await open(path, 'r');
  const head = Buffer.alloc(512);
  const { bytesRead } = await fh.read(head, 0, 512, 0).finally(() => fh.close());
  const b = head.subarray(0, bytesRead);
  if (b.length === 0) throw unknown(path, 'an empty file');
  if (b[0] === 0x23 && b[1] === 0x21) return 'stream-script';
  if (b[0] === 0x1f && b[1] === 0x8b) return 'docker-archive-gzip';
  if (b.length >= 4 && b.readUInt32BE(0) === 0x28b52ffd) return 'docker-archive-zstd';
  if (b.toString('latin1').trimStart().startsWith('{')) {
    if (st.size > MAX_IMAGE_JSON) throw unknown(path, 'a JSON file too large to be an image.json');
    let v: unknown;
    try {
      v = JSON.parse(await readFile(path, 'utf8'));
    } catch (e) {
      throw unknown(path, `a file starting with '{' that is not JSON: ${errorMessage(e)}`);
    }
    if (isNix2containerImage(v)) return 'nix2container';
    throw unknown(path, 'JSON without the layers and image-config of a nix2container image.json');
  }
  if (looksLikeTarHeader(b)) return 'docker-archive';
  throw unknown(path, `starts with bytes ${b.subarray(0, 4).toString('hex')}`);
}

/** Decompression errors name the file and the fix; read errors pass as they are. */
async function* decompress(path: string, kind: 'gzip' | 'zstd'): AsyncGenerator<Buffer> {
  if (kind === 'zstd' && typeof zlib.createZstdDecompress !== 'function')
    throw new InputError(`${path} is zstd-compressed, which needs Node >= 22.15 to read`);
  const opts = { chunkSize: READ_CHUNK };
  const z = kind === 'gzip' ? zlib.createGunzip(opts) : zlib.createZstdDecompress(opts);
  // pipeline forwards a read error into `z`; its own callback has nothing left to report.
  pipeline(createReadStream(path, { highWaterMark: READ_CHUNK }), z, () => {});
  try {
    for await (const chunk of z) yield chunk as Buffer;
  } catch (e) {
    const code = String((e as NodeJS.ErrnoException).code ?? '');
    if (/^(Z_|ZSTD_|ERR_ZSTD|ERR_ZLIB)/.test(code) || (e as Error).message === 'unexpected end of file')
      throw new InputError(`${path}: the ${kind} data is corrupt (${errorMessage(e)}); rebuild the image`);
    throw e;
  }
}

/** A damaged tar names the image and the fix rather than only a byte offset. */
const tarError = (path: string) => async (e: unknown) =>
  e instanceof InputError || !/^tar: /.test(errorMessage(e))
    ? e
    : new InputError(`${path}: ${errorMessage(e)}; the image archive is damaged, rebuild it`);

/**
 * Runs a streamLayeredImage script (argument array, no shell) and reads its stdout as the archive, in one pass.
 * Its exit status is checked when the stream ends; its stderr tail goes into the error.
 */
function runStreamScript(path: string, env?: NodeJS.ProcessEnv): ImageSource {
  const child = spawn(path, [], { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString('utf8')).slice(-STDERR_TAIL);
  });
  const exit = new Promise<{ code: number | null; signal: string | null; error?: Error }>((resolve) => {
    child.on('error', (error) => resolve({ code: null, signal: null, error }));
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  const failure = (r: Awaited<typeof exit>, cause?: unknown) =>
    new InputError(
      r.error
        ? `cannot run the image script ${path}: ${r.error.message} (is it a streamLayeredImage output?)`
        : `the image script ${path} failed (${r.signal ? `signal ${r.signal}` : `exit code ${r.code}`})` +
            `${cause ? `: ${errorMessage(cause)}` : ''}${stderr.trim() ? `\n${stderr.trim()}` : ''}`,
    );
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
  // Read at once into a stream of our own: when a child exits, Node drains (discards) any stdout nobody listens to
  // yet, and the archive may be opened a while before its first layer is read (a small image fits in the pipe, so
  // the script can be gone by then). pipe() holds the rest back in the pipe, as before.
  const stdout = new PassThrough({ highWaterMark: 1 << 20 });
  child.stdout.on('error', (e) => stdout.destroy(e));
  child.stdout.pipe(stdout);
  return readDockerArchive(stdout, {
    format: 'docker-archive-stream',
    label: path,
    onEnd: async () => {
      const r = await exit;
      if (r.error || r.code !== 0) throw failure(r);
    },
    onError: async (e) => {
      // A truncated archive usually means the script died: wait briefly for its status to say why.
      const r = await Promise.race([
        exit,
        new Promise<undefined>((res) => setTimeout(() => res(undefined), 2000).unref()),
      ]);
      if (r && (r.error || r.code !== 0)) return failure(r, e);
      kill();
      return tarError(path)(e);
    },
    close: async () => {
      kill();
      await exit;
    },
  });
}

/** Opens the image at `path`, whatever its format (see SUPPORTED_FORMATS). */
export async function openImage(path: string, opts: OpenImageOptions = {}): Promise<ImageSource> {
  const kind = await detectImageKind(path);
  switch (kind) {
    case 'oci-layout':
      return openOciLayout(path, opts);
    case 'nix2container':
      return openNix2container(path, opts);
    case 'stream-script':
      return runStreamScript(path, opts.env);
    case 'docker-archive': {
      const file = await ArchiveFile.open(path);
      return readDockerArchive(file, { label: path, onError: tarError(path), file, close: () => file.close() });
    }
    case 'docker-archive-gzip':
    case 'docker-archive-zstd':
      return readDockerArchive(decompress(path, kind === 'docker-archive-gzip' ? 'gzip' : 'zstd'), {
        label: path,
        onError: tarError(path),
      });
  }
}
