/**
 * Signing keys and store URLs. The secret key never goes on a command line (any user can read argv through /proc)
 * nor into a log or state: Nix gets the PATH of a 0600 file in a private 0700 directory, removed as soon as the
 * command that needed it is done. Error messages about keys never quote the key.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { InputError } from '../errors.js';

/** `name:base64`; Nix's ed25519 secret keys are 64 bytes (seed and public key), public keys 32. */
function keyBytes(key: string): { name: string; bytes: number } | undefined {
  const m = /^([^:\s]+):([A-Za-z0-9+/]+={0,2})$/.exec(key.trim());
  if (!m) return undefined;
  return { name: m[1] as string, bytes: Buffer.from(m[2] as string, 'base64').length };
}

/** Throws an InputError naming the input, never showing the value. */
export function validateSecretKey(key: string, input = 'signing-key'): void {
  if (keyBytes(key)?.bytes !== 64) {
    throw new InputError(
      `Input '${input}' is not a Nix signing key: expected 'name:base64' as written by ` +
        `'nix key generate-secret' (the value is not shown).`,
    );
  }
}

export function validatePublicKeys(keys: readonly string[], input = 'trusted-public-keys'): void {
  for (const key of keys) {
    if (keyBytes(key)?.bytes !== 32) {
      throw new InputError(
        `Input '${input}' holds '${key}', which is not a Nix public key ('name:base64', e.g. ` +
          `'cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=').`,
      );
    }
  }
}

/** The key name of a secret key, for messages ("signed with my-cache-1"); the name is not secret. */
export function secretKeyName(key: string): string {
  return keyBytes(key)?.name ?? '';
}

/**
 * Runs `fn` with the path of a file holding the secret key. The directory is created with mkdtemp (mode 0700) inside
 * the job's temp directory and removed in `finally`, whatever `fn` does.
 */
export async function withSecretKeyFile<T>(key: string, tempDir: string, fn: (file: string) => Promise<T>): Promise<T> {
  validateSecretKey(key);
  const dir = await mkdtemp(path.join(tempDir, 'flake-ci-key-'));
  try {
    const file = path.join(dir, 'secret-key');
    await writeFile(file, key.trim(), { mode: 0o600, flag: 'wx' });
    return await fn(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Adds Nix store parameters to a store URL (`?a=b&c=d`). Values are used as given: Nix splits the query on `&` and
 * `=` and only some versions percent-decode, so values holding those characters are refused instead of encoded.
 */
export function withStoreParams(url: string, params: Record<string, string>): string {
  const parts = Object.entries(params).map(([k, v]) => {
    if (/[&=?#\s%]/.test(v)) throw new Error(`Store parameter '${k}' has a value Nix cannot take in a URL.`);
    return `${k}=${v}`;
  });
  if (parts.length === 0) return url;
  return `${url}${url.includes('?') ? '&' : '?'}${parts.join('&')}`;
}

/** `file://` URL for a local directory, refusing characters a store URL cannot carry unencoded. */
export function fileStoreUrl(dir: string): string {
  if (!path.isAbsolute(dir) || /[?&#%\s]/.test(dir)) {
    throw new Error(
      `Binary cache directory ${JSON.stringify(dir)} must be absolute, without '?', '&', '#', '%' or spaces.`,
    );
  }
  return `file://${dir}`;
}

/** Trusted keys by name, as node:crypto key objects (Nix public keys are raw 32-byte ed25519 keys). */
export function publicKeyObjects(keys: readonly string[]): Map<string, KeyObject> {
  validatePublicKeys(keys);
  const out = new Map<string, KeyObject>();
  for (const k of keys) {
    const [name, b64] = k.trim().split(':') as [string, string];
    const x = Buffer.from(b64, 'base64').toString('base64url');
    out.set(name, createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' }));
  }
  return out;
}

/**
 * What a narinfo signature signs (Nix's ValidPathInfo::fingerprint): `1;<path>;sha256:<nix32>;<size>;<refs>`, the
 * references as full paths, sorted, comma-separated. `narHashNix32` is the hash in Nix's base-32.
 */
export function fingerprint(
  info: { storePath: string; narSize: number; references: readonly string[] },
  narHashNix32: string,
): string {
  return `1;${info.storePath};sha256:${narHashNix32};${info.narSize};${[...info.references].sort().join(',')}`;
}

/** Whether one of `sigs` (`name:base64`) is a valid signature of `text` by one of `keys`. */
export function signedByAny(text: string, sigs: readonly string[], keys: ReadonlyMap<string, KeyObject>): boolean {
  const data = Buffer.from(text);
  return sigs.some((s) => {
    const colon = s.indexOf(':');
    const key = keys.get(s.slice(0, colon));
    if (colon <= 0 || !key) return false;
    const sig = Buffer.from(s.slice(colon + 1), 'base64');
    return sig.length === 64 && verify(null, data, key, sig);
  });
}
