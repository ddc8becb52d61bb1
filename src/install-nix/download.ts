/**
 * Resolving and fetching the release tarball. The checksum comes from the user (tarball-sha256) or from the
 * `.sha256` file the release publishes beside the tarball; nothing is extracted before the hash matches.
 */
import { rm } from 'node:fs/promises';
import * as path from 'node:path';
import { InputError } from '../errors.js';
import { HttpError, displayUrl, downloadToFile, fetchText } from '../net/http.js';
import { withRetry } from '../net/retry.js';
import type { Platform } from '../platform/types.js';
import { parseSha256 } from './inputs.js';

export const RELEASES_BASE = 'https://releases.nixos.org/nix';

export interface TarballSpec {
  url: string;
  sha256: string;
  /** Where the checksum came from, for the log. */
  checksumSource: 'input' | 'published';
}

export function releaseUrl(version: string, system: string): string {
  return `${RELEASES_BASE}/nix-${version}/nix-${version}-${system}.tar.xz`;
}

const RETRIES = 4;

function retried<T>(p: Platform, fn: () => Promise<T>): Promise<T> {
  return withRetry(fn, {
    attempts: RETRIES,
    onRetry: (e, attempt, delay) => p.log('warning', `${e.message}; retry ${attempt} in ${Math.round(delay / 1000)} s`),
  });
}

export async function resolveTarball(
  p: Platform,
  opts: { version: string; system: string; url: string; sha256: string },
): Promise<TarballSpec> {
  const url = opts.url || releaseUrl(opts.version, opts.system);
  if (opts.sha256) return { url, sha256: opts.sha256, checksumSource: 'input' };
  let published: string;
  try {
    published = await retried(p, () => fetchText(`${url}.sha256`));
  } catch (e) {
    if (e instanceof HttpError && e.status === 404) {
      throw new InputError(
        opts.url
          ? `No published checksum at ${displayUrl(url)}.sha256: set 'tarball-sha256' for this mirror.`
          : `Nix ${opts.version} has no release for ${opts.system} at ${displayUrl(url)}: check 'nix-version'.`,
      );
    }
    throw e;
  }
  const first = published.trim().split(/\s+/)[0] ?? '';
  return { url, sha256: parseSha256(first, `${displayUrl(url)}.sha256`), checksumSource: 'published' };
}

/** Downloads into dir and verifies; on a mismatch the file is deleted and nothing else was written. */
export async function downloadVerified(p: Platform, spec: TarballSpec, dir: string): Promise<string> {
  const file = path.join(dir, path.basename(new URL(spec.url).pathname) || 'nix.tar.xz');
  let got;
  try {
    got = await retried(p, () => downloadToFile(spec.url, file));
  } catch (e) {
    await rm(file, { force: true });
    if (e instanceof HttpError && e.status === 404)
      throw new InputError(`${displayUrl(spec.url)} does not exist (404): check 'nix-version' or 'tarball-url'.`);
    throw e;
  }
  if (got.sha256 !== spec.sha256) {
    await rm(file, { force: true });
    throw new InputError(
      `Checksum mismatch for ${displayUrl(spec.url)}: expected sha256 ${spec.sha256} (${spec.checksumSource === 'input' ? "input 'tarball-sha256'" : 'published .sha256'}), got ${got.sha256}. Nothing was installed.`,
    );
  }
  p.log('info', `Downloaded ${displayUrl(spec.url)} (${(got.bytes / 1048576).toFixed(1)} MiB), sha256 verified.`);
  return file;
}
