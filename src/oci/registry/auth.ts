/**
 * Registry authentication: `WWW-Authenticate` parsing (several challenges in one header, quoted strings with commas
 * and escapes), Basic credentials, and the Bearer token flow of the distribution spec with tokens cached per scope.
 * Failures the user can fix are InputError naming the registry, the user and the scope, never the password or token.
 */
import { InputError } from '../../errors.js';
import { displayUrl } from '../../net/http.js';
import type { Reply } from './transport.js';
import { registryErrorText, transientStatus } from './transport.js';

export interface Credentials {
  username: string;
  password: string;
}

export interface Challenge {
  /** Lower-case: `basic`, `bearer`, ... */
  scheme: string;
  /** Parameter names lower-cased, values unquoted. */
  params: Record<string, string>;
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/** RFC 7235 challenges: `scheme param=value, param="quoted, \"x\"", Other param=...`; several header lines allowed. */
export function parseWwwAuthenticate(value: string | string[] | undefined): Challenge[] {
  if (value === undefined) return [];
  if (Array.isArray(value)) return value.flatMap((v) => parseWwwAuthenticate(v));
  const s = value;
  let i = 0;
  const skip = (chars: RegExp) => {
    while (i < s.length && chars.test(s[i] as string)) i++;
  };
  const token = () => {
    const start = i;
    while (i < s.length && TOKEN_CHAR.test(s[i] as string)) i++;
    return s.slice(start, i);
  };
  const quoted = () => {
    let out = '';
    for (i++; i < s.length && s[i] !== '"'; i++) out += s[i] === '\\' && i + 1 < s.length ? s[++i] : s[i];
    i++;
    return out;
  };
  const challenges: Challenge[] = [];
  while (i < s.length) {
    skip(/[\s,]/);
    const scheme = token();
    if (!scheme) {
      i++; // a stray character: skip it rather than loop forever
      continue;
    }
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    for (;;) {
      skip(/\s/);
      const save = i;
      const name = token();
      skip(/\s/);
      if (!name || s[i] !== '=') {
        // Not `name=`: the next challenge's scheme (or a token68, which registries do not send).
        i = save;
        break;
      }
      i++;
      skip(/\s/);
      challenge.params[name.toLowerCase()] = s[i] === '"' ? quoted() : token();
      skip(/\s/);
      if (s[i] !== ',') break;
      i++;
    }
  }
  return challenges;
}

/** `repository:<name>:<actions>`; the name is between the first and the last ':'. */
export function repositoryScope(repository: string, actions: string[]): string {
  return `repository:${repository}:${actions.join(',')}`;
}

/** Joins scopes on the same resource and sorts them, so equal needs give equal cache keys. */
export function mergeScopes(scopes: string[]): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const scope of scopes.flatMap((s) => s.split(' ')).filter(Boolean)) {
    const last = scope.lastIndexOf(':');
    if (last <= scope.indexOf(':')) continue;
    const resource = scope.slice(0, last);
    const set = byResource.get(resource) ?? new Set<string>();
    for (const a of scope.slice(last + 1).split(',')) if (a) set.add(a);
    byResource.set(resource, set);
  }
  return [...byResource.entries()].map(([r, actions]) => `${r}:${[...actions].sort().join(',')}`).sort();
}

export function basicAuthorization(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64')}`;
}

interface Token {
  value: string;
  expiresAt: number;
}

export interface AuthenticatorOptions {
  /** For messages: the registry as the user wrote it. */
  registry: string;
  credentials?: Credentials;
  /** GET on the token service (the client's transport, with its timeout and agents). */
  get(url: URL, headers: Record<string, string>): Promise<Reply>;
  now?: () => number;
  debug?: (message: string) => void;
}

/** Per-registry authentication state: the scheme learned from the first challenge and the tokens fetched since. */
export class Authenticator {
  private scheme: 'basic' | 'bearer' | undefined;
  private realm: URL | undefined;
  private service: string | undefined;
  private readonly tokens = new Map<string, Token>();
  private readonly pending = new Map<string, Promise<Token>>();
  private readonly now: () => number;

  constructor(private readonly opts: AuthenticatorOptions) {
    this.now = opts.now ?? Date.now;
  }

  private get who(): string {
    return this.opts.credentials ? `user '${this.opts.credentials.username}'` : 'anonymous access';
  }

  /** The Authorization header for a request needing `scopes`, from what is known so far (undefined: none yet). */
  async authorization(scopes: string[], extraScopes: string[] = []): Promise<string | undefined> {
    if (this.scheme === 'basic') return this.opts.credentials && basicAuthorization(this.opts.credentials);
    if (this.scheme !== 'bearer') return undefined;
    const key = mergeScopes(scopes).join(' ');
    const cached = this.tokens.get(key);
    if (cached && this.now() < cached.expiresAt) return `Bearer ${cached.value}`;
    let inflight = this.pending.get(key);
    if (!inflight) {
      inflight = this.fetchToken(mergeScopes([...scopes, ...extraScopes])).finally(() => this.pending.delete(key));
      this.pending.set(key, inflight);
    }
    const token = await inflight;
    this.tokens.set(key, token);
    return `Bearer ${token.value}`;
  }

  /**
   * After a 401: learn the scheme and realm, forget the token that was refused, and return the challenge's own
   * scopes (to add to the next token request). Throws when no retry can help (no credentials for Basic auth).
   */
  challenged(reply: Reply, scopes: string[], sent: string | undefined): string[] {
    const challenges = parseWwwAuthenticate(reply.headers['www-authenticate']);
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer) {
      this.scheme = 'bearer';
      try {
        this.realm = new URL(bearer.params.realm as string);
      } catch {
        throw new Error(`Registry ${this.opts.registry} sent a token realm that is not a URL`);
      }
      this.service = bearer.params.service;
      const key = mergeScopes(scopes).join(' ');
      if (sent && this.tokens.get(key) && sent === `Bearer ${this.tokens.get(key)?.value}`) {
        this.opts.debug?.(`token for ${key} refused by ${this.opts.registry} (expired?): fetching a new one`);
        this.tokens.delete(key);
      }
      return bearer.params.scope ? bearer.params.scope.split(' ') : [];
    }
    if (basic) {
      this.scheme = 'basic';
      if (!this.opts.credentials)
        throw new InputError(
          `Registry ${this.opts.registry} requires credentials for ${mergeScopes(scopes).join(' ')}: ` +
            'set the username and password inputs, or log in so that docker config.json has them',
        );
      return [];
    }
    throw new Error(
      `Registry ${this.opts.registry} answered 401 without a challenge this client supports ` +
        `(${challenges.map((c) => c.scheme).join(', ') || 'no WWW-Authenticate header'})`,
    );
  }

  /** The error for a request still refused after a fresh token or with Basic credentials (401), or a 403. */
  denied(reply: Reply, scopes: string[]): InputError {
    const scope = mergeScopes(scopes).join(' ');
    const detail = registryErrorText(reply);
    const suffix = detail ? ` (registry said: ${detail})` : '';
    if (reply.status === 401 && this.scheme === 'basic')
      return new InputError(
        `Registry ${this.opts.registry} rejected the credentials of ${this.who} for ${scope}: ` +
          `check the username and password${suffix}`,
      );
    return new InputError(
      `Registry ${this.opts.registry} denied ${scope} to ${this.who}: check that this user may push to ` +
        `(or pull from) the repository, and that it exists${suffix}`,
    );
  }

  private async fetchToken(scopes: string[]): Promise<Token> {
    const realm = this.realm as URL;
    const url = new URL(realm.href);
    if (this.service) url.searchParams.set('service', this.service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.opts.credentials) headers.authorization = basicAuthorization(this.opts.credentials);
    const started = this.now();
    const reply = await this.opts.get(url, headers);
    const transient = transientStatus(reply, `token service ${displayUrl(realm.href)}`);
    if (transient) throw transient;
    const scope = scopes.join(' ');
    if (reply.status === 401 || reply.status === 403)
      throw new InputError(
        `The token service of registry ${this.opts.registry} (${displayUrl(realm.href)}) refused ${this.who} ` +
          `for ${scope} (${reply.status}): ` +
          (this.opts.credentials ? 'check the username and password' : 'set the username and password inputs'),
      );
    if (reply.status !== 200)
      throw new Error(`Token service ${displayUrl(realm.href)} answered ${reply.status} for ${scope}`);
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(reply.body.toString('utf8')) as typeof body;
    } catch {
      throw new Error(`Token service ${displayUrl(realm.href)} answered with something that is not JSON`);
    }
    const value = typeof body.token === 'string' && body.token ? body.token : body.access_token;
    if (typeof value !== 'string' || !value)
      throw new Error(`Token service ${displayUrl(realm.href)} answered without a token for ${scope}`);
    // The spec's default lifetime is 60 s; renew a little early so a request does not start with a dying token.
    const lifetimeMs = (typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60) * 1000;
    this.opts.debug?.(`got a token for ${scope} from ${displayUrl(realm.href)}, valid ${lifetimeMs / 1000} s`);
    return { value, expiresAt: started + lifetimeMs - Math.min(30_000, lifetimeMs / 10) };
  }

  /** Whether the registry uses token auth (for messages and tests). */
  get usesTokens(): boolean {
    return this.scheme === 'bearer';
  }
}
