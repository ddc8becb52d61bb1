/**
 * Streamed blob upload: POST opens a session, PATCH sends fixed-size chunks while the next chunk is being produced
 * (so compression and network overlap), PUT ?digest= closes it, carrying the last, shorter chunk as its body (the
 * OCI distribution spec allows the closing PUT to hold the final chunk; it saves one request per blob, and each
 * request costs the registry more than its bytes do). The digest is of exactly the bytes sent, so the caller's
 * stream can be compressed on the fly. A failed PATCH or PUT asks the registry how far it got (GET on the session
 * -> Range) and resends from there; that works while the missing bytes are inside the chunk held in memory. When it
 * cannot work (the session is gone, or the registry lost bytes from before this chunk) the error says the layer must
 * be re-read: its bytes are gone from memory and only the caller can produce them again.
 */
import { createHash } from 'node:crypto';
import { InputError, TransientError, errorMessage } from '../../errors.js';
import type { Digest } from '../types.js';
import type { Call } from './client.js';
import type { Reply } from './transport.js';
import { RetryBudgetExhausted, header, registryErrorText } from './transport.js';
import { chunkGroups, lengthOf, partsFrom, type ByteSource } from './chunks.js';

export { fixedChunks, type ByteSource } from './chunks.js';

export interface UploadOptions {
  /** Bytes per PATCH (default 8 MiB; at most two chunks per upload are in memory). */
  chunkSize?: number;
  /** Refuse to commit a blob with another digest (a source that states its digest). */
  expectedDigest?: Digest;
  /**
   * The sha256 of exactly the bytes `chunks` yields, from their producer, asked for once the last one has been read.
   * A compressor hashes what it emits anyway; the upload then does not hash the same bytes a second time. If it were
   * ever wrong, the registry would refuse the PUT, as it checks the digest itself.
   */
  sourceDigest?: () => Promise<Digest>;
  /**
   * Called once for each chunk the registry has acknowledged, with its parts: nothing here reads them again, so their
   * producer may reuse the memory (compress-arena.ts).
   */
  sent?: (parts: Buffer[]) => void;
}

/** What upload needs from the client (kept narrow so this module does not depend on the class). */
export interface UploadHost {
  readonly registry: string;
  readonly base: URL;
  readonly attempts: number;
  call(c: Call): Promise<Reply>;
  callOnce(c: Call): Promise<Reply>;
  pause(error: TransientError, attempt: number): Promise<void>;
  hasBlob(repo: string, digest: Digest): Promise<number | undefined>;
  unexpected(reply: Reply, what: string, repo: string): Error;
  debug(message: string): void;
}

export const DEFAULT_CHUNK_SIZE = 8 << 20;

/** The upload cannot continue from memory: retrying means producing the layer's bytes again. */
export class LayerRereadNeeded extends TransientError {}

/** Range: `0-N` is the last byte held; distribution says `0-0` for an empty upload too. */
function bytesHeld(reply: Reply): number {
  const m = /^(?:bytes[= ])?0-(\d+)$/.exec(header(reply, 'range')?.trim() ?? '');
  if (!m) return 0;
  const last = Number(m[1]);
  return last === 0 ? 0 : last + 1;
}

export async function uploadBlob(
  host: UploadHost,
  repo: string,
  scopes: string[],
  chunks: ByteSource,
  opts: UploadOptions,
): Promise<{ digest: Digest; size: number }> {
  const chunkSize = Math.max(1, opts.chunkSize ?? DEFAULT_CHUNK_SIZE);
  const reread = (why: string) =>
    new LayerRereadNeeded(`Upload of a blob to ${host.registry}/${repo} failed (${why}); the layer must be re-read`);

  // The first chunk is produced while the session is being opened.
  const it = chunkGroups(chunks, chunkSize)[Symbol.asyncIterator]();
  let next = it.next();
  next.catch(() => undefined); // awaited below; this only keeps an early failure from being "unhandled"
  let location: URL | undefined;
  const hash = opts.sourceDigest ? undefined : createHash('sha256');
  let offset = 0;
  // The short chunk chunkGroups gives only at the end of the stream: it goes with the PUT.
  let last: Buffer[] | undefined;
  try {
    const started = await host.call({ method: 'POST', path: `/v2/${repo}/blobs/uploads/`, scopes });
    if (started.status !== 202) throw host.unexpected(started, 'starting a blob upload', repo);
    location = sessionUrl(started, host.base);
    for (;;) {
      const r = await next;
      if (r.done) break;
      const chunk = r.value;
      next = it.next();
      next.catch(() => undefined);
      if (hash) for (const part of chunk) hash.update(part);
      const n = lengthOf(chunk);
      if (n < chunkSize) {
        last = chunk;
        break;
      }
      location = await sendChunk(host, repo, scopes, location, chunk, offset, reread);
      offset += n;
      opts.sent?.(chunk);
    }
    const digest: Digest = hash ? `sha256:${hash.digest('hex')}` : await (opts.sourceDigest as () => Promise<Digest>)();
    if (opts.expectedDigest && opts.expectedDigest !== digest)
      throw new InputError(`The blob's digest is ${digest}, but its source states ${opts.expectedDigest}`);
    const size = offset + (last ? lengthOf(last) : 0);
    await commit(host, repo, scopes, { location, digest, size, last }, reread);
    if (last) opts.sent?.(last);
    return { digest, size };
  } catch (e) {
    // Best effort: close the session now instead of leaving it to the registry's purge.
    if (location) await host.callOnce({ method: 'DELETE', url: location, scopes }).catch(() => undefined);
    // Not awaited: a return() queues behind the prefetching next(), which may wait on a producer that is stuck.
    void it.return?.(undefined).catch(() => undefined);
    throw e;
  }
}

function sessionUrl(reply: Reply, base: URL): URL {
  const location = header(reply, 'location');
  if (!location) throw new Error(`The registry answered ${reply.status} without a Location for the upload session`);
  return new URL(location, base);
}

/** One PATCH of the chunk from byte `sent` of it on; the session URL on success. */
async function patch(
  host: UploadHost,
  repo: string,
  scopes: string[],
  location: URL,
  chunk: Buffer[],
  range: { start: number; sent: number; end: number },
  reread: (why: string) => LayerRereadNeeded,
): Promise<URL> {
  const { start, sent, end } = range;
  const reply = await host.callOnce({
    method: 'PATCH',
    url: location,
    headers: { 'content-type': 'application/octet-stream', 'content-range': `${start + sent}-${end}` },
    body: sent ? partsFrom(chunk, sent) : chunk,
    scopes,
  });
  if (reply.status === 202 || reply.status === 204) return sessionUrl(reply, location);
  if (reply.status === 404 || reply.status === 416)
    throw reread(`the registry answered ${reply.status} to bytes ${start + sent}-${end}: ${registryErrorText(reply)}`);
  throw host.unexpected(reply, 'PATCH of a blob chunk', repo);
}

/**
 * Sends a chunk, resuming from the registry's Range after a failure. `failed`: the chunk's first try went out another
 * way (as the closing PUT's body) and failed, so this begins by asking how far it got.
 */
async function sendChunk(
  host: UploadHost,
  repo: string,
  scopes: string[],
  location: URL,
  chunk: Buffer[],
  start: number,
  reread: (why: string) => LayerRereadNeeded,
  failed?: TransientError,
): Promise<URL> {
  const end = start + lengthOf(chunk) - 1;
  let sent = 0;
  let pending = failed;
  for (let attempt = 0; ; attempt++) {
    let failure: TransientError;
    if (pending) [failure, pending] = [pending, undefined];
    else {
      try {
        return await patch(host, repo, scopes, location, chunk, { start, sent, end }, reread);
      } catch (e) {
        if (!(e instanceof TransientError) || e instanceof RetryBudgetExhausted || e instanceof LayerRereadNeeded)
          throw e;
        failure = e;
      }
    }
    if (attempt + 1 >= host.attempts) throw reread(`gave up after ${attempt} retries: ${failure.message}`);
    await host.pause(failure, attempt);
    // Ask how far the registry got; the session URL it answers with carries its new state.
    let status: Reply;
    try {
      status = await host.call({ method: 'GET', url: location, scopes });
    } catch (e) {
      if (e instanceof TransientError && !(e instanceof RetryBudgetExhausted)) throw reread(errorMessage(e));
      throw e;
    }
    if (status.status !== 204 && status.status !== 200)
      throw reread(`after "${failure.message}" the registry lost the upload session (${status.status})`);
    const held = bytesHeld(status);
    if (header(status, 'location')) location = sessionUrl(status, location);
    if (held < start || held > end + 1)
      throw reread(`after "${failure.message}" the registry holds ${held} bytes, this chunk starts at ${start}`);
    host.debug(`resuming the upload to ${repo} at byte ${held} after: ${failure.message}`);
    if (held === end + 1) return location;
    sent = held - start;
  }
}

interface Closing {
  location: URL;
  digest: Digest;
  /** The blob's size, `last` included. */
  size: number;
  /** The final chunk, sent as the PUT's body; the bytes before it are with the registry already. */
  last?: Buffer[];
}

/**
 * The closing PUT with the last chunk as its body. Its reply, or: the session's URL once the chunk went another way
 * (a PATCH, resumed from the registry's Range) and a PUT without a body must close the session; or 'there' when
 * the blob turned out to be committed already.
 */
async function closeWithLast(
  host: UploadHost,
  repo: string,
  scopes: string[],
  c: Required<Closing>,
  reread: (why: string) => LayerRereadNeeded,
): Promise<Reply | URL | 'there'> {
  const start = c.size - lengthOf(c.last);
  let reply: Reply;
  try {
    reply = await host.callOnce({
      method: 'PUT',
      url: withDigest(c.location, c.digest),
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${c.size - 1}` },
      body: c.last,
      scopes,
    });
  } catch (e) {
    if (!(e instanceof TransientError) || e instanceof RetryBudgetExhausted) throw e;
    // Where the body went is unknown: the chunk path asks the registry and resends what it lacks.
    try {
      return await sendChunk(host, repo, scopes, c.location, c.last, start, reread, e);
    } catch (lost) {
      // The PUT may have gone through with only its answer lost: the session is gone then, and the blob is there.
      if (lost instanceof LayerRereadNeeded && (await host.hasBlob(repo, c.digest).catch(() => undefined)) === c.size)
        return 'there';
      throw lost;
    }
  }
  // A registry that takes no body on the closing PUT: the chunk goes as a PATCH instead. A refused digest is reported
  // as such (commit).
  if ((reply.status !== 400 && reply.status !== 416) || /DIGEST_INVALID/.test(registryErrorText(reply))) return reply;
  host.debug(
    `${reply.status} to the last chunk on the closing PUT (${registryErrorText(reply)}): sending it as a PATCH`,
  );
  return sendChunk(host, repo, scopes, c.location, c.last, start, reread);
}

/** The session URL with `digest=` added to its own query (signed state), as the closing PUT needs it. */
function withDigest(location: URL, digest: Digest): URL {
  const url = new URL(location.href);
  url.search = `${url.search ? `${url.search}&` : '?'}digest=${encodeURIComponent(digest)}`;
  return url;
}

async function commit(
  host: UploadHost,
  repo: string,
  scopes: string[],
  { location, digest, size, last }: Closing,
  reread: (why: string) => LayerRereadNeeded,
): Promise<void> {
  let reply: Reply;
  if (last) {
    const sent = await closeWithLast(host, repo, scopes, { location, digest, size, last }, reread);
    if (sent instanceof URL) return commit(host, repo, scopes, { location: sent, digest, size }, reread);
    if (sent === 'there') return;
    reply = sent;
  } else {
    try {
      reply = await host.call({ method: 'PUT', url: withDigest(location, digest), scopes });
    } catch (e) {
      if (e instanceof TransientError && !(e instanceof RetryBudgetExhausted)) throw reread(errorMessage(e));
      throw e;
    }
  }
  if (reply.status === 201 || reply.status === 204) {
    const stated = header(reply, 'docker-content-digest');
    if (stated && stated !== digest) throw reread(`the registry stored ${stated} instead of ${digest}`);
    return;
  }
  // A retried PUT whose first try was committed finds no session any more: the blob being there is success.
  if (reply.status === 404 && (await host.hasBlob(repo, digest)) === size) return;
  if (reply.status === 400 || reply.status === 404 || reply.status === 416)
    throw reread(`closing it as ${digest} was refused: ${registryErrorText(reply) || reply.status}`);
  throw host.unexpected(reply, `PUT of blob ${digest}`, repo);
}
