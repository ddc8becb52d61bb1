/** The cache action's inputs, parsed and validated once (action.yml documents each). */
import { InputError } from '../errors.js';
import { getBoolean, getDuration, getEnum, getInteger, getList, getSecret, getString } from '../platform/inputs.js';
import type { Platform } from '../platform/types.js';
import { validatePublicKeys, validateSecretKey } from './signing.js';
import { validateStoreUrl } from './store-backend.js';

export const BACKENDS = ['auto', 'github', 'store', 'gitlab'] as const;
export const SAVE_MODES = ['auto', 'always', 'never'] as const;
export const SUDO_MODES = ['auto', 'always', 'never'] as const;
export type BackendChoice = (typeof BACKENDS)[number];
export type SaveMode = (typeof SAVE_MODES)[number];

/** Longest `key` accepted: the GitHub service takes 512 characters, and entry keys append a suffix of up to ~80. */
export const MAX_KEY_LENGTH = 400;
/** The GitHub service takes at most 10 keys per lookup: the primary key and 9 prefixes. */
export const MAX_RESTORE_KEYS = 9;
export const DEFAULT_TIMEOUT_MS = 10 * 60_000;

export interface CacheInputs {
  backend: BackendChoice;
  /** '' means the default key (OS, architecture, flake.lock, key-files). */
  key: string;
  restoreKeys: string[];
  keyFiles: string[];
  /** Installables or store paths whose closures are saved whatever else is selected. */
  paths: string[];
  include: string[];
  exclude: string[];
  upstreamKeys: string[];
  storeUrl: string;
  /** Secret: registered for masking as soon as it is read; never in state, argv or logs. */
  signingKey: string;
  trustedPublicKeys: string[];
  save: SaveMode;
  purge: boolean;
  purgeMaxAgeDays: number;
  purgeKeepLast: number;
  /** Bytes (NAR size) of new paths one save may hold; undefined: no limit. */
  gcMaxStoreSize: number | undefined;
  /** GitLab cache directory limit in bytes; undefined: no limit. */
  maxSize: number | undefined;
  strict: boolean;
  timeoutMs: number;
  /** Secret, for purge only. */
  githubToken: string;
  /** When a store behind the daemon is restored as root through `sudo -n` (root-restore.ts). */
  sudo: (typeof SUDO_MODES)[number];
}

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** `500M`, `10G`, `1.5GiB`, `123456` (bytes); binary multiples. Empty: undefined (no limit). */
export function parseSize(value: string, input: string): number | undefined {
  const v = value.trim();
  if (v === '') return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(v);
  if (!m) throw new InputError(`Input '${input}' must be a size such as 500M, 10G or a number of bytes; got '${v}'.`);
  return Math.floor(Number(m[1]) * (UNITS[(m[2] as string).toLowerCase()] as number));
}

/** Keys travel to cache services as they are: the GitHub service refuses commas and keys over 512 characters. */
function checkKey(value: string, input: string): string {
  if (value.length > MAX_KEY_LENGTH || /[,\s]/.test(value))
    throw new InputError(
      `Input '${input}' holds '${value}': cache keys must be at most ${MAX_KEY_LENGTH} characters, without commas ` +
        `or whitespace.`,
    );
  return value;
}

export function parseCacheInputs(p: Platform): CacheInputs {
  // Secrets first: registered before any other validation can quote an input (GitLab redacts what is registered).
  const signingKey = getSecret(p, 'signing-key');
  const githubToken = getSecret(p, 'github-token');
  if (signingKey !== '') validateSecretKey(signingKey);
  const trustedPublicKeys = getList(p, 'trusted-public-keys');
  validatePublicKeys(trustedPublicKeys);
  const upstreamKeys = getList(p, 'upstream-keys');
  for (const k of upstreamKeys)
    if (!/^[^:\s]+(:[A-Za-z0-9+/]+={0,2})?$/.test(k))
      throw new InputError(`Input 'upstream-keys' holds '${k}', which is neither a key name nor 'name:base64'.`);

  const backend = getEnum(p, 'backend', BACKENDS, 'auto');
  const storeUrl = getString(p, 'store-url');
  if (storeUrl !== '') validateStoreUrl(storeUrl);
  if (backend === 'store' && storeUrl === '')
    throw new InputError(`backend: store needs 'store-url' (e.g. s3://bucket, https://cache.example.org, file:///d).`);

  const key = getString(p, 'key');
  if (key !== '') checkKey(key, 'key');
  const restoreKeys = getList(p, 'restore-keys').map((k) => checkKey(k, 'restore-keys'));
  if (restoreKeys.length > MAX_RESTORE_KEYS)
    throw new InputError(`Input 'restore-keys' lists ${restoreKeys.length} prefixes; at most ${MAX_RESTORE_KEYS}.`);

  return {
    backend,
    key,
    restoreKeys,
    keyFiles: getList(p, 'key-files'),
    paths: getList(p, 'paths'),
    include: getList(p, 'include'),
    exclude: getList(p, 'exclude'),
    upstreamKeys,
    storeUrl,
    signingKey,
    trustedPublicKeys,
    save: getEnum(p, 'save', SAVE_MODES, 'auto'),
    purge: getBoolean(p, 'purge', false),
    purgeMaxAgeDays: getInteger(p, 'purge-max-age', 7, 0, 3650),
    purgeKeepLast: getInteger(p, 'purge-keep-last', 3, 0, 10_000),
    gcMaxStoreSize: parseSize(getString(p, 'gc-max-store-size'), 'gc-max-store-size'),
    maxSize: parseSize(getString(p, 'max-size'), 'max-size'),
    strict: getBoolean(p, 'strict', false),
    timeoutMs: getDuration(p, 'timeout', DEFAULT_TIMEOUT_MS),
    githubToken,
    sudo: getEnum(p, 'sudo', SUDO_MODES, 'auto'),
  };
}
