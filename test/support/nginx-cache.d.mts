// Types for nginx-cache.mjs (plain JS, shared with bench/ and scripts/).
export interface NginxCacheOptions {
  /** Directory served and written by PUT (default: a new temp directory, removed by stop). */
  root?: string;
  /** The `Priority` written to nix-cache-info (default 30). */
  priority?: number;
}
export interface NginxCache {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  root: string;
  accessLog(): string;
  /** Number of requests with `method` whose access log line matches `re`. */
  count(method: string, re?: RegExp): number;
  /** Stops nginx and removes its temp directory (and `root` when it was created there). */
  stop(): Promise<void>;
}
export declare function requireNginx(): void;
export declare function startNginxCache(opts?: NginxCacheOptions): Promise<NginxCache>;
