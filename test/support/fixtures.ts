/**
 * Paths of the Nix fixtures made by test/setup/nix-fixtures.sh (run by .ci/setup). Missing fixtures fail loudly with
 * the command that makes them: an integration test never skips.
 */
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';

export const CACHE = process.env.FLAKE_CI_TEST_CACHE || '/var/cache/flake-ci';
export const RELEASE_DIR = path.join(CACHE, 'release');
export const TARBALL_NAME = 'nix-2.34.8-x86_64-linux.tar.xz';
export const NIX234_BIN = path.join(CACHE, 'nix-2.34.8', 'bin');

export function requireFixtures(): { tarball: string; sha256: string } {
  const tarball = path.join(RELEASE_DIR, TARBALL_NAME);
  if (!existsSync(tarball) || !existsSync(`${tarball}.sha256`) || !existsSync(path.join(NIX234_BIN, 'nix')))
    throw new Error(
      `Nix fixtures missing under ${CACHE}: run 'bash test/setup/nix-fixtures.sh' (or 'bash .ci/setup').`,
    );
  return { tarball, sha256: readFileSync(`${tarball}.sha256`, 'utf8').trim() };
}

export function requireCommand(file: string, pkg: string): void {
  if (!existsSync(file)) throw new Error(`${file} is missing: apt-get install ${pkg}`);
}

/** Removes a scratch directory holding a throwaway Nix store, whose paths are read-only (made writable first). */
export function removeScratch(dir: string | undefined): void {
  if (!dir || !existsSync(dir)) return;
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isSymbolicLink()) continue;
      try {
        chmodSync(p, entry.isDirectory() ? 0o755 : 0o644);
      } catch {
        // Already gone: rmSync reports what matters.
      }
      if (entry.isDirectory()) walk(p);
    }
  };
  walk(dir);
  rmSync(dir, { recursive: true, force: true });
}
