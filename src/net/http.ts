/**
 * HTTP downloads that stream to disk while hashing, so a release tarball is read once. node:http(s) rather than
 * fetch: in a fresh process (every action step is one) it starts faster and streams with less overhead. Failures
 * name the URL; 429/5xx and network errors are TransientError (retried by the caller's withRetry), 404 is not.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
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

const MAX_REDIRECTS = 5;

function get(url: URL, timeoutMs: number): Promise<http.IncomingMessage> {
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.get(url, { timeout: timeoutMs, headers: { 'user-agent': 'flake-ci' } }, resolve);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`)));
    req.on('error', reject);
  });
}

async function open(url: string, timeoutMs: number): Promise<Readable> {
  let u = new URL(url);
  if (u.protocol === 'file:') return createReadStream(fileURLToPath(u));
  for (let hop = 0; ; hop++) {
    if (u.protocol !== 'https:' && u.protocol !== 'http:')
      throw new Error(`Unsupported URL scheme in ${displayUrl(u.href)}: use https://, http:// or file://`);
    let res: http.IncomingMessage;
    try {
      res = await get(u, timeoutMs);
    } catch (e) {
      throw new TransientError(`Could not reach ${displayUrl(u.href)}: ${e instanceof Error ? e.message : String(e)}`);
    }
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location && hop < MAX_REDIRECTS) {
      res.resume();
      u = new URL(res.headers.location, u);
      continue;
    }
    if (status === 429 || status >= 500) {
      res.resume();
      const after = res.headers['retry-after'];
      throw new TransientError(
        `${displayUrl(u.href)} answered ${status}`,
        parseRetryAfter(Array.isArray(after) ? after[0] : after),
      );
    }
    if (status !== 200) {
      res.resume();
      throw new HttpError(u.href, status, `${displayUrl(u.href)} answered ${status} ${res.statusMessage ?? ''}`.trim());
    }
    // The socket timeout above covers a stalled body too, because it is an inactivity timeout.
    return res;
  }
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
export async function downloadToFile(url: string, file: string, timeoutMs = 60_000): Promise<Download> {
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
  // A connection closed early ends the stream cleanly; without this a truncated file would read as a bad checksum.
  const length = 'headers' in body ? Number((body as http.IncomingMessage).headers['content-length']) : NaN;
  if (Number.isFinite(length) && bytes !== length)
    throw new TransientError(`Download of ${displayUrl(url)} was cut off after ${bytes} of ${length} bytes`);
  return { sha256: hash.digest('hex'), bytes };
}
