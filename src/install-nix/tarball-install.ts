/**
 * The tarball source end to end: resolve and verify the release (or reuse the tool cache), unpack it into staging
 * inside /nix, move it into the store, register it, create the profile. Nothing touches /nix before the checksum
 * matched, and a failure after that leaves /nix as it was.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import * as path from 'node:path';
import type { Platform } from '../platform/types.js';
import { resolveTarball, downloadVerified } from './download.js';
import type { InstallInputs } from './inputs.js';
import type { Privilege } from './privilege.js';
import {
  installRelease,
  prepareNixRoot,
  readRelease,
  removeStaging,
  rollback,
  stagingDir,
  unpackTarball,
  type UnpackedRelease,
} from './store-install.js';
import { cacheVersion, copyFromCache, findCached, saveToCache } from './tool-cache.js';

export interface TarballResult {
  nixStorePath: string;
  source: 'tarball' | 'tool-cache';
  added: number;
}

export async function installFromTarball(
  p: Platform,
  inputs: InstallInputs,
  system: string,
  priv: Privilege,
): Promise<TarballResult> {
  const spec = await resolveTarball(p, {
    version: inputs.nixVersion,
    system,
    url: inputs.tarballUrl,
    sha256: inputs.tarballSha256,
  });
  const key = cacheVersion(inputs.nixVersion, spec.sha256);
  const arch = p.runner.arch;
  const useCache = inputs.toolCache && p.runner.toolCache !== '';
  const cached = useCache ? findCached(p, key, arch) : undefined;

  // RUNNER_TEMP always exists on GitHub; GitLab's `.flake-ci/tmp` is ours to create (the platform makes no dirs up front).
  await mkdir(p.runner.temp, { recursive: true });
  const downloads = await mkdtemp(path.join(p.runner.temp, 'flake-ci-nix-download-'));
  try {
    const tarball = cached ? undefined : await downloadVerified(p, spec, downloads);
    const created = await prepareNixRoot(p, priv);
    const staging = await stagingDir();
    let release: UnpackedRelease;
    try {
      if (cached) {
        p.log('info', `Using Nix from the tool cache (${cached}).`);
        await copyFromCache(p, cached, staging);
        release = await readRelease(staging);
      } else {
        release = await unpackTarball(p, tarball as string, staging);
        // Hosted runners are fresh VMs: a tool-cache copy there would cost time and never be used.
        if (useCache && !p.runner.hosted) await saveToCache(p, staging, key, arch);
      }
    } catch (e) {
      await removeStaging(staging);
      if (created) await rollback(p, [], true);
      throw e;
    }
    try {
      const installed = await installRelease(p, release, created);
      return {
        nixStorePath: installed.nixStorePath,
        source: cached ? 'tool-cache' : 'tarball',
        added: installed.added.length,
      };
    } finally {
      await removeStaging(staging);
    }
  } finally {
    await rm(downloads, { recursive: true, force: true });
  }
}
