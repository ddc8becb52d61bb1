/**
 * Keeps unpacked releases in the runner's tool cache (self-hosted runners keep it between jobs), keyed by version
 * and the tarball's sha256, so the same bytes are never downloaded or verified twice. On GitHub this is
 * @actions/tool-cache; elsewhere the same directory layout is written here, because @actions/tool-cache prints
 * GitHub workflow commands, which must never reach a GitLab log.
 */
import * as tc from '@actions/tool-cache';
import { existsSync } from 'node:fs';
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { run } from '../exec.js';
import type { Platform } from '../platform/types.js';

export const TOOL = 'nix';

/** A semver-valid key that changes with the tarball's content, not just its version. */
export function cacheVersion(version: string, sha256: string): string {
  const v = /^\d+\.\d+$/.test(version) ? `${version}.0` : version;
  return `${v}-sha${sha256.slice(0, 16)}`;
}

function ownDir(p: Platform, version: string, arch: string): string {
  return path.join(p.runner.toolCache, TOOL, version, arch);
}

export function findCached(p: Platform, version: string, arch: string): string | undefined {
  if (p.name === 'github') {
    const found = tc.find(TOOL, version, arch);
    return found === '' ? undefined : found;
  }
  const dir = ownDir(p, version, arch);
  return existsSync(`${dir}.complete`) ? dir : undefined;
}

export async function saveToCache(p: Platform, dir: string, version: string, arch: string): Promise<void> {
  if (p.name === 'github') {
    await tc.cacheDir(dir, TOOL, version, arch);
    return;
  }
  const dst = ownDir(p, version, arch);
  await rm(dst, { recursive: true, force: true });
  await mkdir(path.dirname(dst), { recursive: true });
  await cp(dir, dst, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  await writeFile(`${dst}.complete`, '');
}

/** Copies a cached release into staging (reflinks where the filesystem can). */
export async function copyFromCache(p: Platform, cached: string, staging: string): Promise<void> {
  await run(p, 'cp', ['-a', '--reflink=auto', '--', `${cached}/.`, staging]);
}
