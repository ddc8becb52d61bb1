/**
 * The `store` backend: any Nix store URL. Restore does not copy anything: it adds the store as a substituter for the
 * later steps (NIX_CONFIG), so Nix fetches only what a build needs, checking signatures as it always does. Save is
 * `nix copy --to URL` of the selected paths.
 *
 * Save copies closures (Nix's default), not just the selected paths: a binary cache refuses a path whose references
 * it lacks (seen on Nix 2.8 and 2.34), and a remote store cannot register one either. Nix skips whatever the store
 * already has, so after the first push of the upstream dependencies only new paths travel.
 *
 * Schemes: file:// and http(s):// are tested here (nginx with WebDAV PUT); s3:// is passed to Nix as is when the
 * installed Nix was built with S3 support, and ssh:// / ssh-ng:// likewise (signing then happens in the local store
 * first, since those stores take no `secret-key` parameter); neither was tested here.
 */
import { InputError } from '../errors.js';
import type { NixCommand } from '../nix/command.js';
import type { Platform } from '../platform/types.js';
import { groupedPathArgs } from './path-args.js';
import { validatePublicKeys, withSecretKeyFile, withStoreParams } from './signing.js';

const BINARY_CACHE_SCHEMES = ['file', 'http', 'https', 's3'];
const STORE_SCHEMES = ['ssh', 'ssh-ng'];

/** Throws an InputError for URLs Nix would misread or that would leak credentials into NIX_CONFIG and logs. */
export function validateStoreUrl(url: string, input = 'store-url'): string {
  const m = /^([a-z0-9+-]+):\/\/(.*)$/.exec(url);
  const scheme = m?.[1] ?? '';
  if (!m || ![...BINARY_CACHE_SCHEMES, ...STORE_SCHEMES].includes(scheme)) {
    throw new InputError(
      `Input '${input}' must be a Nix store URL (file://, http://, https://, s3://, ssh://, ssh-ng://); got '${url}'.`,
    );
  }
  // nix.conf (and so NIX_CONFIG) cuts a line at '#' and splits values on whitespace.
  if (/[\s#]/.test(url)) throw new InputError(`Input '${input}' must not contain spaces or '#'.`);
  if (/^[^/?]*:[^/?]*@/.test(m[2] ?? '') && scheme.startsWith('http')) {
    throw new InputError(
      `Input '${input}' carries a password: put credentials in a netrc file ('netrc-file' in nix.conf) instead, ` +
        `so they never reach the environment of later steps or the logs.`,
    );
  }
  return scheme;
}

export interface StoreRestoreOptions {
  url: string;
  /** Keys whose signatures make the store's paths acceptable (`extra-trusted-public-keys`). */
  trustedPublicKeys?: readonly string[];
  /** Accept the store's paths without signatures (`?trusted=1` on the substituter). */
  trustSource?: boolean;
}

/** NIX_CONFIG with the store added as a substituter, appended to what the job already had. */
export function substituterConfig(existing: string | undefined, opts: StoreRestoreOptions): string {
  validateStoreUrl(opts.url);
  const keys = opts.trustedPublicKeys ?? [];
  validatePublicKeys(keys);
  const url = opts.trustSource && keys.length === 0 ? withStoreParams(opts.url, { trusted: '1' }) : opts.url;
  const lines = [`extra-substituters = ${url}`];
  if (keys.length > 0) lines.push(`extra-trusted-public-keys = ${keys.join(' ')}`);
  const base = (existing ?? '').replace(/\n+$/, '');
  return base === '' ? `${lines.join('\n')}\n` : `${base}\n${lines.join('\n')}\n`;
}

/**
 * Makes later steps substitute from the store. (With a Nix daemon, the job's user must be trusted, or the URL listed
 * in the daemon's `trusted-substituters`, for Nix to use it; install-nix makes the runner user trusted.)
 */
export function restoreFromStore(platform: Platform, opts: StoreRestoreOptions): void {
  platform.exportVariable('NIX_CONFIG', substituterConfig(platform.env('NIX_CONFIG'), opts));
}

export interface StoreSaveOptions {
  url: string;
  /** Secret signing key; see signing.ts for how it is handled. */
  signingKey?: string;
  /** Private scratch space for the key file. */
  tempDir: string;
  compression?: 'zstd' | 'xz' | 'none';
}

export interface StoreSaveResult {
  /** Paths Nix reported uploading (closure members the store lacked); undefined when Nix did not say. */
  uploaded: number | undefined;
}

/** `nix copy --to URL` of `paths` and their closures; signed when a key is given. */
export async function saveToStore(
  nix: NixCommand,
  paths: readonly string[],
  opts: StoreSaveOptions,
): Promise<StoreSaveResult> {
  if (paths.length === 0) return { uploaded: 0 };
  const scheme = validateStoreUrl(opts.url);
  const binaryCache = BINARY_CACHE_SCHEMES.includes(scheme);
  // Only binary caches take `compression` (default xz, slow to write); a choice in the URL itself wins.
  const chosen = /[?&]compression=/.test(opts.url);
  const base =
    binaryCache && !chosen ? withStoreParams(opts.url, { compression: opts.compression ?? 'zstd' }) : opts.url;
  const copy = async (url: string) => {
    let uploaded: number | undefined = 0;
    for (const args of groupedPathArgs(paths)) {
      const res = await nix.run(['copy', '--to', url, ...args]);
      const m = /copying (\d+) paths/.exec(res.stderr);
      const n = m ? Number(m[1]) : /copying path/.test(res.stderr) ? undefined : 0;
      uploaded = uploaded === undefined || n === undefined ? undefined : uploaded + n;
    }
    return { uploaded };
  };
  if (!opts.signingKey) return copy(base);
  return withSecretKeyFile(opts.signingKey, opts.tempDir, async (file) => {
    if (binaryCache) return copy(withStoreParams(base, { 'secret-key': file }));
    for (const args of groupedPathArgs(paths))
      await nix.run(['store', 'sign', '--recursive', '--key-file', file, ...args]);
    return copy(base);
  });
}
