// Types for github-api.mjs (plain JS): the GitHub REST API double that validates every request against
// @octokit/openapi's description of api.github.com and records it.

export type PermissionLevel = 'write' | 'read' | 'none';

/** GITHUB_TOKEN permissions the double enforces (default: all `write`). */
export interface GitHubApiPermissions {
  checks?: PermissionLevel;
  statuses?: PermissionLevel;
  actions?: PermissionLevel;
}

export interface GitHubApiOptions {
  /** The only token accepted (`Authorization: token X` or `Bearer X`); never recorded. */
  token: string;
  /** `owner/name`; requests for any other repository get 404 and a `wrong-repository` violation. */
  repo: string;
  permissions?: GitHubApiPermissions;
  /** Check every answer of the double against the documented response schema (default true). */
  validateResponses?: boolean;
  /** Primary rate limit reported in x-ratelimit-* (default 1000, the GITHUB_TOKEN limit); 0 remaining -> 403. */
  rateLimit?: { limit?: number; remaining?: number };
  /** Accepted X-GitHub-Api-Version values (default ['2022-11-28']); others get 400. */
  apiVersions?: string[];
}

export type ViolationKind =
  | 'unknown-route'
  | 'header'
  | 'auth'
  | 'schema'
  | 'unknown-parameter'
  | 'unknown-field'
  | 'unexpected-body'
  | 'unvalidated'
  | 'wrong-repository'
  | 'semantic'
  | 'token-leak'
  | 'unimplemented'
  | 'response-schema'
  | 'double-error';

export interface RecordedRequest {
  seq: number;
  method: string;
  /** Path and query as sent, with the token (if a caller leaked it) replaced by `***`. */
  path: string;
  /** From the description, e.g. `checks/create`; null for routes GitHub does not have. */
  operationId: string | null;
  /** Path parameters decoded and coerced to their declared types. */
  params: Record<string, unknown>;
  query: Record<string, unknown>;
  /** The parsed JSON body (the raw text when it was not JSON), token-scrubbed. */
  body: unknown;
  /** The status the double answered; 0 when a `reset` fault dropped the connection. */
  status: number;
  valid: boolean;
  /** `kind: message` for each violation of this request. */
  errors: string[];
  violations: { kind: ViolationKind; message: string }[];
  /** The fault that answered instead of the operation, if any. */
  injected?: number | 'reset' | 'delay';
}

export interface Violation {
  seq: number;
  method: string;
  path: string;
  operationId: string | null;
  kind: ViolationKind;
  message: string;
}

export interface CheckRunAnnotation {
  path: string;
  start_line: number;
  end_line: number;
  start_column?: number;
  end_column?: number;
  annotation_level: 'notice' | 'warning' | 'failure';
  message: string;
  title?: string;
  raw_details?: string;
}

export interface CheckRunState {
  id: number;
  name: string;
  head_sha: string;
  external_id?: string;
  details_url?: string;
  status: string;
  conclusion: string | null;
  started_at: string;
  completed_at: string | null;
  output: { title?: string; summary?: string; text?: string };
  /** Every annotation of the run in the order received (POST, then each PATCH appends). */
  annotations: CheckRunAnnotation[];
  images: { alt: string; image_url: string; caption?: string }[];
  actions: { label: string; description: string; identifier: string }[];
  suiteId: number;
  /** POST plus PATCHes that reached this run. */
  requests: number;
}

export interface CommitStatusState {
  sha: string;
  id: number;
  state: 'error' | 'failure' | 'pending' | 'success';
  description: string | null;
  target_url: string | null;
  context: string;
  created_at: string;
  updated_at: string;
}

export interface CacheEntry {
  id: number;
  ref: string;
  key: string;
  version: string;
  last_accessed_at: string;
  created_at: string;
  size_in_bytes: number;
}

export interface CacheSeed {
  key: string;
  /** Full ref, default `refs/heads/main`. */
  ref?: string;
  /** size_in_bytes, default 1024. */
  size?: number;
  created_at?: string | Date;
  /** Default: created_at. */
  last_accessed_at?: string | Date;
  version?: string;
}

export interface Fault {
  /** HTTP status to answer with; `reset` drops the connection; `delay` only waits `delayMs` then serves normally. */
  status: number | 'reset' | 'delay';
  /** How many matching requests it answers (default 1). */
  times?: number;
  /** Sent as Retry-After (seconds); with 403 it makes the answer a secondary rate limit. */
  retryAfter?: number;
  /** Wait before answering (a stalled server). */
  delayMs?: number;
  method?: string;
  operationId?: string;
  message?: string;
}

export interface SpecStats {
  file: string;
  /** The description's OpenAPI version (3.0.3 for @octokit/openapi 23). */
  openapi: string;
  parseMs: number;
  prepareMs: number;
  /** Total time spent compiling validators so far (lazily, per operation part). */
  compileMs: number;
  compiledValidators: number;
}

export interface GitHubApi {
  /** Base URL for Octokit's `baseUrl` / GITHUB_API_URL, e.g. http://127.0.0.1:PORT */
  url: string;
  readonly specStats: SpecStats;
  requests(): RecordedRequest[];
  /** Every violation of every recorded request; `[]` is what a well-behaved client produces. */
  violations(): Violation[];
  checkRuns(): CheckRunState[];
  statuses(): CommitStatusState[];
  caches(): CacheEntry[];
  addCache(entry: CacheSeed): CacheEntry;
  setPermissions(p: GitHubApiPermissions): void;
  injectFault(f: Fault): void;
  /** Forget recorded requests (state stays). */
  clearRecords(): void;
  /** Forget requests, state, faults, rate-limit use and permission changes. */
  reset(): void;
  close(): Promise<void>;
}

export declare function startGitHubApi(opts: GitHubApiOptions): Promise<GitHubApi>;
