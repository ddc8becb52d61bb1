// Types for actions-cache-service.mjs and actions-cache-azurite.mjs (plain JS, shared with bench/).
//
// The double speaks the GitHub Actions cache service v2 as @actions/cache 6 calls it:
//   POST {origin}/twirp/github.actions.results.api.v1.CacheService/<Method>, Content-Type application/json,
//   Authorization: Bearer ACTIONS_RUNTIME_TOKEN; bodies use the proto field names (key, version, size_bytes as a
//   string, restore_keys) and so do the answers (ok, signed_upload_url, entry_id, signed_download_url, matched_key,
//   message). Errors are twirp errors: HTTP status + {"code", "msg"}.
// Answers: read-only token -> CreateCacheEntry 200 {ok:false, message:"cache write denied: ..."}; existing or
// reserved key+version in the scope -> 409 already_exists; more than rateLimit.perMinute accepted reservations in 60 s
// -> 429 resource_exhausted "rate limit exceeded" with Retry-After; token without readable scopes ->
// GetCacheEntryDownloadURL 403 permission_denied "cache read denied: ..."; bad or missing token -> 401
// unauthenticated; a miss -> 200 {ok:false}.

export type TwirpMethod = 'CreateCacheEntry' | 'FinalizeCacheEntryUpload' | 'GetCacheEntryDownloadURL';

/** One cache scope of the token's `ac` claim; Permission bits: 1 read, 2 write (3 both). */
export interface CacheScope {
  Scope: string;
  Permission: number;
}

export interface TokenOptions {
  runId?: string;
  jobId?: string;
  /** Default: the service's ref, read-write (or read-only with readOnly). Order matters: first = current ref. */
  scopes?: CacheScope[];
  readOnly?: boolean;
  expiresInSeconds?: number;
}

export interface CacheFailures {
  /** Nothing listens on the service's port: connection refused (the port is kept for when it comes back). */
  down?: boolean;
  /**
   * Answer with this HTTP status instead of handling the call (500/503/429 as twirp errors, others as a gateway's
   * HTML page); only for `methods` if given; `times` answers, then normal again.
   */
  status?: { status: number; methods?: TwirpMethod[]; times?: number };
  /** Download URLs serve altered bytes: 'flip' (true) inverts 16 bytes mid-archive, 'truncate' keeps the first half. */
  corruptDownloads?: boolean | 'flip' | 'truncate';
}

export interface CacheServiceOptions {
  /** Default 200 per minute, GitHub's limit for new entries per repository; null for none. */
  rateLimit?: { perMinute: number } | null;
  failures?: CacheFailures;
  /**
   * 'ip' (default): SAS URLs on http://127.0.0.1:PORT/devstoreaccount1/..., which @actions/cache downloads with a
   * plain HTTP GET. 'azure': http://devstoreaccount1.blob.core.windows.net:PORT/..., which it downloads with the
   * Azure SDK as on github.com; the client must resolve that name to 127.0.0.1 (the fixture's --map-azure-hosts).
   */
  blobHostnames?: 'ip' | 'azure';
  /** GITHUB_REPOSITORY; default flake-ci/fixture. */
  repository?: string;
  /** GITHUB_REF and the default token's scope; default refs/heads/main. */
  ref?: string;
}

/** A recorded request; connection-refused attempts never reach the service and are not recorded. */
export interface CacheCall {
  /** The twirp method, or the request path for anything that is not one. */
  method: TwirpMethod | string;
  at: number;
  status?: number;
  /**
   * ok, miss, ok_corrupt_flip, ok_corrupt_truncate, already_exists, write_denied, read_denied, rate_limited,
   * injected, unauthenticated, not_found, size_mismatch, bad_route, malformed, invalid_argument, crash.
   */
  result?: string;
  message?: string;
  /** The parsed JSON request body, exactly as the client sent it. */
  body?: Record<string, unknown>;
  key?: string;
  version?: string;
  restoreKeys?: string[];
  sizeBytes?: number;
  matchedKey?: string;
  entryId?: number;
}

export interface CacheEntry {
  id: number;
  key: string;
  version: string;
  scope: string;
  /** Visible to restores only once finalized. */
  finalized: boolean;
  blobName: string;
  sizeBytes?: number;
  createdAt: number;
  finalizedAt?: number;
  lastAccessedAt?: number;
}

export interface Azurite {
  port: number;
  container: string;
  location: string;
  sasUrl(blobName: string, permissions: string, ttlMs?: number): string;
  blobSize(blobName: string): Promise<number | undefined>;
  read(blobName: string): Promise<Buffer>;
  write(blobName: string, data: Buffer): Promise<unknown>;
  /** The name of a corrupted copy of the blob (made once per mode). */
  corruptCopy(blobName: string, mode: 'flip' | 'truncate'): Promise<string>;
  stop(): Promise<void>;
}

export interface CacheService {
  /** ACTIONS_RESULTS_URL: http://127.0.0.1:PORT/ (with the trailing slash the runner gives it). */
  url: string;
  blobHostnames: 'ip' | 'azure';
  azurite: Azurite;
  calls: CacheCall[];
  /** Every entry, reserved or finalized (copies). */
  entries(): CacheEntry[];
  token(opts?: TokenOptions): string;
  /**
   * What a step needs: ACTIONS_CACHE_SERVICE_V2, ACTIONS_RESULTS_URL, ACTIONS_RUNTIME_TOKEN, GITHUB_SERVER_URL
   * (github.com, else @actions/cache falls back to v1 as on GHES), GITHUB_REPOSITORY, GITHUB_REF, RUNNER_TEMP and,
   * if given, GITHUB_WORKSPACE (the directory cache paths are relative to).
   */
  env(opts?: TokenOptions & { token?: string; workspace?: string; runnerTemp?: string }): Record<string, string>;
  /** Replaces the failure set (an empty object clears it). */
  setFailures(failures: CacheFailures): Promise<void>;
  /** Replaces the rate limit and forgets past reservations. */
  setRateLimit(limit: { perMinute: number } | null): void;
  stop(): Promise<void>;
}

export declare const TWIRP_SERVICE: string;
export declare function startCacheService(opts?: CacheServiceOptions): Promise<CacheService>;
export declare function makeRuntimeToken(opts?: Omit<TokenOptions, 'readOnly'>): string;
export declare function parseRuntimeToken(
  token: string,
): Error | { runId: string; jobId: string; readable: string[]; writable: string[] };
