/**
 * Which credentials to use for a registry, first match wins: the `username`/`password` inputs; docker's
 * config.json `auths` (what `docker login` and most login actions write); then the platform's own registry: GHCR
 * with the job token on GitHub, `$CI_REGISTRY` with the job's registry credentials on GitLab. The environment comes
 * in as a function so this stays testable and never reads process.env itself. Credential helpers are not run.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError, errorMessage } from '../../errors.js';
import type { PlatformName } from '../../platform/types.js';
import type { Credentials } from './auth.js';
import { DOCKER_HUB } from './reference.js';

export interface ResolvedCredentials extends Credentials {
  /** Where they came from, for a log line (never the values). */
  source: string;
}

export interface CredentialOptions {
  /** The registry as in the reference (`docker.io`, `ghcr.io`, `host:port`). */
  registry: string;
  /** The inputs; '' or undefined when not given. */
  username?: string;
  password?: string;
  env: (name: string) => string | undefined;
  platform: PlatformName;
  /** GitHub: the job token the caller was given (an input defaulting to github.token), for ghcr.io. */
  githubToken?: string;
  debug?: (message: string) => void;
}

const DOCKER_HUB_ALIASES = [DOCKER_HUB, 'index.docker.io', 'registry-1.docker.io'];

/** `https://index.docker.io/v1/` -> `index.docker.io`; keys may be hosts or URLs. */
function keyHost(key: string): string {
  return (
    key
      .trim()
      .toLowerCase()
      .replace(/^[a-z][a-z0-9+.-]*:\/\//, '')
      .split('/')[0] ?? ''
  );
}

export function dockerConfigPath(env: (name: string) => string | undefined): string | undefined {
  const dir = env('DOCKER_CONFIG');
  if (dir) return join(dir, 'config.json');
  const home = env('HOME');
  return home ? join(home, '.docker', 'config.json') : undefined;
}

interface AuthEntry {
  auth?: unknown;
  username?: unknown;
  password?: unknown;
  identitytoken?: unknown;
}

/** Credentials for `registry` from a docker config.json, or undefined. */
export function fromDockerConfig(
  file: string,
  registry: string,
  debug: (message: string) => void = () => undefined,
): Credentials | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    debug(`no docker config at ${file}`);
    return undefined;
  }
  let config: { auths?: Record<string, AuthEntry>; credHelpers?: Record<string, string>; credsStore?: string };
  try {
    config = JSON.parse(text) as typeof config;
  } catch (e) {
    throw new InputError(`${file} is not valid JSON (${errorMessage(e)}): fix it or remove it`);
  }
  const wanted = registry.toLowerCase();
  const hosts = DOCKER_HUB_ALIASES.includes(wanted) ? DOCKER_HUB_ALIASES : [wanted];
  const keys = Object.keys(config.auths ?? {}).filter((k) => hosts.includes(keyHost(k)));
  // An exact key first, then URL forms: `docker login` writes one, older tools the other.
  keys.sort((a, b) => Number(b.toLowerCase() === wanted) - Number(a.toLowerCase() === wanted));
  for (const key of keys) {
    const entry = config.auths?.[key] ?? {};
    if (typeof entry.username === 'string' && typeof entry.password === 'string' && entry.username)
      return { username: entry.username, password: entry.password };
    if (typeof entry.auth === 'string' && entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon <= 0) throw new InputError(`${file}: the 'auth' of '${key}' is not base64 of user:password`);
      return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    }
    if (entry.identitytoken) debug(`${file}: '${key}' holds an identity token (OAuth), which is not supported`);
  }
  const helper = Object.keys(config.credHelpers ?? {}).find((k) => hosts.includes(keyHost(k)));
  if (helper || config.credsStore)
    debug(`${file} names a credential helper for ${registry}; helpers are not run (pass username and password)`);
  return undefined;
}

export function resolveCredentials(opts: CredentialOptions): ResolvedCredentials | undefined {
  const debug = opts.debug ?? (() => undefined);
  const username = opts.username?.trim() ?? '';
  const password = opts.password ?? '';
  if (username && password) return { username, password, source: 'the username and password inputs' };
  if (username || password)
    throw new InputError(
      username
        ? `The username input is set but the password is empty: set both (for ${opts.registry})`
        : `The password input is set but the username is empty: set both (for ${opts.registry})`,
    );

  const file = dockerConfigPath(opts.env);
  if (file) {
    const found = fromDockerConfig(file, opts.registry, debug);
    if (found) return { ...found, source: file };
  }

  const registry = opts.registry.toLowerCase();
  if (opts.platform === 'github' && registry === 'ghcr.io' && opts.githubToken)
    return {
      username: opts.env('GITHUB_ACTOR') || 'github-actions',
      password: opts.githubToken,
      source: 'the job token (GITHUB_TOKEN)',
    };
  if (opts.platform === 'gitlab') {
    const ci = opts.env('CI_REGISTRY')?.toLowerCase();
    const user = opts.env('CI_REGISTRY_USER');
    const pass = opts.env('CI_REGISTRY_PASSWORD');
    if (ci && ci === registry && user && pass)
      return { username: user, password: pass, source: 'CI_REGISTRY_USER and CI_REGISTRY_PASSWORD' };
  }
  debug(`no credentials for ${opts.registry}: anonymous`);
  return undefined;
}
