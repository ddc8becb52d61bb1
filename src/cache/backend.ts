/**
 * What the cache action asks of a backend. main restores, post saves; the action owns keys, the store diff, path
 * selection and fail-open handling, so a backend only moves binary-cache bytes and reports what it did.
 */
import type { NixCommand } from '../nix/command.js';
import type { Platform } from '../platform/types.js';

export interface RestoreRequest {
  primaryKey: string;
  /** Prefixes, tried in order after the primary key. */
  restoreKeys: string[];
  trustedPublicKeys: string[];
  /** No keys were given and the backend is the repository's own (GitHub/GitLab cache): import without signatures. */
  trustSource: boolean;
  /** Scratch space for this phase (under the runner's temp dir). */
  tempDir: string;
  /** Aborted at the phase's time limit: stop the work and undo what is half done. */
  signal?: AbortSignal;
}

export interface RestoreResult {
  /** The key that matched, if any (GitHub: the entry's key; GitLab: the cache key the template declared). */
  matchedKey?: string;
  pathsRestored: number;
  bytesDown: number;
  /** Backend-specific memory for save (e.g. GitHub: the entry chain that was restored). JSON-serialisable, no secret. */
  memo?: unknown;
  /** Every valid store path after the restore, when the backend knows it (spares main listing the store again). */
  validAfter?: Set<string>;
}

export interface SaveRequest {
  primaryKey: string;
  /** Unique per job run, appended to the primary key for immutable backends. */
  entrySuffix: string;
  /** Store paths to save (already selected: new, not upstream, filtered). */
  paths: string[];
  signingKey?: string;
  tempDir: string;
  /** From RestoreResult.memo. */
  memo?: unknown;
  /**
   * The `max-size` input in bytes, for backends that keep one growing cache (GitLab: the directory is pruned, oldest
   * entries first, down to this after adding the new paths). Undefined: no limit. Ignored by the other backends.
   */
  maxBytes?: number;
  /** Aborted at the phase's time limit. */
  signal?: AbortSignal;
}

export interface SaveResult {
  pathsSaved: number;
  bytesUp: number;
  /** Cache entries created (GitHub goal: <= 3 per save). */
  entries: number;
}

export interface Backend {
  readonly name: 'github' | 'store' | 'gitlab';
  restore(p: Platform, nix: NixCommand, req: RestoreRequest): Promise<RestoreResult>;
  save(p: Platform, nix: NixCommand, req: SaveRequest): Promise<SaveResult>;
}
