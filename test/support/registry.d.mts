// Types for registry.mjs (plain JS, shared with bench/).
export interface TokenRequest {
  user?: string;
  scopes: string[];
  service?: string | null;
  denied?: boolean;
}
export interface RegistryOptions {
  auth?: 'none' | 'htpasswd' | 'token';
  /** name -> password, for htpasswd and token auth. */
  users?: Record<string, string>;
  /** Token auth: user -> repository -> allowed actions; users without an entry get what they ask for. */
  permissions?: Record<string, Record<string, string[]>>;
  /** Token auth: anonymous token requests get pull on everything (default: refused). */
  anonymous?: boolean;
  /** Token auth: how long the registry accepts a token (default 300). */
  tokenTtlSeconds?: number;
  /** Token auth: the `expires_in` the token server reports (default: the real lifetime). */
  advertisedExpiresIn?: number;
  /** Token auth: which field carries the token (default 'token'). */
  tokenField?: 'token' | 'access_token' | 'both';
}
export interface Registry {
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT */
  host: string;
  /** The temp dir holding storage, config and keys (removed by stop). */
  dir: string;
  /** Token auth: every request the token server answered, in order. */
  tokenRequests: TokenRequest[];
  /** The registry's stderr so far (its log). */
  stderr(): string;
  stop(): Promise<void>;
}
export declare function requireRegistryTools(auth?: RegistryOptions['auth']): void;
export declare function freePort(): Promise<number>;
export declare function startRegistry(opts?: RegistryOptions): Promise<Registry>;
