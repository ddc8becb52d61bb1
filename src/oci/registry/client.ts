/**
 * A client for one registry host: blobs (HEAD, mount, streamed chunked upload, GET) and manifests (GET, PUT,
 * DELETE), on top of RegistrySession (authentication, timeouts, retries within a push-wide budget).
 */
import { createHash } from 'node:crypto';
import { InputError, TransientError } from '../../errors.js';
import type { Digest } from '../types.js';
import { repositoryScope } from './auth.js';
import { isDigest } from './reference.js';
import { RegistrySession } from './session.js';
import type { Reply } from './transport.js';
import { header } from './transport.js';
import { uploadBlob, type ByteSource, type UploadOptions } from './upload.js';

export { isRetryable, RetryBudgetExhausted } from './transport.js';
export { RetryBudget } from './retry-budget.js';
export type { Call, RegistryClientOptions } from './session.js';

const MANIFEST_LIMIT = 4 << 20;
const REPOSITORY = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const REFERENCE = /^(?:[\w][\w.-]{0,127}|sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

const sha256 = (b: Buffer): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function checkRepository(repo: string): string {
  if (!REPOSITORY.test(repo)) throw new InputError(`'${repo}' is not a valid repository name`);
  return repo;
}

function checkDigest(digest: string): Digest {
  if (!isDigest(digest)) throw new InputError(`'${digest}' is not a digest (sha256: and 64 lower-case hex digits)`);
  return digest;
}

export class RegistryClient extends RegistrySession {
  private scopes(repo: string): string[] {
    return [repositoryScope(checkRepository(repo), ['pull', 'push'])];
  }

  /** The blob's size when the repository has it, undefined when not. */
  async hasBlob(repo: string, digest: Digest): Promise<number | undefined> {
    const reply = await this.call({
      method: 'HEAD',
      path: `/v2/${checkRepository(repo)}/blobs/${checkDigest(digest)}`,
      scopes: this.scopes(repo),
      redirects: true,
    });
    if (reply.status === 404) return undefined;
    if (reply.status !== 200) throw this.unexpected(reply, `HEAD blob ${digest}`, repo);
    const size = Number(header(reply, 'content-length'));
    return Number.isFinite(size) ? size : 0;
  }

  /** Cross-repository mount; false when the registry did not mount it (the caller uploads instead). */
  async mountBlob(repo: string, digest: Digest, fromRepo: string): Promise<boolean> {
    const query = `mount=${encodeURIComponent(checkDigest(digest))}&from=${encodeURIComponent(checkRepository(fromRepo))}`;
    let reply: Reply;
    try {
      reply = await this.call({
        method: 'POST',
        path: `/v2/${checkRepository(repo)}/blobs/uploads/?${query}`,
        scopes: [...this.scopes(repo), repositoryScope(fromRepo, ['pull'])],
      });
    } catch (e) {
      // Not allowed to read the source: an upload still works when the target allows pushing.
      if (!(e instanceof InputError)) throw e;
      this.debug(`mount of ${digest} from ${fromRepo} refused: ${e.message}`);
      return false;
    }
    if (reply.status === 201) return true;
    if (reply.status === 202) {
      // Not mounted: the registry opened an upload session instead. Close it rather than leave it to expire.
      const location = header(reply, 'location');
      if (location)
        await this.callOnce({ method: 'DELETE', url: new URL(location, this.base), scopes: this.scopes(repo) }).catch(
          () => undefined,
        );
      return false;
    }
    throw this.unexpected(reply, `mount of ${digest} from ${fromRepo}`, repo);
  }

  /** Streams a blob (chunked PATCH uploads, resumed from the registry's Range after a failure); see upload.ts. */
  uploadBlob(repo: string, chunks: ByteSource, opts: UploadOptions = {}): Promise<{ digest: Digest; size: number }> {
    return uploadBlob(this, checkRepository(repo), this.scopes(repo), chunks, opts);
  }

  async getManifest(
    repo: string,
    ref: string,
    accept: string[],
  ): Promise<{ mediaType: string; digest: Digest; body: Buffer } | undefined> {
    if (!REFERENCE.test(ref)) throw new InputError(`'${ref}' is neither a tag nor a digest`);
    const reply = await this.call({
      method: 'GET',
      path: `/v2/${checkRepository(repo)}/manifests/${ref}`,
      headers: { accept: accept.join(', ') },
      scopes: this.scopes(repo),
      maxBody: MANIFEST_LIMIT,
    });
    if (reply.status === 404) return undefined;
    if (reply.status !== 200) throw this.unexpected(reply, `GET manifest ${repo}:${ref}`, repo);
    const digest = sha256(reply.body);
    if (isDigest(ref) && ref.startsWith('sha256:') && ref !== digest)
      throw new Error(`Registry ${this.registry} answered ${repo}@${ref} with a manifest whose digest is ${digest}`);
    let mediaType = (header(reply, 'content-type') ?? '').split(';')[0]?.trim() ?? '';
    if (!mediaType || mediaType === 'application/json' || mediaType === 'text/plain') {
      try {
        mediaType = String((JSON.parse(reply.body.toString('utf8')) as { mediaType?: string }).mediaType ?? mediaType);
      } catch {
        // leave it: the caller will fail to parse it with a better message
      }
    }
    return { mediaType, digest, body: reply.body };
  }

  /** Puts a manifest by tag or digest; returns its digest (sha256 of exactly these bytes). */
  async putManifest(repo: string, ref: string, body: Buffer, mediaType: string): Promise<Digest> {
    if (!REFERENCE.test(ref)) throw new InputError(`'${ref}' is neither a tag nor a digest`);
    const reply = await this.call({
      method: 'PUT',
      path: `/v2/${checkRepository(repo)}/manifests/${ref}`,
      headers: { 'content-type': mediaType },
      body,
      scopes: this.scopes(repo),
    });
    if (reply.status !== 201 && reply.status !== 200 && reply.status !== 202)
      throw this.unexpected(reply, `PUT manifest ${repo}:${ref}`, repo);
    const digest = sha256(body);
    const stated = header(reply, 'docker-content-digest');
    if (stated && stated !== digest) this.debug(`registry states digest ${stated} for manifest ${digest}`);
    return digest;
  }

  async deleteManifest(repo: string, digest: Digest): Promise<boolean> {
    const reply = await this.call({
      method: 'DELETE',
      path: `/v2/${checkRepository(repo)}/manifests/${checkDigest(digest)}`,
      scopes: [repositoryScope(checkRepository(repo), ['delete', 'pull', 'push'])],
    });
    if (reply.status === 404) return false;
    if (reply.status !== 202 && reply.status !== 200) throw this.unexpected(reply, `DELETE manifest ${digest}`, repo);
    return true;
  }

  /** A small blob (an image config), verified against its digest. Follows redirects without our credentials. */
  async getBlob(repo: string, digest: Digest, maxBytes: number): Promise<Buffer> {
    const reply = await this.call({
      method: 'GET',
      path: `/v2/${checkRepository(repo)}/blobs/${checkDigest(digest)}`,
      scopes: this.scopes(repo),
      maxBody: maxBytes,
      redirects: true,
    });
    if (reply.status !== 200) throw this.unexpected(reply, `GET blob ${digest}`, repo);
    if (digest.startsWith('sha256:') && sha256(reply.body) !== digest)
      throw new TransientError(`Blob ${digest} from ${this.registry} arrived with digest ${sha256(reply.body)}`);
    return reply.body;
  }
}
