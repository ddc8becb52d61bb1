/**
 * HTTP downloads that stream to disk while hashing, so a release tarball is read once. Failures name the URL;
 * 429/5xx and network errors are TransientError (retried by the caller's withRetry), 404 and friends are not.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { TransientError } from '../errors.js';
import { parseRetryAfter } from './retry.js';

export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly url: string,
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The URL without credentials or query, for messages (a signed URL's query can be a secret). */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '<invalid URL>';
  }
}

async function open(url: string, timeoutMs: number): Promise<Readable> {
  const u = new URL(url);
  if (u.protocol === 'file:') return createReadStream(fileURLToPath(u));
  if (u.protocol !== 'https:' && u.protocol !== 'http:')
    throw new Error(`Unsupported URL scheme in ${displayUrl(url)}: use https://, http:// or file://`);
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'follow', signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    const cause =
      e instanceof Error && e.cause instanceof Error ? e.cause.message : e instanceof Error ? e.message : String(e);
    throw new TransientError(`Could not reach ${displayUrl(url)}: ${cause}`);
  }
  if (res.status === 429 || res.status >= 500) {
    throw new TransientError(
      `${displayUrl(url)} answered ${res.status}`,
      parseRetryAfter(res.headers.get('retry-after')),
    );
  }
  if (!res.ok || !res.body)
    throw new HttpError(url, res.status, `${displayUrl(url)} answered ${res.status} ${res.statusText}`);
  return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
}

export async function fetchText(url: string, timeoutMs = 30_000, maxBytes = 1 << 20): Promise<string> {
  const body = await open(url, timeoutMs);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) {
      body.destroy();
      throw new Error(`${displayUrl(url)} is larger than ${maxBytes} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export interface Download {
  sha256: string;
  bytes: number;
}

/** Streams url into file, hashing on the way. The caller verifies the hash before using the file. */
export async function downloadToFile(url: string, file: string, timeoutMs = 10 * 60_000): Promise<Download> {
  const body = await open(url, timeoutMs);
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  try {
    await pipeline(body, tap, createWriteStream(file, { mode: 0o600 }));
  } catch (e) {
    throw new TransientError(
      `Download of ${displayUrl(url)} failed after ${bytes} bytes: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  return { sha256: hash.digest('hex'), bytes };
}
